"""One unary gRPC call over a socket the caller made, for checks that must ask a service.

grpcio makes its own sockets, in the caller's network namespace; the control plane's
services listen inside the node's. A check makes a socket there (`socket_in_netns`) and
speaks just enough HTTP/2 over it (with `h2`, sans-IO) to send one request and read the
answer's `grpc-status` and `grpc-message`. Bounded in time and in what it reads.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions

MAX_ANSWER = 1024 * 1024


class GrpcProbeError(Exception):
    """No gRPC answer: the connection failed, timed out, or did not speak gRPC."""


@dataclass(frozen=True, slots=True)
class GrpcAnswer:
    status: int  # 0 OK, 3 INVALID_ARGUMENT, 16 UNAUTHENTICATED, ...
    message: str
    body: bytes  # the response message(s), length-prefixed as on the wire


def unary_call(
    sock: socket.socket,
    address: tuple[str, int],
    path: str,
    request: bytes = b"",
    *,
    timeout: float = 5.0,
) -> GrpcAnswer:
    """Connect `sock` to `address`, call `path` with `request` (serialized), close."""
    deadline = time.monotonic() + timeout
    authority = f"{address[0]}:{address[1]}"
    with sock:
        sock.setblocking(True)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return _exchange(sock, authority, path, request, deadline)
        except TimeoutError:
            raise GrpcProbeError(f"{authority}: no answer within {timeout:g}s") from None
        except OSError as error:
            raise GrpcProbeError(f"{authority}: {error.strerror or error}") from None
        except h2.exceptions.H2Error as error:
            raise GrpcProbeError(f"{authority}: not HTTP/2 ({error})") from None


def _exchange(
    sock: socket.socket, authority: str, path: str, request: bytes, deadline: float
) -> GrpcAnswer:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    conn.send_data(stream, b"\0" + len(request).to_bytes(4, "big") + request, end_stream=True)
    sock.sendall(conn.data_to_send())
    headers: dict[str, str] = {}
    body = bytearray()
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                headers.update(_decoded(event.headers))
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if len(body) > MAX_ANSWER:
                    raise GrpcProbeError(f"{authority}: an answer over {MAX_ANSWER} bytes")
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                return _answer(authority, headers, bytes(body))
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise GrpcProbeError(f"{authority}: the server closed the connection")
        sock.sendall(conn.data_to_send())
    raise GrpcProbeError(f"{authority}: the call did not finish")


def _decoded(headers: object) -> dict[str, str]:
    decoded = {}
    for name, value in headers:  # type: ignore[attr-defined]
        key = name.decode() if isinstance(name, bytes) else name
        decoded[key] = value.decode() if isinstance(value, bytes) else value
    return decoded


def _answer(authority: str, headers: dict[str, str], body: bytes) -> GrpcAnswer:
    status = headers.get("grpc-status")
    if status is None or not status.isdigit():
        raise GrpcProbeError(
            f"{authority}: no grpc-status in the answer (HTTP {headers.get(':status', '?')})"
        )
    message = urllib.parse.unquote(headers.get("grpc-message", ""))
    return GrpcAnswer(int(status), message, body)
