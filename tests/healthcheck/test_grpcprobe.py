"""The check's one-call gRPC client against the real identity server (grpcio), and against
servers that are not gRPC or do not answer."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from gossamer.control.identity import (
    IdentityServer,
    InvalidToken,
    Issuer,
    generate_issuer,
    generate_trust_anchor,
)
from gossamer.healthcheck.grpcprobe import GrpcProbeError, unary_call
from gossamer.healthcheck.identity import CERTIFY_PATH, INVALID_ARGUMENT


class RefuseAll:
    async def validate(self, token: bytes) -> str:
        raise InvalidToken("no")


def identity_server() -> IdentityServer:
    anchor = generate_trust_anchor()
    issuer = generate_issuer(*anchor)
    return IdentityServer(Issuer(issuer.certificate, issuer.key), RefuseAll())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_empty_certify_is_refused_as_invalid_argument() -> None:
    port = free_port()
    server = identity_server()
    await server.start("127.0.0.1", port)
    try:
        answer = await asyncio.to_thread(
            unary_call, socket.socket(), ("127.0.0.1", port), CERTIFY_PATH, b""
        )
    finally:
        await server.stop()
    assert (answer.status, answer.message) == (INVALID_ARGUMENT, "identity is required")


@pytest.fixture
def mute_server() -> Iterator[tuple[int, list[bytes]]]:
    """Accepts, reads a little, answers with something that is not HTTP/2, closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            received.append(conn.recv(1024))
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        listener.close()
        thread.join(timeout=2)


def test_a_server_that_is_not_grpc(mute_server: tuple[int, list[bytes]]) -> None:
    port, received = mute_server
    with pytest.raises(GrpcProbeError, match=f"127.0.0.1:{port}: "):
        unary_call(socket.socket(), ("127.0.0.1", port), CERTIFY_PATH, timeout=2)
    assert received and received[0].startswith(b"PRI * HTTP/2.0")


def test_nothing_listening() -> None:
    port = free_port()
    with pytest.raises(GrpcProbeError, match="Connection refused"):
        unary_call(socket.socket(), ("127.0.0.1", port), CERTIFY_PATH, timeout=2)


def test_no_answer_in_time() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with pytest.raises(GrpcProbeError, match=r"no answer within 0\.3s"):
            unary_call(socket.socket(), ("127.0.0.1", port), CERTIFY_PATH, timeout=0.3)
