"""Upstream failures become precise proxy responses (or, mid-response, a closed connection)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest

from gossamer.proxy.errors import ERROR_HEADER
from tests.proxy.support import (
    TIMEOUT,
    Client,
    config,
    get_ok,
    origin,
    proxy,
    read_head,
    read_request,
    response,
    simple_origin,
)


def unused_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def full_backlog() -> Iterator[tuple[str, int]]:
    """A loopback listener that never accepts, its accept queue already full: a further
    connect gets no answer to its SYN, so it hangs until the connector gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            fillers.append(filler)
        yield listener.getsockname()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_refused_upstream_is_502_with_error_header() -> None:
    async with proxy(("127.0.0.1", unused_port())) as px:
        client = await Client.connect(px.port)
        for _ in range(2):  # the client connection stays usable after a proxy error
            result = await client.request()
            assert result.status == 502
            assert b"refused" in (result.header(ERROR_HEADER.encode()) or b"")
            assert b"502" in result.body
        await client.close()


async def test_connect_timeout_is_504() -> None:
    with full_backlog() as target:
        async with proxy(target, config(outbound_connect_timeout=0.2)) as px:
            client = await Client.connect(px.port)
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await client.request()
            elapsed = loop.time() - started
            assert result.status == 504
            assert b"timed out" in (result.header(ERROR_HEADER.encode()) or b"")
            assert 0.15 <= elapsed < 2.0
            await client.close()


async def test_upstream_closes_before_responding_is_502() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        # returns: the origin closes without a word

    async with origin(rude) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        result = await client.request()
        assert result.status == 502
        assert b"closed" in (result.header(ERROR_HEADER.encode()) or b"")
        await client.close()


async def test_upstream_resets_before_responding_is_502() -> None:
    async def resetting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        sock = writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async with origin(resetting) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        result = await client.request()
        assert result.status == 502
        assert result.header(ERROR_HEADER.encode())
        await client.close()


async def test_invalid_upstream_response_closes_the_client_connection() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with origin(garbage) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        # The garbage was forwarded before the parser failed (responses pass through
        # unchanged), so the proxy cannot answer with a 502: it must end the connection.
        data = b""
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(TIMEOUT):
                while chunk := await client.reader.read(65536):
                    data += chunk
        assert b"HTTP/1.1" not in data  # no error response glued to the forwarded bytes
        await client.close()


async def test_upstream_reset_mid_response_resets_the_client_and_proxy_carries_on() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            if request.target == b"/ok":
                writer.write(response(200, b"hello"))
                continue
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.05)
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" + bytes(4))
            writer.transport.abort()
            return

    async with origin(half) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        client.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        head = await asyncio.wait_for(read_head(client.reader), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200")
        got = b""
        reset = False
        try:
            async with asyncio.timeout(TIMEOUT):
                while chunk := await client.reader.read(65536):
                    got += chunk
        except ConnectionResetError:
            reset = True
        assert len(got) < 100000  # the client can tell the response is incomplete
        assert reset  # and learns it by a reset, not a clean end
        await client.close()
        client = await Client.connect(px.port)
        assert (await client.request(path="/ok")).body == b"hello"
        await client.close()


async def test_close_delimited_response_ending_early_is_not_a_reset() -> None:
    """A body without a length ends when the upstream closes: that close is not an error."""

    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")

    async with origin(http10) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        result = await client.request()
        assert result.body == b"all of it"
        await client.close()


async def test_stale_pooled_connection_is_retried_transparently_for_get() -> None:
    """The origin drops an idle keep-alive connection just as a request is sent on it."""
    accepts = [0]

    async def drops_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepts[0] += 1
        first = accepts[0] == 1
        while (request := await read_request(reader)) is not None:
            if first and request.target == b"/second":
                return  # the keep-alive connection closes with the request unanswered
            writer.write(response(200, request.target))

    async with origin(drops_second) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        assert (await client.request(path="/first")).body == b"/first"
        assert (await client.request(path="/second")).body == b"/second"
        assert up.accepts == 2
        await client.close()


async def test_stale_pooled_connection_does_not_replay_a_request_with_a_body() -> None:
    """A request whose body went to a connection that then closed cannot be replayed (its
    body is gone, and a POST must not be sent twice): the client gets a 502, never a hang."""
    accepts = [0]
    replayed: list[bytes] = []

    async def drops_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepts[0] += 1
        first = accepts[0] == 1
        while (request := await read_request(reader, body=False)) is not None:
            length = int(request.header(b"content-length") or 0)
            if first and request.target == b"/second":
                return
            if not first:
                replayed.append(request.method)
            try:
                body = await asyncio.wait_for(reader.readexactly(length), 1.0)
            except TimeoutError:
                writer.write(response(400, b"the body never came"))
                return
            writer.write(response(200, body))

    async with origin(drops_second) as up, proxy(up.addr) as px:
        client = await Client.connect(px.port)
        assert (await client.request("POST", "/first", body=b"one")).body == b"one"
        result = await client.request("POST", "/second", body=b"payload")
        assert result.status == 502
        assert replayed == []
        await client.close()
        await get_ok_after(px.port)


async def get_ok_after(port: int) -> None:
    client = await Client.connect(port)
    result = await client.request("POST", "/third", body=b"three")
    assert result.status == 200
    await client.close()


async def test_client_leaving_mid_exchange_does_not_disturb_others() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            if request.target == b"/slow":
                await release.wait()
            writer.write(response(200, b"hello"))

    async with origin(handler) as up, proxy(up.addr) as px:
        leaver = await Client.connect(px.port)
        leaver.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(0.05)
        leaver.writer.transport.abort()
        await get_ok(px.port)
        release.set()
        await get_ok(px.port)
        # The abandoned exchange's upstream was closed, not pooled with a stray response.
        for _ in range(100):
            if not px.runtime.connections:
                break
            await asyncio.sleep(0.01)
        assert not px.runtime.connections


async def test_refused_upstream_counts_a_failure_in_metrics() -> None:
    async with proxy(("127.0.0.1", unused_port())) as px:
        client = await Client.connect(px.port)
        assert (await client.request()).status == 502
        await client.close()
    text = px.runtime.metrics.render().decode()
    assert 'classification="failure"' in text
    assert 'status_code="502"' in text


async def test_origin_keeps_working_after_every_failure_kind() -> None:
    """A sanity check of the origin helper itself, so the tests above fail for the proxy."""
    async with origin(simple_origin()) as up, proxy(up.addr) as px:
        await get_ok(px.port)


@pytest.mark.parametrize(
    "reads_first", [True, False], ids=["reads-while-sending", "sends-all-first"]
)
async def test_early_response_before_the_request_body_is_read(reads_first: bool) -> None:
    """An origin may answer (413) before reading a large body; the client gets the answer,
    then the connection ends, since the rest of its body cannot be told from a request.
    Clients like http.client send the whole body before they read: the answer must still
    be there for them, not destroyed by a reset when the proxy closes."""

    async def refuses_big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader, body=False)
        assert request is not None
        writer.write(response(413, b"too big"))
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    size = 8 * 1024 * 1024
    async with origin(refuses_big) as up, proxy(up.addr) as px:
        for _ in range(3):
            client = await Client.connect(px.port)
            client.send(b"PUT /up HTTP/1.1\r\nHost: a\r\ncontent-length: %d\r\n\r\n" % size)
            sender = asyncio.ensure_future(send_zeros(client, size))
            try:
                if not reads_first:
                    await asyncio.wait_for(sender, TIMEOUT)
                result = await client.response()
                assert result.status == 413
                assert result.body == b"too big"
                assert await client.at_eof()
            finally:
                sender.cancel()
                await client.close()


async def send_zeros(client: Client, size: int) -> None:
    with contextlib.suppress(ConnectionError):
        for _ in range(size // 65536):
            client.send(bytes(65536))
            await client.writer.drain()
