"""`Upgrade` requests: a 101 turns the client and upstream connections into one byte tunnel."""

from __future__ import annotations

import asyncio
import os

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tests.proxy.support import (
    TIMEOUT,
    Client,
    Request,
    get_ok,
    origin,
    parse_head,
    proxy,
    read_head,
    read_request,
    response,
    simple_origin,
)

UPGRADE_REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


async def echo(ws: ServerConnection) -> None:
    await ws.send("hello from the server")
    async for message in ws:
        if message == "push":
            for i in range(3):
                await ws.send(f"pushed {i}")
        else:
            await ws.send(message)


async def wait_no_connections(px: object) -> None:
    runtime = px.runtime  # type: ignore[attr-defined]
    for _ in range(200):
        if not runtime.connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"connections left: {runtime.connections}")


def tcp_samples(px: object) -> dict[tuple[str, str], float]:
    """(sample name, peer) -> value, for the tcp_* metrics of the proxy."""
    out: dict[tuple[str, str], float] = {}
    text = px.runtime.metrics.render().decode()  # type: ignore[attr-defined]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("tcp_"):
                key = (sample.name, sample.labels["peer"])
                out[key] = out.get(key, 0) + sample.value
    return out


async def test_websocket_through_the_proxy() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with proxy(("127.0.0.1", port)) as px:
            async with asyncio.timeout(TIMEOUT):
                async with connect(f"ws://127.0.0.1:{px.port}/chat") as ws:
                    assert await ws.recv() == "hello from the server"
                    for i in range(20):
                        await ws.send(f"message {i}")
                        assert await ws.recv() == f"message {i}"
                    big = os.urandom(1_000_000)
                    await ws.send(big)
                    assert await ws.recv() == big
                    await ws.send("push")
                    assert [await ws.recv() for _ in range(3)] == [f"pushed {i}" for i in range(3)]
                await ws.wait_closed()
                assert ws.close_code == 1000
            await wait_no_connections(px)
            # Both sides of the tunnel were counted open and then closed.
            tcp = tcp_samples(px)
            assert tcp[("tcp_open_total", "src")] == 1
            assert tcp[("tcp_open_total", "dst")] == 1
            assert tcp[("tcp_open_connections", "src")] == 0
            assert tcp[("tcp_open_connections", "dst")] == 0
            assert tcp[("tcp_close_total", "dst")] == 1
            assert tcp[("tcp_read_bytes_total", "src")] > 1_000_000
            assert tcp[("tcp_write_bytes_total", "dst")] > 1_000_000


async def test_server_closing_the_websocket() -> None:
    async def closer(ws: ServerConnection) -> None:
        await ws.send("bye")
        await ws.close(code=4000, reason="done")

    async with serve(closer, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with proxy(("127.0.0.1", port)) as px:
            async with asyncio.timeout(TIMEOUT), connect(f"ws://127.0.0.1:{px.port}/") as ws:
                assert await ws.recv() == "bye"
                await ws.wait_closed()
                assert ws.close_code == 4000
            await wait_no_connections(px)


async def test_raw_upgrade_with_early_bytes_and_half_close() -> None:
    """Bytes the client sends right behind the upgrade request reach the upstream once the
    tunnel exists; the tunnel forwards each side's EOF."""
    seen: list[Request] = []

    async def upgrading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request is not None
        seen.append(request)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"
            b"server-first"
        )
        data = await reader.read()  # to the client's EOF
        writer.write(b"|echo:" + data)
        await writer.drain()

    async with origin(upgrading) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(
            b"GET /tunnel HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
            b"Upgrade: raw\r\nX-Hop: 1\r\n\r\nearly-bytes"
        )
        head = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101")
        client.send(b"+later")
        client.writer.write_eof()
        rest = await asyncio.wait_for(client.reader.read(), TIMEOUT)
        assert rest == b"server-first|echo:early-bytes+later"
        await client.close()
        # Upgrade and Connection: upgrade go upstream; other hop-by-hop headers do not.
        assert seen[0].header(b"upgrade") == b"raw"
        assert seen[0].header(b"connection") == b"upgrade"
        await wait_no_connections(px)


async def test_declined_upgrade_is_an_ordinary_response() -> None:
    declining = simple_origin(lambda r: response(200, b"no upgrade here"))
    async with origin(declining) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(UPGRADE_REQUEST)
        result = await client.response()
        assert result.status == 200
        assert result.body == b"no upgrade here"
        # The bytes after an upgrade request are not HTTP, so the connection ends here.
        assert await client.at_eof()
        await client.close()
        await get_ok(px.port)


async def test_upgrade_to_a_refused_upstream_is_502() -> None:
    async with origin(simple_origin()) as up:
        target = up.addr
    async with proxy(target) as px:
        client = await Client.connect(px.port)
        client.send(UPGRADE_REQUEST)
        result = await client.response()
        assert result.status == 502
        assert await client.at_eof()
        await client.close()


async def test_upgrade_response_split_across_reads() -> None:
    async def slow_101(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = await read_head(reader)
        parse_head(raw)
        for piece in (
            b"HTTP/1.1 101 Switching",
            b" Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n",
            b"\r\n",
        ):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        while data := await reader.read(65536):
            writer.write(data.upper())

    async with origin(slow_101) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
        head = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101")
        client.send(b"shout")
        assert await asyncio.wait_for(client.reader.readexactly(5), TIMEOUT) == b"SHOUT"
        await client.close()
        await wait_no_connections(px)
