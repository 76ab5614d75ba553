"""HTTP/1.1 through the proxy: keep-alive, reuse, framing edge cases, pipelining, hop-by-hop."""

from __future__ import annotations

import asyncio
import random

from gossamer.proxy.config import Http1Limits
from tests.proxy.support import (
    TIMEOUT,
    Client,
    Request,
    config,
    get_ok,
    origin,
    parse_head,
    proxy,
    read_head,
    read_request,
    response,
    simple_origin,
)


async def test_many_requests_on_one_connection_reuse_one_upstream() -> None:
    seen: list[Request] = []

    def answer(request: Request) -> bytes:
        return response(200, b"you asked for " + request.target)

    async with origin(simple_origin(answer, seen)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        for i in range(50):
            result = await client.request(path=f"/n/{i}")
            assert result.status == 200
            assert result.body == f"you asked for /n/{i}".encode()
        # A second client, after the first is done, gets the pooled connection too.
        await client.close()
        await get_ok(px.port)
        assert up.accepts == 1
        assert [r.target for r in seen[:50]] == [f"/n/{i}".encode() for i in range(50)]
        assert all(r.header(b"host") == b"test.example" for r in seen)


async def test_concurrent_clients_get_their_own_upstreams() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            await release.wait()
            writer.write(response(200, request.target))

    async with origin(slow) as up, proxy(up.addr) as px:
        clients = [await Client.connect(px.port) for _ in range(4)]
        pending = [asyncio.ensure_future(c.request(path=f"/{i}")) for i, c in enumerate(clients)]
        for _ in range(100):
            if up.accepts == 4:
                break
            await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(*pending)
        assert [r.body for r in results] == [b"/0", b"/1", b"/2", b"/3"]
        assert up.accepts == 4
        for client in clients:
            await client.close()


async def test_http10_client() -> None:
    seen: list[Request] = []

    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request is not None
        seen.append(request)
        # An HTTP/1.0 response without a length: the body ends when the connection does.
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nold school")
        await writer.drain()

    async with origin(http10) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET /legacy HTTP/1.0\r\n\r\n")
        result = await client.response()
        assert result.status == 200
        assert result.body == b"old school"
        assert await client.at_eof()
        assert seen[0].version == b"HTTP/1.0"  # the client's version is kept upstream
        assert seen[0].header(b"host") == f"127.0.0.1:{up.port}".encode()
        await client.close()


async def test_http10_keep_alive_request() -> None:
    async with origin(simple_origin()) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        result = await client.response()
        assert result.status == 200
        assert result.body == b"hello"
        await client.close()


async def test_head_response_with_length_has_no_body_and_connection_continues() -> None:
    def answer(request: Request) -> bytes:
        if request.method == b"HEAD":
            return b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"
        return response(200, b"after head")

    async with origin(simple_origin(answer)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        for _ in range(3):
            head = await client.request("HEAD")
            assert head.status == 200
            assert head.header(b"content-length") == b"1000"
            after = await client.request()
            assert after.body == b"after head"
        # Nothing stray followed any of the responses.
        assert client.reader._buffer == b""  # type: ignore[attr-defined]
        assert up.accepts == 1
        await client.close()


async def test_head_response_with_chunked_encoding() -> None:
    def answer(request: Request) -> bytes:
        if request.method == b"HEAD":
            return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        return response(200, b"next")

    async with origin(simple_origin(answer)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        head = await client.request("HEAD")
        assert head.status == 200
        assert (await client.request()).body == b"next"
        await client.close()


async def test_204_and_304_have_no_body() -> None:
    def answer(request: Request) -> bytes:
        if request.target == b"/204":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if request.target == b"/304":
            return b"HTTP/1.1 304 Not Modified\r\netag: x\r\ncontent-length: 50\r\n\r\n"
        return response(200, b"ok")

    async with origin(simple_origin(answer)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        for path in ("/204", "/304", "/", "/204", "/"):
            result = await client.request(path=path)
            assert result.status == int(path[1:] or 200)
        assert client.reader._buffer == b""  # type: ignore[attr-defined]
        assert up.accepts == 1
        await client.close()


async def test_100_continue() -> None:
    async def continuing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(10):
            raw = await read_head(reader)
            _, headers = parse_head(raw)
            length = int(dict((k.lower(), v) for k, v in headers)[b"content-length"])
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length)
            writer.write(response(200, b"got " + body))

    async with origin(continuing) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        for _ in range(2):
            client.send(
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\ncontent-length: 4\r\n\r\n"
            )
            interim = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
            assert interim.startswith(b"HTTP/1.1 100 ")
            client.send(b"body")
            result = await client.response()
            assert result.status == 200
            assert result.body == b"got body"
        await client.close()


async def test_close_delimited_response() -> None:
    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        for i in range(20):
            writer.write(b"part %d;" % i)
            await writer.drain()
        writer.close()

    async with origin(close_delimited) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        result = await client.request()
        assert result.body == b"".join(b"part %d;" % i for i in range(20))
        assert await client.at_eof()
        await client.close()


async def test_client_connection_close() -> None:
    seen: list[Request] = []
    async with origin(simple_origin(seen=seen)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        result = await client.request(headers="Connection: close\r\n")
        assert result.status == 200
        assert await client.at_eof()
        await client.close()
        # The client's Connection header is not forwarded, so the upstream stays pooled.
        assert b"connection" not in seen[0].names()
        await get_ok(px.port)
        assert up.accepts == 1


async def test_origin_connection_close() -> None:
    def closing(request: Request) -> bytes:
        return response(200, b"bye", (("Connection", "close"),))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request is not None
        writer.write(closing(request))
        await writer.drain()
        writer.close()

    async with origin(handler) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        result = await client.request()
        assert result.body == b"bye"
        assert result.header(b"connection") == b"close"
        assert await client.at_eof()
        await client.close()
        # The next request needs, and gets, a new upstream connection.
        client = await Client.connect(px.port)
        assert (await client.request()).body == b"bye"
        assert up.accepts == 2
        await client.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    delays = {b"/0": 0.05, b"/1": 0.0, b"/2": 0.02, b"/3": 0.0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            await asyncio.sleep(delays.get(request.target, 0))
            writer.write(response(200, b"answer to " + request.target))

    async with origin(handler) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        batch = b"".join(
            b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i if i != 2 else
            b"POST /2 HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\nhello"
            for i in range(4)
        )  # fmt: skip
        client.send(batch)
        for i in range(4):
            result = await client.response()
            assert result.body == b"answer to /%d" % i
        await client.close()


async def test_pipelined_requests_sent_byte_by_byte() -> None:
    async with origin(simple_origin(lambda r: response(200, r.target))) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        batch = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
        for byte in batch:
            client.send(bytes([byte]))
            await client.writer.drain()
        assert (await client.response()).body == b"/a"
        assert (await client.response()).body == b"/b"
        await client.close()


async def test_hop_by_hop_headers_are_not_forwarded() -> None:
    seen: list[Request] = []
    async with origin(simple_origin(seen=seen)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        result = await client.request(
            headers=(
                "Connection: keep-alive, X-Conn-Named\r\n"
                "Keep-Alive: timeout=5\r\n"
                "TE: trailers\r\n"
                "Upgrade: websocket\r\n"  # without `Connection: upgrade` it is not an upgrade
                "Proxy-Connection: keep-alive\r\n"
                "X-Conn-Named: secret\r\n"
                "X-End-To-End: kept\r\n"
            )
        )
        assert result.status == 200
        forwarded = seen[0].names()
        for name in (b"connection", b"keep-alive", b"te", b"upgrade", b"proxy-connection",
                     b"x-conn-named"):  # fmt: skip
            assert name not in forwarded, name
        assert seen[0].header(b"x-end-to-end") == b"kept"
        assert seen[0].header(b"host") == b"test.example"
        # Still keep-alive, and not tunnelled: a second request works normally.
        assert (await client.request()).status == 200
        await client.close()


async def test_request_without_host_gets_the_targets_authority() -> None:
    seen: list[Request] = []
    async with origin(simple_origin(seen=seen)) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET http://absolute.example/x HTTP/1.1\r\n\r\n")
        assert (await client.response()).status == 200
        assert seen[0].header(b"host") == b"absolute.example"
        await client.close()


async def test_half_closed_client_gets_its_responses_then_the_close() -> None:
    async with origin(simple_origin(lambda r: response(200, r.target))) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        client.writer.write_eof()
        assert (await client.response()).body == b"/a"
        assert (await client.response()).body == b"/b"
        assert await client.at_eof()
        await client.close()
        assert up.accepts == 1
        await get_ok(px.port)


async def test_request_cut_short_by_eof_closes_the_connection() -> None:
    seen: list[Request] = []
    async with origin(simple_origin(seen=seen)) as up, proxy(up.addr) as px:
        for partial in (
            b"GET /a HTTP/1.1\r\nHost:",  # in the head
            b"POST /a HTTP/1.1\r\nHost: a\r\ncontent-length: 10\r\n\r\nabc",  # in the body
        ):
            client = await Client.connect(px.port)
            client.send(partial)
            client.writer.write_eof()
            assert await client.at_eof()
            await client.close()
        for _ in range(100):
            if not px.runtime.connections:
                break
            await asyncio.sleep(0.01)
        assert not px.runtime.connections
        await get_ok(px.port)


async def test_idle_pooled_connections_are_closed_after_the_idle_timeout() -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(response(200, b"hello"))
        closed.set()  # the proxy closed its idle connection

    cfg = config(http1=Http1Limits(pool_idle_timeout=0.1))
    async with origin(handler) as up, proxy(up.addr, cfg) as px:
        await get_ok(px.port)
        await asyncio.wait_for(closed.wait(), TIMEOUT)
        await get_ok(px.port)
        assert up.accepts == 2


async def test_origin_closing_an_idle_connection_is_noticed_before_reuse() -> None:
    async def keep_alive_timeout(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request = await read_request(reader)
        assert request is not None
        writer.write(response(200, b"hello"))  # keep-alive, then an idle timeout of 20 ms
        await writer.drain()
        await asyncio.sleep(0.02)

    async with origin(keep_alive_timeout) as up, proxy(up.addr) as px:
        for _ in range(3):
            await get_ok(px.port)
            await asyncio.sleep(0.1)  # the origin has closed the pooled connection by now
        assert up.accepts == 3
        pool = px.runtime.pools["http1"]
        assert all(not idle for idle in pool._idle.values())  # type: ignore[attr-defined]


async def test_any_split_of_a_pipelined_stream_gives_the_same_exchanges() -> None:
    """However the client's bytes are cut into reads, the origin sees the same requests and
    the client gets the same responses, in order."""
    requests = [
        b"GET /a HTTP/1.1\r\nHost: h\r\nX-One: 1\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: h\r\ncontent-length: 11\r\n\r\nhello world",
        b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n1;ext=x\r\nd\r\n0\r\n\r\n",
        b"HEAD /d HTTP/1.1\r\nHost: h\r\n\r\n",
        b"DELETE /e HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n",
    ]
    stream = b"".join(requests)
    expected = [
        (b"GET", b"/a", b""),
        (b"POST", b"/b", b"hello world"),
        (b"PUT", b"/c", b"abcd"),
        (b"HEAD", b"/d", b""),
        (b"DELETE", b"/e", b""),
    ]

    def answer(request: Request) -> bytes:
        if request.method == b"HEAD":
            return b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n"
        return response(200, request.method + b" " + request.target + b" " + request.body)

    rng = random.Random(99)
    seen: list[Request] = []
    async with origin(simple_origin(answer, seen)) as up, proxy(up.addr) as px:
        for _ in range(25):
            seen.clear()
            cuts = sorted(rng.sample(range(1, len(stream)), rng.randrange(1, 12)))
            pieces = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
            client = await Client.connect(px.port)
            for piece in pieces:
                client.send(piece)
                await client.writer.drain()
                await asyncio.sleep(0)
            for method, target, body in expected:
                result = await client.response(head_request=method == b"HEAD")
                assert result.status == 200
                if method != b"HEAD":
                    assert result.body == method + b" " + target + b" " + body
            await client.close()
            assert [(r.method, r.target, r.body) for r in seen] == expected
