"""What routing looks at in a request, built cheaply from an HTTP/1 request line and headers.

`RequestInfo` holds the request as received; the derived views that only some routes need
(the authority's host, headers by lower-cased name, decoded query parameters, gRPC
service/method) are computed on first use and kept, so a request pays only for the matches
its policy has.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

Header = tuple[bytes, bytes]


class RequestInfo:
    __slots__ = (
        "_authority",
        "_grpc",
        "_headers_by_name",
        "_host",
        "_query_params",
        "headers",
        "method",
        "path",
        "query",
    )

    def __init__(
        self,
        method: bytes,
        path: bytes,
        query: bytes = b"",
        headers: Sequence[Header] = (),
        authority: bytes | None = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        # None: the Host header's (or HTTP/2's :authority), looked up only when a route
        # asks for the host.
        self._authority = authority
        self._host: bytes | None = None
        self._headers_by_name: dict[bytes, list[bytes]] | None = None
        self._query_params: dict[bytes, list[bytes]] | None = None
        self._grpc: tuple[bytes, bytes] | None = None

    @property
    def authority(self) -> bytes:
        authority = self._authority
        if authority is None:
            authority = self._authority = _host_header(self.headers)
        return authority

    @property
    def host(self) -> bytes:
        """The authority's host: lower-cased, without port, brackets or a trailing dot."""
        host = self._host
        if host is None:
            host = self._host = authority_host(self.authority)
        return host

    def header_values(self, name: bytes) -> list[bytes]:
        """Every value of the header `name` (lower-case), in order."""
        by_name = self._headers_by_name
        if by_name is None:
            # The first question scans; a second builds the index (most routes test one
            # header, if any).
            self._headers_by_name = _SCANNED
            size = len(name)
            return [v for n, v in self.headers if len(n) == size and n.lower() == name]
        if by_name is _SCANNED:
            by_name = self._headers_by_name = {}
            for n, v in self.headers:
                key = n.lower()
                values = by_name.get(key)
                if values is None:
                    by_name[key] = [v]
                else:
                    values.append(v)
        return by_name.get(name, _NONE)

    def query_values(self, name: bytes) -> list[bytes]:
        """Every value of the query parameter `name`, percent- and form-decoded, in order."""
        params = self._query_params
        if params is None:
            params = self._query_params = parse_query(self.query)
        return params.get(name, _NONE)

    @property
    def grpc_method(self) -> tuple[bytes, bytes] | None:
        """(service, method) of a `/service/method` path; None for any other path."""
        parts = self._grpc
        if parts is None:
            path = self.path
            slash = path.rfind(b"/")
            if path[:1] != b"/" or slash <= 1 or slash == len(path) - 1:
                return None
            parts = self._grpc = (path[1:slash], path[slash + 1 :])
        return parts

    def set_grpc_method(self, service: bytes, method: bytes) -> None:
        """Records an already parsed gRPC service and method (saves parsing the path)."""
        self._grpc = (service, method)

    def __repr__(self) -> str:
        return (
            f"RequestInfo({self.method!r}, {self.path!r}, query={self.query!r}, "
            f"authority={self.authority!r}, headers={list(self.headers)!r})"
        )


_NONE: list[bytes] = []  # shared, never mutated: the values of an absent name
_SCANNED: dict[bytes, list[bytes]] = {}  # marks "asked once": never filled


def request_info(method: bytes, target: bytes, headers: Sequence[Header]) -> RequestInfo:
    """A `RequestInfo` from an HTTP/1 request line's method and target, and its headers.

    Origin-form (`/p?q`) takes the authority from `Host`; absolute-form
    (`http://host/p?q`) from the target, which wins over `Host` (RFC 9112 §3.2.2);
    authority-form (CONNECT) is all authority; asterisk-form is the path `*`.
    """
    if target[:1] == b"/":
        q = target.find(b"?")
        if q < 0:
            return RequestInfo(method, target, b"", headers, None)
        return RequestInfo(method, target[:q], target[q + 1 :], headers, None)
    scheme_end = target.find(b"://")
    if scheme_end > 0:
        start = scheme_end + 3
        end = len(target)
        for stop in (b"/", b"?", b"#"):
            i = target.find(stop, start)
            if 0 <= i < end:
                end = i
        authority = target[start:end]
        at = authority.rfind(b"@")
        if at >= 0:
            authority = authority[at + 1 :]
        rest = target[end:]
        hash_at = rest.find(b"#")
        if hash_at >= 0:
            rest = rest[:hash_at]
        q = rest.find(b"?")
        path, query = (rest, b"") if q < 0 else (rest[:q], rest[q + 1 :])
        return RequestInfo(method, path or b"/", query, headers, authority)
    if method == b"CONNECT":
        return RequestInfo(method, b"", b"", headers, target)
    return RequestInfo(method, target, b"", headers, None)


def _host_header(headers: Sequence[Header]) -> bytes:
    """HTTP/2's `:authority`, else the Host header (RFC 9113 §8.3.1: they must agree)."""
    host = b""
    for name, value in headers:
        if name == b":authority":
            return value.strip()
        if len(name) == 4 and not host and name.lower() == b"host":
            host = value.strip()
    return host


def authority_host(authority: bytes) -> bytes:
    """`Host.Example.:8080` → `host.example`; `[::1]:80` → `::1`."""
    if authority[:1] == b"[":
        end = authority.find(b"]")
        return authority[1:end].lower() if end > 0 else authority.lower()
    colon = authority.rfind(b":")
    host = authority[:colon] if colon >= 0 else authority
    return host.rstrip(b".").lower()


def parse_query(query: bytes) -> dict[bytes, list[bytes]]:
    """`a=1&b=x+y&a=%32` → {a: [1, 2], b: [x y]} (form decoding; a bare name has value b"")."""
    params: dict[bytes, list[bytes]] = {}
    if not query:
        return params
    for part in query.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        if b"%" in name or b"+" in name:
            name = unquote_to_bytes(name.replace(b"+", b" "))
        if b"%" in value or b"+" in value:
            value = unquote_to_bytes(value.replace(b"+", b" "))
        values = params.get(name)
        if values is None:
            params[name] = [value]
        else:
            values.append(value)
    return params
