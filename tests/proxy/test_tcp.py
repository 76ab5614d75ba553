"""Opaque TCP forwarding: byte-exact both ways, half-close, resets, backpressure, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gossamer.proxy.config import BufferLimits, ProxyConfig
from gossamer.proxy.runtime import INBOUND, OUTBOUND, ProxyRuntime
from gossamer.proxy.tcp import PipeEnd, TcpForwardProtocol
from tests.proxy.harness import Served
from tests.proxy.support import TIMEOUT, config, origin, proxy, settled
from tests.proxy.test_http1_failures import full_backlog, unused_port

MB = 1024 * 1024


def tcp_proxy(
    target: tuple[str, int], cfg: ProxyConfig | None = None, direction: str = OUTBOUND
) -> contextlib.AbstractAsyncContextManager[Served]:
    return proxy(target, cfg, factory=TcpForwardProtocol, direction=direction)


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()


def tcp_metrics(runtime: ProxyRuntime) -> dict[tuple[str, str, str], float]:
    """(sample name, peer, errno) -> value."""
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(runtime.metrics.render().decode()):
        for s in family.samples:
            if s.name.startswith("tcp_"):
                key = (s.name, s.labels["peer"], s.labels.get("errno", ""))
                out[key] = out.get(key, 0) + s.value
    return out


async def wait_idle(runtime: ProxyRuntime) -> None:
    for _ in range(300):
        if not runtime.connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"connections left: {runtime.connections}")


async def test_echo_several_megabytes_both_ways_byte_exact() -> None:
    payload = os.urandom(8 * MB)
    async with origin(echo) as up, tcp_proxy(up.addr) as px:
        reader, writer = await connect(px.port)

        async def send() -> None:
            for offset in range(0, len(payload), 100_000):
                writer.write(payload[offset : offset + 100_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        received = await asyncio.wait_for(reader.read(), 20)  # to the echo's EOF
        await sender
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        writer.close()
        await wait_idle(px.runtime)

        metrics = tcp_metrics(px.runtime)
        assert metrics[("tcp_open_total", "src", "")] == 1
        assert metrics[("tcp_open_total", "dst", "")] == 1
        assert metrics[("tcp_open_connections", "src", "")] == 0
        assert metrics[("tcp_open_connections", "dst", "")] == 0
        assert metrics[("tcp_close_total", "src", "")] == 1
        assert metrics[("tcp_close_total", "dst", "")] == 1
        # Every byte read from one side is written to the other, and counted on both.
        assert metrics[("tcp_read_bytes_total", "src", "")] == len(payload)
        assert metrics[("tcp_write_bytes_total", "dst", "")] == len(payload)
        assert metrics[("tcp_read_bytes_total", "dst", "")] == len(payload)
        assert metrics[("tcp_write_bytes_total", "src", "")] == len(payload)


async def test_metric_labels_for_an_inbound_connection() -> None:
    async with origin(echo) as up, tcp_proxy(up.addr, direction=INBOUND) as px:
        reader, writer = await connect(px.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"ping"
        writer.close()
        await wait_idle(px.runtime)
    families = {
        f.name: f for f in text_string_to_metric_families(px.runtime.metrics.render().decode())
    }
    opened = [s for s in families["tcp_open"].samples if s.name == "tcp_open_total"]
    assert {s.labels["peer"] for s in opened} == {"src", "dst"}
    for sample in opened:
        assert sample.labels["direction"] == "inbound"
        assert sample.labels["target_addr"] == f"127.0.0.1:{up.port}"
        assert sample.labels["tls"] == "no_identity"


async def test_client_half_close_is_honoured() -> None:
    """The client shuts its write side; the origin still answers afterwards, then closes."""

    async def answer_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()  # to EOF
        await asyncio.sleep(0.05)  # the reply comes well after the client's EOF
        writer.write(b"got %d bytes: " % len(request) + request[:10])
        await writer.drain()

    async with origin(answer_after_eof) as up, tcp_proxy(up.addr) as px:
        reader, writer = await connect(px.port)
        writer.write(b"0123456789" * 1000)
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert reply == b"got 10000 bytes: 0123456789"
        writer.close()
        await wait_idle(px.runtime)


async def test_origin_half_close_is_honoured() -> None:
    """The origin says all it has and shuts its write side; the client can still talk."""
    heard: list[bytes] = []

    async def speaks_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 banner\r\n")
        writer.write_eof()
        heard.append(await reader.read())

    async with origin(speaks_first) as up, tcp_proxy(up.addr) as px:
        reader, writer = await connect(px.port)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"220 banner\r\n"
        writer.write(b"still talking")
        writer.write_eof()
        for _ in range(300):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert heard == [b"still talking"]
        writer.close()
        await wait_idle(px.runtime)


async def test_bytes_sent_before_the_upstream_is_connected_arrive() -> None:
    async with origin(echo) as up, tcp_proxy(up.addr) as px:
        reader, writer = await connect(px.port)
        writer.write(b"early")  # the proxy is most likely still connecting upstream
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"early"
        writer.close()


async def test_refused_upstream_resets_the_client() -> None:
    async with tcp_proxy(("127.0.0.1", unused_port())) as px:
        for _ in range(3):
            reader, writer = await connect(px.port)
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
        await wait_idle(px.runtime)
        metrics = tcp_metrics(px.runtime)
        assert metrics[("tcp_open_total", "src", "")] == 3
        assert metrics[("tcp_open_connections", "src", "")] == 0
        assert metrics.get(("tcp_open_total", "dst", ""), 0) == 0


async def test_connect_timeout_resets_the_client_and_bounds_what_it_buffered() -> None:
    high = 64 * 1024
    cfg = config(outbound_connect_timeout=0.3, buffers=BufferLimits(high=high, low=high // 4))
    with full_backlog() as target:
        async with tcp_proxy(target, cfg=cfg) as px:
            reader, writer = await connect(px.port)
            held = 0

            async def flood() -> None:
                with contextlib.suppress(ConnectionError):
                    for _ in range(1000):
                        writer.write(bytes(65536))
                        await writer.drain()

            flooder = asyncio.ensure_future(flood())
            for _ in range(20):
                await asyncio.sleep(0.01)
                for conn in px.runtime.connections:
                    assert isinstance(conn, TcpForwardProtocol)
                    held = max(held, conn._pending_bytes)
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), TIMEOUT)
            flooder.cancel()
            writer.close()
            assert 0 < held <= high + 256 * 1024


async def test_upstream_reset_resets_the_client() -> None:
    async def resetting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)
        writer.write(b"partial")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" + bytes(4))
        writer.transport.abort()

    async with origin(resetting) as up, tcp_proxy(up.addr) as px:
        reader, writer = await connect(px.port)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(7), TIMEOUT) == b"partial"
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        await wait_idle(px.runtime)
        metrics = tcp_metrics(px.runtime)
        assert metrics[("tcp_close_total", "dst", "ECONNRESET")] == 1
        assert metrics[("tcp_close_total", "src", "")] == 1


async def test_client_reset_resets_the_upstream() -> None:
    outcome: list[str] = []

    async def waits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.read()
            outcome.append(f"eof after {len(data)}")
        except ConnectionResetError:
            outcome.append("reset")

    async with origin(waits) as up, tcp_proxy(up.addr) as px:
        _, writer = await connect(px.port)
        writer.write(b"x")
        await asyncio.sleep(0.05)
        sock = writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" + bytes(4))
        writer.transport.abort()
        for _ in range(300):
            if outcome:
                break
            await asyncio.sleep(0.01)
        assert outcome == ["reset"]
        await wait_idle(px.runtime)
        # The side that failed is labelled with its error; the one the proxy reset is not.
        metrics = tcp_metrics(px.runtime)
        assert metrics[("tcp_close_total", "src", "ECONNRESET")] == 1
        assert metrics[("tcp_close_total", "dst", "")] == 1


async def test_a_client_that_never_reads_stalls_the_origin_with_bounded_buffers() -> None:
    high = 64 * 1024
    sent = [0]
    stalled = asyncio.Event()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = bytes(256 * 1024)
        for _ in range(10_000):
            writer.write(chunk)
            sent[0] += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.2)
            except TimeoutError:
                stalled.set()
                await writer.drain()

    cfg = config(buffers=BufferLimits(high=high, low=high // 4))
    async with origin(firehose) as up, tcp_proxy(up.addr, cfg=cfg) as px:
        reader, writer = await connect(px.port)
        writer.transport.pause_reading()
        await asyncio.wait_for(stalled.wait(), TIMEOUT)
        at_stall = await settled(sent)
        peak = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            for conn in px.runtime.connections:
                assert isinstance(conn, TcpForwardProtocol)
                pipe = conn._pipe
                assert pipe is not None
                for end in (pipe.a, pipe.b):
                    assert isinstance(end, PipeEnd) and end.transport is not None
                    peak = max(peak, end.transport.get_write_buffer_size())
        assert sent[0] <= at_stall + 2 * 256 * 1024
        assert peak <= high + 256 * 1024
        # Then the client reads it all, and the flow resumes.
        writer.transport.resume_reading()
        got = 0
        async with asyncio.timeout(TIMEOUT):
            while got < at_stall + 4 * MB:
                got += len(await reader.read(1 << 20))
        writer.close()


async def test_many_concurrent_connections() -> None:
    async with origin(echo) as up, tcp_proxy(up.addr) as px:

        async def one(i: int) -> bytes:
            reader, writer = await connect(px.port)
            writer.write(b"conn %d" % i)
            writer.write_eof()
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            return data

        results = await asyncio.gather(*(one(i) for i in range(50)))
        assert results == [b"conn %d" % i for i in range(50)]
        await wait_idle(px.runtime)
        metrics = tcp_metrics(px.runtime)
        assert metrics[("tcp_open_total", "src", "")] == 50
        assert metrics[("tcp_close_total", "dst", "")] == 50


async def test_drain_lets_streams_run_then_aborts_at_the_deadline() -> None:
    async with origin(echo) as up, tcp_proxy(up.addr) as px:
        reader, writer = await connect(px.port)
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"a"
        clean = await px.runtime.drain(0.1)
        assert clean is False  # opaque streams have no request boundary to stop at
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()


async def test_half_close_with_backpressure_both_ways() -> None:
    """The client sends a lot and shuts its write side while the origin is not reading (the
    pipe pauses and resumes a side that already ended); then a large reply flows back to a
    client that reads slowly."""
    payload = os.urandom(6 * MB)
    reply = os.urandom(6 * MB)

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        data = await reader.read()
        writer.write(hashlib.sha256(data).digest() + reply)
        await writer.drain()

    cfg = config(buffers=BufferLimits(high=64 * 1024, low=16 * 1024))
    async with origin(late_reader) as up, tcp_proxy(up.addr, cfg=cfg) as px:
        reader, writer = await connect(px.port)
        writer.write(payload)
        writer.write_eof()
        digest = await asyncio.wait_for(reader.readexactly(32), TIMEOUT)
        assert digest == hashlib.sha256(payload).digest()
        got = b""
        async with asyncio.timeout(TIMEOUT):
            while chunk := await reader.read(65536):
                got += chunk
                if len(got) < MB:
                    await asyncio.sleep(0.001)
        assert got == reply
        writer.close()
        await wait_idle(px.runtime)
