"""The gossamer.dev annotations that configure traffic: retries, timeouts, failure accrual,
opaque ports. Pure parsing, with errors that name the annotation.

Linkerd's annotations under Gossamer's names, with Linkerd's defaults:

On Services, HTTPRoutes and GRPCRoutes:

- `retry.gossamer.dev/http` (not on GRPCRoutes): statuses to retry, comma-separated: `5xx`,
  `gateway-error` (502-504), a status (`504`) or a range (`500-504`);
- `retry.gossamer.dev/grpc` (not on HTTPRoutes): gRPC statuses to retry by name:
  `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`, ...;
- `retry.gossamer.dev/limit`: retries per request, 0 to 100; 1 when any retry annotation
  is set without it;
- `retry.gossamer.dev/timeout`: the per-attempt timeout (a timed-out attempt is retried);
- `timeout.gossamer.dev/request`: the whole request, retries included;
- `timeout.gossamer.dev/response`: one backend response, to its headers.

On Services only:

- `balancer.gossamer.dev/failure-accrual: consecutive` turns failure accrual on (it is off
  otherwise), tuned by `balancer.gossamer.dev/failure-accrual-consecutive-max-failures`
  (default 7), `-min-penalty` (1s), `-max-penalty` (1m) and `-jitter-ratio` (0.5, 0 to 100);
- `config.gossamer.dev/opaque-ports`: ports and ranges not to route (`3306,8000-8100`).

Durations are Gateway API durations (`10s`, `500ms`, `1m30s`); `0s` means "no timeout".

How a route's annotations combine with its Service's (`overlay`), as Linkerd documents: if a
route carries any retry annotation, its retry settings replace all of the Service's; the same
holds separately for timeouts. A group that is absent is None here, which is how "not set"
differs from "set to nothing" (`timeout.gossamer.dev/request: 0s` on a route switches off the
Service's request timeout for that route).

Anything else under the `retry.`, `timeout.` and `balancer.gossamer.dev/` prefixes is refused
(a misspelt annotation would otherwise do nothing, silently), as are annotations on a kind
where they mean nothing (`retry.gossamer.dev/grpc` on an HTTPRoute). Other `gossamer.dev`
annotations belong to other parts of the mesh and are left alone.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from gossamer.core.resources.errors import FieldError, FieldPath, describe_value
from gossamer.core.resources.gateway_durations import duration_ms, duration_problem

RETRY_HTTP = "retry.gossamer.dev/http"
RETRY_GRPC = "retry.gossamer.dev/grpc"
RETRY_LIMIT = "retry.gossamer.dev/limit"
RETRY_TIMEOUT = "retry.gossamer.dev/timeout"
TIMEOUT_REQUEST = "timeout.gossamer.dev/request"
TIMEOUT_RESPONSE = "timeout.gossamer.dev/response"
FAILURE_ACCRUAL = "balancer.gossamer.dev/failure-accrual"
_ACCRUAL = "balancer.gossamer.dev/failure-accrual-consecutive-"
ACCRUAL_MAX_FAILURES = _ACCRUAL + "max-failures"
ACCRUAL_MIN_PENALTY = _ACCRUAL + "min-penalty"
ACCRUAL_MAX_PENALTY = _ACCRUAL + "max-penalty"
ACCRUAL_JITTER_RATIO = _ACCRUAL + "jitter-ratio"
OPAQUE_PORTS = "config.gossamer.dev/opaque-ports"

RETRY_KEYS = (RETRY_HTTP, RETRY_GRPC, RETRY_LIMIT, RETRY_TIMEOUT)
TIMEOUT_KEYS = (TIMEOUT_REQUEST, TIMEOUT_RESPONSE)
ACCRUAL_KEYS = (
    ACCRUAL_MAX_FAILURES,
    ACCRUAL_MIN_PENALTY,
    ACCRUAL_MAX_PENALTY,
    ACCRUAL_JITTER_RATIO,
)
# Linkerd annotations Gossamer knows of but does not implement.
_UNSUPPORTED = {
    "timeout.gossamer.dev/idle": (
        "idle timeouts are not supported; timeout.gossamer.dev/request and "
        "timeout.gossamer.dev/response are"
    ),
}
_OWNED_PREFIXES = ("retry.gossamer.dev/", "timeout.gossamer.dev/", "balancer.gossamer.dev/")

# Which annotations each kind accepts.
_ALLOWED = {
    "Service": frozenset(
        (*RETRY_KEYS, *TIMEOUT_KEYS, FAILURE_ACCRUAL, *ACCRUAL_KEYS, OPAQUE_PORTS)
    ),
    "HTTPRoute": frozenset((RETRY_HTTP, RETRY_LIMIT, RETRY_TIMEOUT, *TIMEOUT_KEYS)),
    "GRPCRoute": frozenset((RETRY_GRPC, RETRY_LIMIT, RETRY_TIMEOUT, *TIMEOUT_KEYS)),
}

DEFAULT_RETRY_LIMIT = 1
MAX_RETRY_LIMIT = 100
MAX_ACCRUAL_FAILURES = 10_000

# gRPC status codes by the names the annotation uses (OK is never a failure to retry).
GRPC_CODES = {
    "cancelled": 1,
    "unknown": 2,
    "invalid-argument": 3,
    "deadline-exceeded": 4,
    "not-found": 5,
    "already-exists": 6,
    "permission-denied": 7,
    "resource-exhausted": 8,
    "failed-precondition": 9,
    "aborted": 10,
    "out-of-range": 11,
    "unimplemented": 12,
    "internal": 13,
    "unavailable": 14,
    "data-loss": 15,
    "unauthenticated": 16,
}

_STATUS_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_STATUS = re.compile(r"^([0-9]{3})$")
_STATUS_RANGE = re.compile(r"^([0-9]{3})-([0-9]{3})$")
_PORT_RANGE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_INTEGER = re.compile(r"^[0-9]+$")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class StatusRange:
    """HTTP statuses from `start` to `end`, inclusive."""

    start: int
    end: int

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and self.start <= status <= self.end


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    http_statuses: tuple[StatusRange, ...] = ()
    grpc_codes: tuple[int, ...] = ()
    limit: int = DEFAULT_RETRY_LIMIT
    timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Each None when not set; 0 when set to "no timeout"."""

    request_ms: int | None = None
    response_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FailureAccrual:
    """Consecutive-failures accrual: after `max_failures` failures in a row an endpoint is
    left out for a penalty growing from `min_penalty_ms` to `max_penalty_ms`, jittered."""

    max_failures: int = 7
    min_penalty_ms: int = 1_000
    max_penalty_ms: int = 60_000
    jitter_ratio: float = 0.5


@dataclass(frozen=True, slots=True)
class TrafficAnnotations:
    """What an object's annotations configure; a None group is not configured at all."""

    retry: RetryPolicy | None = None
    timeouts: Timeouts | None = None
    failure_accrual: FailureAccrual | None = None
    opaque_ports: tuple[tuple[int, int], ...] = ()

    def is_opaque(self, port: int) -> bool:
        return any(start <= port <= end for start, end in self.opaque_ports)

    def overlay(self, route: TrafficAnnotations) -> TrafficAnnotations:
        """These (a Service's) settings as a route carrying `route` sees them: the route's
        retry group and timeout group each replace the Service's when present."""
        return TrafficAnnotations(
            retry=route.retry if route.retry is not None else self.retry,
            timeouts=route.timeouts if route.timeouts is not None else self.timeouts,
            failure_accrual=self.failure_accrual,
            opaque_ports=self.opaque_ports,
        )


NO_ANNOTATIONS = TrafficAnnotations()


# -- value parsers (ValueError carries the problem, without the annotation's name) --------


def _items(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise ValueError("must be a comma-separated list without empty entries")
    return items


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping and adjacent ranges joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _status(text: str) -> int:
    status = int(text)
    if not 100 <= status <= 599:
        raise ValueError(f"{text} is not an HTTP status (100 to 599)")
    return status


def parse_http_statuses(text: str) -> tuple[StatusRange, ...]:
    """`5xx,429` -> (429-429, 500-599): the statuses to retry, as sorted disjoint ranges."""
    ranges: list[tuple[int, int]] = []
    for item in _items(text):
        if item == "gateway-error":
            ranges.append((502, 504))
        elif found := _STATUS_CLASS.match(item):
            hundred = int(found.group(1)) * 100
            ranges.append((hundred, hundred + 99))
        elif found := _STATUS.match(item):
            status = _status(found.group(1))
            ranges.append((status, status))
        elif found := _STATUS_RANGE.match(item):
            start, end = _status(found.group(1)), _status(found.group(2))
            if start > end:
                raise ValueError(f"range {item} is empty (its start is above its end)")
            ranges.append((start, end))
        else:
            raise ValueError(
                f"{item!r} is not a status: use 5xx, gateway-error, a status (504) or a "
                "range (500-504)"
            )
    return tuple(StatusRange(start, end) for start, end in merge_ranges(ranges))


def parse_grpc_codes(text: str) -> tuple[int, ...]:
    """`unavailable,internal` -> (13, 14): the gRPC status codes to retry, sorted."""
    codes = set()
    for item in _items(text):
        code = GRPC_CODES.get(item)
        if code is None:
            close = difflib.get_close_matches(item, list(GRPC_CODES), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise ValueError(
                f"{item!r} is not a gRPC status name{hint}; known: {', '.join(GRPC_CODES)}"
            )
        codes.add(code)
    return tuple(sorted(codes))


def parse_port_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """`3306,8000-8100` -> ((3306, 3306), (8000, 8100)), sorted and joined."""
    ranges = []
    for item in _items(text):
        found = _PORT_RANGE.match(item)
        if found is None:
            raise ValueError(f"{item!r} is not a port (8080) or a port range (8000-8100)")
        start = int(found.group(1))
        end = int(found.group(2) or start)
        if not (1 <= start <= 65535 and 1 <= end <= 65535):
            raise ValueError(f"{item} is not a port from 1 to 65535")
        if start > end:
            raise ValueError(f"range {item} is empty (its start is above its end)")
        ranges.append((start, end))
    return tuple(merge_ranges(ranges))


def _integer(text: str, low: int, high: int) -> int:
    if not _INTEGER.match(text) or not low <= int(text) <= high:
        raise ValueError(f"must be an integer from {low} to {high}")
    return int(text)


def _duration(text: str) -> int:
    problem = duration_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return duration_ms(text)


def _ratio(text: str) -> float:
    if not _DECIMAL.match(text) or float(text) > 100:
        raise ValueError("must be a number from 0 to 100 (as 0.5)")
    return float(text)


# -- whole annotation sets ---------------------------------------------------------------


class _Reader:
    """Reads annotations by key; a bad value becomes a FieldError at that annotation."""

    def __init__(self, annotations: Mapping[str, str], path: FieldPath) -> None:
        self.annotations = annotations
        self.path = path

    def has_any(self, keys: Iterable[str]) -> bool:
        return any(key in self.annotations for key in keys)

    def get(self, key: str, parse: Callable[[str], T]) -> T | None:
        text = self.annotations.get(key)
        if text is None:
            return None
        try:
            return parse(text.strip())
        except ValueError as error:
            raise FieldError((*self.path, key), f"{error} (got {describe_value(text)})") from None


def _check_keys(annotations: Mapping[str, str], kind: str, path: FieldPath) -> None:
    allowed = _ALLOWED[kind]
    for key in annotations:
        owned = key.startswith(_OWNED_PREFIXES) or key == OPAQUE_PORTS
        if not owned or key in allowed:
            continue
        if key in _ALLOWED["Service"]:
            where = [name for name, keys in _ALLOWED.items() if key in keys]
            problem = f"not valid on kind {kind} (valid on: {', '.join(where)})"
        elif key in _UNSUPPORTED:
            problem = _UNSUPPORTED[key]
        else:
            problem = _unknown(key, allowed)
        raise FieldError((*path, key), problem)


def _unknown(key: str, allowed: frozenset[str]) -> str:
    """An unknown key under one of our prefixes: the likely intended one, and the known ones
    under that prefix."""
    prefix, _, name = key.partition("/")
    siblings = sorted(k for k in allowed if k.startswith(prefix + "/"))
    close = difflib.get_close_matches(name, [k.partition("/")[2] for k in siblings], n=1)
    hint = f' (did you mean "{prefix}/{close[0]}"?)' if close else ""
    return f"unknown annotation{hint}; known here: {', '.join(siblings or sorted(allowed))}"


def parse_traffic_annotations(
    annotations: Mapping[str, str],
    kind: str,
    path: FieldPath = ("metadata", "annotations"),
) -> TrafficAnnotations:
    """The traffic settings of a Service, HTTPRoute or GRPCRoute (`kind`); raises a
    FieldError at `path` + the annotation's key when one is wrong."""
    _check_keys(annotations, kind, path)
    reader = _Reader(annotations, path)
    return TrafficAnnotations(
        retry=_retry(reader),
        timeouts=_timeouts(reader),
        failure_accrual=_failure_accrual(reader),
        opaque_ports=reader.get(OPAQUE_PORTS, parse_port_ranges) or (),
    )


def _retry(reader: _Reader) -> RetryPolicy | None:
    if not reader.has_any(RETRY_KEYS):
        return None
    limit = reader.get(RETRY_LIMIT, lambda text: _integer(text, 0, MAX_RETRY_LIMIT))
    return RetryPolicy(
        http_statuses=reader.get(RETRY_HTTP, parse_http_statuses) or (),
        grpc_codes=reader.get(RETRY_GRPC, parse_grpc_codes) or (),
        limit=DEFAULT_RETRY_LIMIT if limit is None else limit,
        timeout_ms=reader.get(RETRY_TIMEOUT, _duration) or None,
    )


def _timeouts(reader: _Reader) -> Timeouts | None:
    if not reader.has_any(TIMEOUT_KEYS):
        return None
    return Timeouts(
        request_ms=reader.get(TIMEOUT_REQUEST, _duration),
        response_ms=reader.get(TIMEOUT_RESPONSE, _duration),
    )


def _failure_accrual(reader: _Reader) -> FailureAccrual | None:
    mode = reader.get(FAILURE_ACCRUAL, _accrual_mode)
    if mode is None:
        for key in ACCRUAL_KEYS:
            if key in reader.annotations:
                raise FieldError(
                    (*reader.path, key),
                    f'has no effect without {FAILURE_ACCRUAL}: "consecutive"',
                )
        return None
    defaults = FailureAccrual()
    accrual = FailureAccrual(
        max_failures=_or(
            reader.get(ACCRUAL_MAX_FAILURES, lambda t: _integer(t, 1, MAX_ACCRUAL_FAILURES)),
            defaults.max_failures,
        ),
        min_penalty_ms=_or(reader.get(ACCRUAL_MIN_PENALTY, _duration), defaults.min_penalty_ms),
        max_penalty_ms=_or(reader.get(ACCRUAL_MAX_PENALTY, _duration), defaults.max_penalty_ms),
        jitter_ratio=_or(reader.get(ACCRUAL_JITTER_RATIO, _ratio), defaults.jitter_ratio),
    )
    if accrual.max_penalty_ms == 0:
        raise FieldError((*reader.path, ACCRUAL_MAX_PENALTY), "must be longer than 0s")
    if accrual.min_penalty_ms > accrual.max_penalty_ms:
        # Blame the one the user wrote (the other is a default), the minimum if both.
        key = (
            ACCRUAL_MIN_PENALTY
            if ACCRUAL_MIN_PENALTY in reader.annotations
            else ACCRUAL_MAX_PENALTY
        )
        raise FieldError(
            (*reader.path, key),
            f"the minimum penalty ({accrual.min_penalty_ms}ms) must not exceed the maximum "
            f"penalty ({accrual.max_penalty_ms}ms)",
        )
    return accrual


def _accrual_mode(text: str) -> str:
    if text != "consecutive":
        raise ValueError('must be "consecutive" (the only failure accrual Gossamer implements)')
    return text


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


# -- hooks for the kinds' validation -----------------------------------------------------


def check_service_annotations(annotations: Mapping[str, str], path: FieldPath) -> None:
    parse_traffic_annotations(annotations, "Service", path)


def check_http_route_annotations(annotations: Mapping[str, str], path: FieldPath) -> None:
    parse_traffic_annotations(annotations, "HTTPRoute", path)


def check_grpc_route_annotations(annotations: Mapping[str, str], path: FieldPath) -> None:
    parse_traffic_annotations(annotations, "GRPCRoute", path)
