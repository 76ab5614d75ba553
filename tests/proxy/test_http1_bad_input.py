"""Bad client input gets a precise error, never crashes or wedges the proxy, and never
disturbs other connections: each test keeps a healthy keep-alive client busy alongside."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from gossamer.proxy.config import Http1Limits
from gossamer.proxy.errors import ERROR_HEADER
from gossamer.proxy.http1.server import LINGER_BYTES, LINGER_SECONDS
from tests.proxy.support import (
    TIMEOUT,
    Client,
    Request,
    Response,
    config,
    get_ok,
    origin,
    proxy,
    response,
    simple_origin,
)

LIMITS = Http1Limits(max_header_bytes=2048, header_read_timeout=0.3)


@contextlib.asynccontextmanager
async def healthy_alongside(port: int) -> AsyncIterator[None]:
    """A client making requests on one keep-alive connection for as long as the block runs;
    every one of them must succeed, and some must have run."""
    done = [0]
    stop = asyncio.Event()

    async def run() -> None:
        client = await Client.connect(port)
        try:
            for _ in range(100_000):
                result = await client.request(path="/healthy")
                assert result.status == 200
                done[0] += 1
                if stop.is_set():
                    return
                await asyncio.sleep(0.002)
        finally:
            await client.close()

    task = asyncio.ensure_future(run())
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)  # re-raises the healthy client's failure
    assert done[0] > 0


@contextlib.asynccontextmanager
async def setup(limits: Http1Limits = LIMITS) -> AsyncIterator[int]:
    async with origin(simple_origin()) as up, proxy(up.addr, config(http1=limits)) as px:
        yield px.port
        await get_ok(px.port)
        # No connection is left behind by the bad ones.
        for _ in range(200):
            if not px.runtime.connections:
                break
            await asyncio.sleep(0.01)
        assert not px.runtime.connections


async def send_raw(port: int, data: bytes) -> Response:
    client = await Client.connect(port)
    try:
        client.send(data)
        result = await client.response()
        assert await client.at_eof()  # the proxy closes after a client error
        return result
    finally:
        await client.close()


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"G@T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET / FTP/1.1\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\n: novalue\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS to a plaintext port
        # Request smuggling shapes.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    ],
)
async def test_malformed_requests_get_400(data: bytes) -> None:
    async with setup() as port, healthy_alongside(port):
        result = await send_raw(port, data)
        assert result.status == 400
        assert result.header(ERROR_HEADER.encode())


async def test_bad_chunk_encoding_mid_body_closes_the_connection() -> None:
    seen: list[Request] = []
    async with origin(simple_origin(seen=seen)) as up, proxy(up.addr, config(http1=LIMITS)) as px:
        async with healthy_alongside(px.port):
            client = await Client.connect(px.port)
            client.send(
                b"POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\nnot-hex\r\n"
            )
            data = b""
            with contextlib.suppress(ConnectionError):
                async with asyncio.timeout(TIMEOUT):
                    while chunk := await client.reader.read(65536):
                        data += chunk
            # The request was already on its way upstream, so the proxy may only answer 400
            # or close; either way the connection ends and nothing else is forwarded.
            assert data == b"" or data.startswith(b"HTTP/1.1 400")
            await client.close()
        assert all(r.target != b"/chunks" for r in seen)
        await get_ok(px.port)


async def test_header_block_over_the_limit_is_431() -> None:
    async with setup() as port, healthy_alongside(port):
        big = b"X-Big: " + b"a" * 4096 + b"\r\n"
        result = await send_raw(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + big + b"\r\n")
        assert result.status == 431
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(400))
        result = await send_raw(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
        assert result.status == 431
        result = await send_raw(port, b"GET /" + b"u" * 4096 + b" HTTP/1.1\r\n\r\n")
        assert result.status == 431


async def test_431_reaches_a_client_that_is_still_sending() -> None:
    """The proxy rejects at the limit while the client is still writing its head: the
    response must reach the client, not be destroyed by a reset at close."""
    async with setup() as port:
        for _ in range(10):
            client = await Client.connect(port)
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Many: header\r\n" * 20_000)
            with contextlib.suppress(ConnectionError):
                await client.writer.drain()
            result = await client.response()
            assert result.status == 431
            await client.close()


async def test_endless_header_line_is_431_not_memory() -> None:
    """A header line that never ends is held whole by the parser; the limit must still hold."""
    # A header timeout long enough that only the size limit can end this.
    limits = Http1Limits(max_header_bytes=2048, header_read_timeout=TIMEOUT)
    async with setup(limits) as port, healthy_alongside(port):
        client = await Client.connect(port)
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(0.5):
                for _ in range(100):
                    client.send(b"a" * 8192)
                    await client.writer.drain()
                    await asyncio.sleep(0.001)
        result = await client.response()
        assert result.status == 431
        await client.close()


async def test_lingering_after_an_error_is_bounded() -> None:
    async with setup() as port:
        client = await Client.connect(port)
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
        sent = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(LINGER_SECONDS + TIMEOUT):
                for _ in range(100_000):  # far more than the proxy will drop for it
                    client.send(b"a" * 65536)
                    sent += 65536
                    await client.writer.drain()
        # The proxy gave up on the client (by time or by bytes), not the test's timeout.
        assert loop.time() - started < LINGER_SECONDS + 1.0
        assert sent < LINGER_BYTES + 32 * 1024 * 1024
        await client.close()


async def test_header_block_just_under_the_limit_is_forwarded() -> None:
    async with setup() as port:
        client = await Client.connect(port)
        result = await client.request(headers="X-Fill: " + "a" * 1500 + "\r\n")
        assert result.status == 200
        await client.close()


async def test_oversized_head_sent_slowly_is_431() -> None:
    """The limit applies across reads, not per read."""
    async with setup() as port, healthy_alongside(port):
        client = await Client.connect(port)
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        for i in range(100):
            client.send(b"X-Part-%d: %s\r\n" % (i, b"b" * 40))
            await client.writer.drain()
            await asyncio.sleep(0)
        result = await client.response()
        assert result.status == 431
        await client.close()


async def test_one_byte_a_while_gets_408_after_the_header_timeout() -> None:
    async with setup() as port, healthy_alongside(port):
        client = await Client.connect(port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"s" * 100

        async def trickle() -> None:
            for byte in request:
                client.send(bytes([byte]))
                await asyncio.sleep(0.05)

        trickler = asyncio.ensure_future(trickle())
        try:
            result = await client.response()
        finally:
            trickler.cancel()
        elapsed = loop.time() - started
        assert result.status == 408
        assert 0.25 <= elapsed < 2.0
        assert await client.at_eof()
        await client.close()


async def test_slow_second_request_on_a_keep_alive_connection_gets_408() -> None:
    async with setup() as port:
        client = await Client.connect(port)
        assert (await client.request()).status == 200
        client.send(b"GET / HTTP/1.1\r\n")  # and nothing more
        result = await client.response()
        assert result.status == 408
        await client.close()


async def test_idle_keep_alive_connection_is_not_a_slow_header() -> None:
    """The header timer starts with a request's first byte, not when the last one ended."""
    async with setup() as port:
        client = await Client.connect(port)
        assert (await client.request()).status == 200
        await asyncio.sleep(0.5)  # longer than the header timeout
        assert (await client.request()).status == 200
        await client.close()


async def test_random_garbage_never_hurts_the_proxy() -> None:
    rng = random.Random(1234)
    async with setup() as port, healthy_alongside(port):
        for _ in range(40):
            size = rng.randrange(1, 3000)
            prefix = rng.choice([b"", b"GET ", b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\nA: "])
            data = prefix + bytes(rng.randrange(256) for _ in range(size))
            client = await Client.connect(port)
            client.send(data)
            with contextlib.suppress(ConnectionError):
                answer = await asyncio.wait_for(client.reader.read(65536), TIMEOUT)
                # An answer, if any, is a complete HTTP response of the proxy's own.
                if answer:
                    assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
            await client.close()


async def test_healthy_helper_detects_a_broken_proxy() -> None:
    """The alongside client must fail when the proxy misbehaves, or it proves nothing."""
    async with origin(simple_origin(lambda r: response(500, b"no"))) as up, proxy(up.addr) as px:
        with pytest.raises(AssertionError):
            async with healthy_alongside(px.port):
                await asyncio.sleep(0.05)


async def test_head_split_across_reads_followed_by_a_body_is_not_too_large() -> None:
    """Only head bytes count towards the header limit, not the body behind a split head."""
    seen: list[Request] = []
    async with origin(simple_origin(seen=seen)) as up, proxy(up.addr, config(http1=LIMITS)) as px:
        client = await Client.connect(px.port)
        body = bytes(300_000)
        client.send(b"POST /split HTTP/1.1\r\nHost: a\r\nX-Fir")
        await client.writer.drain()
        await asyncio.sleep(0.05)  # the proxy has read the first part on its own
        client.send(b"st: 1\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        result = await client.response()
        assert result.status == 200
        assert seen[0].body == body
        await client.close()
