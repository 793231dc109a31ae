"""The FastAPI application: transport only. Validation and auth here; the work is in the services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

import bastion
from bastion import native
from bastion.api.errors import install_error_handlers
from bastion.api.responses import JSON
from bastion.api.routes import agents as agents_routes
from bastion.api.routes import alerts, apikeys, cases, events, metrics, runs, triage, workflows
from bastion.api.routes import approvals as approvals_routes
from bastion.api.routes import changes as changes_routes
from bastion.api.routes import edl as edl_routes
from bastion.api.routes import intel as intel_routes
from bastion.config import Settings
from bastion.enrich.enricher import Enricher
from bastion.ingest.queue import IngestQueue
from bastion.pipeline import connect_response
from bastion.store import Database

__all__ = ["create_app"]


def create_app(
    settings: Settings, db: Database | None = None, ingest_queue: IngestQueue | None = None
) -> FastAPI:
    """The app. It opens (and migrates) the store and starts the ingest writer unless given them."""
    from bastion.ingest.normalize.generic import register_configured

    register_configured(settings.ingest_mappings)  # a bad mapping stops the start, naming it

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_db = db is None
        app.state.db = db or Database(settings.database_url)
        if own_db:
            app.state.db.migrate()
        connect_response(app.state.db)
        own_queue = ingest_queue is None
        app.state.enricher = (
            ingest_queue.enricher
            if ingest_queue and ingest_queue.enricher
            else Enricher.from_settings(settings)
        )
        app.state.ingest_queue = ingest_queue or IngestQueue(
            app.state.db,
            capacity=settings.ingest_queue_size,
            batch_size=settings.ingest_batch_size,
            enricher=app.state.enricher,
        )
        try:
            yield
        finally:
            if own_queue:
                app.state.ingest_queue.close()
            if own_db:
                app.state.db.dispose()

    app = FastAPI(
        title="Bastion",
        version=getattr(bastion, "__version__", "0.1.0"),
        lifespan=lifespan,
        default_response_class=JSON,
        description="Self-hosted security operations: events, alerts and cases.",
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"], summary="Liveness, store status, compiled modules")
    def healthz(request: Request) -> JSON:
        with request.app.state.db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        q = request.app.state.ingest_queue
        return JSON(
            {
                "status": "ok",
                "database": request.app.state.db.dialect,
                "ingest_pending": q.pending,
                "ingest_capacity": q.capacity,
                "native": native.status(),
            }
        )

    app.include_router(events.router)
    app.include_router(alerts.router)
    app.include_router(cases.router)
    app.include_router(apikeys.router)
    app.include_router(approvals_routes.router)
    app.include_router(workflows.router)
    app.include_router(runs.router)
    app.include_router(intel_routes.router)
    app.include_router(triage.router)
    app.include_router(metrics.router)
    app.include_router(changes_routes.router)
    app.include_router(edl_routes.router)
    app.include_router(agents_routes.router)
    return app
