"""HTTP/1.1 message heads for the demo's small server and client: bytes in, values out.

No I/O here, so framing decisions (keep-alive, body length, what is malformed) are tested
without sockets. Only what the demo needs: GET/HEAD requests with no body to speak of, and
responses framed by Content-Length, chunked coding or connection close. Anything else gets a
precise `HttpProtocolError` carrying the status a server should answer with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

# A request or response head larger than this is refused (431) rather than buffered.
MAX_HEAD_BYTES = 16 * 1024

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_VERSIONS = ("HTTP/1.1", "HTTP/1.0")

Headers = tuple[tuple[str, str], ...]


class HttpProtocolError(Exception):
    """A message the peer sent cannot be handled; `status` is what a server answers."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers  # names lower-cased, in arrival order

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    @property
    def path(self) -> str:
        # Absolute-form targets (`http://host/path`) come from clients that think we are a proxy.
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value of each."""
        parsed = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        return {name: values[0] for name, values in parsed.items()}

    @property
    def keep_alive(self) -> bool:
        return _keep_alive(self.version, self.headers)

    @property
    def content_length(self) -> int:
        return _content_length(self.headers) or 0

    @property
    def chunked(self) -> bool:
        return self.header("transfer-encoding") is not None


@dataclass(frozen=True, slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: Headers

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    @property
    def keep_alive(self) -> bool:
        return _keep_alive(self.version, self.headers)

    @property
    def content_length(self) -> int | None:
        return _content_length(self.headers)

    @property
    def chunked(self) -> bool:
        coding = self.header("transfer-encoding")
        return coding is not None and coding.lower().rsplit(",", 1)[-1].strip() == "chunked"


def parse_request_head(head: bytes) -> RequestHead:
    """Parse a request line and headers (everything up to and including the blank line)."""
    request_line, headers = _split_head(head)
    parts = request_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise HttpProtocolError(400, f"malformed request line {request_line[:80]!r}")
    method, target, version = parts
    if not set(method) <= _TOKEN_CHARS:
        raise HttpProtocolError(400, f"malformed method {method[:20]!r}")
    if version not in _VERSIONS:
        raise HttpProtocolError(505, f"unsupported version {version[:20]!r}")
    if not (target.startswith("/") or target.startswith("http://") or target == "*"):
        raise HttpProtocolError(400, f"malformed request target {target[:80]!r}")
    request = RequestHead(method, target, version, headers)
    if request.chunked and _content_length(headers) is not None:
        # Both framings at once is how request smuggling starts; refuse it outright.
        raise HttpProtocolError(400, "both Transfer-Encoding and Content-Length")
    return request


def parse_response_head(head: bytes) -> ResponseHead:
    status_line, headers = _split_head(head)
    version, _, rest = status_line.partition(" ")
    status_text, _, reason = rest.partition(" ")
    if version not in _VERSIONS or len(status_text) != 3 or not status_text.isdigit():
        raise HttpProtocolError(502, f"malformed status line {status_line[:80]!r}")
    _content_length(headers)  # a malformed Content-Length fails here, not mid-body
    return ResponseHead(version, int(status_text), reason, headers)


def render_response_head(
    status: int, headers: Iterable[tuple[str, str]], content_length: int, keep_alive: bool
) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {content_length}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def render_request_head(
    method: str, target: str, host: str, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (extensions ignored); 0 ends the body."""
    size_text = line.split(b";", 1)[0].strip()
    try:
        size = int(size_text, 16)
    except ValueError:
        raise HttpProtocolError(502, f"malformed chunk size {size_text[:20]!r}") from None
    if size < 0:
        raise HttpProtocolError(502, "negative chunk size")
    return size


def _split_head(head: bytes) -> tuple[str, Headers]:
    if len(head) > MAX_HEAD_BYTES:
        raise HttpProtocolError(431, f"head larger than {MAX_HEAD_BYTES} bytes")
    text = head.decode("latin-1")
    if text.endswith("\r\n\r\n"):
        text = text[:-4]
    lines = text.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if "\r" in line or "\n" in line:
            raise HttpProtocolError(400, "bare CR or LF in head")
        if line[:1] in (" ", "\t"):
            raise HttpProtocolError(400, "obsolete header line folding")
        name, colon, value = line.partition(":")
        if not colon or not name or not set(name) <= _TOKEN_CHARS:
            raise HttpProtocolError(400, f"malformed header line {line[:80]!r}")
        headers.append((name.lower(), value.strip(" \t")))
    if "\n" in lines[0]:
        raise HttpProtocolError(400, "bare LF in start line")
    return lines[0], tuple(headers)


def _header(headers: Headers, name: str) -> str | None:
    values = [value for key, value in headers if key == name]
    return ", ".join(values) if values else None


def _keep_alive(version: str, headers: Headers) -> bool:
    tokens = {token.strip().lower() for token in (_header(headers, "connection") or "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _content_length(headers: Headers) -> int | None:
    values = {value for key, value in headers if key == "content-length"}
    if not values:
        return None
    if len(values) > 1:
        raise HttpProtocolError(400, "conflicting Content-Length headers")
    text = values.pop()
    if not text.isdigit():
        raise HttpProtocolError(400, f"malformed Content-Length {text[:20]!r}")
    return int(text)
