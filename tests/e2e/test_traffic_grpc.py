"""gRPC traffic management end to end, in namespaces, with the real destination and policy
services: retries on gRPC status codes, request and per-try timeouts, and a GRPCRoute that
sends one method to another Service. The peers are grpcio on both ends (apps/grpc_app.py);
the client's proxy detects HTTP/2 prior knowledge and routes each call as a stream.

Each test talks to a Service of its own over the same three replicas, so every test starts
with a fresh balancer (the client's proxy keeps latency estimates per Service backend, and
one test's slow answers would otherwise steer the next test's picks)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gossamer.core.resources import Resource
from gossamer.local.netns import sandbox
from gossamer.local.pod import PYTHON, Pod, PodProcess
from tests.e2e.netns_mesh import (
    MeshStore,
    SandboxCluster,
    ServicePort,
    counter_sum,
    grpc_route,
    pod_resource,
    service_resource,
    wait,
)

APPS = Path(__file__).parent / "apps"
VIPS = {
    "echo": "10.78.0.40",
    "echo-v1": "10.78.0.41",
    "echo-v2": "10.78.0.42",
    "echo-retry": "10.78.0.43",
    "echo-deadline": "10.78.0.44",
    "echo-per-try": "10.78.0.45",
}
PORT = 9090
REPLICAS = 3

pytestmark = pytest.mark.netns


def service(
    name: str, selector: dict[str, str], annotations: dict[str, str] | None = None
) -> Resource:
    return service_resource(
        name, VIPS[name], selector, [ServicePort(PORT, PORT, "grpc")], annotations
    )


def echo_service(name: str, annotations: dict[str, str] | None = None) -> Resource:
    """A Service over all three replicas."""
    return service(name, {"app": "echo"}, annotations)


@dataclass
class Cluster(SandboxCluster):
    echoes: list[Pod]
    apps: dict[int, tuple[PodProcess, tuple[str, ...]]] = field(default_factory=dict)

    def app(self, index: int, *options: str) -> None:
        """Runs echo-INDEX's gRPC server with the given grpc_app options (restarting it
        only when they change, or it has died)."""
        running = self.apps.get(index)
        if running is not None:
            if running[1] == options and running[0].poll() is None:
                return
            running[0].terminate()
        pod = self.echoes[index]
        process = pod.spawn(
            [PYTHON, str(APPS / "grpc_app.py"), "server", str(PORT), f"--name=echo-{index}",
             *options],
            name="app",
        )  # fmt: skip
        pod.wait_for_port(PORT, timeout=20, process=process)
        self.apps[index] = (process, options)

    def load(self, service: str, count: int, *options: str) -> dict[str, Any]:
        out = self.client.exec(
            [PYTHON, str(APPS / "grpc_app.py"), "load", VIPS[service], str(PORT), str(count),
             "--max-s=60", *options],
            timeout=90,
        ).stdout  # fmt: skip
        return json.loads(out)


def calls(result: dict[str, Any]) -> int:
    return sum(result["codes"].values())


def success(result: dict[str, Any]) -> float:
    total = calls(result)
    return result["codes"].get("OK", 0) / total if total else 0.0


def retried(metrics: str) -> float:
    """Retries the client's proxy made (outbound_http_route_retry_total, result=retried)."""
    return counter_sum(metrics, "outbound_http_route_retry_total", 'result="retried"')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("traffic-grpc")
    with sandbox(prefix="trgr") as node:
        control, client = node.add_pod("control"), node.add_pod("client")
        echoes = [node.add_pod(f"echo{i}") for i in range(REPLICAS)]
        cluster = Cluster(node, MeshStore(base / "store.db"), control, client, echoes)
        try:
            cluster.apply(
                echo_service("echo"),
                service("echo-v1", {"version": "v1"}),
                service("echo-v2", {"version": "v2"}),
                *(
                    pod_resource(
                        f"echo-{i}",
                        str(pod.ip),
                        {"app": "echo", "version": "v2" if i == 2 else "v1"},
                        "echo",
                    )
                    for i, pod in enumerate(echoes)
                ),
            )
            cluster.start_mesh(echoes, cluster.app)
            yield cluster
        finally:
            for pod in node.pods.values():
                pod.stop_processes()


@pytest.fixture
def fresh(cluster: Cluster) -> Iterator[Cluster]:
    """Every test starts from healthy apps and no routes."""
    for i in range(REPLICAS):
        cluster.app(i)
    cluster.apply(delete=("GRPCRoute", "by-method"))
    yield cluster


def test_retries_on_unavailable_hide_a_replica_failing_half_its_calls(fresh: Cluster) -> None:
    fresh.app(0, "--fail-every=2")
    fresh.apply(echo_service("echo-retry"))
    time.sleep(1.0)
    without = fresh.load("echo-retry", 600)
    assert calls(without) == 600, without
    assert success(without) < 0.995, without
    assert set(without["codes"]) == {"OK", "UNAVAILABLE"}, without
    before = retried(fresh.client_metrics())
    fresh.apply(
        echo_service(
            "echo-retry",
            {"retry.gossamer.dev/grpc": "unavailable", "retry.gossamer.dev/limit": "3"},
        )
    )
    time.sleep(1.0)
    with_retries = fresh.load("echo-retry", 600)
    assert calls(with_retries) == 600, with_retries
    assert success(with_retries) >= 0.995, with_retries
    # The failing replica was still tried: the retries are what hid its failures.
    assert retried(fresh.client_metrics()) - before >= 10, with_retries


def test_request_timeout_ends_a_slow_call_with_deadline_exceeded_from_the_proxy(
    fresh: Cluster,
) -> None:
    for i in range(REPLICAS):
        fresh.app(i, "--delay-ms=1000")
    fresh.apply(echo_service("echo-deadline"))
    time.sleep(1.0)
    # Without a timeout the calls are slow but succeed: the 1 s answer is the apps'.
    slow = fresh.load("echo-deadline", 3, "--concurrency=3")
    assert slow["codes"] == {"OK": 3}, slow
    assert slow["latency_ms"]["max"] >= 900, slow
    fresh.apply(echo_service("echo-deadline", {"timeout.gossamer.dev/request": "100ms"}))
    time.sleep(1.0)
    # The client's own deadline (5 s) is far away: DEADLINE_EXCEEDED is the proxy's answer.
    result = fresh.load("echo-deadline", 5, "--concurrency=1", "--deadline-ms=5000")
    assert result["codes"] == {"DEADLINE_EXCEEDED": 5}, result
    assert result["latency_ms"]["max"] < 500, result
    assert sum(result["proxy_errors"].values()) == 5, result


def test_per_try_timeout_retries_a_slow_replica_elsewhere(fresh: Cluster) -> None:
    fresh.app(1, "--delay-ms=1000")
    fresh.apply(
        echo_service(
            "echo-per-try",
            {"retry.gossamer.dev/timeout": "100ms", "retry.gossamer.dev/limit": "2"},
        )
    )
    time.sleep(1.0)
    before = retried(fresh.client_metrics())
    # Six calls at once on a fresh balancer: the first ones spread over all three replicas.
    result = fresh.load("echo-per-try", 300, "--concurrency=6")
    assert result["codes"] == {"OK": 300}, result
    assert set(result["by"]) == {"echo-0", "echo-2"}, result
    # A call took at most one timed-out try (100 ms) and a fast one.
    assert result["latency_ms"]["max"] < 600, result
    # The slow replica was tried and given up on: the per-try timeout did the work.
    assert retried(fresh.client_metrics()) - before >= 1, result
    # Its timed-out tries count for their 100 ms in its latency estimate: one call at a
    # time, the balancer no longer sends first tries there (most calls are fast).
    result = fresh.load("echo-per-try", 100, "--concurrency=1")
    assert result["codes"] == {"OK": 100}, result
    assert result["latency_ms"]["p50"] < 50, result


def test_grpc_route_sends_one_method_to_another_service(fresh: Cluster) -> None:
    fresh.apply(
        grpc_route(
            "by-method",
            "echo",
            PORT,
            [
                {
                    "matches": [{"method": {"service": "test.Echo", "method": "Ping"}}],
                    "backendRefs": [{"name": "echo-v2", "port": PORT}],
                },
                {"backendRefs": [{"name": "echo-v1", "port": PORT}]},
            ],
        )
    )
    wait(lambda: fresh.load("echo", 10, "--method=Ping")["by"] == {"echo-2": 10}, every=0.2)
    pings = fresh.load("echo", 100, "--method=Ping")
    assert pings["codes"] == {"OK": 100} and pings["by"] == {"echo-2": 100}, pings
    unary = fresh.load("echo", 100)
    assert unary["codes"] == {"OK": 100}, unary
    assert set(unary["by"]) == {"echo-0", "echo-1"}, unary
    assert 'route_name="by-method"' in fresh.client_metrics()
