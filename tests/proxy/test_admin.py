"""The admin server: /metrics, /ready, /live, /shutdown, /proxy-log-level, bad requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gossamer.proxy.admin import AdminProtocol, AdminState, start_admin
from gossamer.proxy.metrics import INBOUND_PLAINTEXT, ProxyMetrics
from tests.proxy.support import TIMEOUT, Client


@dataclass
class Admin:
    port: int
    state: AdminState
    ready: list[bool] = field(default_factory=lambda: [True])
    shutdowns: list[int] = field(default_factory=list)


@contextlib.asynccontextmanager
async def admin(shutdown_enabled: bool = True) -> AsyncIterator[Admin]:
    metrics = ProxyMetrics()
    ready = [True]
    shutdowns: list[int] = []
    state = AdminState(
        metrics,
        ready=lambda: ready[0],
        shutdown=lambda: shutdowns.append(1),
        shutdown_enabled=shutdown_enabled,
    )
    server = await start_admin(state, "127.0.0.1", 0)
    try:
        yield Admin(server.sockets[0].getsockname()[1], state, ready, shutdowns)
    finally:
        server.close()


@pytest.fixture
def restore_log_level() -> Iterator[None]:
    logger = logging.getLogger("gossamer")
    level = logger.level
    yield
    logger.setLevel(level)


async def call(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes, bytes]:
    client = await Client.connect(port)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: admin\r\n"
        if body or method in ("POST", "PUT"):
            head += f"content-length: {len(body)}\r\n"
        client.send(head.encode() + b"\r\n" + body)
        result = await client.response(head_request=method == "HEAD")
        return result.status, result.body, result.header(b"content-type") or b""
    finally:
        await client.close()


async def test_metrics_are_prometheus_text() -> None:
    async with admin() as a:
        a.state.metrics.http("inbound", "web", ("127.0.0.1", 80), INBOUND_PLAINTEXT).requests += 2
        status, body, content_type = await call(a.port, "GET", "/metrics")
        assert status == 200
        assert content_type.startswith(b"text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert {"request", "response", "response_latency_ms", "tcp_open"} <= set(families)
        (sample,) = families["request"].samples
        assert sample.labels["authority"] == "web"
        assert sample.value == 2


async def test_metrics_head_has_no_body_and_the_connection_continues() -> None:
    async with admin() as a:
        client = await Client.connect(a.port)
        client.send(b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        head = await client.response(head_request=True)
        assert head.status == 200
        assert int(head.header(b"content-length") or 0) > 0
        client.send(b"GET /live HTTP/1.1\r\nHost: a\r\n\r\n")
        live = await client.response()
        assert (live.status, live.body) == (200, b"live\n")
        await client.close()


async def test_ready_follows_the_proxy() -> None:
    async with admin() as a:
        assert (await call(a.port, "GET", "/ready"))[:2] == (200, b"ready\n")
        a.ready[0] = False
        assert (await call(a.port, "GET", "/ready"))[0] == 503
        a.ready[0] = True
        assert (await call(a.port, "GET", "/ready?verbose=1"))[0] == 200


async def test_live() -> None:
    async with admin() as a:
        assert (await call(a.port, "GET", "/live"))[:2] == (200, b"live\n")


async def test_unknown_path_is_404() -> None:
    async with admin() as a:
        assert (await call(a.port, "GET", "/nope"))[0] == 404
        assert (await call(a.port, "POST", "/metrics"))[0] == 404


async def test_shutdown_is_post_only() -> None:
    async with admin() as a:
        assert (await call(a.port, "GET", "/shutdown"))[0] == 405
        assert (await call(a.port, "PUT", "/shutdown"))[0] == 405
        assert a.shutdowns == []
        assert (await call(a.port, "POST", "/shutdown"))[0] == 202
        assert a.shutdowns == [1]


async def test_shutdown_is_404_when_disabled() -> None:
    async with admin(shutdown_enabled=False) as a:
        assert (await call(a.port, "POST", "/shutdown"))[0] == 404
        assert a.shutdowns == []


async def test_log_level_get_and_put(restore_log_level: None) -> None:
    logger = logging.getLogger("gossamer")
    logger.setLevel(logging.INFO)
    async with admin() as a:
        assert (await call(a.port, "GET", "/proxy-log-level"))[:2] == (200, b"info")
        assert (await call(a.port, "PUT", "/proxy-log-level", b"debug\n"))[0] == 204
        assert logger.level == logging.DEBUG
        assert (await call(a.port, "GET", "/proxy-log-level"))[1] == b"debug"
        assert (await call(a.port, "PUT", "/proxy-log-level", b"WARN"))[0] == 204
        assert logger.level == logging.WARNING
        assert (await call(a.port, "PUT", "/proxy-log-level", b"loud"))[0] == 400
        assert logger.level == logging.WARNING
        assert (await call(a.port, "POST", "/proxy-log-level", b"info"))[0] == 405


async def test_keep_alive_and_http10() -> None:
    async with admin() as a:
        client = await Client.connect(a.port)
        for _ in range(5):
            client.send(b"GET /live HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await client.response()).status == 200
        client.send(b"GET /live HTTP/1.0\r\n\r\n")
        assert (await client.response()).status == 200
        assert await client.at_eof()
        await client.close()


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"PUT /proxy-log-level HTTP/1.1\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000,
        b"\x16\x03\x01\x00\x05hello",
    ],
)
async def test_malformed_requests_are_400_and_close(data: bytes) -> None:
    async with admin() as a:
        client = await Client.connect(a.port)
        client.send(data)
        result = await client.response()
        assert result.status == 400
        assert await client.at_eof()
        await client.close()
        assert (await call(a.port, "GET", "/live"))[0] == 200


async def test_upgrade_request_is_refused_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    async with admin() as a:
        client = await Client.connect(a.port)
        client.send(b"GET /live HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxx")
        result = await client.response()
        assert result.status in (200, 400)
        assert await client.at_eof()
        await client.close()
        assert (await call(a.port, "GET", "/live"))[0] == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- the loopback-only rules, driven with a transport that reports a remote peer --------------


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: tuple[str, int]) -> None:
        super().__init__()
        self.peer = peer
        self.out = b""
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += bytes(data)

    def writelines(self, chunks: object) -> None:
        for chunk in chunks:  # type: ignore[attr-defined]
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def drive(peer: tuple[str, int], request: bytes, state: AdminState) -> bytes:
    protocol = AdminProtocol(state)
    transport = FakeTransport(peer)
    protocol.connection_made(transport)
    protocol.data_received(request)
    return transport.out


def remote_state(shutdowns: list[int]) -> AdminState:
    return AdminState(ProxyMetrics(), lambda: True, lambda: shutdowns.append(1), True)


@pytest.mark.parametrize("peer", [("10.1.2.3", 5555), ("192.168.0.9", 1), ("fd00::7", 2)])
def test_shutdown_and_log_level_refuse_remote_peers(
    peer: tuple[str, int], restore_log_level: None
) -> None:
    shutdowns: list[int] = []
    state = remote_state(shutdowns)
    out = drive(peer, b"POST /shutdown HTTP/1.1\r\ncontent-length: 0\r\n\r\n", state)
    assert out.startswith(b"HTTP/1.1 403")
    assert shutdowns == []
    level = logging.getLogger("gossamer").level
    out = drive(peer, b"PUT /proxy-log-level HTTP/1.1\r\ncontent-length: 5\r\n\r\ndebug", state)
    assert out.startswith(b"HTTP/1.1 403")
    assert logging.getLogger("gossamer").level == level
    # Reading is fine from anywhere: Prometheus and probes come from other hosts.
    assert drive(peer, b"GET /metrics HTTP/1.1\r\n\r\n", state).startswith(b"HTTP/1.1 200")
    assert drive(peer, b"GET /ready HTTP/1.1\r\n\r\n", state).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("peer", [("127.0.0.1", 5555), ("127.9.9.9", 1), ("::1", 2)])
def test_loopback_peers_may_shut_down(peer: tuple[str, int]) -> None:
    shutdowns: list[int] = []
    out = drive(
        peer, b"POST /shutdown HTTP/1.1\r\ncontent-length: 0\r\n\r\n", remote_state(shutdowns)
    )
    assert out.startswith(b"HTTP/1.1 202")
    assert shutdowns == [1]


async def test_admin_answers_within_the_timeout() -> None:
    """A sanity bound for the suite: the admin server answers promptly."""
    async with admin() as a:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await call(a.port, "GET", "/metrics")
        assert loop.time() - started < TIMEOUT
