"""A proxy's admin server (port 4191) read over a socket the caller makes.

The caller decides where the socket lives (local mode makes it inside the node's network
namespace, where pod addresses exist); this module only speaks HTTP/1.1 over it, bounded
in time and size. `ProxyAdminError` says what went wrong, naming the address.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable

from gossamer.viz.errors import VizError

ADMIN_PORT = 4191
DEFAULT_TIMEOUT_S = 5.0
MAX_BODY = 32 * 1024 * 1024

SocketFactory = Callable[[], socket.socket]


class ProxyAdminError(VizError):
    """The admin server could not be reached or did not answer as expected."""


def fetch_admin(
    make_socket: SocketFactory,
    host: str,
    path: str = "/metrics",
    *,
    port: int = ADMIN_PORT,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> bytes:
    """`GET path` from the admin server at host:port; the body of a 200 answer."""
    where = f"{host}:{port}"
    try:
        sock = make_socket()
    except OSError as error:
        raise ProxyAdminError(f"{where}: cannot make a socket: {error}") from None
    with sock:
        sock.setblocking(True)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {where}\r\nUser-Agent: gossamer-cli\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = response.read(MAX_BODY + 1)
        except TimeoutError:
            raise ProxyAdminError(f"{where}: no answer within {timeout:g}s") from None
        except (OSError, http.client.HTTPException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise ProxyAdminError(f"{where}: {reason}") from None
    if response.status != 200:
        raise ProxyAdminError(f"GET {path} on {where} answered {response.status}")
    if len(body) > MAX_BODY:
        raise ProxyAdminError(f"GET {path} on {where}: the answer exceeds {MAX_BODY} bytes")
    return bytes(body)
