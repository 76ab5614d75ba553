"""Bodies stream through the proxy in both directions, byte-exact, with bounded buffering.

Boundedness is measured inside the proxy: a sampler adds up, every few milliseconds, what the
proxy holds in user space for the connection (its write buffers towards the client and the
origin, and request bytes waiting for an upstream). With a 64 KiB high-water mark that sum
must stay within the mark plus one read (uvloop reads at most 256 KiB at a time) per
direction, however large the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator

import pytest

from gossamer.proxy.config import BufferLimits, Http1Limits
from gossamer.proxy.http1.server import Http1ServerProtocol
from gossamer.proxy.runtime import ProxyRuntime
from tests.proxy.support import (
    TIMEOUT,
    Client,
    config,
    get_ok,
    origin,
    parse_head,
    proxy,
    read_head,
    read_request,
    response,
    settled,
)

HIGH = 64 * 1024
READ_CHUNK = 256 * 1024
# What the proxy may hold for one connection: both write buffers at the mark plus a read each.
BOUND = 2 * (HIGH + READ_CHUNK)
MB = 1024 * 1024


def small_buffers() -> object:
    return config(buffers=BufferLimits(high=HIGH, low=HIGH // 4))


def held_by_proxy(runtime: ProxyRuntime) -> int:
    total = 0
    for conn in list(runtime.connections):
        assert isinstance(conn, Http1ServerProtocol)
        if conn.transport is not None:
            total += conn.transport.get_write_buffer_size()
        for exchange in (conn.active, *conn._queue):
            if exchange is None:
                continue
            total += exchange._pending_bytes
            upstream = exchange.upstream
            if upstream is not None and upstream.transport is not None:
                total += upstream.transport.get_write_buffer_size()
    return total


@contextlib.asynccontextmanager
async def sampling(runtime: ProxyRuntime) -> AsyncIterator[list[int]]:
    """Yields a one-item list that holds the largest amount the proxy held while sampling."""
    peak = [0]

    async def sample() -> None:
        for _ in range(100_000):
            peak[0] = max(peak[0], held_by_proxy(runtime))
            await asyncio.sleep(0.002)

    task = asyncio.ensure_future(sample())
    try:
        yield peak
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def pattern(size: int) -> bytes:
    """Incompressible, position-dependent bytes: reordering or loss shows in the hash."""
    return os.urandom(size)


async def hashing_origin_reader(reader: asyncio.StreamReader) -> tuple[str, int]:
    raw = await read_head(reader)
    _, headers = parse_head(raw)
    fields = {k.lower(): v for k, v in headers}
    digest = hashlib.sha256()
    size = 0
    if fields.get(b"transfer-encoding") == b"chunked":
        for _ in range(10_000_000):
            line = await reader.readuntil(b"\r\n")
            n = int(line.split(b";")[0], 16)
            if n == 0:
                await reader.readuntil(b"\r\n")
                break
            data = await reader.readexactly(n)
            digest.update(data)
            size += n
            assert await reader.readexactly(2) == b"\r\n"
    else:
        left = int(fields[b"content-length"])
        while left:
            data = await reader.read(min(left, 65536))
            assert data
            digest.update(data)
            size += len(data)
            left -= len(data)
    return digest.hexdigest(), size


async def test_large_request_body_with_content_length() -> None:
    body = pattern(8 * MB)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            digest, size = await hashing_origin_reader(reader)
            writer.write(response(200, f"{digest} {size}".encode()))

    async with origin(handler) as up, proxy(up.addr, small_buffers()) as px:
        async with sampling(px.runtime) as peak:
            client = await Client.connect(px.port)
            for _ in range(2):
                client.send(b"PUT /upload HTTP/1.1\r\nHost: a\r\ncontent-length: %d\r\n\r\n"
                            % len(body))  # fmt: skip
                client.send(body)
                result = await client.response(timeout=20)
                assert result.body == f"{hashlib.sha256(body).hexdigest()} {len(body)}".encode()
            await client.close()
        assert peak[0] <= BOUND


async def test_large_chunked_request_body() -> None:
    body = pattern(6 * MB)
    sizes = [1, 7, 100, 4096, 65536, 300_000, 1_000_000]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest, size = await hashing_origin_reader(reader)
        writer.write(response(200, f"{digest} {size}".encode()))

    async with origin(handler) as up, proxy(up.addr, small_buffers()) as px:
        async with sampling(px.runtime) as peak:
            client = await Client.connect(px.port)
            client.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            offset, i = 0, 0
            while offset < len(body):
                piece = body[offset : offset + sizes[i % len(sizes)]]
                client.send(b"%x\r\n%b\r\n" % (len(piece), piece))
                offset += len(piece)
                i += 1
                await client.writer.drain()
            client.send(b"0\r\n\r\n")
            result = await client.response(timeout=20)
            assert result.body == f"{hashlib.sha256(body).hexdigest()} {len(body)}".encode()
            await client.close()
        assert peak[0] <= BOUND


async def chunked_response(writer: asyncio.StreamWriter, body: bytes, piece: int) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for offset in range(0, len(body), piece):
        part = body[offset : offset + piece]
        writer.write(b"%x\r\n%b\r\n" % (len(part), part))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def test_large_response_bodies_chunked_and_with_length() -> None:
    body = pattern(8 * MB)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            if request.target == b"/chunked":
                await chunked_response(writer, body, 100_000)
            else:
                writer.write(response(200, body))
                await writer.drain()

    async with origin(handler) as up, proxy(up.addr, small_buffers()) as px:
        async with sampling(px.runtime) as peak:
            client = await Client.connect(px.port)
            for path in ("/chunked", "/length", "/chunked"):
                result = await client.request(path=path)
                assert hashlib.sha256(result.body).digest() == hashlib.sha256(body).digest()
            await client.close()
        assert peak[0] <= BOUND
        assert up.accepts == 1


async def test_chunk_extensions_and_trailers_pass_through_unchanged() -> None:
    raw_body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + raw_body)

    async with origin(handler) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        for _ in range(2):
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200")
            rest = await asyncio.wait_for(client.reader.readexactly(len(raw_body)), TIMEOUT)
            assert rest == raw_body
        await client.close()


async def test_slow_reading_client_gets_everything_with_bounded_buffering() -> None:
    body = pattern(16 * MB)
    piece = 64 * 1024
    sent = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await read_request(reader)) is not None:
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, piece)
            sent[0] = 0
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
            for offset in range(0, len(body), piece):
                writer.write(body[offset : offset + piece])
                await writer.drain()
                sent[0] += piece

    async with origin(handler) as up, proxy(up.addr, small_buffers()) as px:
        async with sampling(px.runtime) as peak:
            client = await Client.connect(px.port, limit=16 * 1024, rcvbuf=piece)
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
            assert b"200" in head.split(b"\r\n")[0]
            digest, got, in_flight = hashlib.sha256(), 0, 0
            async with asyncio.timeout(30):
                while got < len(body):
                    data = await client.reader.read(16 * 1024)
                    assert data
                    digest.update(data)
                    got += len(data)
                    in_flight = max(in_flight, sent[0] - got)
                    if got < 2 * MB:
                        await asyncio.sleep(0.001)  # slow for the first megabytes
            assert digest.digest() == hashlib.sha256(body).digest()
            # Between origin and client only kernel buffers and the proxy's bounded ones:
            # a proxy that buffered the body would let the origin run 14 MB ahead.
            assert in_flight < 12 * MB
            # The connection (and the upstream, which was paused while the client lagged)
            # still works afterwards.
            assert (await client.request()).body == body
            await client.close()
        assert 0 < peak[0] <= BOUND
        assert up.accepts == 1


async def test_client_that_never_reads_stalls_only_itself() -> None:
    sent = [0]
    stalled = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request is None:
            return
        if request.target != b"/huge":
            writer.write(response(200, b"hello"))
            await writer.drain()
            while await read_request(reader) is not None:
                writer.write(response(200, b"hello"))
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (1 << 40))
        chunk = bytes(256 * 1024)
        for _ in range(100_000):
            writer.write(chunk)
            sent[0] += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.2)
            except TimeoutError:
                stalled.set()
                await writer.drain()

    async with origin(endless) as up, proxy(up.addr, small_buffers()) as px:
        async with sampling(px.runtime) as peak:
            stuck = await Client.connect(px.port)
            stuck.send(b"GET /huge HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.wait_for(stalled.wait(), TIMEOUT)
            at_stall = await settled(sent)
            # Others are served while one client holds a stalled response.
            for _ in range(3):
                await get_ok(px.port)
            await asyncio.sleep(0.2)
            assert sent[0] <= at_stall + 2 * 256 * 1024
        assert 0 < peak[0] <= BOUND
        # Far less went out than a buffering proxy would have taken: only kernel buffers.
        assert sent[0] < 64 * MB
        await stuck.close()


def shrink_send_buffers(runtime: ProxyRuntime, size: int = 32 * 1024) -> None:
    """Fixes the proxy's kernel send buffers towards its clients at `size` (no autotuning),
    so that a lagging client backs up into the proxy's own buffer after a few hundred KiB."""
    for conn in runtime.connections:
        assert isinstance(conn, Http1ServerProtocol) and conn.transport is not None
        sock = conn.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def sized_origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers `GET /<n>` with n zero bytes."""
    while (request := await read_request(reader)) is not None:
        writer.write(response(200, bytes(int(request.target[1:]))))
        await writer.drain()


async def read_slowly(client: Client, size: int) -> int:
    got = 0
    while got < size:
        data = await client.reader.read(min(16 * 1024, size - got))
        assert data
        got += len(data)
        await asyncio.sleep(0)
    return got


async def test_keep_alive_after_responses_that_ended_while_the_client_lagged() -> None:
    """A response's last read can push the client's buffer over the mark, which pauses the
    upstream; that connection then goes back to the pool and must not stay paused there."""
    async with origin(sized_origin) as up, proxy(up.addr, small_buffers()) as px:
        client = await Client.connect(px.port, limit=64 * 1024, rcvbuf=32 * 1024)
        shrink_send_buffers(px.runtime)
        # Sizes vary so that some response ends with a large final read.
        for i in range(8):
            size = MB + i * 61_000
            client.send(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
            head = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(read_slowly(client, size), TIMEOUT)
            assert (await client.request(path="/5")).body == bytes(5)
        await client.close()
        await get_ok_sized(px.port)
        assert up.accepts == 1


async def get_ok_sized(port: int) -> None:
    client = await Client.connect(port)
    assert (await client.request(path="/3")).body == bytes(3)
    await client.close()


@pytest.mark.parametrize("pool_max_idle", [64, 0], ids=["pooled", "fresh-upstreams"])
async def test_pipelined_large_responses_to_a_lagging_client_stay_bounded(
    pool_max_idle: int,
) -> None:
    """Each next response starts while the client is still behind; with a fresh upstream
    connection per request (no pool) it must start paused too."""
    sizes = [MB + i * 61_000 for i in range(8)]
    cfg = config(
        buffers=BufferLimits(high=HIGH, low=HIGH // 4),
        http1=Http1Limits(pool_max_idle_per_target=pool_max_idle),
    )
    async with origin(sized_origin) as up, proxy(up.addr, cfg) as px:
        async with sampling(px.runtime) as peak:
            client = await Client.connect(px.port, limit=64 * 1024, rcvbuf=32 * 1024)
            shrink_send_buffers(px.runtime)
            client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % n for n in sizes))
            for size in sizes:
                head = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
                assert head.startswith(b"HTTP/1.1 200")
                await asyncio.wait_for(read_slowly(client, size), TIMEOUT)
            await client.close()
        assert 0 < peak[0] <= BOUND


async def test_pipelined_requests_to_a_client_that_does_not_read_yet() -> None:
    body = pattern(3 * MB)
    served = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await read_request(reader)) is not None:
            writer.write(response(200, body))
            await writer.drain()
            served[0] += 1

    async with origin(handler) as up, proxy(up.addr, small_buffers()) as px:
        async with sampling(px.runtime) as peak:
            client = await Client.connect(px.port, limit=8 * MB)
            client.writer.transport.pause_reading()
            client.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" * 4)
            await asyncio.sleep(0.3)
            client.writer.transport.resume_reading()
            for _ in range(4):
                assert (await client.response(timeout=20)).body == body
            await client.close()
        assert served[0] == 4
        assert 0 < peak[0] <= BOUND
