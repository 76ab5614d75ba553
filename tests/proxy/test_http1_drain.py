"""Graceful shutdown of HTTP/1 connections: idle ones close, in-flight requests finish."""

from __future__ import annotations

import asyncio

from tests.proxy.support import Client, origin, proxy, read_request, response


async def test_drain_finishes_in_flight_requests_and_closes_idle_connections() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            if request.target == b"/slow":
                await release.wait()
            writer.write(response(200, request.target))

    async with origin(handler) as up, proxy(up.addr) as px:
        idle = await Client.connect(px.port)
        assert (await idle.request(path="/fast")).body == b"/fast"
        busy = await Client.connect(px.port)
        busy.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(0.05)

        drained = asyncio.ensure_future(px.runtime.drain(5.0))
        assert await idle.at_eof()  # nothing in flight: closed at once
        await asyncio.sleep(0.05)
        assert not drained.done()  # the slow request holds the drain
        release.set()
        result = await busy.response()
        assert (result.status, result.body) == (200, b"/slow")
        assert await busy.at_eof()  # and the connection closes after it
        assert await asyncio.wait_for(drained, 5.0) is True
        await idle.close()
        await busy.close()


async def test_drain_deadline_resets_what_is_left() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async with origin(never) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(0.05)
        assert await px.runtime.drain(0.1) is False
        assert await client.at_eof()
        await client.close()


async def test_connection_arriving_while_draining_is_closed_unserved() -> None:
    """In the race between closing the listeners and the drain, a connection may still be
    accepted: it is closed at once, before any request is forwarded (the client sees the
    close, and may retry elsewhere; DetectProtocol resets such connections even earlier)."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request.target)
            writer.write(response(200, request.target))

    async with origin(handler) as up, proxy(up.addr) as px:
        assert await px.runtime.drain(0.1) is True
        late = await Client.connect(px.port)
        late.send(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
        assert await late.at_eof()
        await late.close()
        assert seen == []
