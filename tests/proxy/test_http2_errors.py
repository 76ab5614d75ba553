"""HTTP/2 proxy failure paths over loopback: connect errors, bad clients, GOAWAY, lost
upstreams, drain and abort."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, Event
from hpack import Encoder

from gossamer.proxy.errors import ERROR_HEADER, ConnectTimeout
from gossamer.proxy.http2 import Http2Limits, upstream_pool
from tests.proxy.h2_peer import (
    H2Peer,
    H2Upstream,
    PeerStream,
    ProxyUnderTest,
    connect_peer,
    header,
)

GRPC = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]


def closed_port() -> tuple[str, int]:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()


async def ok(peer: H2Peer, stream: PeerStream) -> None:
    peer.respond(stream.sid, 200, end=True)


# -- connect failures -------------------------------------------------------------------------


async def test_refused_upstream_gets_502_with_reason() -> None:
    async with ProxyUnderTest(closed_port()) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/", method="POST", end_stream=False)
        await client.send_data(stream.sid, b"body that will not be forwarded")
        headers = await stream.response()
        assert header(headers, b":status") == b"502"
        assert b"refused" in (header(headers, ERROR_HEADER.encode()) or b"")
        assert (await stream.read_body()).startswith(b"502 ")
        await asyncio.sleep(0.05)
        assert 'status_code="502"' in proxy.metrics()
        assert proxy.open_streams() == 0
        await client.close()


async def test_refused_upstream_gets_grpc_unavailable() -> None:
    async with ProxyUnderTest(closed_port()) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/pkg.Svc/Method", method="POST", extra=GRPC)
        headers = await stream.response()
        await stream.wait_for(lambda: stream.ended)
        assert header(headers, b":status") == b"200"
        assert header(headers, b"content-type") == b"application/grpc"
        assert header(headers, b"grpc-status") == b"14"
        assert b"refused" in (header(headers, b"grpc-message") or b"")
        assert header(headers, ERROR_HEADER.encode())
        assert await stream.read_body() == b""  # trailers-only
        await asyncio.sleep(0.05)
        text = proxy.metrics()
        assert 'grpc_status="14"' in text and 'classification="failure"' in text
        await client.close()


async def test_connect_timeout_gets_504_and_grpc_deadline_exceeded() -> None:
    async with ProxyUnderTest(("127.0.0.1", 9)) as proxy:

        async def timing_out(*args: object, **kwargs: object) -> None:
            raise ConnectTimeout("connect to 127.0.0.1:9 timed out after 1s")

        proxy.runtime.connect = timing_out  # type: ignore[method-assign,assignment]
        client = await connect_peer(proxy.port)
        plain = client.request("/")
        grpc = client.request("/pkg.Svc/Method", method="POST", extra=GRPC)
        assert header(await plain.response(), b":status") == b"504"
        assert header(await grpc.response(), b"grpc-status") == b"4"
        await client.close()


async def test_upstream_that_is_not_http2_gets_502() -> None:
    async def http1_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http1_only, "127.0.0.1", 0)
    async with ProxyUnderTest(server.sockets[0].getsockname()) as proxy:
        client = await connect_peer(proxy.port)
        headers = await client.request("/").response()
        assert header(headers, b":status") == b"502"
        await client.close()
    server.close()


async def test_upstream_without_settings_times_out() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with ProxyUnderTest(server.sockets[0].getsockname()) as proxy:
        upstream_pool(proxy.runtime).limits = Http2Limits(upstream_settings_timeout=0.2)
        client = await connect_peer(proxy.port)
        headers = await client.request("/").response(5)
        assert header(headers, b":status") == b"502"
        assert b"SETTINGS" in (header(headers, ERROR_HEADER.encode()) or b"")
        await client.close()
    for writer in accepted:
        writer.close()
    server.close()


# -- bad clients ------------------------------------------------------------------------------


async def raw_exchange(port: int, payload: bytes, timeout: float = 5.0) -> list[Event]:
    """Sends a valid preface plus `payload`; returns what the proxy answered until it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send() + payload)
    received = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            received += chunk
    writer.close()
    return conn.receive_data(received)


def goaway_code(events: list[Event]) -> int | None:
    codes = [e.error_code for e in events if isinstance(e, ConnectionTerminated)]
    return codes[-1] if codes else None


async def test_garbage_after_preface_gets_goaway_and_spares_other_connections() -> None:
    release = asyncio.Event()

    async def held(peer: H2Peer, stream: PeerStream) -> None:
        await asyncio.wait_for(release.wait(), 10)
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(held).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        bystander = await connect_peer(proxy.port)
        in_flight = bystander.request("/in-flight")
        await upstream.wait_requests(1)

        garbage = b"\x00\x00\x08\x63\x00\x00\x00\x00" + b"\xff" * 4000  # nonsense frames
        assert goaway_code(await raw_exchange(proxy.port, garbage)) is not None
        # DATA on stream 0 is a PROTOCOL_ERROR.
        data_on_zero = b"\x00\x00\x04\x00\x00\x00\x00\x00\x00abcd"
        assert (
            goaway_code(await raw_exchange(proxy.port, data_on_zero)) == ErrorCodes.PROTOCOL_ERROR
        )
        # HEADERS on an even (server-initiated) stream id.
        even = b"\x00\x00\x01\x01\x05\x00\x00\x00\x02\x82"
        assert goaway_code(await raw_exchange(proxy.port, even)) == ErrorCodes.PROTOCOL_ERROR
        # A broken HPACK block is a COMPRESSION_ERROR.
        bad_hpack = b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\xff"
        assert goaway_code(await raw_exchange(proxy.port, bad_hpack)) is not None

        release.set()
        assert header(await in_flight.response(), b":status") == b"200"
        upstream.handler = ok
        assert header(await bystander.request("/after").response(), b":status") == b"200"
        await bystander.close()
    await upstream.close()


async def test_oversized_header_list_ends_only_that_connection() -> None:
    upstream = await H2Upstream(ok).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        bystander = await connect_peer(proxy.port)
        greedy = await connect_peer(proxy.port)
        greedy.request("/", extra=[(b"x-big", b"a" * 70_000)])
        await greedy.wait_for(lambda: greedy.closed, 5)
        assert greedy.goaway is not None and greedy.goaway.error_code != ErrorCodes.NO_ERROR
        assert header(await bystander.request("/").response(), b":status") == b"200"
        await greedy.close()
        await bystander.close()
    await upstream.close()


async def test_malformed_request_is_a_stream_error() -> None:
    upstream = await H2Upstream(ok).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port, validate_outbound=False)
        bad = [
            client.request("/", extra=[(b"X-Upper", b"1")]),
            client.request("/", extra=[(b"x-nl", b"a\r\nb")]),
            client.request("", method="GET"),  # empty :path
        ]
        for stream in bad:
            await stream.wait_reset(5)
            assert stream.reset_code == ErrorCodes.PROTOCOL_ERROR
        assert header(await client.request("/fine").response(), b":status") == b"200"
        assert client.goaway is None
        await client.close()
    await upstream.close()


# -- upstream GOAWAY and lost connections -----------------------------------------------------


async def test_upstream_goaway_completes_older_streams_and_retries_newer() -> None:
    upstream: H2Upstream

    async def goaway_after_two(peer: H2Peer, stream: PeerStream) -> None:
        if peer is not upstream.peers[0]:
            peer.respond(stream.sid, 200, [(b"x-conn", b"second")], end=True)
            return
        await upstream.wait_requests(2)
        if stream.sid == 1:
            peer.conn.send_goaway(1)
            peer.flush()
            await asyncio.sleep(0.05)
            peer.respond(stream.sid, 200, [(b"x-conn", b"first")], end=True)

    upstream = await H2Upstream(goaway_after_two).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        first, second = client.request("/1"), client.request("/2")
        assert header(await first.response(), b"x-conn") == b"first"
        assert header(await second.response(), b"x-conn") == b"second"
        # The GOAWAY'd connection is closed once its last stream is done, never reused.
        await upstream.peers[0].wait_for(lambda: upstream.peers[0].closed, 5)
        assert header(await client.request("/3").response(), b"x-conn") == b"second"
        assert len(upstream.peers) == 2
        await client.close()
    await upstream.close()


async def test_upstream_goaway_refuses_a_stream_whose_body_was_sent() -> None:
    upstream: H2Upstream

    async def goaway_zero(peer: H2Peer, stream: PeerStream) -> None:
        await stream.wait_for(lambda: stream.received > 0)
        peer.conn.send_goaway(0)
        peer.flush()

    upstream = await H2Upstream(goaway_zero).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/", method="POST", end_stream=False)
        await client.send_data(stream.sid, b"already forwarded", end_stream=False)
        await stream.wait_for(lambda: stream.reset_code is not None, 5)
        assert stream.reset_code == ErrorCodes.REFUSED_STREAM
        await client.close()
    await upstream.close()


async def test_upstream_lost_before_headers_gets_502_after_headers_gets_reset() -> None:
    async def die(peer: H2Peer, stream: PeerStream) -> None:
        assert stream.headers is not None
        if header(stream.headers, b":path") == b"/after":
            peer.respond(stream.sid, 200)
            await peer.send_data(stream.sid, b"partial", end_stream=False)
            await asyncio.sleep(0.05)
        peer.writer.transport.abort()

    upstream = await H2Upstream(die).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        before = client.request("/before")
        headers = await before.response()
        assert header(headers, b":status") == b"502"
        assert b"upstream closed" in (header(headers, ERROR_HEADER.encode()) or b"")

        after = client.request("/after")
        await after.wait_for(lambda: after.reset_code is not None, 5)
        assert header(after.headers or [], b":status") == b"200"
        assert after.reset_code == ErrorCodes.INTERNAL_ERROR
        assert proxy.open_streams() == 0
        await client.close()
    await upstream.close()


async def test_malformed_upstream_response_gets_502() -> None:
    async def bad_headers(peer: H2Peer, stream: PeerStream) -> None:
        peer.conn.config.validate_outbound_headers = False
        peer.conn.config.normalize_outbound_headers = False
        peer.respond(stream.sid, 200, [(b"X-Bad", b"1")], end=True)

    upstream = await H2Upstream(bad_headers).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        headers = await client.request("/").response()
        assert header(headers, b":status") == b"502"
        await client.close()
    await upstream.close()


# -- drain, abort, client GOAWAY --------------------------------------------------------------


async def test_drain_sends_goaway_and_lets_in_flight_streams_finish() -> None:
    release = asyncio.Event()

    async def held(peer: H2Peer, stream: PeerStream) -> None:
        await asyncio.wait_for(release.wait(), 10)
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(held).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        in_flight = client.request("/slow")
        await upstream.wait_requests(1)
        draining = asyncio.ensure_future(proxy.runtime.drain(5))
        await client.wait_for(lambda: client.goaway is not None, 5)
        assert client.goaway is not None
        assert client.goaway.last_stream_id == in_flight.sid
        assert client.goaway.error_code == ErrorCodes.NO_ERROR
        late = client.request("/late")  # crossed the GOAWAY: refused, never forwarded
        await late.wait_for(lambda: late.reset_code is not None, 5)
        assert late.reset_code == ErrorCodes.REFUSED_STREAM
        release.set()
        assert header(await in_flight.response(), b":status") == b"200"
        assert await asyncio.wait_for(draining, 5) is True
        await client.wait_for(lambda: client.closed, 5)
        await client.close()
    await upstream.close()


async def test_abort_after_grace_resets_upstream_streams() -> None:
    upstream_stream: list[PeerStream] = []

    async def hang(peer: H2Peer, stream: PeerStream) -> None:
        upstream_stream.append(stream)
        await stream.wait_for(lambda: stream.reset_code is not None, 10)

    upstream = await H2Upstream(hang).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        client.request("/forever")
        await upstream.wait_requests(1)
        assert await proxy.runtime.drain(0.2) is False
        await upstream_stream[0].wait_for(lambda: upstream_stream[0].reset_code is not None, 5)
        assert upstream_stream[0].reset_code == ErrorCodes.CANCEL
        await client.wait_for(lambda: client.closed, 5)
        await client.close()
    await upstream.close()


async def test_client_goaway_lets_in_flight_finish_then_closes() -> None:
    release = asyncio.Event()

    async def held(peer: H2Peer, stream: PeerStream) -> None:
        await asyncio.wait_for(release.wait(), 10)
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(held).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/")
        await upstream.wait_requests(1)
        client.conn.send_goaway(0)
        client.flush()
        await asyncio.sleep(0.05)
        assert not client.closed
        release.set()
        assert header(await stream.response(), b":status") == b"200"
        await client.wait_for(lambda: client.closed, 5)
        await client.close()
    await upstream.close()


def random_frames(rng: random.Random, encoder: Encoder) -> bytes:
    """A few frames, some well-formed and some not, on a handful of stream ids."""
    out = b""
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice([0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, rng.randint(0, 255)])
        sid = rng.choice([0, 1, 1, 3, 5, 2, rng.randint(0, 2**31 - 1)])
        flags = rng.choice([0, 1, 4, 5, 8, 0x20, rng.randint(0, 255)])
        if kind == 1 and rng.random() < 0.6:
            payload = encoder.encode(
                [(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "f")]
            )
        else:
            payload = rng.randbytes(rng.choice([0, 1, 4, 5, 6, 8, 9, rng.randint(0, 64)]))
        length = len(payload) if rng.random() < 0.9 else rng.randint(0, 2**24 - 1)
        out += length.to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big")
        out += payload
    return out


async def test_random_frames_never_crash_the_proxy(caplog: pytest.LogCaptureFixture) -> None:
    upstream = await H2Upstream(ok).start()
    rng = random.Random(20261126)
    async with ProxyUnderTest(upstream.target) as proxy:
        bystander = await connect_peer(proxy.port)
        for _ in range(100):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            conn = H2Connection(H2Configuration(client_side=True))
            conn.initiate_connection()
            writer.write(conn.data_to_send() + random_frames(rng, Encoder()))
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(0.2):
                    while await reader.read(65536):
                        pass
            writer.close()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert header(await bystander.request("/").response(), b":status") == b"200"
        await bystander.close()
    await upstream.close()
