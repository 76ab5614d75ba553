"""Test-side peers for the proxy: origin servers and raw HTTP/1 clients over loopback.

Origins are plain asyncio stream servers whose handler the test writes, so a test controls
every byte the proxy sees. The raw client reads responses with its own small parser, so a
test can check exactly what the proxy forwarded (framing, headers, and nothing after).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from gossamer.proxy.config import BufferLimits, Http1Limits, ProxyConfig
from gossamer.proxy.http1 import Http1ServerProtocol
from gossamer.proxy.runtime import OUTBOUND, ProxyRuntime
from tests.proxy.harness import HandlerFactory, Served, serve_handler

# Every wait in the tests is bounded by this unless a test says otherwise.
TIMEOUT = 5.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def config(**overrides: object) -> ProxyConfig:
    """A ProxyConfig for tests: short timeouts, with any field (or http1/buffers) overridden."""
    http1 = overrides.pop("http1", Http1Limits(header_read_timeout=5.0, pool_idle_timeout=5.0))
    buffers = overrides.pop("buffers", BufferLimits())
    return ProxyConfig(http1=http1, buffers=buffers, **overrides)  # type: ignore[arg-type]


# -- origins ---------------------------------------------------------------------------------


@dataclass
class Origin:
    server: asyncio.Server
    port: int
    accepts: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def close(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), TIMEOUT)


async def start_origin(handler: Handler) -> Origin:
    """An origin server on an ephemeral loopback port; counts the connections it accepts."""
    origin: Origin

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        origin.accepts += 1
        origin.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        origin.tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            writer.transport.abort()
        else:
            # A handler that returns closes cleanly, after what it wrote has gone out.
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
        finally:
            origin.tasks.discard(task)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    origin = Origin(server, server.sockets[0].getsockname()[1])
    return origin


@dataclass
class Request:
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw_head: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def names(self) -> set[bytes]:
        return {key.lower() for key, _ in self.headers}


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def parse_head(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = raw[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers in these tests
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        assert await reader.readexactly(2) == b"\r\n"


async def read_request(reader: asyncio.StreamReader, *, body: bool = True) -> Request | None:
    """The next request on `reader`, body included; None at a clean EOF."""
    try:
        raw = await read_head(reader)
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    line, headers = parse_head(raw)
    method, target, version = line.split(b" ")
    request = Request(method, target, version, headers, b"", raw)
    if not body:
        return request
    length = request.header(b"content-length")
    if request.header(b"transfer-encoding") == b"chunked":
        request.body = await read_chunked(reader)
    elif length is not None:
        request.body = await reader.readexactly(int(length))
    return request


def response(
    status: int = 200,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    *,
    length: bool = True,
) -> bytes:
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if length:
        head += f"content-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def simple_origin(
    make: Callable[[Request], bytes] = lambda request: response(200, b"hello"),
    seen: list[Request] | None = None,
) -> Handler:
    """An HTTP/1.1 keep-alive origin answering each request with `make(request)`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(10_000):
            request = await read_request(reader)
            if request is None:
                return
            if seen is not None:
                seen.append(request)
            writer.write(make(request))
            await writer.drain()

    return handle


# -- the proxy -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def proxy(
    target: tuple[str, int],
    cfg: ProxyConfig | None = None,
    factory: HandlerFactory = Http1ServerProtocol,
    runtime: ProxyRuntime | None = None,
    direction: str = OUTBOUND,
) -> AsyncIterator[Served]:
    served = await serve_handler(factory, target, cfg or config(), direction, runtime)
    try:
        yield served
    finally:
        await served.close()
        # Connections still open at the end of a test are reset, so none outlives its loop.
        for conn in list(served.runtime.connections):
            conn.abort()


@contextlib.asynccontextmanager
async def origin(handler: Handler) -> AsyncIterator[Origin]:
    started = await start_origin(handler)
    try:
        yield started
    finally:
        await started.close()


# -- clients ---------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw_head: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Client:
    """A raw HTTP/1 client connection to the proxy."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, limit: int = 2**16, rcvbuf: int | None = None) -> Client:
        """Connects; `rcvbuf` shrinks the kernel's receive buffer (set before connecting)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), TIMEOUT
            )
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def request(
        self, method: str = "GET", path: str = "/", headers: str = "", body: bytes = b""
    ) -> Response:
        head = f"{method} {path} HTTP/1.1\r\nHost: test.example\r\n{headers}"
        if body:
            head += f"content-length: {len(body)}\r\n"
        self.send(head.encode() + b"\r\n" + body)
        return await self.response(head_request=method == "HEAD")

    async def response(self, *, head_request: bool = False, timeout: float = TIMEOUT) -> Response:
        return await asyncio.wait_for(self._response(head_request), timeout)

    async def _response(self, head_request: bool) -> Response:
        while True:
            raw = await read_head(self.reader)
            line, headers = parse_head(raw)
            status = int(line.split(b" ")[1])
            if status >= 200 or status == 101:
                break
        result = Response(status, headers, b"", raw)
        if head_request or status in (204, 304) or status == 101:
            return result
        length = result.header(b"content-length")
        if result.header(b"transfer-encoding") == b"chunked":
            result.body = await read_chunked(self.reader)
        elif length is not None:
            result.body = await self.reader.readexactly(int(length))
        else:
            result.body = await self.reader.read(-1)
        return result

    async def at_eof(self, timeout: float = TIMEOUT) -> bool:
        """True if the proxy closed the connection (cleanly or by reset) within `timeout`."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), timeout)
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


async def get_ok(port: int) -> None:
    """One request on a fresh connection must succeed: the proxy is still healthy."""
    client = await Client.connect(port)
    try:
        result = await client.request()
        assert result.status == 200, result
    finally:
        await client.close()


async def settled(counter: list[int], quiet: float = 0.3) -> int:
    """Waits until `counter[0]` has stopped growing for `quiet` seconds; returns its value.

    A stall seen once can be a busy machine; one that lasts is backpressure.
    """
    value = counter[0]
    async with asyncio.timeout(TIMEOUT):
        while True:
            await asyncio.sleep(quiet)
            if counter[0] == value:
                return value
            value = counter[0]
