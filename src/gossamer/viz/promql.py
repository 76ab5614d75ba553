"""PromQL for the golden metrics, built as strings from small values. Pure: no I/O.

The queries are Linkerd's (its Grafana dashboards and `viz stat`) over the proxy's metrics:

- success: `response_total` rates grouped by `classification` as well as the row's labels,
  so one query yields both the successes and the total (a row whose responses all failed
  still gets a 0% instead of vanishing from a division).
- RPS: `request_total` rates.
- latency: `histogram_quantile` over `response_latency_ms_bucket` rates by `le`.
- TCP_CONN: the `tcp_open_connections` gauge (inbound: `peer="src"`, the clients' side;
  outbound: `peer="dst"`, connections to the destination).

Rates are `irate` over the window, as Linkerd's dashboards do: the window bounds how far
back Prometheus looks for the last two samples.

When the series carry no label naming the row (outbound traffic: the proxy labels it with
the `authority` and `target_ip` it saw, not the workload behind them), `LabelRule`s derive
one with `label_replace` before aggregating, so quantiles are still computed per row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
DEFAULT_WINDOW_S = 30.0

MATCH_OPS = ("=", "!=", "=~", "!~")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class PromQLError(ValueError):
    """A builder was given something PromQL cannot express (a bad label, op or window)."""


def quote(value: str) -> str:
    """A PromQL string literal: double quotes, with backslash, quote and newline escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _check_label(name: str) -> str:
    if _LABEL_NAME.fullmatch(name) is None:
        raise PromQLError(f"invalid label name {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher: `namespace="demo"`, `authority=~"web\\..*"`."""

    label: str
    value: str
    op: str = "="

    def __post_init__(self) -> None:
        _check_label(self.label)
        if self.op not in MATCH_OPS:
            raise PromQLError(f"invalid matcher operator {self.op!r}")

    def __str__(self) -> str:
        return f"{self.label}{self.op}{quote(self.value)}"


def selector(metric: str, matchers: Sequence[Matcher]) -> str:
    """`metric{a="b", c="d"}` (just `metric` without matchers)."""
    if not matchers:
        return metric
    return f"{metric}{{{', '.join(str(m) for m in matchers)}}}"


@dataclass(frozen=True, slots=True)
class LabelRule:
    """Set `target` to `replacement` on series whose `source` label matches `regex` (fully
    anchored, as PromQL anchors it); series that do not match keep their labels."""

    target: str
    replacement: str
    source: str
    regex: str

    def __post_init__(self) -> None:
        _check_label(self.target)
        _check_label(self.source)

    def apply(self, expr: str) -> str:
        return (
            f"label_replace({expr}, {quote(self.target)}, {quote(self.replacement)}, "
            f"{quote(self.source)}, {quote(self.regex)})"
        )


def relabel(expr: str, rules: Sequence[LabelRule]) -> str:
    """`expr` wrapped in one `label_replace` per rule, the first rule innermost."""
    for rule in rules:
        expr = rule.apply(expr)
    return expr


def range_duration(seconds: float) -> str:
    """A PromQL range duration: whole seconds as `30s`, anything finer in `ms`."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise PromQLError(f"a window must be a positive duration (got {seconds:g}s)")
    millis = round(seconds * 1000)
    if millis < 1:
        raise PromQLError(f"a window must be at least 1ms (got {seconds:g}s)")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _by(labels: Sequence[str]) -> str:
    return ", ".join(_check_label(label) for label in labels)


def sum_by(labels: Sequence[str], expr: str) -> str:
    return f"sum by ({_by(labels)}) ({expr})"


def irate(metric: str, matchers: Sequence[Matcher], window: str) -> str:
    return f"irate({selector(metric, matchers)}[{window}])"


@dataclass(frozen=True, slots=True)
class StatScope:
    """Which series a stat reads and which labels name its rows.

    `matchers` select the series (direction included); `group_by` are the labels that name a
    row (`namespace, deployment`); `http_rules`/`tcp_rules` derive those labels first when the
    series do not carry them.
    """

    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    tcp_peer: str
    window_s: float = DEFAULT_WINDOW_S
    http_rules: tuple[LabelRule, ...] = ()
    tcp_rules: tuple[LabelRule, ...] = ()

    @property
    def window(self) -> str:
        return range_duration(self.window_s)


@dataclass(frozen=True, slots=True)
class StatQueries:
    """The instant queries of one stat: each result vector is keyed by `group_by` labels."""

    responses: str  # also grouped by classification
    requests: str
    latency: tuple[tuple[float, str], ...]  # (quantile, query)
    tcp_connections: str


def _rate_by(scope: StatScope, metric: str, extra: Sequence[str] = ()) -> str:
    rate = relabel(irate(metric, scope.matchers, scope.window), scope.http_rules)
    return sum_by((*scope.group_by, *extra), rate)


def latency_query(scope: StatScope, quantile: float) -> str:
    if not 0 <= quantile <= 1:
        raise PromQLError(f"a quantile is between 0 and 1 (got {quantile:g})")
    # le first, as Linkerd writes it; the order of `by` labels does not change the result.
    rate = relabel(
        irate("response_latency_ms_bucket", scope.matchers, scope.window), scope.http_rules
    )
    buckets = sum_by(("le", *scope.group_by), rate)
    return f"histogram_quantile({quantile:g}, {buckets})"


def stat_queries(scope: StatScope) -> StatQueries:
    tcp_selector = selector(
        "tcp_open_connections",
        (*scope.matchers, Matcher("peer", scope.tcp_peer)),
    )
    return StatQueries(
        responses=_rate_by(scope, "response_total", ("classification",)),
        requests=_rate_by(scope, "request_total"),
        latency=tuple((q, latency_query(scope, q)) for q in QUANTILES),
        tcp_connections=sum_by(scope.group_by, relabel(tcp_selector, scope.tcp_rules)),
    )
