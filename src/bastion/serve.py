"""``bastion up``: the HTTP API, the ingest writer and the syslog listener in one process, with the
scheduled jobs (intel feed polling, SLA checks) beside them.

With ``--demo`` it also loads the demo tenant and keeps a trickle of fresh demo events flowing through
the same ingest queue the API uses, so a newcomer sees live data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator

import uvicorn

from bastion.api.app import create_app
from bastion.config import Settings
from bastion.enrich.enricher import Enricher
from bastion.ingest.listener import SyslogListener
from bastion.ingest.queue import IngestJob, IngestQueue, QueueFull
from bastion.ingest.records import RawRecord
from bastion.pipeline import connect_response
from bastion.store import Database, TenantRepository
from bastion.web import install_console

__all__ = ["serve"]

log = logging.getLogger("bastion")
DEMO_TRICKLE_SECONDS = 5.0


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: ours stops the listener and drains the ingest queue first,
    where uvicorn's would re-raise the signal and end the process before that."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """On a forced exit (a second stop request) uvicorn stops waiting for requests in flight but leaves
        them running, and skips the app's lifespan shutdown. An unfinished upload then kept its place in
        the ingest queue, whose close waited 30 s for it, and the lifespan task was cancelled as the loop
        ended, logging a CancelledError traceback. Here a forced exit cancels those requests (as uvicorn
        does itself after the graceful timeout) and still shuts the lifespan down: ours only lets go of
        what :func:`serve` handed the app."""
        await super().shutdown(sockets)
        if self.force_exit:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, forced exit")
            await self.lifespan.shutdown()


def serve(settings: Settings, *, demo: bool = False) -> None:
    """Run until SIGINT or SIGTERM, then shut down in order: HTTP, syslog, the ingest queue, the engine,
    the store.

    Runs parked on an approval hold DBOS worker threads that Python would join at exit (for minutes).
    Their state is durable and the next start resumes them, so once everything else is closed the
    process ends without waiting for them, as `bastion worker` does.
    """
    asyncio.run(_serve(settings, demo=demo))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _submit(
    queue: IngestQueue, tenant_id: str, actor: str, records: list[RawRecord], source: str
) -> None:
    """Queue records, waiting for a place rather than dropping them (back-pressure for syslog/TCP)."""
    while True:
        try:
            reservation = await asyncio.to_thread(queue.reserve_wait, 5.0)
            break
        except QueueFull:
            log.warning("ingest queue full; %s waits", source)
    await asyncio.wrap_future(
        reservation.submit(IngestJob(tenant_id=tenant_id, actor=actor, records=records, source=source))
    )


async def _demo_trickle(queue: IngestQueue, tenant_id: str) -> None:
    from bastion.demo.generator import live_events

    n = 0
    while True:
        await asyncio.sleep(DEMO_TRICKLE_SECONDS)
        n += 1
        batch = live_events(int(time.time() * 1000), count=5, seed=n)
        records = [RawRecord(line=i, data=d, format=f) for i, (f, d) in enumerate(batch, start=1)]
        await _submit(queue, tenant_id, "demo", records, "demo-live")


def _stop(server: uvicorn.Server) -> None:
    if server.should_exit:  # a second signal: stop waiting for open connections
        server.force_exit = True
    server.should_exit = True


async def _poll_feeds(db: Database, every_s: float = 60.0) -> None:
    """Poll every tenant's intel feeds that are due (each feed has its own schedule)."""
    from bastion.intel.polling import poll_feeds

    while True:
        await asyncio.sleep(every_s)
        with db.read() as conn:
            tenant_ids = [t.id for t in TenantRepository(conn).list()]
        for tenant_id in tenant_ids:
            try:
                await asyncio.to_thread(poll_feeds, db, tenant_id)
            except Exception:  # one tenant's broken feed must not stop the others'
                log.exception("feed polling failed for tenant %s", tenant_id)


async def _check_slas(db: Database, settings: Settings) -> None:
    """Escalate and notify on SLA breaches every ``sla_check_interval_s`` (a failed check is logged and
    the next one runs as usual: each breach is recorded once, so nothing is lost or repeated)."""
    from bastion.triage.sla import check_slas

    while True:
        await asyncio.sleep(settings.sla_check_interval_s)
        try:
            breaches = await asyncio.to_thread(check_slas, db, settings)
        except Exception:
            log.exception("SLA check failed")
            continue
        for b in breaches:
            log.info(
                "SLA breach: tenant %s case #%s %s, escalated to %s",
                b["tenant"],
                b["number"],
                b["kind"],
                b["to_queue"],
            )


async def _expire_changes(db: Database, every_s: float = 60.0) -> None:
    """Undo containment changes whose expiry passed (a 24-hour block), every minute. A failed undo is
    recorded on the change and tried again next time."""
    from bastion.connectors.undo import expire_changes

    while True:
        await asyncio.sleep(every_s)
        try:
            for undone in await expire_changes(db):
                log.info("expired change %s undone", undone.get("id"))
        except Exception:
            log.exception("expiring changes failed")


async def _serve(settings: Settings, *, demo: bool) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    db = Database(settings.database_url)
    await asyncio.to_thread(db.migrate)
    enricher = Enricher.from_settings(settings)
    connect_response(db)
    from bastion.respond.approvals.service import configure as configure_approvals

    configure_approvals(settings)  # Slack, e-mail and link settings for approvals the engine requests
    from bastion.connectors.settings import configure as configure_connectors

    configure_connectors(settings)  # SMTP and DNS resolver settings for the connectors' actions
    from bastion.respond.runtime import Executor

    executor = Executor(db, kind="server", listen=True)
    await asyncio.to_thread(executor.launch)
    queue = IngestQueue(
        db, capacity=settings.ingest_queue_size, batch_size=settings.ingest_batch_size, enricher=enricher
    )
    background: list[asyncio.Task[None]] = []
    banner: list[str] = []

    syslog_tenant_id = None
    demo_login: tuple[str, str] | None = None  # the console's demo user and its fresh password
    if demo:
        from bastion.demo.seed import seed_demo

        report = await asyncio.to_thread(seed_demo, db, "demo", enricher=enricher)
        with db.read() as conn:
            tenant = TenantRepository(conn).by_name("demo")
        assert tenant is not None
        syslog_tenant_id = tenant.id
        banner.append(
            f"demo tenant: demo ({report['events']['accepted']} new events, "
            f"{report['alerts']['accepted']} new alerts, case {report['case_id']})"
        )
        banner.append(f"demo API key: {report['api_key']}")
        from bastion.web.session import demo_user

        demo_login = await asyncio.to_thread(demo_user, db, "demo")
        background.append(asyncio.create_task(_demo_trickle(queue, tenant.id)))
    elif settings.syslog_tenant:
        with db.read() as conn:
            tenant = TenantRepository(conn).by_name(settings.syslog_tenant)
        if tenant is None:
            raise ValueError(f"syslog_tenant {settings.syslog_tenant!r} does not exist")
        syslog_tenant_id = tenant.id

    background.append(asyncio.create_task(_poll_feeds(db)))
    background.append(asyncio.create_task(_expire_changes(db)))
    from bastion.agents.assistant import run_forever as triage_assistant

    background.append(asyncio.create_task(triage_assistant(db)))  # proposals for new cases
    if settings.sla_check_interval_s > 0:
        background.append(asyncio.create_task(_check_slas(db, settings)))
    listener = None
    if syslog_tenant_id is not None and (
        settings.syslog_udp_port is not None or settings.syslog_tcp_port is not None
    ):
        tid = syslog_tenant_id

        async def sink(records: list[RawRecord]) -> None:
            await _submit(queue, tid, "syslog", records, "syslog")

        listener = SyslogListener(
            settings.syslog_host, settings.syslog_udp_port, settings.syslog_tcp_port, sink
        )
        await listener.start()
        banner.append(f"syslog: udp/{listener.udp_port} tcp/{listener.tcp_port} on {settings.syslog_host}")

    app = create_app(settings, db, queue)
    install_console(app)  # the web console at / (the API stays under /api/v1)
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            lifespan="on",
            timeout_graceful_shutdown=3,  # open console event streams never end by themselves
        )
    )
    loop = asyncio.get_running_loop()
    # Before the banner: a signal sent once it is out (by a script waiting for it) must stop cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop, server)
    server_task = asyncio.create_task(server.serve())
    while not server.started and not server_task.done():
        await asyncio.sleep(0.05)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
        print(
            f"Bastion is up: http://{settings.host}:{bound}/  (API docs: /docs, health: /healthz)", flush=True
        )
        for line in banner:
            print(line, flush=True)
        if demo_login is not None:
            print(
                f"console: http://{settings.host}:{bound}/login  tenant demo, user {demo_login[0]}, "
                f"password {demo_login[1]}",
                flush=True,
            )
    try:
        await server_task
    finally:
        for task in background:
            task.cancel()
        if listener is not None:
            await listener.stop()
        await asyncio.to_thread(queue.close)
        # Runs parked on an approval hold executor threads; they are durable, so shutdown does not wait.
        await asyncio.to_thread(executor.shutdown)
        db.dispose()
        print("Bastion stopped.", flush=True)
