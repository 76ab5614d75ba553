"""gRPC through the HTTP/2 proxy, with grpcio on both ends.

A grpcio server (generic handlers, raw bytes, no generated code) listens on loopback; the
proxy forwards to it; a grpcio client calls through the proxy from a worker thread while
the proxy runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc
import pytest

from gossamer.proxy.errors import ERROR_HEADER
from tests.proxy.h2_peer import ProxyUnderTest

T = TypeVar("T")
SERVICE = "gossamer.test.Echo"
MAX_MESSAGE = 16 * 1024 * 1024
# Loopback only: never let grpcio pick up an http_proxy from the environment.
OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request)):
        yield b"item-%d" % i


def _client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"|".join(requests)


def _bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield request.upper()


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: ünïcode 100%")
    raise AssertionError("unreachable")


def _slow(request: bytes, context: grpc.ServicerContext) -> bytes:
    deadline = time.monotonic() + 3
    while context.is_active() and time.monotonic() < deadline:
        time.sleep(0.01)
    return b"too late"


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=OPTIONS)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
        "Slow": grpc.unary_unary_rpc_method_handler(_slow),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=0).wait(5)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, fn, *args), 30)


class Client:
    """A grpcio channel to the proxy; its methods block, so tests run them `in_thread`."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS)

    def method(self, kind: str, name: str) -> Any:
        return getattr(self.channel, kind)(f"/{SERVICE}/{name}")

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
async def proxied(grpc_server: int) -> Any:
    async with ProxyUnderTest(("127.0.0.1", grpc_server)) as proxy:
        client = Client(proxy.port)
        yield proxy, client
        client.close()


async def test_unary(proxied: Any) -> None:
    _proxy, client = proxied
    call = client.method("unary_unary", "Unary")
    assert await in_thread(lambda: call(b"hello", timeout=10)) == b"hello"
    assert await in_thread(lambda: call(b"", timeout=10)) == b""


async def test_server_streaming(proxied: Any) -> None:
    _proxy, client = proxied
    call = client.method("unary_stream", "ServerStream")
    got = await in_thread(lambda: list(call(b"50", timeout=10)))
    assert got == [b"item-%d" % i for i in range(50)]


async def test_client_streaming(proxied: Any) -> None:
    _proxy, client = proxied
    call = client.method("stream_unary", "ClientStream")
    got = await in_thread(lambda: call(iter([b"a", b"b", b"c"] * 20), timeout=10))
    assert got == b"|".join([b"a", b"b", b"c"] * 20)


async def test_bidi_streaming(proxied: Any) -> None:
    _proxy, client = proxied
    call = client.method("stream_stream", "Bidi")
    messages = [b"msg-%d" % i for i in range(100)]
    got = await in_thread(lambda: list(call(iter(messages), timeout=10)))
    assert got == [m.upper() for m in messages]


async def test_error_status_and_message_pass_through(proxied: Any) -> None:
    proxy, client = proxied
    call = client.method("unary_unary", "Fail")

    def run() -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            call(b"x", timeout=10)
        return info.value

    error = await in_thread(run)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "no such thing: ünïcode 100%"
    await asyncio.sleep(0.05)
    text = proxy.metrics()
    assert 'grpc_status="5"' in text
    assert 'classification="failure"' in text


async def test_large_messages_both_ways(proxied: Any) -> None:
    _proxy, client = proxied
    payload = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    call = client.method("unary_unary", "Unary")
    assert await in_thread(lambda: call(payload, timeout=30)) == payload
    bidi = client.method("stream_stream", "Bidi")
    chunks = [payload[i : i + 1_000_000] for i in range(0, len(payload), 1_000_000)]
    got = await in_thread(lambda: list(bidi(iter(chunks), timeout=30)))
    assert got == [c.upper() for c in chunks]


async def test_deadline_exceeded_cancels_upstream(proxied: Any) -> None:
    proxy, client = proxied
    slow = client.method("unary_unary", "Slow")

    def run() -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            slow(b"x", timeout=0.3)
        return info.value

    error = await in_thread(run)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(100):
        if proxy.open_streams() == 0:
            break
        await asyncio.sleep(0.02)
    assert proxy.open_streams() == 0
    # The connection (and the upstream connection) keep working.
    call = client.method("unary_unary", "Unary")
    assert await in_thread(lambda: call(b"still fine", timeout=10)) == b"still fine"


async def test_many_concurrent_calls(proxied: Any) -> None:
    proxy, client = proxied
    call = client.method("unary_unary", "Unary")

    def run(i: int) -> bytes:
        return call(b"call-%d" % i, timeout=10)

    results = await asyncio.gather(*(in_thread(run, i) for i in range(40)))
    assert results == [b"call-%d" % i for i in range(40)]
    await asyncio.sleep(0.05)
    text = proxy.metrics()
    assert 'grpc_status="0"' in text and 'classification="success"' in text


async def test_unavailable_upstream_is_grpc_unavailable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()
    async with ProxyUnderTest(closed) as proxy:
        client = Client(proxy.port)
        call = client.method("unary_unary", "Unary")

        def run() -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as info:
                call(b"x", timeout=10)
            return info.value

        error = await in_thread(run)
        client.close()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "refused" in error.details()
    metadata = dict(error.trailing_metadata() or ())
    assert "refused" in metadata.get(ERROR_HEADER, "")
