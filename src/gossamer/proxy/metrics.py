"""The proxy's metrics, with Linkerd's names, labels and latency buckets.

The hot path touches only plain integers on objects that a connection looks up once
(`ProxyMetrics.http(...)`, `ProxyMetrics.tcp(...)`), so counting a request costs a few
attribute updates.

The Prometheus text format is written here rather than by prometheus_client: its metric
objects take a lock on every increment (needless on one event loop, costly per request), and
importing it adds about 3.5 MB to a sidecar whose whole budget is a few tens of MB. The
format is small and stable (exposition format 0.0.4); tests parse our output with
prometheus_client's parser to hold us to it.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from gossamer.proxy.exposition import Collector, MetricFamily, render

# linkerd2-proxy's response_latency_ms buckets, in milliseconds.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500,
    1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000,
)  # fmt: skip

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TlsLabels:
    """How a connection was (or was not) secured, as Linkerd labels it."""

    tls: str = "no_identity"
    no_tls_reason: str | None = "no_tls_from_remote"
    client_id: str | None = None
    server_id: str | None = None

    def pairs(self) -> Labels:
        out: list[tuple[str, str]] = [("tls", self.tls)]
        if self.no_tls_reason is not None:
            out.append(("no_tls_reason", self.no_tls_reason))
        if self.client_id is not None:
            out.append(("client_id", self.client_id))
        if self.server_id is not None:
            out.append(("server_id", self.server_id))
        return tuple(out)


# Plaintext from an unmeshed client, and plaintext to a destination discovery did not mesh.
INBOUND_PLAINTEXT = TlsLabels(no_tls_reason="no_tls_from_remote")
OUTBOUND_PLAINTEXT = TlsLabels(no_tls_reason="not_provided_by_service_discovery")
LOOPBACK = TlsLabels(tls="no_identity", no_tls_reason="loopback")


def classify(status: int, grpc_status: int | None, error: str | None = None) -> str:
    """Linkerd's default response classification: 5xx, a non-zero gRPC status or an error fail."""
    if error is not None or status >= 500 or (grpc_status is not None and grpc_status != 0):
        return "failure"
    return "success"


class LatencyHistogram:
    __slots__ = ("buckets", "count", "sum_ms")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # last is +Inf
        self.count = 0
        self.sum_ms = 0.0

    def observe_ms(self, value_ms: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS_MS, value_ms)] += 1
        self.count += 1
        self.sum_ms += value_ms

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(LATENCY_BUCKETS_MS, self.buckets, strict=False):
            running += n
            out.append((_fmt_bound(bound), running))
        out.append(("+Inf", self.count))
        return out


def _fmt_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


class ResponseStats:
    __slots__ = ("count", "latency")

    def __init__(self) -> None:
        self.count = 0
        self.latency = LatencyHistogram()


class HttpStats:
    """Request and response counts for one (direction, authority, target, tls) label set."""

    __slots__ = ("_plain", "labels", "requests", "responses")

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.requests = 0
        # The common case (no gRPC status, no error) by status code alone: one lookup.
        self._plain: dict[int, ResponseStats] = {}
        # (status_code, grpc_status, classification, error) -> stats
        self.responses: dict[tuple[int, int | None, str, str | None], ResponseStats] = {}

    def response(
        self,
        status: int,
        latency_s: float,
        grpc_status: int | None = None,
        error: str | None = None,
    ) -> None:
        stats = self._plain.get(status) if grpc_status is None and error is None else None
        if stats is None:
            key = (status, grpc_status, classify(status, grpc_status, error), error)
            stats = self.responses.get(key)
            if stats is None:
                stats = self.responses[key] = ResponseStats()
            if grpc_status is None and error is None:
                self._plain[status] = stats
        stats.count += 1
        stats.latency.observe_ms(latency_s * 1000.0)


class RouteStats(HttpStats):
    """Per-route counts of logical requests (retries not counted again), and retries."""

    __slots__ = ("retries",)

    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self.retries: dict[str, int] = {}  # outcome ("retried", "budget_exhausted") -> count

    def retry(self, outcome: str) -> None:
        self.retries[outcome] = self.retries.get(outcome, 0) + 1


class TcpStats:
    """Connection and byte counts for one (direction, peer, target, tls) label set."""

    __slots__ = ("closes", "labels", "open", "opened", "read_bytes", "write_bytes")

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.opened = 0
        self.open = 0
        self.read_bytes = 0
        self.write_bytes = 0
        self.closes: dict[str, int] = {}  # errno label ("" when clean) -> count

    def on_open(self) -> None:
        self.opened += 1
        self.open += 1

    def on_close(self, errno: str = "") -> None:
        self.open -= 1
        self.closes[errno] = self.closes.get(errno, 0) + 1


def target_labels(target: tuple[str, int]) -> Labels:
    host, port = target
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (("target_addr", addr), ("target_ip", host), ("target_port", str(port)))


class ProxyMetrics:
    """All of one proxy's counters; `render()` gives the Prometheus text for `/metrics`."""

    def __init__(self) -> None:
        self._http: dict[Labels, HttpStats] = {}
        self._tcp: dict[Labels, TcpStats] = {}
        self._routes: dict[Labels, RouteStats] = {}
        self.started = time.time()
        self._collectors: list[Collector] = [_Collector(self)]

    def http(
        self, direction: str, authority: str, target: tuple[str, int], tls: TlsLabels
    ) -> HttpStats:
        labels = (
            ("direction", direction),
            ("authority", authority),
            *target_labels(target),
            *tls.pairs(),
        )
        stats = self._http.get(labels)
        if stats is None:
            stats = self._http[labels] = HttpStats(labels)
        return stats

    def tcp(self, direction: str, peer: str, target: tuple[str, int], tls: TlsLabels) -> TcpStats:
        labels = (("direction", direction), ("peer", peer), *target_labels(target), *tls.pairs())
        stats = self._tcp.get(labels)
        if stats is None:
            stats = self._tcp[labels] = TcpStats(labels)
        return stats

    def register(self, collector: Collector) -> None:
        """Adds another collector (identity, discovery, ...) to this proxy's `/metrics`."""
        self._collectors.append(collector)

    def render(self) -> bytes:
        return render(self._collectors)

    def route(
        self,
        parent: tuple[str, str, int],
        route_name: str,
        route_kind: str,
    ) -> RouteStats:
        """Stats of one outbound route of a parent service (name, namespace, port)."""
        labels = (
            ("direction", "outbound"),
            ("parent_name", parent[0]),
            ("parent_namespace", parent[1]),
            ("parent_port", str(parent[2])),
            ("route_name", route_name),
            ("route_kind", route_kind),
        )
        stats = self._routes.get(labels)
        if stats is None:
            stats = self._routes[labels] = RouteStats(labels)
        return stats

    def route_stats(self) -> Iterator[RouteStats]:
        return iter(list(self._routes.values()))

    def http_stats(self) -> Iterator[HttpStats]:
        return iter(list(self._http.values()))

    def tcp_stats(self) -> Iterator[TcpStats]:
        return iter(list(self._tcp.values()))


class _Collector:
    def __init__(self, metrics: ProxyMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[MetricFamily]:
        m = self._metrics
        process_start = MetricFamily(
            "process_start_time_seconds", "Time that the process started, in seconds", "gauge"
        )
        process_start.add("process_start_time_seconds", (), m.started)
        yield process_start

        yield from _http_families("", m.http_stats())
        yield from _http_families("outbound_http_route_", m.route_stats())
        retries = MetricFamily(
            "outbound_http_route_retry_total",
            "Retries of requests on a route, by outcome",
            "counter",
        )
        for route in m.route_stats():
            for outcome, count in list(route.retries.items()):
                retries.add(
                    "outbound_http_route_retry_total", (*route.labels, ("result", outcome)), count
                )
        yield retries

        opened = MetricFamily("tcp_open_total", "Total count of opened connections", "counter")
        closed = MetricFamily("tcp_close_total", "Total count of closed connections", "counter")
        open_now = MetricFamily(
            "tcp_open_connections", "Number of currently-open connections", "gauge"
        )
        read = MetricFamily(
            "tcp_read_bytes_total", "Total count of bytes read from peers", "counter"
        )
        written = MetricFamily(
            "tcp_write_bytes_total", "Total count of bytes written to peers", "counter"
        )
        for tstats in m.tcp_stats():
            base = tstats.labels
            opened.add("tcp_open_total", base, tstats.opened)
            open_now.add("tcp_open_connections", base, tstats.open)
            read.add("tcp_read_bytes_total", base, tstats.read_bytes)
            written.add("tcp_write_bytes_total", base, tstats.write_bytes)
            for errno, count in list(tstats.closes.items()):
                closed.add("tcp_close_total", (*base, ("errno", errno)), count)
        yield from (opened, closed, open_now, read, written)


def _http_families(prefix: str, all_stats: Iterator[HttpStats]) -> Iterator[MetricFamily]:
    """request_total, response_total and response_latency_ms for a set of HttpStats."""
    request, response, latency_name = (
        f"{prefix}request_total", f"{prefix}response_total", f"{prefix}response_latency_ms"
    )  # fmt: skip
    requests = MetricFamily(request, "Total count of HTTP requests.", "counter")
    responses = MetricFamily(response, "Total count of HTTP responses.", "counter")
    latency = MetricFamily(
        latency_name,
        "Elapsed times between a request's headers being received and its response "
        "stream completing",
        "histogram",
    )
    for stats in all_stats:
        base = stats.labels
        requests.add(request, base, stats.requests)
        for key, rstats in list(stats.responses.items()):
            status, grpc_status, classification, error = key
            labels = (*base, ("status_code", str(status)), ("classification", classification))
            if grpc_status is not None:
                labels = (*labels, ("grpc_status", str(grpc_status)))
            if error is not None:
                labels = (*labels, ("error", error))
            responses.add(response, labels, rstats.count)
            hist = (*base, ("status_code", str(status)))
            for bound, count in rstats.latency.cumulative():
                latency.add(f"{latency_name}_bucket", (*hist, ("le", bound)), count)
            latency.add(f"{latency_name}_count", hist, rstats.latency.count)
            latency.add(f"{latency_name}_sum", hist, rstats.latency.sum_ms)
    yield requests
    yield responses
    yield latency
