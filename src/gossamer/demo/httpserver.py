"""A small asyncio HTTP/1.1 server for the demo's front end and side doors.

Keep-alive matters: in the mesh, the inbound proxy pools connections to the app. Everything a
client can make it hold is bounded (connections, head size, body size, idle time).

Shutdown, as the mesh expects of a workload: stop accepting, close idle keep-alive
connections, let requests in flight finish (their responses say `Connection: close`), and
after the grace period close whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gossamer.demo.http1 import (
    MAX_HEAD_BYTES,
    HttpProtocolError,
    RequestHead,
    parse_request_head,
    render_response_head,
)
from gossamer.demo.logs import fields

log = logging.getLogger("gossamer.demo.http")

# Lingering close after an error response: how long and how much to discard, and how many
# refused connections may linger at once.
LINGER_SECONDS = 0.5
LINGER_MAX_BYTES = 256 * 1024
MAX_SHEDDING = 32


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, value: object) -> Response:
    body = json.dumps(value, ensure_ascii=False, indent=None).encode() + b"\n"
    return Response(status, body, "application/json")


def html_response(status: int, page: str) -> Response:
    return Response(status, page.encode(), "text/html; charset=utf-8")


Handler = Callable[[RequestHead], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_connections: int = 256
    max_body_bytes: int = 64 * 1024
    # Longer than the proxy's pool idle timeout (20 s), so the proxy, not us, retires idle
    # pooled connections and never writes a request into one we are closing.
    keepalive_timeout: float = 90.0


class HttpServer:
    """Serves `routes` (exact path → handler); GET and HEAD only."""

    def __init__(
        self, name: str, routes: Mapping[str, Handler], limits: ServerLimits | None = None
    ) -> None:
        self.name = name
        self.routes = routes
        self.limits = limits or ServerLimits()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._draining = asyncio.Event()
        self._shedding = 0

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful when `port` is 0)."""
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=MAX_HEAD_BYTES, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def shutdown(self, grace: float) -> None:
        self._draining.set()  # idle connections close now, busy ones after their response
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "closed requests still running after the grace period",
                    extra=fields(server=self.name, count=len(pending)),
                )
                await asyncio.wait(pending, timeout=1.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._draining.is_set() or len(self._connections) >= self.limits.max_connections:
            # Over the bound (or closing): say so and hang up rather than queue. Saying so
            # costs a short linger, so the number of those is bounded too.
            writer.write(_error_response(503, "too many connections", False))
            if self._shedding < MAX_SHEDDING:
                self._shedding += 1
                try:
                    await _close_after_error(reader, writer)
                finally:
                    self._shedding -= 1
            await _close(writer)
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the grace period ran out
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            self._connections.discard(task)
            await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self._draining.is_set():
            try:
                raw = await self._next_head(reader)
            except asyncio.IncompleteReadError:
                return  # closed between requests: the normal end of a keep-alive connection
            except asyncio.LimitOverrunError:
                writer.write(_error_response(431, "request head too large", False))
                await _close_after_error(reader, writer)
                return
            if raw is None:
                return  # idle too long, or shutting down
            if not await self._exchange(raw, reader, writer):
                return

    async def _next_head(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next request head; None when the connection idled out or the server drains.

        A head that has arrived wins over a drain that starts at the same moment: it is a
        request the server accepted, so it gets answered.
        """
        head = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
        drain = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait(
                (head, drain),
                timeout=self.limits.keepalive_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            drain.cancel()
            arrived = head.done()
            if not arrived:
                head.cancel()
        return head.result() if arrived else None

    async def _exchange(
        self, raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; returns whether the connection may carry another."""
        try:
            request = parse_request_head(raw)
            if request.chunked:
                raise HttpProtocolError(501, "chunked request bodies are not supported")
            if request.content_length > self.limits.max_body_bytes:
                raise HttpProtocolError(413, "request body too large")
        except HttpProtocolError as error:
            writer.write(_error_response(error.status, error.reason, False))
            await _close_after_error(reader, writer)
            log.info(
                "refused a malformed request",
                extra=fields(server=self.name, status=error.status, reason=error.reason),
            )
            return False
        if request.content_length:
            await reader.readexactly(request.content_length)  # nobody reads GET bodies
        response = await self._respond(request)
        keep_alive = request.keep_alive and not self._draining.is_set()
        body = b"" if request.method == "HEAD" else response.body
        headers = (("Content-Type", response.content_type), *response.headers)
        writer.write(render_response_head(response.status, headers, len(response.body), keep_alive))
        writer.write(body)
        await writer.drain()
        log.debug(
            "request",
            extra=fields(
                server=self.name, method=request.method, path=request.path, status=response.status
            ),
        )
        return keep_alive

    async def _respond(self, request: RequestHead) -> Response:
        if request.method not in ("GET", "HEAD"):
            response = json_response(405, {"error": f"method {request.method} not allowed"})
            return Response(405, response.body, response.content_type, (("Allow", "GET, HEAD"),))
        handler = self.routes.get(request.path)
        if handler is None:
            return json_response(404, {"error": f"no such path {request.path}"})
        try:
            return await handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug in one handler must cost one request, not the process.
            log.exception("handler failed", extra=fields(server=self.name, path=request.path))
            return json_response(500, {"error": "internal error"})


def _error_response(status: int, reason: str, keep_alive: bool) -> bytes:
    body = json.dumps({"error": reason}).encode() + b"\n"
    head = render_response_head(
        status, (("Content-Type", "application/json"),), len(body), keep_alive
    )
    return head + body


async def _close_after_error(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close after an error response without losing the response.

    Closing a socket with unread request bytes in the kernel sends a reset, which can destroy
    the response before the client reads it. So: finish sending, half-close, and discard what
    the client still sends for a moment (bounded in bytes and time), as nginx's lingering
    close does.
    """
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            discarded = 0
            while discarded < LINGER_MAX_BYTES:
                chunk = await reader.read(16 * 1024)
                if not chunk:
                    break
                discarded += len(chunk)
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
