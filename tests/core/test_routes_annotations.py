"""The traffic annotations (retries, timeouts, failure accrual, opaque ports): values, defaults,
errors that name the annotation, which kinds accept which, and how a route's override a
Service's. Hypothesis checks the list parsers against the sets of codes they denote."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossamer.core.resources import Resource, ResourceError
from gossamer.core.resources.errors import FieldError
from gossamer.core.resources.gateway_durations import (
    MAX_MILLISECONDS,
    duration_ms,
    duration_problem,
)
from gossamer.core.resources.traffic_annotations import (
    GRPC_CODES,
    FailureAccrual,
    RetryPolicy,
    StatusRange,
    Timeouts,
    TrafficAnnotations,
    merge_ranges,
    parse_grpc_codes,
    parse_http_statuses,
    parse_port_ranges,
    parse_traffic_annotations,
)
from tests.core.manifests import SERVICE, mutated
from tests.core.test_routes_validation import GRPC_ROUTE, HTTP_ROUTE

RETRY_HTTP = "retry.gossamer.dev/http"
ACCRUAL = "balancer.gossamer.dev/failure-accrual"
ACCRUAL_ = "balancer.gossamer.dev/failure-accrual-consecutive-"


def parse(annotations: dict[str, str], kind: str = "Service") -> TrafficAnnotations:
    return parse_traffic_annotations(annotations, kind)


# -- values and defaults ------------------------------------------------------------------


def test_nothing_configured_by_default() -> None:
    assert parse({"app.kubernetes.io/name": "web", "local.gossamer.dev/workload": "web"}) == (
        TrafficAnnotations()
    )


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("5xx", [(500, 599)]),
        ("gateway-error", [(502, 504)]),
        ("504", [(504, 504)]),
        ("500-504", [(500, 504)]),
        ("429, 5xx", [(429, 429), (500, 599)]),
        ("503,502,504", [(502, 504)]),
        ("500-502,501-510,511", [(500, 511)]),
        ("4XX", [(400, 499)]),
    ],
)
def test_http_statuses(text: str, ranges: list[tuple[int, int]]) -> None:
    assert parse_http_statuses(text) == tuple(StatusRange(*r) for r in ranges)


def test_retry_defaults_to_one_retry_when_any_retry_annotation_is_set() -> None:
    assert parse({RETRY_HTTP: "5xx"}).retry == RetryPolicy((StatusRange(500, 599),), limit=1)
    # A per-try timeout alone retries timed-out attempts, once.
    assert parse({"retry.gossamer.dev/timeout": "300ms"}).retry == RetryPolicy(timeout_ms=300)
    full = parse(
        {
            RETRY_HTTP: "gateway-error",
            "retry.gossamer.dev/grpc": "unavailable, cancelled,internal",
            "retry.gossamer.dev/limit": "3",
            "retry.gossamer.dev/timeout": "1m30s",
        }
    ).retry
    assert full == RetryPolicy((StatusRange(502, 504),), (1, 13, 14), 3, 90_000)
    assert parse({"retry.gossamer.dev/limit": "0"}).retry == RetryPolicy(limit=0)


def test_timeouts_and_zero_meaning_none() -> None:
    assert parse({"timeout.gossamer.dev/request": "10s"}).timeouts == Timeouts(10_000, None)
    assert parse({"timeout.gossamer.dev/response": "250ms"}).timeouts == Timeouts(None, 250)
    # Set to nothing is not the same as not set: it overrides a Service's timeout.
    assert parse({"timeout.gossamer.dev/request": "0s"}).timeouts == Timeouts(0, None)


def test_failure_accrual_is_off_unless_set_with_linkerds_defaults() -> None:
    assert parse({}).failure_accrual is None
    assert parse({ACCRUAL: "consecutive"}).failure_accrual == FailureAccrual(7, 1_000, 60_000, 0.5)
    tuned = parse(
        {
            ACCRUAL: "consecutive",
            ACCRUAL_ + "max-failures": "3",
            ACCRUAL_ + "min-penalty": "100ms",
            ACCRUAL_ + "max-penalty": "10s",
            ACCRUAL_ + "jitter-ratio": "0",
        }
    )
    assert tuned.failure_accrual == FailureAccrual(3, 100, 10_000, 0.0)


def test_opaque_ports() -> None:
    traffic = parse({"config.gossamer.dev/opaque-ports": "3306, 8000-8100,4444"})
    assert traffic.opaque_ports == ((3306, 3306), (4444, 4444), (8000, 8100))
    assert traffic.is_opaque(8050) and traffic.is_opaque(3306)
    assert not traffic.is_opaque(80)


def test_a_routes_groups_replace_the_services_separately() -> None:
    service = parse(
        {
            RETRY_HTTP: "5xx",
            "retry.gossamer.dev/limit": "3",
            "timeout.gossamer.dev/request": "10s",
            ACCRUAL: "consecutive",
        }
    )
    # Any retry annotation on the route replaces every retry setting of the Service.
    route = parse({"retry.gossamer.dev/timeout": "1s"}, "HTTPRoute")
    seen = service.overlay(route)
    assert seen.retry == RetryPolicy(timeout_ms=1000, limit=1)
    assert seen.timeouts == Timeouts(10_000, None)
    assert seen.failure_accrual == service.failure_accrual
    # A route's timeout annotation replaces the Service's timeouts, retries stay.
    seen = service.overlay(parse({"timeout.gossamer.dev/response": "1s"}, "HTTPRoute"))
    assert seen.retry == service.retry
    assert seen.timeouts == Timeouts(None, 1000)
    assert service.overlay(TrafficAnnotations()) == service


# -- errors ----------------------------------------------------------------------------------

ERRORS: list[tuple[str, dict[str, str], str]] = [
    ("Service", {RETRY_HTTP: "6xx"}, "'6xx' is not a status"),
    ("Service", {RETRY_HTTP: "600"}, "600 is not an HTTP status (100 to 599)"),
    ("Service", {RETRY_HTTP: "504-500"}, "range 504-500 is empty (its start is above its end)"),
    ("Service", {RETRY_HTTP: "5xx,,504"}, "must be a comma-separated list without empty entries"),
    ("Service", {RETRY_HTTP: ""}, "must be a comma-separated list without empty entries"),
    (
        "Service",
        {"retry.gossamer.dev/grpc": "unavailble"},
        "'unavailble' is not a gRPC status name (did you mean \"unavailable\"?); known: cancelled",
    ),
    ("Service", {"retry.gossamer.dev/grpc": "ok"}, "'ok' is not a gRPC status name"),
    ("Service", {"retry.gossamer.dev/limit": "101"}, "must be an integer from 0 to 100"),
    ("Service", {"retry.gossamer.dev/limit": "-1"}, "must be an integer from 0 to 100"),
    ("Service", {"retry.gossamer.dev/limit": "two"}, "must be an integer from 0 to 100"),
    ("Service", {"retry.gossamer.dev/timeout": "5"}, "must be a duration such as"),
    ("Service", {"timeout.gossamer.dev/request": "1.5s"}, "must be a duration such as"),
    ("Service", {"timeout.gossamer.dev/response": "-1s"}, "must be a duration such as"),
    (
        "Service",
        {"timeout.gossamer.dev/idle": "5s"},
        "idle timeouts are not supported; timeout.gossamer.dev/request and "
        "timeout.gossamer.dev/response are",
    ),
    (
        "Service",
        {"timeout.gossamer.dev/requests": "5s"},
        'unknown annotation (did you mean "timeout.gossamer.dev/request"?); known here: '
        "timeout.gossamer.dev/request, timeout.gossamer.dev/response",
    ),
    (
        "Service",
        {"balancer.gossamer.dev/load-balancer": "ewma"},
        "unknown annotation; known here: balancer.gossamer.dev/failure-accrual, ",
    ),
    (
        "Service",
        {"retry.gossamer.dev/htpp": "5xx"},
        'unknown annotation (did you mean "retry.gossamer.dev/http"?)',
    ),
    (
        "Service",
        {ACCRUAL: "on"},
        'must be "consecutive" (the only failure accrual Gossamer implements) (got string "on")',
    ),
    (
        "Service",
        {ACCRUAL_ + "max-failures": "5"},
        'has no effect without balancer.gossamer.dev/failure-accrual: "consecutive"',
    ),
    (
        "Service",
        {ACCRUAL: "consecutive", ACCRUAL_ + "max-failures": "0"},
        "must be an integer from 1 to 10000",
    ),
    (
        "Service",
        {ACCRUAL: "consecutive", ACCRUAL_ + "min-penalty": "2m"},
        "the minimum penalty (120000ms) must not exceed the maximum penalty (60000ms)",
    ),
    (
        "Service",
        {ACCRUAL: "consecutive", ACCRUAL_ + "max-penalty": "0s"},
        "must be longer than 0s",
    ),
    (
        "Service",
        {ACCRUAL: "consecutive", ACCRUAL_ + "jitter-ratio": "101"},
        "must be a number from 0 to 100 (as 0.5)",
    ),
    (
        "Service",
        {ACCRUAL: "consecutive", ACCRUAL_ + "jitter-ratio": "nan"},
        "must be a number from 0 to 100 (as 0.5)",
    ),
    (
        "Service",
        {"config.gossamer.dev/opaque-ports": "3306,70000"},
        "70000 is not a port from 1 to 65535",
    ),
    (
        "Service",
        {"config.gossamer.dev/opaque-ports": "mysql"},
        "'mysql' is not a port (8080) or a port range (8000-8100)",
    ),
    (
        "HTTPRoute",
        {"retry.gossamer.dev/grpc": "unavailable"},
        "not valid on kind HTTPRoute (valid on: Service, GRPCRoute)",
    ),
    ("HTTPRoute", {ACCRUAL: "consecutive"}, "not valid on kind HTTPRoute (valid on: Service)"),
    (
        "HTTPRoute",
        {"config.gossamer.dev/opaque-ports": "80"},
        "not valid on kind HTTPRoute (valid on: Service)",
    ),
    (
        "GRPCRoute",
        {RETRY_HTTP: "5xx"},
        "not valid on kind GRPCRoute (valid on: Service, HTTPRoute)",
    ),
]


@pytest.mark.parametrize(("kind", "annotations", "expected"), ERRORS)
def test_an_error_names_the_annotation(
    kind: str, annotations: dict[str, str], expected: str
) -> None:
    with pytest.raises(FieldError) as raised:
        parse(annotations, kind)
    # The culprit is the annotation the user wrote, even when a default is involved.
    assert raised.value.path[:2] == ("metadata", "annotations")
    assert raised.value.path[2] in annotations
    assert expected in raised.value.problem, raised.value.problem


def test_the_min_penalty_is_blamed_when_both_penalties_are_written() -> None:
    with pytest.raises(FieldError) as raised:
        parse(
            {ACCRUAL: "consecutive", ACCRUAL_ + "min-penalty": "5s", ACCRUAL_ + "max-penalty": "1s"}
        )
    assert raised.value.path[2] == ACCRUAL_ + "min-penalty"
    with pytest.raises(FieldError) as raised:
        parse({ACCRUAL: "consecutive", ACCRUAL_ + "max-penalty": "500ms"})
    assert raised.value.path[2] == ACCRUAL_ + "max-penalty"


def test_other_gossamer_annotations_are_left_alone() -> None:
    parse({"config.gossamer.dev/proxy-log-level": "debug", "gossamer.dev/inject": "enabled"})


KINDS: list[tuple[dict[str, Any], str]] = [
    (SERVICE, "Service demo/web"),
    (HTTP_ROUTE, "HTTPRoute demo/web-split"),
    (GRPC_ROUTE, "GRPCRoute demo/emoji"),
]


@pytest.mark.parametrize(("base", "subject"), KINDS, ids=lambda v: v if isinstance(v, str) else "")
def test_applying_an_object_with_a_bad_annotation_is_refused(
    base: dict[str, Any], subject: str
) -> None:
    bad = mutated(base, ("metadata", "annotations"), {"retry.gossamer.dev/limit": "lots"})
    with pytest.raises(ResourceError) as raised:
        Resource.from_dict(bad)
    assert str(raised.value) == (
        f'{subject}: metadata.annotations["retry.gossamer.dev/limit"]: must be an integer from '
        '0 to 100 (got string "lots")'
    )
    good = mutated(base, ("metadata", "annotations"), {"retry.gossamer.dev/limit": "2"})
    assert Resource.from_dict(good).metadata.annotations["retry.gossamer.dev/limit"] == "2"


# -- properties ------------------------------------------------------------------------------

status_item = st.one_of(
    st.sampled_from(["gateway-error", "1xx", "2xx", "3xx", "4xx", "5xx"]),
    st.integers(100, 599).map(str),
    st.tuples(st.integers(100, 599), st.integers(0, 120)).map(
        lambda pair: f"{pair[0]}-{min(599, pair[0] + pair[1])}"
    ),
)


def _covered(item: str) -> set[int]:
    if item == "gateway-error":
        return {502, 503, 504}
    if item.endswith("xx"):
        hundred = int(item[0]) * 100
        return set(range(hundred, hundred + 100))
    start, _, end = item.partition("-")
    return set(range(int(start), int(end or start) + 1))


@given(st.lists(status_item, min_size=1, max_size=8), st.sampled_from([",", ", ", " ,"]))
def test_http_statuses_denote_exactly_the_union_of_their_items(
    items: list[str], separator: str
) -> None:
    ranges = parse_http_statuses(separator.join(items))
    expected = set().union(*(_covered(item) for item in items))
    assert set().union(*(set(range(r.start, r.end + 1)) for r in ranges)) == expected
    # Sorted, disjoint and not adjacent: the proxy can search them.
    for before, after in itertools.pairwise(ranges):
        assert before.end + 1 < after.start
    for status in (99, 100, 450, 503, 599, 600):
        assert any(status in r for r in ranges) == (status in expected)


@given(st.lists(st.sampled_from(sorted(GRPC_CODES)), min_size=1, max_size=6))
def test_grpc_names_map_to_their_codes(names: list[str]) -> None:
    assert parse_grpc_codes(",".join(names)) == tuple(sorted({GRPC_CODES[n] for n in names}))


port_item = st.one_of(
    st.integers(1, 65535).map(str),
    st.tuples(st.integers(1, 65535), st.integers(0, 50)).map(
        lambda pair: f"{pair[0]}-{min(65535, pair[0] + pair[1])}"
    ),
)


@given(st.lists(port_item, min_size=1, max_size=6))
def test_opaque_port_ranges_denote_their_ports(items: list[str]) -> None:
    ranges = parse_port_ranges(",".join(items))
    expected = set().union(*(_covered(item) for item in items))
    assert set().union(*(set(range(a, b + 1)) for a, b in ranges)) == expected


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), max_size=10))
def test_merged_ranges_keep_every_point(pairs: list[tuple[int, int]]) -> None:
    ranges = [(min(a, b), max(a, b)) for a, b in pairs]
    merged = merge_ranges(ranges)
    assert set().union(*(set(range(a, b + 1)) for a, b in merged)) == set().union(
        *(set(range(a, b + 1)) for a, b in ranges)
    )


UNITS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


@given(
    st.lists(st.tuples(st.integers(0, 999), st.sampled_from(sorted(UNITS))), min_size=1, max_size=4)
)
def test_durations_add_up_their_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{number}{unit}" for number, unit in parts)
    total = sum(number * UNITS[unit] for number, unit in parts)
    if total > MAX_MILLISECONDS:
        assert duration_problem(text) == f"must be at most {MAX_MILLISECONDS}ms (about 49 days)"
    else:
        assert duration_problem(text) is None
        assert duration_ms(text) == total


@given(st.text(max_size=12))
def test_no_text_crashes_the_duration_parser(text: str) -> None:
    problem = duration_problem(text)
    if problem is None:
        assert duration_ms(text) >= 0
    else:
        with pytest.raises(ValueError):
            duration_ms(text)


ANNOTATION_KEYS = [
    RETRY_HTTP,
    "retry.gossamer.dev/grpc",
    "retry.gossamer.dev/limit",
    "retry.gossamer.dev/timeout",
    "timeout.gossamer.dev/request",
    "timeout.gossamer.dev/response",
    ACCRUAL,
    ACCRUAL_ + "max-failures",
    ACCRUAL_ + "min-penalty",
    ACCRUAL_ + "max-penalty",
    ACCRUAL_ + "jitter-ratio",
    "config.gossamer.dev/opaque-ports",
]


@given(
    st.dictionaries(st.sampled_from(ANNOTATION_KEYS), st.text(max_size=12), max_size=4),
    st.sampled_from(["Service", "HTTPRoute", "GRPCRoute"]),
)
def test_any_annotation_value_parses_or_fails_with_a_field_error(
    annotations: dict[str, str], kind: str
) -> None:
    with contextlib.suppress(FieldError):
        parse(annotations, kind)
