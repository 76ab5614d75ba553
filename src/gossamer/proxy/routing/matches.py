"""Gateway API request matches and route hostnames, compiled to predicates over `RequestInfo`.

Semantics (HTTPRoute / GRPCRoute):
- path: Exact is byte equality; PathPrefix matches whole path elements (`/abc` matches
  `/abc`, `/abc/` and `/abc/d`, never `/abcd`; a trailing `/` in the prefix is ignored);
  RegularExpression must match the whole path. No path: any path.
- headers: names case-insensitive; a match holds when any value of that name matches (exact,
  or the regex matching the whole value). Query parameters likewise, on form-decoded names
  and values (names case-sensitive).
- method: exact. gRPC: service and method of `/service/method`, exact or whole-regex; an
  empty one matches any.
- All the conditions of one match must hold; a match with none (PathPrefix `/` and nothing
  else, Gateway API's default) matches every request and is marked `catch_all`.

Precedence between matches is not decided here: the control plane ranks every match (Gateway
API precedence, route age, name) and emits routes and rules in that order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.routing.request import RequestInfo

BytesTest = Callable[[bytes], object]  # truthy on a match


class InvalidMatch(ValueError):
    """A match the proxy cannot evaluate (a regular expression that does not compile)."""


def _regex(pattern: str) -> BytesTest:
    try:
        return re.compile(pattern.encode("utf-8")).fullmatch
    except re.error as e:
        raise InvalidMatch(f"bad regular expression {pattern!r}: {e}") from None


def _value_test(value: str, regex: bool) -> BytesTest:
    return _regex(value) if regex else value.encode("utf-8").__eq__


def _prefix_test(prefix: bytes) -> BytesTest | None:
    prefix = prefix.rstrip(b"/")
    if not prefix:
        return None  # "/": every path
    with_slash = prefix + b"/"

    def test(path: bytes) -> bool:
        return path == prefix or path.startswith(with_slash)

    return test


class CompiledMatch:
    """One `RequestMatch`: `matches(request)` when all its conditions hold."""

    __slots__ = ("catch_all", "grpc", "headers", "method", "path", "query")

    def __init__(self, match: pb.RequestMatch) -> None:
        self.path: BytesTest | None = None
        if match.HasField("path"):
            kind = match.path.kind
            value = match.path.value
            if kind == pb.PathMatch.EXACT:
                self.path = value.encode("utf-8").__eq__
            elif kind == pb.PathMatch.REGEX:
                self.path = _regex(value)
            else:
                self.path = _prefix_test(value.encode("utf-8"))
        self.method: bytes | None = match.method.encode("ascii") if match.method else None
        self.headers: tuple[tuple[bytes, BytesTest], ...] = tuple(
            (h.name.lower().encode("utf-8"), _value_test(h.value, h.regex))
            for h in _first_per_name(match.headers, case_insensitive=True)
        )
        self.query: tuple[tuple[bytes, BytesTest], ...] = tuple(
            (q.name.encode("utf-8"), _value_test(q.value, q.regex))
            for q in _first_per_name(match.query_params, case_insensitive=False)
        )
        self.grpc: tuple[BytesTest | None, BytesTest | None] | None = None
        if match.HasField("grpc") and (match.grpc.service or match.grpc.method):
            g = match.grpc
            self.grpc = (
                _value_test(g.service, g.regex) if g.service else None,
                _value_test(g.method, g.regex) if g.method else None,
            )
        self.catch_all = (
            self.path is None
            and self.method is None
            and not self.headers
            and not self.query
            and self.grpc is None
        )

    def matches(self, request: RequestInfo) -> bool:
        test = self.path
        if test is not None and not test(request.path):
            return False
        method = self.method
        if method is not None and request.method != method:
            return False
        grpc = self.grpc
        if grpc is not None:
            parts = request.grpc_method
            if parts is None:
                return False
            service_test, method_test = grpc
            if service_test is not None and not service_test(parts[0]):
                return False
            if method_test is not None and not method_test(parts[1]):
                return False
        for name, test in self.headers:
            for value in request.header_values(name):
                if test(value):
                    break
            else:
                return False
        for name, test in self.query:
            for value in request.query_values(name):
                if test(value):
                    break
            else:
                return False
        return True


def _first_per_name(
    values: Iterable[pb.ValueMatch], *, case_insensitive: bool
) -> list[pb.ValueMatch]:
    # Gateway API: of several entries with an equivalent name, only the first counts.
    seen: set[str] = set()
    out = []
    for v in values:
        key = v.name.lower() if case_insensitive else v.name
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def hostname_test(hostnames: Iterable[str]) -> Callable[[bytes], bool] | None:
    """A test of a request's host against a route's hostnames; None when any host will do.

    `*.example.com` matches any name below example.com (one label or more), not itself.
    """
    exact: set[bytes] = set()
    suffixes: list[bytes] = []
    for name in hostnames:
        h = name.strip().rstrip(".").lower().encode("utf-8")
        if h == b"*":
            return None
        if h.startswith(b"*."):
            suffixes.append(h[1:])
        elif h:
            exact.add(h)
    if not exact and not suffixes:
        return None
    exact_set = frozenset(exact)
    suffix_tuple = tuple(suffixes)

    def test(host: bytes) -> bool:
        if host in exact_set:
            return True
        return any(len(host) > len(s) and host.endswith(s) for s in suffix_tuple)

    return test
