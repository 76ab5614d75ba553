"""Routed HTTP/2 and gRPC streams on loopback: retries, replay, timeouts, fail-fast, modifiers.

The proxy's client connection is given an `OutboundService` whose destination and policy
watches the test fills in itself (no control plane process); the endpoints are raw h2
upstreams (h2_peer.py) on loopback ports, so every outcome an upstream can produce
(trailers-only errors, statuses, hangs, refused connections) is scripted exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.control.destination import DestinationWatch, EndpointMeta
from gossamer.proxy.control.policy import PolicyWatch
from gossamer.proxy.outbound import service as outbound_service
from gossamer.proxy.outbound.service import OutboundService
from tests.proxy.h2_peer import H2Peer, H2Upstream, PeerStream, ProxyUnderTest, connect_peer, header

VIP = ("10.78.0.5", 80)
AUTHORITY = f"{VIP[0]}:{VIP[1]}"
GRPC = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
UNAVAILABLE, DEADLINE_EXCEEDED = 14, 4

Handler = Callable[[H2Peer, PeerStream], Awaitable[None]]


class Destinations:
    """Stands in for the destination client: one watch per address, filled by the test."""

    def __init__(self) -> None:
        self.watches: dict[tuple[str, int], DestinationWatch] = {}

    def watch(self, addr: tuple[str, int]) -> DestinationWatch:
        watch = self.watches.get(addr)
        if watch is None:
            watch = self.watches[addr] = DestinationWatch(addr)
            watch.exists = True
        return watch

    def set_endpoints(self, *ports: int) -> None:
        watch = self.watch(VIP)
        watch.endpoints = {("127.0.0.1", port): EndpointMeta() for port in ports}
        watch.version += 1


class Service:
    def __init__(self) -> None:
        self.destinations = Destinations()
        self.policy = PolicyWatch(VIP)
        destinations: Any = self.destinations
        self.outbound = OutboundService(VIP, destinations, self.policy, random.Random(7), False)

    def route(
        self,
        *,
        statuses: tuple[int, ...] = (),
        grpc_codes: tuple[int, ...] = (),
        limit: int = 0,
        per_try_ms: int = 0,
        request_ms: int = 0,
        response_ms: int = 0,
        request_headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> None:
        rule = pb.RouteRule(
            backends=[pb.Backend(authority=AUTHORITY, port=VIP[1], weight=1)],
            timeouts=pb.Timeouts(request_ms=request_ms, response_ms=response_ms),
        )
        if limit:
            rule.retry.CopyFrom(
                pb.RetryPolicy(
                    http_statuses=[pb.StatusRange(start=s, end=s) for s in statuses],
                    grpc_codes=grpc_codes,
                    limit=limit,
                    timeout_ms=per_try_ms,
                )
            )
        for modifiers, values in (
            (rule.request_header_modifiers, request_headers),
            (rule.response_header_modifiers, response_headers),
        ):
            if values:
                modifier = modifiers.add()
                for name, value in values.items():
                    modifier.set.add(name=name, value=value)
        self.policy.policy = pb.OutboundPolicy(
            exists=True,
            service="web",
            namespace="demo",
            port=VIP[1],
            routes=[pb.Route(name="web-route", kind="HTTPRoute", rules=[rule])],
        )
        self.policy.version += 1


async def grpc_ok(peer: H2Peer, stream: PeerStream) -> None:
    body = await stream.read_body()
    peer.respond(stream.sid, 200, [(b"content-type", b"application/grpc"), (b"x-port", b"ok")])
    await peer.send_data(stream.sid, body, end_stream=False)
    peer.send_trailers(stream.sid, [(b"grpc-status", b"0")])


async def grpc_unavailable(peer: H2Peer, stream: PeerStream) -> None:
    """A trailers-only UNAVAILABLE, before reading the request (as an overloaded server)."""
    peer.respond(
        stream.sid,
        200,
        [(b"content-type", b"application/grpc"), (b"grpc-status", b"14")],
        end=True,
    )


async def grpc_unavailable_after_headers(peer: H2Peer, stream: PeerStream) -> None:
    await stream.read_body()
    peer.respond(stream.sid, 200, [(b"content-type", b"application/grpc")])
    await asyncio.sleep(0.02)
    peer.send_trailers(stream.sid, [(b"grpc-status", b"14"), (b"grpc-message", b"busy")])


async def grpc_unavailable_after_message(peer: H2Peer, stream: PeerStream) -> None:
    await stream.read_body()
    peer.respond(stream.sid, 200, [(b"content-type", b"application/grpc")])
    await peer.send_data(stream.sid, b"\x00\x00\x00\x00\x01x", end_stream=False)
    peer.send_trailers(stream.sid, [(b"grpc-status", b"14")])


async def echo_body(peer: H2Peer, stream: PeerStream) -> None:
    body = await stream.read_body()
    assert stream.headers is not None
    seen = [(b"x-seen-" + k.lstrip(b":"), v) for k, v in stream.headers if k != b"te"]
    trailers = stream.trailers or []
    extra = [(b"x-trailer-" + k, v) for k, v in trailers]
    peer.respond(stream.sid, 200, [*seen, *extra])
    await peer.send_data(stream.sid, hashlib.sha256(body).hexdigest().encode())


async def status_503(peer: H2Peer, stream: PeerStream) -> None:
    await stream.read_body()
    peer.respond(stream.sid, 503, [(b"content-length", b"0")], end=True)


async def status_503_early(peer: H2Peer, stream: PeerStream) -> None:
    """Answers 503 before the request body has arrived, and resets the rest."""
    peer.respond(stream.sid, 503, [(b"content-length", b"0")], end=True)


async def hang(peer: H2Peer, stream: PeerStream) -> None:
    await asyncio.sleep(30)


class Harness:
    def __init__(self) -> None:
        self.service = Service()
        self.upstreams: dict[str, H2Upstream] = {}
        self.proxy: ProxyUnderTest | None = None
        self.client: H2Peer | None = None

    async def upstream(self, name: str, handler: Handler) -> int:
        upstream = await H2Upstream(handler).start()
        self.upstreams[name] = upstream
        return upstream.port

    async def start(self, *ports: int) -> H2Peer:
        self.service.destinations.set_endpoints(*ports)
        self.proxy = ProxyUnderTest(VIP)
        self.proxy.ctx.service = self.service.outbound
        await self.proxy.__aenter__()
        self.client = await connect_peer(self.proxy.port)
        return self.client

    def requests(self, name: str) -> int:
        return sum(len(p.streams) for p in self.upstreams[name].peers)

    def metrics(self) -> str:
        assert self.proxy is not None
        return self.proxy.metrics()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.proxy is not None:
            await self.proxy.__aexit__()
        for upstream in self.upstreams.values():
            await upstream.close()


@pytest.fixture
async def mesh() -> Any:
    harness = Harness()
    yield harness
    await harness.close()


async def call(client: H2Peer, body: bytes = b"\x00\x00\x00\x00\x02hi", **kw: Any) -> PeerStream:
    stream = client.request("/test.Echo/Unary", method="POST", extra=GRPC, end_stream=False, **kw)
    await client.send_data(stream.sid, body)
    await stream.response()
    await stream.wait_for(lambda: stream.ended or stream.reset_code is not None)
    return stream


def grpc_status(stream: PeerStream) -> int | None:
    for block in (stream.trailers, stream.headers):
        value = header(block or [], b"grpc-status")
        if value is not None:
            return int(value)
    return None


def route_metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- gRPC retries ------------------------------------------------------------------------------


async def test_trailers_only_unavailable_is_retried_on_another_endpoint(mesh: Harness) -> None:
    bad = await mesh.upstream("bad", grpc_unavailable)
    good = await mesh.upstream("good", grpc_ok)
    mesh.service.route(grpc_codes=(UNAVAILABLE,), limit=2)
    client = await mesh.start(bad, good)
    streams = [await call(client) for _ in range(40)]
    assert [grpc_status(s) for s in streams] == [0] * 40
    assert all(bytes(s.body) == b"\x00\x00\x00\x00\x02hi" for s in streams)
    assert mesh.requests("bad") > 0  # the failing endpoint was tried, and hidden
    text = mesh.metrics()
    retried = route_metric(text, "outbound_http_route_retry_total", result="retried")
    assert retried == mesh.requests("bad")


async def test_without_the_grpc_code_the_failure_reaches_the_client(mesh: Harness) -> None:
    bad = await mesh.upstream("bad", grpc_unavailable)
    good = await mesh.upstream("good", grpc_ok)
    mesh.service.route(grpc_codes=(DEADLINE_EXCEEDED,), limit=2)
    client = await mesh.start(bad, good)
    streams = [await call(client) for _ in range(40)]
    failed = [s for s in streams if grpc_status(s) == UNAVAILABLE]
    assert failed and len(failed) == mesh.requests("bad")


async def test_status_in_trailers_right_after_headers_is_retried(mesh: Harness) -> None:
    bad = await mesh.upstream("bad", grpc_unavailable_after_headers)
    good = await mesh.upstream("good", grpc_ok)
    mesh.service.route(grpc_codes=(UNAVAILABLE,), limit=2)
    client = await mesh.start(bad, good)
    streams = [await call(client) for _ in range(30)]
    assert [grpc_status(s) for s in streams] == [0] * 30
    assert mesh.requests("bad") > 0
    # The held headers of the discarded attempts never reached the client.
    assert all(header(s.headers or [], b"x-port") == b"ok" for s in streams)


async def test_a_response_that_sent_a_message_is_not_retried(mesh: Harness) -> None:
    bad = await mesh.upstream("bad", grpc_unavailable_after_message)
    mesh.service.route(grpc_codes=(UNAVAILABLE,), limit=2)
    client = await mesh.start(bad)
    stream = await call(client)
    assert grpc_status(stream) == UNAVAILABLE
    assert bytes(stream.body) == b"\x00\x00\x00\x00\x01x"
    assert mesh.requests("bad") == 1


async def test_retries_stop_at_the_limit(mesh: Harness) -> None:
    bad = await mesh.upstream("bad", grpc_unavailable)
    mesh.service.route(grpc_codes=(UNAVAILABLE,), limit=2)
    client = await mesh.start(bad)
    stream = await call(client)
    assert grpc_status(stream) == UNAVAILABLE
    assert mesh.requests("bad") == 3  # the request and two retries


async def test_the_budget_bounds_retries_in_an_outage(
    mesh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = await mesh.upstream("bad", grpc_unavailable)
    mesh.service.route(grpc_codes=(UNAVAILABLE,), limit=3)
    client = await mesh.start(bad)
    budget = mesh.service.outbound.budget
    budget.reserve = 5  # a floor of 5 retries, plus 20% of requests
    count = 50
    for _ in range(count):
        await call(client)
    retries = mesh.requests("bad") - count
    assert retries <= 5 + 0.2 * count
    text = mesh.metrics()
    assert route_metric(text, "outbound_http_route_retry_total", result="budget_exhausted")


# -- HTTP statuses, bodies and trailers ------------------------------------------------------


async def test_a_request_body_and_trailers_are_replayed(mesh: Harness) -> None:
    first = True

    async def fail_first(peer: H2Peer, stream: PeerStream) -> None:
        nonlocal first
        if first:
            first = False
            await status_503(peer, stream)
        else:
            await echo_body(peer, stream)

    port = await mesh.upstream("one", fail_first)
    mesh.service.route(statuses=(503,), limit=1)
    client = await mesh.start(port)
    body = os.urandom(60_000)  # within the 64 KiB replay limit, beyond one stream window
    stream = client.request("/upload", method="POST", end_stream=False)
    await client.send_data(stream.sid, body, end_stream=False)
    client.send_trailers(stream.sid, [(b"x-checksum", b"abc")])
    headers = await stream.response()
    await stream.wait_for(lambda: stream.ended)
    assert header(headers, b":status") == b"200"
    assert bytes(stream.body) == hashlib.sha256(body).hexdigest().encode()
    assert header(headers, b"x-trailer-x-checksum") == b"abc"
    assert mesh.requests("one") == 2


async def test_a_503_before_the_body_arrived_is_replayed_with_the_rest(mesh: Harness) -> None:
    calls = 0

    async def early_then_echo(peer: H2Peer, stream: PeerStream) -> None:
        nonlocal calls
        calls += 1
        await (status_503_early if calls == 1 else echo_body)(peer, stream)

    port = await mesh.upstream("one", early_then_echo)
    mesh.service.route(statuses=(503,), limit=1)
    client = await mesh.start(port)
    stream = client.request("/upload", method="POST", end_stream=False)
    await client.send_data(stream.sid, b"a" * 1000, end_stream=False)
    await asyncio.sleep(0.1)  # the first attempt's 503 comes back meanwhile
    await client.send_data(stream.sid, b"b" * 1000)
    await stream.response()
    await stream.wait_for(lambda: stream.ended)
    assert bytes(stream.body) == hashlib.sha256(b"a" * 1000 + b"b" * 1000).hexdigest().encode()


async def test_a_body_beyond_the_replay_limit_is_not_retried(mesh: Harness) -> None:
    port = await mesh.upstream("one", status_503)
    mesh.service.route(statuses=(503,), limit=2)
    client = await mesh.start(port)
    stream = client.request("/upload", method="POST", end_stream=False)
    await client.send_data(stream.sid, os.urandom(70_000))
    headers = await stream.response()
    assert header(headers, b":status") == b"503"
    assert mesh.requests("one") == 1


async def test_replayed_bodies_leave_the_client_window_whole(mesh: Harness) -> None:
    """Many retried uploads on one connection: every byte is acknowledged exactly once,
    or the connection window would run dry (stall) or overflow (a flow-control error)."""
    calls = 0

    async def every_other(peer: H2Peer, stream: PeerStream) -> None:
        nonlocal calls
        calls += 1
        await (status_503 if calls % 2 else echo_body)(peer, stream)

    port = await mesh.upstream("one", every_other)
    mesh.service.route(statuses=(503,), limit=1)
    mesh.service.outbound.budget.reserve = 1000
    client = await mesh.start(port)
    for i in range(12):
        body = bytes([i]) * 40_000
        stream = client.request("/upload", method="POST", end_stream=False)
        await client.send_data(stream.sid, body)
        headers = await stream.response()
        await stream.wait_for(lambda s=stream: s.ended)  # type: ignore[misc]
        assert header(headers, b":status") == b"200"
        assert bytes(stream.body) == hashlib.sha256(body).hexdigest().encode()
    assert calls == 24
    assert client.goaway is None
    # Every byte the client sent was acknowledged exactly once: the proxy's receive window
    # (granted plus still to grant) is what it started with, neither leaked nor inflated.
    assert mesh.proxy is not None
    (conn,) = mesh.proxy.protocols
    assert conn.recv_window + conn.recv_unacked == conn.limits.initial_connection_window


# -- failures before a response ----------------------------------------------------------------


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_endpoint_is_retried_elsewhere(mesh: Harness) -> None:
    good = await mesh.upstream("good", grpc_ok)
    mesh.service.route(statuses=(502,), grpc_codes=(UNAVAILABLE,), limit=2)
    client = await mesh.start(dead_port(), good)
    streams = [await call(client) for _ in range(30)]
    assert [grpc_status(s) for s in streams] == [0] * 30


async def test_the_only_endpoint_refusing_ends_in_unavailable(mesh: Harness) -> None:
    mesh.service.route(grpc_codes=(UNAVAILABLE,), limit=2)
    client = await mesh.start(dead_port())
    stream = await call(client)
    assert grpc_status(stream) == UNAVAILABLE
    assert header(stream.headers or [], b"gossamer-proxy-error")


# -- timeouts ---------------------------------------------------------------------------------


async def test_a_per_try_timeout_moves_the_call_to_a_live_endpoint(mesh: Harness) -> None:
    slow = await mesh.upstream("slow", hang)
    good = await mesh.upstream("good", grpc_ok)
    mesh.service.route(grpc_codes=(UNAVAILABLE,), limit=2, per_try_ms=100)
    client = await mesh.start(slow, good)
    loop = asyncio.get_running_loop()
    for _ in range(6):
        started = loop.time()
        stream = await call(client)
        assert grpc_status(stream) == 0
        assert loop.time() - started < 0.5
    assert mesh.requests("slow") > 0


async def test_a_request_timeout_answers_deadline_exceeded_in_time(mesh: Harness) -> None:
    slow = await mesh.upstream("slow", hang)
    mesh.service.route(request_ms=150)
    client = await mesh.start(slow)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stream = await call(client)
    elapsed = loop.time() - started
    assert grpc_status(stream) == DEADLINE_EXCEEDED
    assert 0.14 < elapsed < 0.6
    # The upstream's stream was cancelled, not left open.
    (peer,) = mesh.upstreams["slow"].peers
    await peer.wait_for(lambda: all(s.reset_code is not None for s in peer.streams.values()))


async def test_a_response_timeout_answers_504_to_plain_http2(mesh: Harness) -> None:
    slow = await mesh.upstream("slow", hang)
    mesh.service.route(response_ms=100)
    client = await mesh.start(slow)
    stream = client.request("/")
    headers = await stream.response()
    assert header(headers, b":status") == b"504"


async def test_a_request_timeout_after_the_headers_resets_the_stream(mesh: Harness) -> None:
    async def trickle(peer: H2Peer, stream: PeerStream) -> None:
        peer.respond(stream.sid, 200)
        for _ in range(100):
            await peer.send_data(stream.sid, b"x", end_stream=False)
            await asyncio.sleep(0.02)

    port = await mesh.upstream("one", trickle)
    mesh.service.route(request_ms=200)
    client = await mesh.start(port)
    stream = client.request("/")
    headers = await stream.response()
    assert header(headers, b":status") == b"200"
    assert await stream.wait_reset(timeout=2) is not None


# -- waiting for endpoints ---------------------------------------------------------------------


async def test_a_request_waits_for_an_endpoint_to_appear(mesh: Harness) -> None:
    good = await mesh.upstream("good", grpc_ok)
    mesh.service.route()
    client = await mesh.start()
    task = asyncio.get_running_loop().create_task(call(client))
    await asyncio.sleep(0.3)
    assert not task.done()
    mesh.service.destinations.set_endpoints(good)
    stream = await asyncio.wait_for(task, 2)
    assert grpc_status(stream) == 0


async def test_fail_fast_after_the_timeout_and_a_bounded_queue(
    mesh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound_service, "FAILFAST_TIMEOUT", 0.3)
    monkeypatch.setattr(outbound_service, "MAX_WAITING", 2)
    mesh.service.route()
    client = await mesh.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    streams = [client.request("/", extra=[(b"n", str(i).encode())]) for i in range(3)]
    first = await streams[2].response()  # the third does not fit in the queue: at once
    assert header(first, b":status") == b"503"
    assert loop.time() - started < 0.25
    for stream in streams[:2]:
        headers = await stream.response()
        assert header(headers, b":status") == b"503"
        assert b"no endpoints" in (header(headers, b"gossamer-proxy-error") or b"")
    assert 0.25 < loop.time() - started < 1.5


async def test_a_client_giving_up_while_waiting_frees_its_place(mesh: Harness) -> None:
    mesh.service.route()
    client = await mesh.start()
    stream = client.request("/")
    await asyncio.sleep(0.1)
    backend = mesh.service.outbound.backend(AUTHORITY)
    assert backend.waiting == 1
    client.reset(stream.sid, 8)  # CANCEL
    await asyncio.sleep(0.1)
    assert backend.waiting == 0


# -- header modifiers --------------------------------------------------------------------------


async def test_route_header_modifiers_apply_to_http2(mesh: Harness) -> None:
    port = await mesh.upstream("one", echo_body)
    mesh.service.route(
        request_headers={"X-Route": "web-route", "user-agent": "gossamer"},
        response_headers={"X-Served-By": "mesh"},
    )
    client = await mesh.start(port)
    stream = client.request("/", extra=[(b"user-agent", b"curl")])
    headers = await stream.response()
    assert header(headers, b"x-seen-x-route") == b"web-route"
    assert header(headers, b"x-seen-user-agent") == b"gossamer"
    assert header(headers, b"x-served-by") == b"mesh"
