"""Outbound route selection by Gateway API semantics (pure: no sockets)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.retry import RetryCondition
from gossamer.proxy.routing import CompiledRoutes, RequestInfo, request_info

EXACT, PREFIX, REGEX = pb.PathMatch.EXACT, pb.PathMatch.PREFIX, pb.PathMatch.REGEX


def backend(name: str, weight: int = 1) -> pb.Backend:
    return pb.Backend(authority=f"{name}.ns.svc.cluster.local:80", service=name, weight=weight)


def rule(*matches: pb.RequestMatch, to: str = "web", **kw: object) -> pb.RouteRule:
    return pb.RouteRule(matches=list(matches), backends=[backend(to)], **kw)  # type: ignore[arg-type]


def path(kind: int, value: str, **kw: object) -> pb.RequestMatch:
    return pb.RequestMatch(path=pb.PathMatch(kind=kind, value=value), **kw)  # type: ignore[arg-type]


def header(name: str, value: str, regex: bool = False) -> pb.ValueMatch:
    return pb.ValueMatch(name=name, value=value, regex=regex)


DEFAULT = pb.Route(name="default", kind="default", rules=[rule(to="web")])


def compiled(*routes: pb.Route, default: bool = True, seed: int = 1) -> CompiledRoutes:
    policy = pb.OutboundPolicy(exists=True, routes=[*routes, *([DEFAULT] if default else [])])
    return CompiledRoutes(policy, random.Random(seed))


def http_route(name: str, *rules: pb.RouteRule, hostnames: tuple[str, ...] = ()) -> pb.Route:
    return pb.Route(name=name, kind="HTTPRoute", hostnames=list(hostnames), rules=list(rules))


def get(target: bytes, *headers: tuple[bytes, bytes], method: bytes = b"GET") -> RequestInfo:
    return request_info(method, target, [(b"Host", b"web.ns:80"), *headers])


def to(routes: CompiledRoutes, request: RequestInfo) -> str | None:
    """`route/rule -> backend service` of the selection, or None."""
    selected = routes.select(request)
    if selected is None:
        return None
    b = selected.backend()
    return f"{selected.route_name}/{selected.rule}->{b.service if b else None}"


# --- RequestInfo -------------------------------------------------------------------------


def test_origin_form_takes_authority_from_host() -> None:
    r = request_info(b"GET", b"/a/b?x=1&y=2", [(b"HOST", b"Web.NS:8080"), (b"accept", b"*")])
    assert (r.method, r.path, r.query, r.authority) == (b"GET", b"/a/b", b"x=1&y=2", b"Web.NS:8080")
    assert r.host == b"web.ns"
    assert request_info(b"GET", b"/", []).authority == b""


def test_http2_requests_take_the_authority_pseudo_header() -> None:
    headers = [(b":method", b"GET"), (b":authority", b"Web.Demo:80"), (b"host", b"other")]
    assert request_info(b"GET", b"/", headers).host == b"web.demo"


def test_absolute_form_authority_wins_over_host() -> None:
    r = request_info(b"GET", b"http://user@api.example:81/p/q?z#frag", [(b"Host", b"other")])
    assert (r.path, r.query, r.authority, r.host) == (
        b"/p/q",
        b"z",
        b"api.example:81",
        b"api.example",
    )
    assert request_info(b"GET", b"http://api.example", []).path == b"/"
    assert request_info(b"GET", b"http://api.example?q=1", []).query == b"q=1"


def test_connect_and_asterisk_forms() -> None:
    c = request_info(b"CONNECT", b"db.example:5432", [])
    assert (c.path, c.authority, c.host) == (b"", b"db.example:5432", b"db.example")
    o = request_info(b"OPTIONS", b"*", [(b"host", b"h")])
    assert (o.path, o.authority) == (b"*", b"h")


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        (b"Web.Example.:80", b"web.example"),
        (b"web", b"web"),
        (b"[::1]:8080", b"::1"),
        (b"[fe80::1]", b"fe80::1"),
        (b"10.0.0.1:80", b"10.0.0.1"),
        (b"", b""),
    ],
)
def test_host_of_authority(authority: bytes, host: bytes) -> None:
    assert RequestInfo(b"GET", b"/", authority=authority).host == host


def test_query_values_are_form_decoded_and_repeated() -> None:
    r = get(b"/?a=1&b=x+y&a=%32&flag&c%20d=%E2%9C%93&&")
    assert r.query_values(b"a") == [b"1", b"2"]
    assert r.query_values(b"b") == [b"x y"]
    assert r.query_values(b"flag") == [b""]
    assert r.query_values(b"c d") == ["✓".encode()]
    assert r.query_values(b"missing") == []


def test_header_values_by_lowercase_name_in_order() -> None:
    r = get(b"/", (b"X-Env", b"a"), (b"x-env", b"b"))
    assert r.header_values(b"x-env") == [b"a", b"b"]
    assert r.header_values(b"host") == [b"web.ns:80"]


# --- precedence ----------------------------------------------------------------------------


def test_the_first_route_in_policy_order_with_a_matching_rule_wins() -> None:
    routes = compiled(
        http_route("first", rule(path(PREFIX, "/api"), to="v1")),
        http_route("second", rule(path(EXACT, "/api/x"), to="v2")),  # more specific, but later
    )
    assert to(routes, get(b"/api/x")) == "first/0->v1"
    assert to(routes, get(b"/other")) == "default/0->web"


def test_no_route_matches_without_a_default() -> None:
    routes = compiled(http_route("only", rule(path(EXACT, "/a"))), default=False)
    assert routes.select(get(b"/b")) is None
    assert CompiledRoutes(pb.OutboundPolicy(), random.Random(1)).select(get(b"/")) is None


def test_within_a_route_the_first_rule_in_policy_order_wins() -> None:
    # The control plane ranks matches (Gateway API precedence) and orders rules to suit;
    # the proxy does not second-guess it.
    routes = compiled(
        http_route(
            "r",
            rule(path(PREFIX, "/api"), to="prefix"),
            rule(path(EXACT, "/api/login"), to="exact"),
        )
    )
    assert to(routes, get(b"/api/login")) == "r/0->prefix"
    ranked = compiled(
        http_route(
            "r",
            rule(path(EXACT, "/api/login"), to="exact"),
            rule(path(PREFIX, "/api"), to="prefix"),
        )
    )
    assert to(ranked, get(b"/api/login")) == "r/0->exact"
    assert to(ranked, get(b"/api/other")) == "r/1->prefix"


def test_a_route_cut_into_pieces_by_precedence_is_tried_piece_by_piece() -> None:
    # Route r's exact match outranks route s, whose prefix outranks r's catch-all.
    routes = compiled(
        http_route("r", rule(path(EXACT, "/a/b"), to="r-exact")),
        http_route("s", rule(path(PREFIX, "/a"), to="s-prefix")),
        http_route("r", rule(path(PREFIX, "/"), to="r-rest")),
        default=False,
    )
    assert to(routes, get(b"/a/b")) == "r/0->r-exact"
    assert to(routes, get(b"/a/c")) == "s/0->s-prefix"
    assert to(routes, get(b"/z")) == "r/0->r-rest"


def test_a_rule_without_matches_takes_every_request_in_its_turn() -> None:
    routes = compiled(
        http_route("r", rule(to="catch-all"), rule(path(PREFIX, "/"), to="also-all")),
        default=False,
    )
    assert to(routes, get(b"/anything")) == "r/0->catch-all"


def test_any_match_of_a_rule_selects_it() -> None:
    routes = compiled(http_route("r", rule(path(EXACT, "/a"), path(EXACT, "/b"), to="ab")))
    assert to(routes, get(b"/a")) == to(routes, get(b"/b")) == "r/0->ab"
    assert to(routes, get(b"/c")) == "default/0->web"


# --- match types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "matching", "not_matching"),
    [
        ("/abc", [b"/abc", b"/abc/", b"/abc/def"], [b"/abcd", b"/ab", b"/", b"/x/abc"]),
        ("/abc/", [b"/abc", b"/abc/", b"/abc/def"], [b"/abcd"]),
        ("/", [b"/", b"/anything", b"*"], []),
        ("", [b"/", b"/x"], []),
    ],
)
def test_path_prefix_matches_whole_elements(
    prefix: str, matching: list[bytes], not_matching: list[bytes]
) -> None:
    routes = compiled(http_route("r", rule(path(PREFIX, prefix), to="hit")))
    for p in matching:
        assert to(routes, get(p)) == "r/0->hit", p
    for p in not_matching:
        assert to(routes, get(p)) == "default/0->web", p


@given(
    prefix=st.lists(st.sampled_from(["a", "ab", "b"]), min_size=1, max_size=3),
    requested=st.lists(st.sampled_from(["a", "ab", "b", ""]), max_size=4),
)
def test_path_prefix_is_element_wise(prefix: list[str], requested: list[str]) -> None:
    routes = compiled(http_route("r", rule(path(PREFIX, "/" + "/".join(prefix)), to="hit")))
    request_path = "/" + "/".join(requested)
    elements = [e for e in request_path.split("/") if e]
    # Gateway API: the prefix's elements are the first elements of the path.
    expected = elements[: len(prefix)] == prefix and (
        len(requested) >= len(prefix) and requested[: len(prefix)] == prefix
    )
    assert (to(routes, get(request_path.encode())) == "r/0->hit") == expected


def test_exact_path_ignores_the_query_and_is_case_sensitive() -> None:
    routes = compiled(http_route("r", rule(path(EXACT, "/Login"), to="hit")))
    assert to(routes, get(b"/Login?next=/")) == "r/0->hit"
    assert to(routes, get(b"/login")) == "default/0->web"
    assert to(routes, get(b"/Login/")) == "default/0->web"


def test_regex_path_must_match_the_whole_path() -> None:
    routes = compiled(http_route("r", rule(path(REGEX, r"/users/[0-9]+"), to="hit")))
    assert to(routes, get(b"/users/42")) == "r/0->hit"
    assert to(routes, get(b"/users/42/edit")) == "default/0->web"
    assert to(routes, get(b"/v1/users/42")) == "default/0->web"


def test_a_bad_regex_never_matches_and_is_reported() -> None:
    routes = compiled(
        http_route("r", rule(path(REGEX, "/(unclosed"), to="bad"), rule(path(EXACT, "/ok")))
    )
    assert to(routes, get(b"/(unclosed")) == "default/0->web"
    assert to(routes, get(b"/ok")) == "r/1->web"
    assert len(routes.errors) == 1 and "rule 0" in routes.errors[0]


def test_header_names_are_case_insensitive_values_exact() -> None:
    routes = compiled(http_route("r", rule(pb.RequestMatch(headers=[header("X-Canary", "On")]))))
    assert to(routes, get(b"/", (b"x-canary", b"On"))) == "r/0->web"
    assert to(routes, get(b"/", (b"X-CANARY", b"On"))) == "r/0->web"
    assert to(routes, get(b"/", (b"x-canary", b"on"))) == "default/0->web"
    assert to(routes, get(b"/")) == "default/0->web"


def test_a_repeated_header_matches_when_any_value_does() -> None:
    routes = compiled(http_route("r", rule(pb.RequestMatch(headers=[header("x-env", "b")]))))
    assert to(routes, get(b"/", (b"x-env", b"a"), (b"X-Env", b"b"))) == "r/0->web"


def test_header_regex_matches_the_whole_value() -> None:
    routes = compiled(
        http_route("r", rule(pb.RequestMatch(headers=[header("user-agent", "curl/.*", True)])))
    )
    assert to(routes, get(b"/", (b"User-Agent", b"curl/8.5"))) == "r/0->web"
    assert to(routes, get(b"/", (b"User-Agent", b"x curl/8.5"))) == "default/0->web"


def test_all_conditions_of_a_match_must_hold() -> None:
    match = path(
        PREFIX,
        "/api",
        method="POST",
        headers=[header("a", "1"), header("b", "2")],
        query_params=[header("v", "2")],
    )
    routes = compiled(http_route("r", rule(match, to="hit")))
    full = [(b"A", b"1"), (b"B", b"2")]
    assert to(routes, get(b"/api/x?v=2", *full, method=b"POST")) == "r/0->hit"
    assert to(routes, get(b"/api/x?v=2", *full)) == "default/0->web"
    assert to(routes, get(b"/api/x?v=3", *full, method=b"POST")) == "default/0->web"
    assert to(routes, get(b"/api/x?v=2", full[0], method=b"POST")) == "default/0->web"
    assert to(routes, get(b"/other?v=2", *full, method=b"POST")) == "default/0->web"


def test_only_the_first_of_equivalent_header_names_counts() -> None:
    match = pb.RequestMatch(headers=[header("X-A", "1"), header("x-a", "2")])
    routes = compiled(http_route("r", rule(match)))
    assert to(routes, get(b"/", (b"x-a", b"1"))) == "r/0->web"


def test_query_params_exact_regex_decoded_and_case_sensitive_names() -> None:
    routes = compiled(
        http_route(
            "r",
            rule(pb.RequestMatch(query_params=[header("env", "canary")]), to="exact"),
            rule(pb.RequestMatch(query_params=[header("id", "[0-9]+", True)]), to="regex"),
            rule(pb.RequestMatch(query_params=[header("q", "a b")]), to="decoded"),
        )
    )
    assert to(routes, get(b"/?x=1&env=canary")) == "r/0->exact"
    assert to(routes, get(b"/?ENV=canary")) == "default/0->web"
    assert to(routes, get(b"/?env=canary2")) == "default/0->web"
    assert to(routes, get(b"/?id=123")) == "r/1->regex"
    assert to(routes, get(b"/?id=12a")) == "default/0->web"
    assert to(routes, get(b"/?q=a+b")) == "r/2->decoded"
    assert to(routes, get(b"/?q=a%20b")) == "r/2->decoded"
    assert to(routes, get(b"/?env=prod&env=canary")) == "r/0->exact"


def test_method_match() -> None:
    routes = compiled(http_route("r", rule(pb.RequestMatch(method="DELETE"), to="hit")))
    assert to(routes, get(b"/x", method=b"DELETE")) == "r/0->hit"
    assert to(routes, get(b"/x", method=b"GET")) == "default/0->web"


# --- hostnames ------------------------------------------------------------------------------


def test_route_hostnames_must_match_the_authority_host() -> None:
    routes = compiled(
        http_route("named", rule(to="hit"), hostnames=("web.ns", "*.example.com")),
    )

    def host(authority: bytes) -> str | None:
        return to(routes, request_info(b"GET", b"/", [(b"Host", authority)]))

    assert host(b"web.ns") == "named/0->hit"
    assert host(b"WEB.NS:8080") == "named/0->hit"
    assert host(b"a.example.com") == "named/0->hit"
    assert host(b"a.b.example.com") == "named/0->hit"
    assert host(b"example.com") == "default/0->web"
    assert host(b"web.other") == "default/0->web"
    assert to(routes, request_info(b"GET", b"/", [])) == "default/0->web"  # no authority
    assert to(routes, request_info(b"GET", b"http://web.ns/", [])) == "named/0->hit"


# --- gRPC -----------------------------------------------------------------------------------


def grpc_route(name: str, *rules: pb.RouteRule) -> pb.Route:
    return pb.Route(name=name, kind="GRPCRoute", rules=list(rules))


def grpc(service: str = "", method: str = "", regex: bool = False, **kw: object) -> pb.RequestMatch:
    g = pb.GrpcMethodMatch(service=service, method=method, regex=regex)
    return pb.RequestMatch(grpc=g, **kw)  # type: ignore[arg-type]


def grpc_call(svc: bytes, meth: bytes, *headers: tuple[bytes, bytes]) -> RequestInfo:
    return RequestInfo(b"POST", b"/" + svc + b"/" + meth, b"", list(headers), b"emoji:8080")


def test_grpc_matches_by_service_and_method() -> None:
    routes = compiled(
        grpc_route(
            "g",
            rule(grpc("emoji.v1.EmojiService", "FindByShortcode"), to="method"),
            rule(grpc("emoji.v1.EmojiService"), to="service"),
            rule(grpc("", "Vote.*", regex=True), to="regex"),
        )
    )
    assert to(routes, grpc_call(b"emoji.v1.EmojiService", b"FindByShortcode")) == "g/0->method"
    assert to(routes, grpc_call(b"emoji.v1.EmojiService", b"ListAll")) == "g/1->service"
    assert to(routes, grpc_call(b"emoji.v1.VotingService", b"VoteDoughnut")) == "g/2->regex"
    assert to(routes, grpc_call(b"other.Service", b"Get")) == "default/0->web"
    assert to(routes, get(b"/not-grpc")) == "default/0->web"


def test_select_grpc_takes_an_already_split_call_and_agrees_with_select() -> None:
    routes = compiled(
        grpc_route("g", rule(grpc("a.B", "C", headers=[header("x-tenant", "t1")]), to="hit"))
    )
    call = grpc_call(b"a.B", b"C", (b"X-Tenant", b"t1"))
    split = RequestInfo(b"POST", b"/a.B/C", b"", [(b"x-tenant", b"t1")], b"")
    assert routes.select(call) is routes.select_grpc(b"a.B", b"C", split)
    assert routes.select_grpc(b"a.B", b"D", split) is routes.select(grpc_call(b"a.B", b"D"))


# --- what a selection carries -------------------------------------------------------------


def test_retry_timeouts_and_metadata_of_the_selected_rule() -> None:
    r = pb.RouteRule(
        backends=[backend("web")],
        retry=pb.RetryPolicy(http_statuses=[pb.StatusRange(start=500, end=599)], limit=2),
        timeouts=pb.Timeouts(request_ms=2000, response_ms=500),
    )
    routes = compiled(pb.Route(name="api", namespace="ns", kind="HTTPRoute", rules=[r]))
    s = routes.select(get(b"/"))
    assert s is not None
    assert (s.route_name, s.route_namespace, s.route_kind, s.rule) == ("api", "ns", "HTTPRoute", 0)
    assert s.retry.limit == 2 and s.retry.retryable_status(503)
    assert (s.request_timeout, s.response_timeout) == (2.0, 0.5)
    d = compiled(default=True).select(get(b"/"))
    assert d is not None
    assert d.retry is RetryCondition.NONE
    assert d.request_timeout is None and d.response_timeout is None
    assert d.request_modifiers.noop and d.response_modifiers.noop


def test_weighted_split_within_two_percent_over_100k_picks() -> None:
    r = pb.RouteRule(backends=[backend("v1", 70), backend("v2", 20), backend("v3", 10)])
    routes = compiled(pb.Route(name="split", kind="HTTPRoute", rules=[r]), seed=42)
    s = routes.select(get(b"/"))
    assert s is not None
    counts = Counter(b.service for b in (s.backend() for _ in range(100_000)) if b)
    assert abs(counts["v1"] / 100_000 - 0.70) < 0.02
    assert abs(counts["v2"] / 100_000 - 0.20) < 0.02
    assert abs(counts["v3"] / 100_000 - 0.10) < 0.02


def test_zero_weight_backends_get_nothing_and_all_zero_means_none() -> None:
    r = pb.RouteRule(backends=[backend("off", 0), backend("on", 3), backend("off2", 0)])
    s = compiled(pb.Route(name="r", kind="HTTPRoute", rules=[r])).select(get(b"/"))
    assert s is not None
    assert {b.service for b in (s.backend() for _ in range(1000)) if b} == {"on"}
    for backends in ([backend("a", 0), backend("b", 0)], []):
        r = pb.RouteRule(backends=backends)
        s = compiled(pb.Route(name="r", kind="HTTPRoute", rules=[r])).select(get(b"/"))
        assert s is not None and s.backend() is None  # the caller answers 500


def test_seeded_picks_are_reproducible() -> None:
    r = pb.RouteRule(backends=[backend("a", 1), backend("b", 1)])

    def picks(seed: int) -> list[str]:
        s = compiled(pb.Route(name="r", kind="HTTPRoute", rules=[r]), seed=seed).select(get(b"/"))
        assert s is not None
        return [b.service for b in (s.backend() for _ in range(50)) if b]

    assert picks(3) == picks(3)
    assert picks(3) != picks(4)


# --- the default-route fast path -------------------------------------------------------


class Untouchable:
    """A request whose every attribute access fails: proof that select did not look."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"select read request.{name}")


def test_default_only_policy_selects_without_reading_the_request() -> None:
    routes = compiled(default=True)
    s = routes.select(Untouchable())  # type: ignore[arg-type]
    assert s is not None and s.route_name == "default" and s.route_kind == "default"
    assert routes.select_grpc(b"a", b"b", Untouchable()) is s  # type: ignore[arg-type]
    assert routes.select(get(b"/anything")) is s
    # The caller may skip building a RequestInfo altogether.
    assert routes.always is s


def test_a_first_route_that_always_matches_takes_the_fast_path_too() -> None:
    routes = compiled(http_route("all", rule(to="everything")))
    assert to(routes, Untouchable()) == "all/0->everything"  # type: ignore[arg-type]
    # Gateway API's default match (PathPrefix "/", nothing else) is a catch-all too.
    routes = compiled(http_route("all", rule(path(PREFIX, "/"), path(EXACT, "/x"))))
    assert routes.always is not None and routes.always.route_name == "all"


def test_no_fast_path_when_the_first_route_can_miss() -> None:
    for first in (
        http_route("r", rule(path(EXACT, "/a"), to="a"), rule(to="rest")),
        http_route("r", rule(to="all"), hostnames=("web.ns",)),
    ):
        routes = compiled(first)
        assert routes.always is None
        with pytest.raises(AssertionError):
            routes.select(Untouchable())  # type: ignore[arg-type]
    routes = compiled(http_route("r", rule(path(EXACT, "/a"), to="a"), rule(to="rest")))
    assert to(routes, get(b"/a")) == "r/0->a"
    assert to(routes, get(b"/b")) == "r/1->rest"


def test_selection_allocates_no_new_route_objects() -> None:
    routes = compiled(http_route("r", rule(path(PREFIX, "/api"))))
    assert routes.select(get(b"/api/1")) is routes.select(get(b"/api/2"))
    assert [s.route_name for s in routes.routes] == ["r", "default"]
