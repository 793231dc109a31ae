"""The ingest queue: a bounded line of batches in front of one writer thread.

Callers first :meth:`IngestQueue.reserve` a place (the API does this before reading a request body, so
a full queue answers 429 at once), then submit their records and wait for the result. The writer
normalizes and stores each job in batches; a job's future resolves only after its batches are
committed, so nothing the API has acknowledged can be lost. On :meth:`close` the writer finishes every
job already queued before it stops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future

import msgspec

from bastion.detect.tenant import DETECTORS
from bastion.enrich.enricher import Enricher
from bastion.ingest.records import RawRecord, RecordError
from bastion.pipeline import IngestResult, batched, prepare_events, store_events
from bastion.store import Database

__all__ = ["IngestJob", "IngestQueue", "QueueClosed", "QueueFull", "Reservation"]

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """Every place in the queue is taken; try again shortly."""


class QueueClosed(Exception):
    """The queue is shutting down and takes no new work."""


class IngestJob(msgspec.Struct):
    tenant_id: str
    actor: str
    records: Iterable[RawRecord | RecordError]
    fmt: str | None = None
    source: str = "api"


class Reservation:
    """A place in the queue, held until a job is submitted into it or it is released."""

    def __init__(self, owner: IngestQueue) -> None:
        self._owner = owner
        self._open = True

    def submit(self, job: IngestJob) -> Future[IngestResult]:
        if not self._open:
            raise RuntimeError("reservation already used")
        self._open = False
        return self._owner._enqueue(job)

    def release(self) -> None:
        if self._open:
            self._open = False
            self._owner._done()


class IngestQueue:
    """Bounded queue plus the single writer thread that drains it."""

    def __init__(
        self, db: Database, *, capacity: int, batch_size: int, enricher: Enricher | None = None
    ) -> None:
        self.db = db
        self.enricher = enricher
        self.capacity = capacity
        self.batch_size = batch_size
        self._slots = threading.BoundedSemaphore(capacity)
        self._jobs: queue.SimpleQueue[tuple[IngestJob, Future[IngestResult]] | None] = queue.SimpleQueue()
        self._closed = False
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bastion-ingest", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs reserved, queued or being stored."""
        return self._pending

    def reserve(self) -> Reservation:
        if self._closed:
            raise QueueClosed("ingest queue is shutting down")
        if not self._slots.acquire(blocking=False):
            raise QueueFull(f"ingest queue is full ({self.capacity} batches pending)")
        with self._lock:
            self._pending += 1
        return Reservation(self)

    def reserve_wait(self, timeout: float | None = None) -> Reservation:
        """Reserve, waiting for a place (for sources that apply back-pressure, like syslog over TCP)."""
        if self._closed:
            raise QueueClosed("ingest queue is shutting down")
        if not self._slots.acquire(timeout=timeout):
            raise QueueFull(f"ingest queue is full ({self.capacity} batches pending)")
        with self._lock:
            self._pending += 1
        return Reservation(self)

    def _enqueue(self, job: IngestJob) -> Future[IngestResult]:
        future: Future[IngestResult] = Future()
        self._jobs.put((job, future))
        return future

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
        self._slots.release()

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, future = item
            try:
                result = IngestResult()
                detection = DETECTORS.for_tenant(self.db, job.tenant_id)
                for chunk in batched(job.records, self.batch_size):
                    rows, errors = prepare_events(chunk, job.fmt, detection=detection)
                    result.add(
                        store_events(
                            self.db,
                            job.tenant_id,
                            job.actor,
                            rows,
                            errors,
                            source=job.source,
                            enricher=self.enricher,
                        )
                    )
            except BaseException as exc:  # the caller gets every failure; the writer keeps going
                log.exception("ingest job failed")
                self._done()
                future.set_exception(exc)
            else:
                # The place is free before the caller hears back: a client that sends its next batch on
                # the answer must not find the queue still full of the batch it was answered for.
                self._done()
                future.set_result(result)

    def close(self, timeout: float | None = 30) -> None:
        """Stop taking work, finish what is reserved or queued, stop the writer."""
        self._closed = True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.01)
        self._jobs.put(None)
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
