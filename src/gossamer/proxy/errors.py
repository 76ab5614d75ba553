"""Typed proxy errors, and the one place they become HTTP responses.

Every failure the proxy itself answers for carries the status a client sees and a short
reason that goes into the `gossamer-proxy-error` header (Linkerd's `l5d-proxy-error`).
"""

from __future__ import annotations

ERROR_HEADER = "gossamer-proxy-error"


class ProxyError(Exception):
    """A failure the proxy reports to its client instead of an upstream response."""

    status = 502
    reason = "proxy error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason

    @property
    def header_value(self) -> str:
        return self.detail


class ConnectError(ProxyError):
    """The connection to the upstream could not be made (the request never left)."""


class ConnectRefused(ConnectError):
    status = 502
    reason = "connection refused"


class ConnectUnreachable(ConnectError):
    status = 502
    reason = "host unreachable"


class ConnectTimeout(ConnectError):
    status = 504
    reason = "connect timed out"


class UpstreamClosed(ProxyError):
    status = 502
    reason = "upstream closed the connection before responding"


class UpstreamProtocolError(ProxyError):
    status = 502
    reason = "upstream sent an invalid response"


class ResponseTimeout(ProxyError):
    status = 504
    reason = "response timed out"


class NoRoute(ProxyError):
    status = 500
    reason = "no route matched"


class Overloaded(ProxyError):
    status = 503
    reason = "proxy is overloaded"


def error_response_h1(error: ProxyError, *, close: bool) -> bytes:
    """A complete HTTP/1.1 response for `error`, with the reason in the error header."""
    body = f"{error.status} {error.detail}\n".encode()
    head = (
        f"HTTP/1.1 {error.status} {_REASONS.get(error.status, 'Error')}\r\n"
        f"{ERROR_HEADER}: {_header_safe(error.detail)}\r\n"
        "content-type: text/plain\r\n"
        f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode("latin-1") + body


def simple_response_h1(status: int, message: str, *, close: bool = True) -> bytes:
    """A response for a client error the proxy detects itself (400, 408, 431)."""
    body = f"{status} {message}\n".encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"{ERROR_HEADER}: {_header_safe(message)}\r\n"
        "content-type: text/plain\r\n"
        f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode("latin-1") + body


def _header_safe(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
