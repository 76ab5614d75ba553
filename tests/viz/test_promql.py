"""The PromQL builders, as exact strings: no Prometheus needed."""

from __future__ import annotations

import pytest

from gossamer.viz.promql import (
    LabelRule,
    Matcher,
    PromQLError,
    StatScope,
    latency_query,
    quote,
    range_duration,
    relabel,
    selector,
    stat_queries,
)

INBOUND = StatScope(
    matchers=(Matcher("direction", "inbound"), Matcher("namespace", "demo")),
    group_by=("namespace", "deployment"),
    tcp_peer="src",
)


def test_inbound_queries_are_linkerds() -> None:
    queries = stat_queries(INBOUND)
    assert queries.responses == (
        "sum by (namespace, deployment, classification) "
        '(irate(response_total{direction="inbound", namespace="demo"}[30s]))'
    )
    assert queries.requests == (
        "sum by (namespace, deployment) "
        '(irate(request_total{direction="inbound", namespace="demo"}[30s]))'
    )
    assert queries.latency == (
        (
            0.5,
            "histogram_quantile(0.5, sum by (le, namespace, deployment) "
            '(irate(response_latency_ms_bucket{direction="inbound", namespace="demo"}[30s])))',
        ),
        (
            0.95,
            "histogram_quantile(0.95, sum by (le, namespace, deployment) "
            '(irate(response_latency_ms_bucket{direction="inbound", namespace="demo"}[30s])))',
        ),
        (
            0.99,
            "histogram_quantile(0.99, sum by (le, namespace, deployment) "
            '(irate(response_latency_ms_bucket{direction="inbound", namespace="demo"}[30s])))',
        ),
    )
    assert queries.tcp_connections == (
        "sum by (namespace, deployment) "
        '(tcp_open_connections{direction="inbound", namespace="demo", peer="src"})'
    )


def test_outbound_queries_derive_the_row_label_before_aggregating() -> None:
    scope = StatScope(
        matchers=(Matcher("direction", "outbound"), Matcher("deployment", "vote-bot")),
        group_by=("dst_resource",),
        tcp_peer="dst",
        window_s=60,
        http_rules=(
            LabelRule("dst_resource", "demo/web", "authority", r"web\.demo(?::[0-9]+)?"),
            LabelRule("dst_resource", "demo/emoji", "authority", r"emoji\.demo"),
        ),
        tcp_rules=(LabelRule("dst_resource", "demo/web", "target_ip", r"10\.96\.0\.10"),),
    )
    queries = stat_queries(scope)
    rate = 'irate(response_total{direction="outbound", deployment="vote-bot"}[60s])'
    assert queries.responses == (
        "sum by (dst_resource, classification) (label_replace(label_replace("
        + rate
        + r', "dst_resource", "demo/web", "authority", "web\\.demo(?::[0-9]+)?"), '
        + r'"dst_resource", "demo/emoji", "authority", "emoji\\.demo"))'
    )
    assert queries.latency[2][1] == (
        "histogram_quantile(0.99, sum by (le, dst_resource) (label_replace(label_replace("
        'irate(response_latency_ms_bucket{direction="outbound", deployment="vote-bot"}[60s])'
        r', "dst_resource", "demo/web", "authority", "web\\.demo(?::[0-9]+)?"), '
        r'"dst_resource", "demo/emoji", "authority", "emoji\\.demo")))'
    )
    assert queries.tcp_connections == (
        "sum by (dst_resource) (label_replace("
        'tcp_open_connections{direction="outbound", deployment="vote-bot", peer="dst"}'
        r', "dst_resource", "demo/web", "target_ip", "10\\.96\\.0\\.10"))'
    )


def test_quoting_escapes_backslashes_quotes_and_newlines() -> None:
    assert quote('a"b\\c\nd') == r'"a\"b\\c\nd"'
    assert str(Matcher("authority", 'x"y', "=~")) == r'authority=~"x\"y"'
    assert selector("up", ()) == "up"
    assert selector("up", (Matcher("job", "a", "!="),)) == 'up{job!="a"}'


def test_relabel_without_rules_is_the_expression() -> None:
    assert relabel("up", ()) == "up"


@pytest.mark.parametrize(
    ("seconds", "text"), [(30, "30s"), (60, "60s"), (1.5, "1500ms"), (0.25, "250ms")]
)
def test_range_durations(seconds: float, text: str) -> None:
    assert range_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, -1, 0.0001, float("nan"), float("inf")])
def test_bad_windows_are_refused(seconds: float) -> None:
    with pytest.raises(PromQLError):
        range_duration(seconds)


def test_bad_labels_ops_and_quantiles_are_refused() -> None:
    with pytest.raises(PromQLError):
        Matcher("bad-label", "x")
    with pytest.raises(PromQLError):
        Matcher("job", "x", "==")
    with pytest.raises(PromQLError):
        LabelRule("dst", "x", "9source", ".*")
    with pytest.raises(PromQLError):
        latency_query(INBOUND, 1.5)
