"""HTTP/2 proxying over real loopback sockets: requests, multiplexing, flow control, trailers.

The client and the upstream are raw h2 peers (h2_peer.py); the proxy is
`Http2ServerProtocol` on an ephemeral port, forwarding to the upstream as its target.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from gossamer.proxy.http2 import frames, upstream_pool
from gossamer.proxy.http2.connection import H2Connection
from tests.proxy.h2_peer import H2Peer, H2Upstream, PeerStream, ProxyUnderTest, connect_peer, header


async def echo(peer: H2Peer, stream: PeerStream) -> None:
    """Answers with the request's headers (as x-seen-*) and echoes its body."""
    body = await stream.read_body()
    assert stream.headers is not None
    seen = [(b"x-seen-" + k.lstrip(b":"), v) for k, v in stream.headers]
    peer.respond(stream.sid, 200, [(b"content-type", b"text/plain"), *seen])
    await peer.send_data(stream.sid, body or b"empty")


async def test_request_and_response_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    resets: list[tuple[int, int]] = []
    rst_stream = frames.rst_stream

    def counted(sid: int, code: int) -> bytes:
        resets.append((sid, code))
        return rst_stream(sid, code)

    monkeypatch.setattr(frames, "rst_stream", counted)
    upstream = await H2Upstream(echo).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        get = client.request("/hello", extra=[(b"user-agent", b"t")])
        post = client.request("/post", method="POST", end_stream=False)
        await client.send_data(post.sid, b"payload")

        headers = await get.response()
        assert header(headers, b":status") == b"200"
        assert header(headers, b"x-seen-path") == b"/hello"
        assert header(headers, b"x-seen-authority") == b"svc.test:80"
        assert header(headers, b"x-seen-user-agent") == b"t"
        assert await get.read_body() == b"empty"
        await post.response()
        assert await post.read_body() == b"payload"
        await asyncio.sleep(0.05)
        # Completed streams close with END_STREAM both ways: no stray RST_STREAM either side.
        assert resets == []
        assert all(not p.states for p in proxy.protocols)
        # The protocols' own attributes never shadow a method of the connection core.
        upstreams = [c for t in upstream_pool(proxy.runtime)._targets.values() for c in t.conns]
        assert upstreams
        for conn in [*proxy.protocols, *upstreams]:
            assert not [n for n in vars(conn) if callable(getattr(H2Connection, n, None))]
        await client.close()
    await upstream.close()
    assert not upstream.errors


async def test_hop_by_hop_headers_are_removed() -> None:
    upstream = await H2Upstream(echo).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port, validate_outbound=False)
        stream = client.request(
            "/",
            extra=[
                (b"connection", b"x-private"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-connection", b"keep-alive"),
                (b"transfer-encoding", b"chunked"),
                (b"upgrade", b"websocket"),
                (b"x-private", b"secret"),
                (b"te", b"trailers"),
                (b"x-kept", b"yes"),
            ],
        )
        headers = await stream.response()
        names = {k for k, _ in headers}
        for gone in (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding"):
            assert b"x-seen-" + gone not in names
        assert b"x-seen-upgrade" not in names
        assert b"x-seen-x-private" not in names  # nominated by the connection header
        assert header(headers, b"x-seen-te") == b"trailers"
        assert header(headers, b"x-seen-x-kept") == b"yes"
        await client.close()
    await upstream.close()


async def test_streams_share_one_upstream_connection() -> None:
    release = asyncio.Event()

    async def held(peer: H2Peer, stream: PeerStream) -> None:
        await asyncio.wait_for(release.wait(), 10)
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(held).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        clients = [await connect_peer(proxy.port) for _ in range(3)]
        streams = [c.request(f"/{i}") for c in clients for i in range(5)]
        await upstream.wait_requests(15)
        release.set()
        for stream in streams:
            assert header(await stream.response(), b":status") == b"200"
        assert len(upstream.peers) == 1
        for client in clients:
            await client.close()
    await upstream.close()


async def test_upstream_stream_limit_opens_more_connections() -> None:
    release = asyncio.Event()

    async def held(peer: H2Peer, stream: PeerStream) -> None:
        await asyncio.wait_for(release.wait(), 10)
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(held, max_streams=2).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        streams = [client.request(f"/{i}") for i in range(5)]
        await upstream.wait_requests(5)
        assert len(upstream.peers) == 3
        assert all(len(p.streams) <= 2 for p in upstream.peers)
        release.set()
        for stream in streams:
            assert header(await stream.response(), b":status") == b"200"
        await client.close()
    await upstream.close()


async def test_idle_upstream_connections_are_closed() -> None:
    from gossamer.proxy.config import Http1Limits, ProxyConfig
    from gossamer.proxy.runtime import ProxyRuntime

    async def ok(peer: H2Peer, stream: PeerStream) -> None:
        peer.respond(stream.sid, 204, end=True)

    upstream = await H2Upstream(ok).start()
    runtime = ProxyRuntime(ProxyConfig(http1=Http1Limits(pool_idle_timeout=0.2)))
    async with ProxyUnderTest(upstream.target, runtime) as proxy:
        client = await connect_peer(proxy.port)
        await client.request("/").response()
        assert len(upstream.peers) == 1
        await upstream.peers[0].wait_for(lambda: upstream.peers[0].closed, 5)
        # The next request opens a fresh connection.
        assert header(await client.request("/").response(), b":status") == b"204"
        assert len(upstream.peers) == 2
        await client.close()
    await upstream.close()


LARGE = 5 * 1024 * 1024


async def test_large_request_body_is_backpressured_by_a_slow_upstream() -> None:
    body = os.urandom(LARGE)
    consumed: dict[str, object] = {}
    stalled = asyncio.Event()
    go = asyncio.Event()

    async def slow_reader(peer: H2Peer, stream: PeerStream) -> None:
        stalled.set()
        await asyncio.wait_for(go.wait(), 10)
        data = await stream.read_body(chunk=256 * 1024, delay=0.001)
        consumed["digest"] = hashlib.sha256(data).hexdigest()
        consumed["size"] = len(data)
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(slow_reader, auto_ack=False).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/upload", method="POST", end_stream=False)
        sending = asyncio.ensure_future(client.send_data(stream.sid, body, timeout=60))
        await asyncio.wait_for(stalled.wait(), 5)
        await asyncio.sleep(0.5)
        # The upstream acknowledges nothing yet: the client can have sent at most the
        # upstream's stream window plus the proxy's, not the whole body.
        assert client.sent[stream.sid] <= 2 * 65_535
        held = sum(s.request.buffered for p in proxy.protocols for s in p.streams.values())
        assert held <= 65_535
        go.set()
        await sending
        assert header(await stream.response(30), b":status") == b"200"
        assert consumed == {"digest": hashlib.sha256(body).hexdigest(), "size": LARGE}
        await client.close()
    await upstream.close()
    assert not upstream.errors


async def test_large_response_body_is_backpressured_by_a_slow_client() -> None:
    body = os.urandom(LARGE)
    done = asyncio.Event()
    progress: dict[int, int] = {}

    async def big(peer: H2Peer, stream: PeerStream) -> None:
        peer.respond(stream.sid, 200)
        task = asyncio.ensure_future(peer.send_data(stream.sid, body, timeout=60))
        while not task.done():
            progress[0] = peer.sent.get(stream.sid, 0)
            await asyncio.sleep(0.01)
        await task
        done.set()

    upstream = await H2Upstream(big).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port, auto_ack=False)
        stream = client.request("/download")
        await stream.response()
        await asyncio.sleep(0.5)
        assert progress[0] <= 2 * 65_535 + 16_384
        assert not done.is_set()
        data = await stream.read_body(chunk=128 * 1024, delay=0.001, timeout=60)
        assert len(data) == LARGE
        assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()
        await client.close()
    await upstream.close()


async def test_client_that_stops_reading_pauses_the_proxy() -> None:
    """With windows wide open, only the socket can push back: the proxy's write buffer
    toward the client stays near the high-water mark and the upstream is held."""
    body = os.urandom(32 * 1024 * 1024)
    sent: dict[str, int] = {}

    async def flood(peer: H2Peer, stream: PeerStream) -> None:
        peer.respond(stream.sid, 200)
        task = asyncio.ensure_future(peer.send_data(stream.sid, body, timeout=60))
        while not task.done():
            sent["bytes"] = peer.sent.get(stream.sid, 0)
            await asyncio.sleep(0.01)
        await task

    upstream = await H2Upstream(flood).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        wide = 2**31 - 1
        client = await connect_peer(
            proxy.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: wide}, connection_window=wide
        )
        stream = client.request("/flood")
        await stream.response()
        client.reading.clear()
        await asyncio.sleep(1.0)
        protocol = proxy.protocols[0]
        assert protocol.write_paused
        assert protocol.transport is not None
        high = proxy.runtime.config.buffers.high
        assert protocol.transport.get_write_buffer_size() <= high + 128 * 1024
        stalled_at = sent["bytes"]
        assert stalled_at < len(body)
        await asyncio.sleep(0.3)
        assert sent["bytes"] == stalled_at  # held, not buffered in the proxy
        client.reading.set()
        data = await stream.read_body(timeout=60)
        assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()
        await client.close()
    await upstream.close()


async def test_stalled_streams_do_not_block_the_shared_upstream_connection() -> None:
    """One client stops consuming 30 streams; another client's big download on the same
    upstream connection still completes (no head-of-line blocking across clients)."""
    body = os.urandom(2 * 1024 * 1024)

    async def download(peer: H2Peer, stream: PeerStream) -> None:
        peer.respond(stream.sid, 200)
        await peer.send_data(stream.sid, body, timeout=60)

    upstream = await H2Upstream(download).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        stalled = await connect_peer(proxy.port, auto_ack=False, connection_window=2**31 - 1)
        stuck = [stalled.request(f"/stuck/{i}") for i in range(30)]
        for stream in stuck:
            await stream.wait_received(65_535, 10)
        await asyncio.sleep(0.2)  # let the proxy fill each stuck stream's window too
        other = await connect_peer(proxy.port)
        stream = other.request("/other")
        data = await stream.read_body(timeout=30)
        assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()
        assert len(upstream.peers) == 1
        await stalled.close()
        await other.close()
    await upstream.close()


async def test_bodies_both_ways_at_once() -> None:
    async def streaming_echo(peer: H2Peer, stream: PeerStream) -> None:
        peer.respond(stream.sid, 200)
        sent = 0
        while True:
            await stream.wait_for(lambda: bool(stream.body) or stream.ended)
            if stream.body:
                chunk = bytes(stream.body)
                stream.body.clear()
                await peer.send_data(stream.sid, chunk, end_stream=False)
                sent += len(chunk)
            elif stream.ended:
                break
        peer.send_trailers(stream.sid, [(b"x-echoed", str(sent).encode())])

    body = os.urandom(3 * 1024 * 1024)
    upstream = await H2Upstream(streaming_echo).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/echo", method="POST", end_stream=False)
        sending = asyncio.ensure_future(client.send_data(stream.sid, body, timeout=60))
        data = await stream.read_body(timeout=60)
        await sending
        assert data == body
        assert stream.trailers == [(b"x-echoed", str(len(body)).encode())]
        await client.close()
    await upstream.close()


async def test_trailers_both_ways() -> None:
    async def grpcish(peer: H2Peer, stream: PeerStream) -> None:
        await stream.read_body()
        peer.respond(stream.sid, 200, [(b"content-type", b"application/grpc")])
        await peer.send_data(stream.sid, b"\x00\x00\x00\x00\x02hi", end_stream=False)
        seen = stream.trailers or []
        peer.send_trailers(
            stream.sid, [(b"grpc-status", b"0"), (b"x-req-trailers", str(seen).encode())]
        )

    upstream = await H2Upstream(grpcish).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/svc/M", method="POST", end_stream=False)
        await client.send_data(stream.sid, b"request", end_stream=False)
        client.send_trailers(stream.sid, [(b"x-checksum", b"abc")])
        await stream.response()
        assert await stream.read_body() == b"\x00\x00\x00\x00\x02hi"
        assert stream.trailers is not None
        assert header(stream.trailers, b"grpc-status") == b"0"
        assert b"x-checksum" in (header(stream.trailers, b"x-req-trailers") or b"")
        await client.close()
    await upstream.close()


async def test_trailers_only_response() -> None:
    async def unimplemented(peer: H2Peer, stream: PeerStream) -> None:
        extra = [(b"content-type", b"application/grpc"), (b"grpc-status", b"12")]
        peer.respond(stream.sid, 200, extra, end=True)

    upstream = await H2Upstream(unimplemented).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/svc/Missing", method="POST")
        headers = await stream.response()
        await stream.wait_for(lambda: stream.ended)
        assert header(headers, b"grpc-status") == b"12"
        await asyncio.sleep(0.05)
        text = proxy.metrics()
        assert 'grpc_status="12"' in text
        assert 'classification="failure"' in text
        await client.close()
    await upstream.close()


async def test_client_reset_reaches_upstream() -> None:
    upstream_stream: asyncio.Future[PeerStream] = asyncio.get_running_loop().create_future()

    async def hang(peer: H2Peer, stream: PeerStream) -> None:
        upstream_stream.set_result(stream)
        await stream.wait_for(lambda: stream.reset_code is not None, 10)

    upstream = await H2Upstream(hang).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/slow")
        seen = await asyncio.wait_for(upstream_stream, 5)
        client.reset(stream.sid, ErrorCodes.CANCEL)
        await seen.wait_for(lambda: seen.reset_code is not None, 5)
        assert seen.reset_code == ErrorCodes.CANCEL
        await asyncio.sleep(0.05)
        assert proxy.open_streams() == 0
        # The connection and the shared upstream connection keep working.
        upstream.handler = echo
        assert header(await client.request("/again").response(), b":status") == b"200"
        await client.close()
    await upstream.close()


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (ErrorCodes.ENHANCE_YOUR_CALM, ErrorCodes.ENHANCE_YOUR_CALM),
        (ErrorCodes.REFUSED_STREAM, ErrorCodes.REFUSED_STREAM),
        (ErrorCodes.FLOW_CONTROL_ERROR, ErrorCodes.INTERNAL_ERROR),
    ],
)
async def test_upstream_reset_reaches_client(sent: ErrorCodes, expected: ErrorCodes) -> None:
    async def reset_after_headers(peer: H2Peer, stream: PeerStream) -> None:
        peer.respond(stream.sid, 200)
        await peer.send_data(stream.sid, b"partial", end_stream=False)
        peer.reset(stream.sid, sent)

    upstream = await H2Upstream(reset_after_headers).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        stream = client.request("/")
        await stream.wait_for(lambda: stream.reset_code is not None, 5)
        assert stream.reset_code == expected
        await asyncio.sleep(0.05)
        assert proxy.open_streams() == 0
        await client.close()
    await upstream.close()


async def test_refused_stream_before_any_body_is_retried() -> None:
    attempts: list[int] = []

    async def refuse_first(peer: H2Peer, stream: PeerStream) -> None:
        attempts.append(stream.sid)
        if len(attempts) == 1:
            peer.reset(stream.sid, ErrorCodes.REFUSED_STREAM)
            return
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(refuse_first).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        assert header(await client.request("/").response(), b":status") == b"200"
        assert len(attempts) == 2
        await client.close()
    await upstream.close()


async def test_too_many_client_streams_are_refused_not_fatal() -> None:
    release = asyncio.Event()

    async def held(peer: H2Peer, stream: PeerStream) -> None:
        await asyncio.wait_for(release.wait(), 10)
        peer.respond(stream.sid, 200, end=True)

    upstream = await H2Upstream(held).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        # Ignore the proxy's advertised limit of 100, as a client that has not yet seen
        # its SETTINGS might.
        client.conn.remote_settings.max_concurrent_streams = 1000
        client.conn.remote_settings.acknowledge()
        streams = [client.request(f"/{i}") for i in range(101)]
        await streams[100].wait_for(lambda: streams[100].reset_code is not None, 5)
        assert streams[100].reset_code == ErrorCodes.REFUSED_STREAM
        release.set()
        for stream in streams[:100]:
            assert header(await stream.response(), b":status") == b"200"
        assert client.goaway is None
        await client.close()
    await upstream.close()


async def test_metrics_count_requests_and_responses() -> None:
    async def status_from_path(peer: H2Peer, stream: PeerStream) -> None:
        assert stream.headers is not None
        status = int((header(stream.headers, b":path") or b"/200")[1:])
        peer.respond(stream.sid, status, end=True)

    upstream = await H2Upstream(status_from_path).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)
        for path in ("/200", "/200", "/503"):
            await client.request(path, authority="web.ns.svc.cluster.local:8080").response()
        await asyncio.sleep(0.05)
        text = proxy.metrics()
        target = f'target_addr="127.0.0.1:{upstream.port}"'
        lines = [line for line in text.splitlines() if target in line]
        request = [line for line in lines if line.startswith("request_total")]
        assert len(request) == 1
        assert 'authority="web.ns.svc.cluster.local:8080"' in request[0]
        assert 'direction="outbound"' in request[0]
        assert 'tls="no_identity"' in request[0]
        assert request[0].endswith(" 3")
        ok = [
            line
            for line in lines
            if line.startswith("response_total") and 'status_code="200"' in line
        ]
        assert len(ok) == 1 and 'classification="success"' in ok[0] and ok[0].endswith(" 2")
        bad = [
            line
            for line in lines
            if line.startswith("response_total") and 'status_code="503"' in line
        ]
        assert len(bad) == 1 and 'classification="failure"' in bad[0]
        assert any(line.startswith("response_latency_ms_bucket") for line in lines)
        opened = [line for line in lines if line.startswith("tcp_open_total")]
        assert any('peer="src"' in line for line in opened)
        assert any('peer="dst"' in line for line in opened)
        reads = [line for line in lines if line.startswith("tcp_read_bytes_total")]
        assert all(not line.endswith(" 0") for line in reads)
        await client.close()
        await asyncio.sleep(0.05)
        closes = [x for x in proxy.metrics().splitlines() if x.startswith("tcp_close_total")]
        assert any('peer="src"' in line and 'errno=""' in line for line in closes)
    await upstream.close()


async def test_upstream_pool_is_shared_per_runtime() -> None:
    upstream = await H2Upstream(echo).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        assert upstream_pool(proxy.runtime) is upstream_pool(proxy.runtime)
        client = await connect_peer(proxy.port)
        await client.request("/").response()
        assert len(upstream_pool(proxy.runtime)) == 1
        await client.close()
    await upstream.close()


async def test_mixed_traffic_with_resets_leaks_no_window() -> None:
    """Many streams with random bodies and resets from both sides; afterwards both
    connections still carry a multi-MB body each way (no flow-control window leaked) and
    the proxy holds no stream."""
    rng = random.Random(7)

    async def chaotic(peer: H2Peer, stream: PeerStream) -> None:
        assert stream.headers is not None
        plan = (header(stream.headers, b"x-plan") or b"ok").decode()
        if plan == "upstream-reset-early":
            peer.reset(stream.sid, ErrorCodes.INTERNAL_ERROR)
            return
        size = int(header(stream.headers, b"x-size") or b"0")
        peer.respond(stream.sid, 200)
        if plan == "upstream-reset-late":
            await peer.send_data(stream.sid, bytes(size // 2), end_stream=False)
            peer.reset(stream.sid, ErrorCodes.CANCEL)
            return
        await stream.read_body()
        await peer.send_data(stream.sid, bytes(size))

    upstream = await H2Upstream(chaotic).start()
    async with ProxyUnderTest(upstream.target) as proxy:
        client = await connect_peer(proxy.port)

        async def one(i: int) -> None:
            plan = rng.choice(
                ["ok", "ok", "client-reset", "upstream-reset-early", "upstream-reset-late"]
            )
            size = rng.choice([0, 10, 70_000, 200_000])
            extra = [(b"x-plan", plan.encode()), (b"x-size", str(size).encode())]
            stream = client.request(f"/{i}", method="POST", extra=extra, end_stream=False)
            with contextlib.suppress(Exception):
                if plan == "client-reset":
                    await client.send_data(stream.sid, bytes(size // 2), end_stream=False)
                    client.reset(stream.sid, ErrorCodes.CANCEL)
                    return
                await client.send_data(stream.sid, bytes(size), timeout=10)
            await stream.wait_for(lambda: stream.ended or stream.reset_code is not None, 20)

        for start in range(0, 200, 20):
            await asyncio.gather(*(one(i) for i in range(start, start + 20)))
        for _ in range(100):
            if proxy.open_streams() == 0:
                break
            await asyncio.sleep(0.02)
        assert proxy.open_streams() == 0

        upstream.handler = echo
        body = os.urandom(3 * 1024 * 1024)
        stream = client.request("/final", method="POST", end_stream=False)
        sending = asyncio.ensure_future(client.send_data(stream.sid, body, timeout=30))
        await stream.response()
        assert await stream.read_body(timeout=30) == body
        await sending
        assert len(upstream.peers) == 1
        await client.close()
    await upstream.close()
