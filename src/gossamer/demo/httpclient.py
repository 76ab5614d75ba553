"""A minimal asyncio HTTP/1.1 client for the vote-bot: GET over one keep-alive connection.

Reusing a connection is what real clients do, and it is what the mesh's outbound proxy sees
and pools. A request that fails on a reused connection is retried once on a fresh one (the
server may have closed it while idle, and GET is safe to repeat). Response bodies are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from gossamer.demo.config import HostPort
from gossamer.demo.http1 import (
    MAX_HEAD_BYTES,
    HttpProtocolError,
    ResponseHead,
    parse_chunk_size,
    parse_response_head,
    render_request_head,
)

MAX_BODY_BYTES = 1 << 20
MAX_TRAILER_LINES = 64


class HttpClientError(Exception):
    """No usable response: the connection failed, timed out, or carried a malformed one."""


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    body: bytes


class KeepAliveConnection:
    """One HTTP/1.1 connection to `addr`, opened on first use and reopened after it closes."""

    def __init__(self, addr: HostPort, user_agent: str) -> None:
        self._addr = addr
        self._user_agent = user_agent
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str, timeout: float) -> HttpResult:
        try:
            return await asyncio.wait_for(self._get_with_one_retry(target), timeout)
        except TimeoutError:
            await self.close()  # the connection is mid-exchange: unusable
            raise HttpClientError(f"no response within {timeout:g}s") from None

    async def _get_with_one_retry(self, target: str) -> HttpResult:
        reused = self._writer is not None
        try:
            return await self._exchange(target)
        except (OSError, asyncio.IncompleteReadError) as error:
            await self.close()
            if not reused:
                raise HttpClientError(_describe(error)) from None
        try:
            return await self._exchange(target)
        except (OSError, asyncio.IncompleteReadError) as error:
            await self.close()
            raise HttpClientError(_describe(error)) from None

    async def _exchange(self, target: str) -> HttpResult:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._addr.host, self._addr.port, limit=MAX_HEAD_BYTES
            )
        reader, writer = self._reader, self._writer
        writer.write(
            render_request_head("GET", target, str(self._addr), (("User-Agent", self._user_agent),))
        )
        await writer.drain()
        try:
            head = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
            body, close_delimited = await _read_body(reader, head)
        except (HttpProtocolError, asyncio.LimitOverrunError) as error:
            await self.close()
            raise HttpClientError(f"malformed response: {error}") from None
        if close_delimited or not head.keep_alive:
            await self.close()
        return HttpResult(head.status, body)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _read_body(reader: asyncio.StreamReader, head: ResponseHead) -> tuple[bytes, bool]:
    """The body and whether it ran to the connection's end (so the connection is spent)."""
    if head.status in (204, 304) or 100 <= head.status < 200:
        return b"", False
    if head.chunked:
        return await _read_chunked(reader), False
    if head.content_length is not None:
        if head.content_length > MAX_BODY_BYTES:
            raise HttpProtocolError(502, f"body of {head.content_length} bytes is too large")
        return await reader.readexactly(head.content_length), False
    body = bytearray()
    while len(body) <= MAX_BODY_BYTES:
        more = await reader.read(64 * 1024)
        if not more:
            return bytes(body), True
        body += more
    raise HttpProtocolError(502, "close-delimited body too large")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = parse_chunk_size(await reader.readuntil(b"\r\n"))
        if len(body) + size > MAX_BODY_BYTES:
            raise HttpProtocolError(502, "chunked body too large")
        if size == 0:
            break
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the CRLF after each chunk
    for _ in range(MAX_TRAILER_LINES):
        if await reader.readuntil(b"\r\n") == b"\r\n":
            return bytes(body)  # trailers (if any) skipped: nothing the bot needs
    raise HttpProtocolError(502, "too many trailer lines")


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.IncompleteReadError):
        return "connection closed before a full response"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
