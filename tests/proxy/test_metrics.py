"""Metrics (pure): classification, Linkerd's latency buckets, and the exposition text."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gossamer.proxy.metrics import (
    INBOUND_PLAINTEXT,
    LATENCY_BUCKETS_MS,
    OUTBOUND_PLAINTEXT,
    LatencyHistogram,
    ProxyMetrics,
    TlsLabels,
    classify,
)

LINKERD_BUCKETS = [1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500,
                   1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000]  # fmt: skip


def samples(metrics: ProxyMetrics) -> dict[str, list[Sample]]:
    """Every sample of the rendered text, by sample name; the text must parse."""
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def only(found: list[Sample], **labels: str) -> Sample:
    matching = [s for s in found if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (labels, found)
    return matching[0]


@pytest.mark.parametrize(
    ("status", "grpc", "error", "expected"),
    [
        (200, None, None, "success"),
        (204, None, None, "success"),
        (302, None, None, "success"),
        (404, None, None, "success"),  # a client error is the server working as meant
        (499, None, None, "success"),
        (500, None, None, "failure"),
        (502, None, None, "failure"),
        (503, None, None, "failure"),
        (200, 0, None, "success"),
        (200, 14, None, "failure"),
        (200, None, "reset", "failure"),
    ],
)
def test_classification(status: int, grpc: int | None, error: str | None, expected: str) -> None:
    assert classify(status, grpc, error) == expected


def test_bucket_boundaries_are_linkerds() -> None:
    assert list(LATENCY_BUCKETS_MS) == LINKERD_BUCKETS


@pytest.mark.parametrize(
    ("value_ms", "first_le"),
    [
        (0.0, "1"),
        (0.5, "1"),
        (1.0, "1"),  # le is inclusive
        (1.0001, "2"),
        (5.0, "5"),
        (5.5, "10"),
        (999.9, "1000"),
        (1000.0, "1000"),
        (50000.0, "50000"),
        (50000.1, "+Inf"),
    ],
)
def test_observation_lands_in_the_inclusive_bucket(value_ms: float, first_le: str) -> None:
    hist = LatencyHistogram()
    hist.observe_ms(value_ms)
    cumulative = hist.cumulative()
    bounds = [le for le, _ in cumulative]
    assert bounds == [str(b) for b in LINKERD_BUCKETS] + ["+Inf"]
    first = next(le for le, count in cumulative if count == 1)
    assert first == first_le
    # Cumulative: every bucket from the first one up holds the observation.
    index = bounds.index(first_le)
    assert all(count == 0 for _, count in cumulative[:index])
    assert all(count == 1 for _, count in cumulative[index:])
    assert hist.count == 1
    assert hist.sum_ms == value_ms


def test_http_rendering_has_linkerds_names_and_labels() -> None:
    metrics = ProxyMetrics()
    stats = metrics.http("outbound", "web.ns.svc:80", ("10.0.0.7", 8080), OUTBOUND_PLAINTEXT)
    stats.requests += 3
    stats.response(200, 0.0015)
    stats.response(200, 0.0045)
    stats.response(503, 0.2)
    assert metrics.http("outbound", "web.ns.svc:80", ("10.0.0.7", 8080), OUTBOUND_PLAINTEXT) is (
        stats
    )

    found = samples(metrics)
    base = {
        "direction": "outbound",
        "authority": "web.ns.svc:80",
        "target_addr": "10.0.0.7:8080",
        "target_ip": "10.0.0.7",
        "target_port": "8080",
        "tls": "no_identity",
        "no_tls_reason": "not_provided_by_service_discovery",
    }
    request = only(found["request_total"], **base)
    assert request.value == 3
    assert request.labels == base

    ok = only(found["response_total"], status_code="200")
    assert ok.value == 2
    assert ok.labels == {**base, "status_code": "200", "classification": "success"}
    failed = only(found["response_total"], status_code="503")
    assert failed.value == 1
    assert failed.labels["classification"] == "failure"

    buckets = {s.labels["le"]: s.value for s in found["response_latency_ms_bucket"]
               if s.labels["status_code"] == "200"}  # fmt: skip
    assert buckets["1"] == 0
    assert buckets["2"] == 1  # 1.5 ms
    assert buckets["4"] == 1
    assert buckets["5"] == 2  # 4.5 ms
    assert buckets["+Inf"] == 2
    assert only(found["response_latency_ms_count"], status_code="200").value == 2
    assert only(found["response_latency_ms_sum"], status_code="200").value == pytest.approx(6.0)
    slow = {s.labels["le"]: s.value for s in found["response_latency_ms_bucket"]
            if s.labels["status_code"] == "503"}  # fmt: skip
    assert slow["100"] == 0
    assert slow["200"] == 1
    assert only(found["response_latency_ms_bucket"], status_code="503", le="200").labels == {
        **base,
        "status_code": "503",
        "le": "200",
    }


def test_types_in_exposition_text() -> None:
    metrics = ProxyMetrics()
    metrics.http("inbound", "a", ("127.0.0.1", 80), INBOUND_PLAINTEXT).response(200, 0.001)
    metrics.tcp("inbound", "src", ("127.0.0.1", 80), INBOUND_PLAINTEXT).on_open()
    text = metrics.render().decode()
    for line in (
        "# TYPE request_total counter",
        "# TYPE response_total counter",
        "# TYPE response_latency_ms histogram",
        "# TYPE tcp_open_total counter",
        "# TYPE tcp_close_total counter",
        "# TYPE tcp_open_connections gauge",
        "# TYPE tcp_read_bytes_total counter",
        "# TYPE tcp_write_bytes_total counter",
        "# TYPE process_start_time_seconds gauge",
    ):
        assert line in text


def test_grpc_status_and_error_labels() -> None:
    metrics = ProxyMetrics()
    stats = metrics.http("inbound", "a", ("127.0.0.1", 80), INBOUND_PLAINTEXT)
    stats.response(200, 0.001, grpc_status=14)
    stats.response(502, 0.001, error="connect refused")
    found = samples(metrics)["response_total"]
    grpc = only(found, grpc_status="14")
    assert grpc.labels["classification"] == "failure"
    err = only(found, error="connect refused")
    assert err.labels["status_code"] == "502"
    assert err.labels["classification"] == "failure"


def test_tcp_rendering() -> None:
    metrics = ProxyMetrics()
    tls = TlsLabels(tls="true", no_tls_reason=None, client_id="a.ns.sa", server_id="b.ns.sa")
    src = metrics.tcp("inbound", "src", ("127.0.0.1", 5432), tls)
    src.on_open()
    src.on_open()
    src.read_bytes += 100
    src.write_bytes += 7
    src.on_close()
    src.on_close("ECONNRESET")

    found = samples(metrics)
    base = {
        "direction": "inbound",
        "peer": "src",
        "target_addr": "127.0.0.1:5432",
        "target_ip": "127.0.0.1",
        "target_port": "5432",
        "tls": "true",
        "client_id": "a.ns.sa",
        "server_id": "b.ns.sa",
    }
    assert only(found["tcp_open_total"]).labels == base
    assert only(found["tcp_open_total"]).value == 2
    assert only(found["tcp_open_connections"]).value == 0
    assert only(found["tcp_read_bytes_total"]).value == 100
    assert only(found["tcp_write_bytes_total"]).value == 7
    assert only(found["tcp_close_total"], errno="").value == 1
    assert only(found["tcp_close_total"], errno="ECONNRESET").labels == {
        **base,
        "errno": "ECONNRESET",
    }


def test_ipv6_target_labels() -> None:
    metrics = ProxyMetrics()
    metrics.tcp("outbound", "dst", ("fd00::1", 443), OUTBOUND_PLAINTEXT).on_open()
    sample = only(samples(metrics)["tcp_open_total"])
    assert sample.labels["target_addr"] == "[fd00::1]:443"
    assert sample.labels["target_ip"] == "fd00::1"


def test_label_values_are_escaped() -> None:
    metrics = ProxyMetrics()
    authority = 'evil"\\\nname'
    metrics.http("inbound", authority, ("127.0.0.1", 80), INBOUND_PLAINTEXT).requests += 1
    assert only(samples(metrics)["request_total"]).labels["authority"] == authority
