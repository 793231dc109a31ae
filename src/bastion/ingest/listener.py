"""Syslog listener: receives syslog and CEF messages over UDP and TCP and hands them on in small batches.

UDP: one datagram is one message. TCP: both RFC 6587 framings, told apart per message: octet counting
(``<length> <message>``) and non-transparent framing (each message ends with LF, or NUL as some senders
do; a CR before the LF is dropped), over any number of concurrent connections. Digits and a space at
the start of a message are read as an octet count; real syslog messages start with ``<PRI>``.
Messages longer than ``max_message_size`` are dropped and counted.

Records go to ``sink`` in batches of up to ``batch_size``, at most about ``flush_interval`` seconds after
the first of them arrived, one batch at a time and in arrival order. When the sink is slow or failing,
records wait in a bounded buffer: TCP connections then stop being read (the senders feel the
back-pressure through TCP flow control), while UDP datagrams that find the buffer full are dropped.
UDP is lossy by nature (the kernel drops datagrams too when nobody reads fast enough); use TCP where
every message matters. A sink that raises is retried with backoff (``sink_retries`` times, everything
waiting meanwhile); after that the batch is dropped and counted. ``stats`` counts messages received,
delivered and dropped, batches, connections and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from bastion.ingest.readers import text_format
from bastion.ingest.records import RawRecord

__all__ = ["Sink", "SyslogListener"]

log = logging.getLogger(__name__)

Sink = Callable[[list[RawRecord]], Awaitable[None]]

_READ_SIZE = 64 * 1024
_MAX_LENGTH_DIGITS = 10
_TRAILER = re.compile(b"[\n\x00]")  # RFC 6587 non-transparent framing: LF, or NUL from some senders


class _Framer:
    """Splits a TCP byte stream into messages (RFC 6587 octet counting or newline-delimited)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.buf = bytearray()
        self.skip = 0  # bytes still to discard from an oversized octet-counted frame
        self.skip_line = False  # discarding an oversized newline-delimited message up to its LF
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages now complete."""
        self.buf += data
        out: list[bytes] = []
        buf = self.buf
        while buf:
            if self.skip:
                n = min(self.skip, len(buf))
                del buf[:n]
                self.skip -= n
                continue
            if self.skip_line:
                m = _TRAILER.search(buf)
                i = m.start() if m else -1
                if i < 0:
                    buf.clear()
                    break
                del buf[: i + 1]
                self.skip_line = False
                continue
            if buf[0] in b"\r\n\x00 ":
                del buf[:1]
                continue
            if 0x30 <= buf[0] <= 0x39:
                j = 0
                while j < len(buf) and j <= _MAX_LENGTH_DIGITS and 0x30 <= buf[j] <= 0x39:
                    j += 1
                if j == len(buf):
                    break  # only digits so far: wait to see whether a space follows
                if buf[j] == 0x20:
                    length = int(buf[:j])
                    if length > self.max_size:
                        self.oversized += 1
                        del buf[: j + 1]
                        self.skip = length
                        continue
                    if len(buf) < j + 1 + length:
                        break
                    out.append(bytes(buf[j + 1 : j + 1 + length]))
                    del buf[: j + 1 + length]
                    continue
            m = _TRAILER.search(buf)
            i = m.start() if m else -1
            if i < 0:
                if len(buf) > self.max_size:
                    self.oversized += 1
                    buf.clear()
                    self.skip_line = True
                break
            if i > self.max_size:
                self.oversized += 1
            else:
                out.append(bytes(buf[:i]))
            del buf[: i + 1]
        return out

    def finish(self) -> list[bytes]:
        """At end of stream: a last newline-delimited message without its LF still counts."""
        rest = bytes(self.buf).strip(b"\r\n\x00 ")
        self.buf.clear()
        if not rest or self.skip or self.skip_line:
            return []
        return [rest]


class _Batcher:
    """Bounded buffer between the sockets and the sink; delivers batches in order from one task."""

    def __init__(
        self, sink: Sink, batch_size: int, flush_interval: float, max_pending: int, retries: int,
        stats: dict[str, int],
    ) -> None:  # fmt: skip
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.retries = retries
        self.stats = stats
        self.buf: list[RawRecord] = []
        self.inflight = 0  # records handed to the sink and not yet acknowledged
        self.closing = False
        self.nonempty = asyncio.Event()
        self.full = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()

    def offer(self, record: RawRecord) -> bool:
        """Add without waiting (UDP); False when the buffer is full."""
        if len(self.buf) >= self.max_pending or self.closing:
            return False
        self._append(record)
        return True

    async def put(self, record: RawRecord) -> None:
        """Add, waiting for room while the sink catches up (TCP back-pressure)."""
        while len(self.buf) >= self.max_pending:
            self.space.clear()
            await self.space.wait()
        self._append(record)

    def _append(self, record: RawRecord) -> None:
        self.buf.append(record)
        self.nonempty.set()
        if len(self.buf) >= self.batch_size:
            self.full.set()

    async def run(self) -> None:
        """Deliver batches until closed and empty."""
        while True:
            if not self.buf:
                if self.closing:
                    return
                self.nonempty.clear()
                await self.nonempty.wait()
                continue
            if len(self.buf) < self.batch_size and not self.closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.full.wait(), self.flush_interval)
            batch = self.buf[: self.batch_size]
            del self.buf[: self.batch_size]
            if len(self.buf) < self.batch_size:
                self.full.clear()
            if len(self.buf) < self.max_pending:
                self.space.set()
            await self._deliver(batch)

    async def _deliver(self, batch: list[RawRecord]) -> None:
        self.inflight = len(batch)  # left set if stop() gives up and cancels us, to count the loss
        await self._deliver_with_retries(batch, 0.05)
        self.inflight = 0

    async def _deliver_with_retries(self, batch: list[RawRecord], delay: float) -> None:
        for attempt in range(self.retries + 1):
            try:
                await self.sink(batch)
            except Exception:
                self.stats["errors"] += 1
                log.exception(
                    "syslog sink failed on a batch of %d records (attempt %d)", len(batch), attempt + 1
                )
                if attempt < self.retries:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                continue
            self.stats["batches"] += 1
            self.stats["delivered"] += len(batch)
            return
        self.stats["dropped"] += len(batch)

    def close(self) -> None:
        self.closing = True
        self.nonempty.set()
        self.full.set()


class SyslogListener:
    """Receive syslog/CEF on UDP and TCP and pass batches of RawRecords to ``sink``.

    A port of 0 binds a free port (read ``udp_port``/``tcp_port`` after :meth:`start`); None turns that
    transport off. Records carry ``format`` "cef" or "syslog" by content, ``data`` the message text and
    ``line`` a running counter.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        udp_port: int | None = 514,
        tcp_port: int | None = 514,
        sink: Sink | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.1,
        max_message_size: int = 64 * 1024,
        max_pending: int = 20_000,
        max_connections: int = 1024,
        sink_retries: int = 5,
    ) -> None:
        if sink is None:
            raise ValueError("SyslogListener needs a sink: an async function taking a list of RawRecord")
        self.host = host
        self.udp_port = udp_port
        self.tcp_port = tcp_port
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.stats: dict[str, int] = {
            "received": 0, "dropped": 0, "errors": 0, "delivered": 0, "batches": 0, "connections": 0,
        }  # fmt: skip
        self._batcher = _Batcher(sink, batch_size, flush_interval, max_pending, sink_retries, self.stats)
        self._line = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind the sockets and start delivering."""
        loop = asyncio.get_running_loop()
        self._runner = asyncio.create_task(self._batcher.run(), name="syslog-batcher")
        try:
            if self.udp_port is not None:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(self.host, self.udp_port)
                )
                self._udp = transport
                self.udp_port = transport.get_extra_info("sockname")[1]
            if self.tcp_port is not None:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.tcp_port)
                self.tcp_port = self._tcp.sockets[0].getsockname()[1]
        except BaseException:
            await self.stop()
            raise
        log.info("syslog listener on %s: udp %s, tcp %s", self.host, self.udp_port, self.tcp_port)

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the sockets, deliver what was already received (within ``timeout``), then return.

        Open TCP connections are closed from our side; what they had sent is still delivered.
        """
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        if self._conns:
            for writer in self._conns.values():
                writer.close()  # the reader sees the end of the stream and the handler finishes
            _, stuck = await asyncio.wait(list(self._conns), timeout=timeout)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None
        self._batcher.close()
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner, timeout)
            except TimeoutError:
                lost = len(self._batcher.buf) + self._batcher.inflight
                self.stats["dropped"] += lost
                log.error("syslog sink did not finish within %.1fs; %d records dropped", timeout, lost)
            self._runner = None

    def _record(self, data: bytes) -> RawRecord:
        text = data.decode("utf-8", "replace").rstrip("\r\n\x00")
        self._line += 1
        return RawRecord(self._line, text, text_format(text))

    def _datagram(self, data: bytes) -> None:
        self.stats["received"] += 1
        if len(data) > self.max_message_size or not data.strip():
            self.stats["dropped"] += 1
            return
        if not self._batcher.offer(self._record(data)):
            self.stats["dropped"] += 1

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._conns) >= self.max_connections or task is None:
            self.stats["errors"] += 1
            writer.close()
            return
        self._conns[task] = writer
        self.stats["connections"] += 1
        framer = _Framer(self.max_message_size)
        try:
            while data := await reader.read(_READ_SIZE):
                await self._accept(framer.feed(data), framer)
            await self._accept(framer.finish(), framer)
        except (ConnectionError, OSError) as exc:
            log.debug("syslog connection ended: %s", exc)
        except asyncio.CancelledError:
            # Only stop() cancels a connection (when the sink stays stuck); end quietly, since the
            # stream machinery would log a cancelled handler as an error.
            log.debug("syslog connection cancelled at shutdown")
        finally:
            self._conns.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _accept(self, messages: list[bytes], framer: _Framer) -> None:
        if framer.oversized:
            self.stats["received"] += framer.oversized
            self.stats["dropped"] += framer.oversized
            framer.oversized = 0
        for message in messages:
            if not message.strip(b"\r\n\x00 "):
                continue
            self.stats["received"] += 1
            await self._batcher.put(self._record(message))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.listener._datagram(data)

    def error_received(self, exc: Exception) -> None:
        self.listener.stats["errors"] += 1
        log.debug("syslog UDP error: %s", exc)
