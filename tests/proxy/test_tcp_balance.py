"""Opaque TCP to a service, over loopback with the real destination service: each connection
goes to the endpoint the service's balancer chooses and is that endpoint's load while it is
open; a connect that fails is tried once on another endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from gossamer.control.destination import DestinationServer
from gossamer.control.store import MemoryStore
from gossamer.core.resources import Resource
from gossamer.proxy.config import ProxyConfig
from gossamer.proxy.control.destination import DestinationClient
from gossamer.proxy.outbound.service import BackendTarget, OutboundServices
from gossamer.proxy.runtime import ConnectionContext, ProxyRuntime
from gossamer.proxy.tcp import TcpForwardProtocol, reset
from tests.proxy.harness import Served, serve_handler
from tests.proxy.support import TIMEOUT, config

VIP = ("10.78.0.9", 6379)
# Endpoints on loopback addresses of their own, all on one port (the service's targetPort).
A, B = "127.0.0.2", "127.0.0.3"


def service(target_port: int) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "cache", "namespace": "demo"},
            "spec": {
                "clusterIP": VIP[0],
                "selector": {"app": "cache"},
                "ports": [{"port": VIP[1], "targetPort": target_port}],
            },
        }
    )


def pod(name: str, ip: str) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": "cache"}},
            "spec": {"containers": [{"name": "app", "command": ["x"]}]},
            "status": {"phase": "Running", "podIP": ip},
        }
    )


@dataclass
class Echo:
    """An echo server on one endpoint address; keeps its connections to count them."""

    server: asyncio.Server
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def open(self) -> int:
        return sum(not w.is_closing() for w in self.writers)


async def echo_on(host: str, port: int = 0) -> tuple[Echo, int]:
    echo: Echo

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        echo.writers.append(writer)
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, port)
    echo = Echo(server)
    return echo, server.sockets[0].getsockname()[1]


@contextlib.contextmanager
def never_accepting(host: str, port: int) -> Iterator[None]:
    """A listener that never accepts, its accept queue already full: a connect to it gets
    no answer to its SYN (a slow-to-accept endpoint)."""
    listener = socket.socket()
    listener.bind((host, port))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((host, port))
            fillers.append(filler)
        yield
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def to_service(runtime: ProxyRuntime, ctx: ConnectionContext) -> asyncio.Protocol:
    # What accept-time routing (server.py) gives a connection whose destination is a service.
    assert runtime.outbound is not None
    ctx.service = runtime.outbound.get(ctx.orig_dst)
    return TcpForwardProtocol(runtime, ctx)


@dataclass
class Balanced:
    served: Served
    backend: BackendTarget
    port: int  # the endpoints' port

    def pending(self, ip: str) -> int:
        handle = self.backend.balancer.get((ip, self.port))
        assert handle is not None
        return handle.pending

    def seem_fastest(self, ip: str) -> None:
        """Gives the endpoint at `ip` the best latency history, so it is the first choice."""
        now = asyncio.get_running_loop().time()
        for endpoint in self.backend.balancer.endpoints:
            endpoint.ewma.observe(0.000_01 if endpoint.addr == (ip, self.port) else 0.010, now)


@contextlib.asynccontextmanager
async def balanced_proxy(
    port: int, ips: list[str], cfg: ProxyConfig | None = None
) -> AsyncIterator[Balanced]:
    store = MemoryStore()
    await store.apply(service(port))
    for i, ip in enumerate(ips):
        await store.apply(pod(f"cache-{i}", ip))
    control = DestinationServer(store)
    control_port = await control.start("127.0.0.1", 0)
    runtime = ProxyRuntime(cfg or config())
    discovery = runtime.discovery = DestinationClient(("127.0.0.1", control_port))
    runtime.outbound = OutboundServices(discovery, None, mesh_tls=False, rng=random.Random(5))
    served: Served | None = None
    try:
        watch = await discovery.resolve(VIP)
        assert watch is not None and len(watch.endpoints) == len(ips)
        served = await serve_handler(to_service, VIP, runtime=runtime)
        backend = runtime.outbound.get(VIP).default_backend()
        backend.pick(asyncio.get_running_loop().time())  # the balancer learns the endpoints
        yield Balanced(served, backend, port)
    finally:
        if served is not None:
            await served.close()
        for conn in list(runtime.connections):
            conn.abort()
        discovery.close()
        await control.stop(0)
        await store.close()


async def echoed(port: int, payload: bytes = b"ping") -> bytes:
    """One connection through the proxy: sends, half-closes, reads to the end."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        writer.write(payload)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


async def eventually(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_open_connections_are_their_endpoints_load_until_they_close() -> None:
    a, port = await echo_on(A)
    b, _ = await echo_on(B, port)
    async with balanced_proxy(port, [A, B]) as px:
        clients = []
        for i in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", px.served.port)
            writer.write(b"x%d" % i)
            assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"x%d" % i
            clients.append(writer)
        # Connected and echoing: each endpoint counts exactly the connections it holds.
        assert px.pending(A) == a.open and px.pending(B) == b.open
        assert a.open + b.open == 4
        for writer in clients:
            writer.close()
        await eventually(lambda: px.pending(A) == px.pending(B) == 0)
    for echo in (a, b):
        echo.server.close()


async def test_a_refused_endpoint_is_routed_around_and_then_avoided(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, port = await echo_on(A)  # nothing listens on B's address: refused
    async with balanced_proxy(port, [A, B]) as px:
        px.seem_fastest(B)
        with caplog.at_level(logging.INFO, logger="gossamer.proxy.tcp"):
            for i in range(10):
                assert await echoed(px.served.port, b"hello %d" % i) == b"hello %d" % i
        # The first connection tried B, was refused, and went to A; a refusal costs B as
        # much as a connect timeout, so no later connection tried B.
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1 and refusals[0].endswith(f"; trying {A}:{port}"), refusals
        assert px.pending(B) == 0  # a refused connect is no load
        await eventually(lambda: px.pending(A) == 0)
    a.server.close()


async def test_a_slow_to_accept_endpoint_gets_one_try_then_no_more_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, port = await echo_on(A)
    with never_accepting(B, port):
        cfg = config(outbound_connect_timeout=0.2)
        async with balanced_proxy(port, [A, B], cfg) as px:
            px.seem_fastest(B)
            with caplog.at_level(logging.INFO, logger="gossamer.proxy.tcp"):
                for _ in range(10):
                    assert await echoed(px.served.port) == b"ping"
            timeouts = [r for r in caplog.records if "timed out" in r.getMessage()]
            assert len(timeouts) == 1, [r.getMessage() for r in caplog.records]
            # The timed-out connect is a latency sample: the endpoint now looks slow.
            now = asyncio.get_running_loop().time()
            slow = px.backend.balancer.get((B, port))
            assert slow is not None and slow.ewma.estimate(now) > 0.1
    a.server.close()


async def test_with_no_other_endpoint_a_refused_connection_is_reset() -> None:
    with socket.socket() as sock:  # a port nothing listens on at A's address
        sock.bind((A, 0))
        port = sock.getsockname()[1]
    async with balanced_proxy(port, [A]) as px:
        reader, writer = await asyncio.open_connection("127.0.0.1", px.served.port)
        writer.write(b"lost")
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        assert px.pending(A) == 0


async def test_a_client_that_leaves_while_connecting_leaves_no_load_behind() -> None:
    with socket.socket() as sock:
        sock.bind((A, 0))
        port = sock.getsockname()[1]
    with never_accepting(A, port):
        async with balanced_proxy(port, [A], config(outbound_connect_timeout=5.0)) as px:
            _, writer = await asyncio.open_connection("127.0.0.1", px.served.port)
            await eventually(lambda: px.pending(A) == 1)  # connecting
            reset(writer.transport)  # a FIN would be a half-close, and the connect would go on
            await eventually(lambda: px.pending(A) == 0)
            # Abandoned, not failed: no outcome, so no latency sample either.
            now = asyncio.get_running_loop().time()
            handle = px.backend.balancer.get((A, port))
            assert handle is not None and handle.ewma.estimate(now) < 0.030
