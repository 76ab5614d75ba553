"""The demo's HTTP/1.1 server and client against each other, in process, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gossamer.demo.config import HostPort
from gossamer.demo.http1 import RequestHead
from gossamer.demo.httpclient import HttpClientError, KeepAliveConnection
from gossamer.demo.httpserver import HttpServer, Response, ServerLimits, json_response

# Starts a scripted server (see `raw_server`) and returns its port.
RawServer = Callable[[list[bytes]], Awaitable[int]]


async def _hello(request: RequestHead) -> Response:
    return json_response(200, {"path": request.path, "query": request.query})


async def _broken(request: RequestHead) -> Response:
    raise RuntimeError("handler bug")


async def _raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[HttpServer, int]]:
    served = HttpServer("test", {"/": _hello, "/broken": _broken})
    port = await served.start("127.0.0.1", 0)
    yield served, port
    await served.shutdown(0.5)


async def test_keep_alive_carries_many_requests(server: tuple[HttpServer, int]) -> None:
    served, port = server
    connection = KeepAliveConnection(HostPort("127.0.0.1", port), "test")
    try:
        for n in range(3):
            result = await connection.get(f"/?n={n}", timeout=5)
            assert result.status == 200
            assert result.body == b'{"path": "/", "query": {"n": "%d"}}\n' % n
            assert len(served._connections) == 1
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
        (b"GET /broken HTTP/1.1\r\n\r\n", 500),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/9.9\r\n\r\n", 505),
        (b"GET / HTTP/1.0\r\n\r\n", 200),
    ],
)
async def test_precise_statuses(
    server: tuple[HttpServer, int], request_bytes: bytes, status: int
) -> None:
    _, port = server
    reply = await _raw_exchange(
        port, request_bytes + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 %d " % status)


async def test_handler_failure_keeps_the_connection(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reply = await _raw_exchange(
        port, b"GET /broken HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert reply.count(b"HTTP/1.1 500 ") == 1 and reply.count(b"HTTP/1.1 200 ") == 1


async def test_head_has_no_body(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reply = await _raw_exchange(port, b"HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: " in head and body == b""


async def test_connections_beyond_the_bound_get_503() -> None:
    served = HttpServer("test", {"/": _hello}, ServerLimits(max_connections=1))
    port = await served.start("127.0.0.1", 0)
    first = KeepAliveConnection(HostPort("127.0.0.1", port), "test")
    try:
        assert (await first.get("/", timeout=5)).status == 200
        reply = await _raw_exchange(port, b"GET / HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503 ")
    finally:
        await first.close()
        await served.shutdown(0.5)


async def test_shutdown_finishes_in_flight_and_closes_idle() -> None:
    entered = asyncio.Event()

    async def slow(request: RequestHead) -> Response:
        entered.set()
        await asyncio.sleep(0.5)
        return Response(200, b"finished")

    served = HttpServer("test", {"/slow": slow, "/": _hello})
    port = await served.start("127.0.0.1", 0)
    idle = KeepAliveConnection(HostPort("127.0.0.1", port), "test")
    assert (await idle.get("/", timeout=5)).status == 200  # now idle, kept alive

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(entered.wait(), 5)
    started = time.monotonic()
    shutdown = asyncio.create_task(served.shutdown(3.0))
    await asyncio.sleep(0.1)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)  # no longer accepting
    reply = await asyncio.wait_for(reader.read(), 5)  # the server closes after answering
    writer.close()
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"finished")
    assert b"Connection: close" in reply
    await asyncio.wait_for(shutdown, 5)
    assert time.monotonic() - started < 2.0
    with pytest.raises(HttpClientError):
        await idle.get("/", timeout=2)  # the idle connection was closed, and so is the port
    await idle.close()


async def test_shutdown_gives_up_after_the_grace_period() -> None:
    async def stuck(request: RequestHead) -> Response:
        await asyncio.sleep(60)
        return Response(200, b"never")

    served = HttpServer("test", {"/": stuck})
    port = await served.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await served.shutdown(0.3)
    assert time.monotonic() - started < 2.0
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without a response
    writer.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    """A scripted server: the n-th connection gets the n-th reply, then is closed."""
    servers: list[asyncio.Server] = []

    async def start(replies: list[bytes]) -> int:
        remaining = list(replies)

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(remaining.pop(0) if remaining else b"")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()


async def test_client_reads_chunked_and_close_delimited_bodies(raw_server: RawServer) -> None:
    port = await raw_server(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: 1\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy",
        ]
    )
    connection = KeepAliveConnection(HostPort("127.0.0.1", port), "test")
    try:
        first = await connection.get("/", timeout=5)
        assert (first.status, first.body) == (200, b"hello world")
        # The server hung up without saying so: the client retries once on a new connection.
        second = await connection.get("/", timeout=5)
        assert (second.status, second.body) == (503, b"busy")
    finally:
        await connection.close()


async def test_client_errors_are_its_own(raw_server: RawServer) -> None:
    port = await raw_server([b"HTTP/1.1 2000 What\r\n\r\n"])
    connection = KeepAliveConnection(HostPort("127.0.0.1", port), "test")
    with pytest.raises(HttpClientError, match="malformed response"):
        await connection.get("/", timeout=5)
    with pytest.raises(HttpClientError):
        await connection.get("/", timeout=5)  # the scripted server has nothing more to say
    refused = KeepAliveConnection(HostPort("127.0.0.1", 1), "test")
    with pytest.raises(HttpClientError, match="ConnectionRefusedError"):
        await refused.get("/", timeout=5)


async def test_client_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    connection = KeepAliveConnection(HostPort("127.0.0.1", port), "test")
    started = time.monotonic()
    with pytest.raises(HttpClientError, match="no response within"):
        await connection.get("/", timeout=0.3)
    assert time.monotonic() - started < 2.0
    server.close()
