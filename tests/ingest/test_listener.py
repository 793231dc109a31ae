"""The syslog listener over real UDP and TCP sockets on free ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from bastion.ingest.listener import SyslogListener
from bastion.ingest.records import RawRecord

CEF = (
    "<134>Sep 19 08:26:10 fw01 CEF:0|Security|threatmanager|1.0|{sig}|detected a \\| in packet|10|"
    "src=10.0.0.1 act=blocked a \\= dst=1.1.1.1"
)


class Collector:
    """A sink that keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[RawRecord]] = []

    async def __call__(self, batch: list[RawRecord]) -> None:
        self.batches.append(list(batch))

    @property
    def records(self) -> list[RawRecord]:
        return [r for batch in self.batches for r in batch]


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the listener")
        await asyncio.sleep(0.01)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def octets(message: str) -> bytes:
    data = message.encode()
    return str(len(data)).encode() + b" " + data


def send_udp(port: int, messages: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for message in messages:
            sock.sendto(message, ("127.0.0.1", port))


def test_udp_and_tcp_both_framings_reach_the_sink() -> None:
    async def main() -> None:
        sink = Collector()
        listener = SyslogListener("127.0.0.1", 0, 0, sink, batch_size=50, flush_interval=0.05)
        await listener.start()
        assert listener.udp_port and listener.tcp_port
        assert listener.udp_port != 514 and listener.tcp_port != 514

        udp = [f"<13>Oct 11 22:14:15 host app: udp message {i}" for i in range(5)] + [CEF.format(sig=1)]
        send_udp(listener.udp_port, [m.encode() + b"\n" for m in udp])

        counted = [
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed",
            "<13>Oct 11 22:14:15 host app: a message\nwith a line break inside its frame",
            CEF.format(sig=2),
            "<13>Oct 11 22:14:15 host app: caf\u00e9 \u2603",
        ]
        _, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        stream = b"".join(octets(m) for m in counted)
        for i in range(0, len(stream), 7):  # frames split across many small writes
            writer.write(stream[i : i + 7])
            await writer.drain()
        newline = [f"<14>Oct 11 22:14:16 host app: line {i}" for i in range(20)] + [CEF.format(sig=3)]
        _, writer2 = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        writer2.write(b"".join(m.encode() + b"\r\n" for m in newline[:-1]) + newline[-1].encode())  # no LF
        await writer2.drain()
        writer2.close()
        await writer2.wait_closed()

        expected = udp + counted + newline
        await wait_for(lambda: len(sink.records) >= len(expected))
        writer.close()
        await writer.wait_closed()
        await listener.stop()

        records = sink.records
        assert sorted(str(r.data) for r in records) == sorted(expected)
        assert sorted(r.line for r in records) == list(range(1, len(expected) + 1))
        for record in records:
            assert isinstance(record.data, str)
            assert record.format == ("cef" if "CEF:0|" in record.data else "syslog")
        # Each connection's messages arrive in order.
        tcp_counted = [r.data for r in records if r.data in counted]
        assert tcp_counted == counted
        assert [r.data for r in records if r.data in newline] == newline
        assert all(len(batch) <= 50 for batch in sink.batches)
        assert listener.stats["received"] == len(expected)
        assert listener.stats["delivered"] == len(expected)
        assert listener.stats["dropped"] == 0 and listener.stats["errors"] == 0
        assert listener.stats["connections"] == 2

    run(main)


def test_many_concurrent_tcp_connections() -> None:
    async def main() -> None:
        sink = Collector()
        listener = SyslogListener("127.0.0.1", None, 0, sink, batch_size=100)
        await listener.start()
        assert listener.udp_port is None

        async def client(n: int) -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
            for i in range(25):
                line = f"<13>Oct 11 22:14:15 host app[{n}]: message {i}"
                writer.write(octets(line) if n % 2 else line.encode() + b"\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(client(n) for n in range(40)))
        await wait_for(lambda: len(sink.records) >= 1000)
        await listener.stop()
        assert len(sink.records) == 1000
        for n in range(40):
            mine = [r.data for r in sink.records if f"app[{n}]:" in str(r.data)]
            assert mine == [f"<13>Oct 11 22:14:15 host app[{n}]: message {i}" for i in range(25)]
        assert listener.stats["connections"] == 40

    run(main)


def test_nul_terminated_messages_and_empty_frames() -> None:
    async def main() -> None:
        sink = Collector()
        listener = SyslogListener("127.0.0.1", None, 0, sink)
        await listener.start()
        _, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        writer.write(b"<13>Oct 11 22:14:15 host app: one\x00<13>Oct 11 22:14:15 host app: two\x00")
        writer.write(b"0 \n\n\r\n" + octets("<13>Oct 11 22:14:15 host app: three"))
        await writer.drain()
        await wait_for(lambda: len(sink.records) >= 3)
        writer.close()
        await writer.wait_closed()
        await listener.stop()
        assert [r.data for r in sink.records] == [
            "<13>Oct 11 22:14:15 host app: one",
            "<13>Oct 11 22:14:15 host app: two",
            "<13>Oct 11 22:14:15 host app: three",
        ]
        assert listener.stats["received"] == 3

    run(main)


def test_oversized_messages_are_dropped_and_counted() -> None:
    async def main() -> None:
        sink = Collector()
        listener = SyslogListener("127.0.0.1", 0, 0, sink, max_message_size=200)
        await listener.start()
        big = "<13>Oct 11 22:14:15 host app: " + "x" * 500
        send_udp(listener.udp_port or 0, [big.encode(), b"<13>Oct 11 22:14:15 host app: small udp"])
        _, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        writer.write(octets(big) + octets("<13>Oct 11 22:14:15 host app: after big frame"))
        writer.write(big.encode() + b"\n" + b"<13>Oct 11 22:14:15 host app: after big line\n")
        await writer.drain()
        await wait_for(lambda: len(sink.records) >= 3)
        writer.close()
        await writer.wait_closed()
        await listener.stop()
        assert sorted(str(r.data) for r in sink.records) == [
            "<13>Oct 11 22:14:15 host app: after big frame",
            "<13>Oct 11 22:14:15 host app: after big line",
            "<13>Oct 11 22:14:15 host app: small udp",
        ]
        assert listener.stats["dropped"] == 3
        assert listener.stats["received"] == 6

    run(main)


def test_slow_sink_pauses_tcp_and_udp_overflow_is_counted() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        delivered: list[RawRecord] = []

        async def slow_sink(batch: list[RawRecord]) -> None:
            await gate.wait()
            delivered.extend(batch)

        listener = SyslogListener("127.0.0.1", 0, 0, slow_sink, batch_size=10, max_pending=50)
        await listener.start()
        total = 2000
        _, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        payload = b"".join(f"<13>Oct 11 22:14:15 host app: tcp {i}\n".encode() for i in range(total))
        writer.write(payload)
        # With the sink stuck the buffer fills, and the listener stops reading the connection.
        await wait_for(lambda: listener.stats["received"] >= 50)
        await asyncio.sleep(0.2)
        assert listener.stats["received"] < total
        assert delivered == []
        send_udp(listener.udp_port or 0, [b"<13>Oct 11 22:14:15 host app: udp while full"] * 5)
        await wait_for(lambda: listener.stats["dropped"] >= 5)

        gate.set()
        await writer.drain()
        await wait_for(lambda: len(delivered) >= total)
        writer.close()
        await writer.wait_closed()
        await listener.stop()
        assert [r.data for r in delivered] == [f"<13>Oct 11 22:14:15 host app: tcp {i}" for i in range(total)]
        assert listener.stats["dropped"] == 5

    run(main)


def test_failing_sink_is_retried_and_stop_flushes() -> None:
    async def main() -> None:
        calls: list[int] = []
        delivered: list[RawRecord] = []

        async def flaky_sink(batch: list[RawRecord]) -> None:
            calls.append(len(batch))
            if len(calls) <= 2:
                raise RuntimeError("store unavailable")
            delivered.extend(batch)

        listener = SyslogListener("127.0.0.1", None, 0, flaky_sink, batch_size=1000, flush_interval=10.0)
        await listener.start()
        _, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        writer.write(b"".join(octets(f"<13>Oct 11 22:14:15 host app: m{i}") for i in range(3)))
        await writer.drain()
        await wait_for(lambda: listener.stats["received"] == 3)
        writer.close()
        await writer.wait_closed()
        # The flush interval is long: stop() itself must deliver what is buffered.
        await listener.stop()
        assert [r.data for r in delivered] == [f"<13>Oct 11 22:14:15 host app: m{i}" for i in range(3)]
        assert calls == [3, 3, 3]
        assert listener.stats["errors"] == 2
        assert listener.stats["dropped"] == 0

    run(main)


def test_sink_is_required() -> None:
    with pytest.raises(ValueError, match="needs a sink"):
        SyslogListener("127.0.0.1", 0, 0)


def test_stop_closes_open_connections_and_gives_up_on_a_stuck_sink() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def stuck_sink(batch: list[RawRecord]) -> None:
            started.set()
            await asyncio.Event().wait()  # never returns

        listener = SyslogListener("127.0.0.1", 0, 0, stuck_sink, batch_size=2, flush_interval=0.01)
        await listener.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.tcp_port)
        writer.write(b"".join(f"<13>Oct 11 22:14:15 host app: m{i}\n".encode() for i in range(5)))
        await writer.drain()
        await asyncio.wait_for(started.wait(), 5)
        await wait_for(lambda: listener.stats["received"] == 5)

        loop = asyncio.get_running_loop()
        began = loop.time()
        await listener.stop(timeout=0.3)
        assert loop.time() - began < 3
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed the connection
        assert listener.stats["dropped"] == 5  # two in the sink's hands, three still buffered
        assert listener.stats["delivered"] == 0
        writer.close()

    run(main)
