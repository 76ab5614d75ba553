"""Traffic management end to end, in namespaces, with the real destination and policy services:
retries, latency-aware balancing, failure accrual, weighted and header-matched routes that
change without restarts, and timeouts; opaque TCP connections balanced by their load, with
refused endpoints routed around."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    http_route,
    pod_resource,
    proxy_metrics,
    service_resource,
    wait,
)

APPS = Path(__file__).parent / "apps"
VIPS = {"web": "10.78.0.30", "web-v1": "10.78.0.31", "web-v2": "10.78.0.32"}
ECHO_VIP = "10.78.0.33"
ECHO_PORT = 6379  # in the default opaque list: no detection, the server speaks first

pytestmark = pytest.mark.netns


def service(
    name: str, selector: dict[str, str], annotations: dict[str, str] | None = None
) -> Resource:
    return service_resource(
        name, VIPS[name], selector, [ServicePort(80, 8080, "http")], annotations
    )


def echo_service(annotations: dict[str, str] | None = None) -> Resource:
    """The TCP echo servers of the web pods (and, for a while, pods that are gone)."""
    return service_resource(
        "echo", ECHO_VIP, {"tcp": "echo"}, [ServicePort(ECHO_PORT, ECHO_PORT, "echo")], annotations
    )


def backend(name: str, weight: int) -> dict[str, Any]:
    return {"name": name, "port": 80, "weight": weight}


@dataclass
class Cluster(SandboxCluster):
    webs: list[Pod]
    gone: list[Pod]  # namespaces with nothing in them: their endpoints refuse connections
    apps: dict[str, PodProcess]

    def app(self, index: int, *options: str) -> None:
        """(Re)starts web-INDEX's app with the given http_app options."""
        name = f"web-{index}"
        old = self.apps.pop(name, None)
        if old is not None:
            old.terminate()
        pod = self.webs[index]
        process = pod.spawn([PYTHON, str(APPS / "http_app.py"), "8080", name, *options], name="app")
        pod.wait_for_port(8080, process=process)
        self.apps[name] = process

    def echo(self, index: int, *options: str) -> None:
        """(Re)starts web-INDEX's TCP echo server with the given tcp_echo options."""
        name = f"web-{index}"
        old = self.apps.pop(f"{name}-echo", None)
        if old is not None:
            old.terminate()
        pod = self.webs[index]
        process = pod.spawn(
            [PYTHON, str(APPS / "tcp_echo.py"), "server", str(ECHO_PORT), f"--name={name}",
             *options],
            name="echo",
        )  # fmt: skip
        pod.wait_for_port(ECHO_PORT, process=process)
        self.apps[f"{name}-echo"] = process

    def tcp_load(self, count: int, concurrency: int) -> dict[str, Any]:
        out = self.client.exec(
            [PYTHON, str(APPS / "tcp_echo.py"), "load", ECHO_VIP, str(ECHO_PORT), str(count),
             f"--concurrency={concurrency}"],
            timeout=120,
        ).stdout  # fmt: skip
        return json.loads(out)

    def load(self, count: int, *options: str, host: str = VIPS["web"]) -> dict[str, Any]:
        out = self.client.exec(
            [PYTHON, str(APPS / "load.py"), host, "80", "/", str(count), *options], timeout=120
        ).stdout
        return json.loads(out)


def success(result: dict[str, Any]) -> float:
    total = sum(result["status"].values()) + result["errors"]
    return result["status"].get("200", 0) / total if total else 0.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("traffic")
    with sandbox(prefix="traf") as node:
        control, client = node.add_pod("control"), node.add_pod("client")
        webs = [node.add_pod(f"web{i}") for i in range(3)]
        gone = [node.add_pod(f"gone{i}") for i in range(2)]
        cluster = Cluster(node, MeshStore(base / "store.db"), control, client, webs, gone, {})
        try:
            cluster.apply(
                service("web", {"app": "web"}),
                service("web-v1", {"version": "v1"}),
                service("web-v2", {"version": "v2"}),
                echo_service(),
                *(
                    pod_resource(
                        f"web-{i}",
                        str(pod.ip),
                        {"app": "web", "version": "v2" if i == 2 else "v1", "tcp": "echo"},
                        "web",
                    )
                    for i, pod in enumerate(webs)
                ),
            )
            cluster.start_mesh(webs, cluster.app)
            yield cluster
        finally:
            for pod in node.pods.values():
                pod.stop_processes()


@pytest.fixture
def fresh(cluster: Cluster) -> Iterator[Cluster]:
    """Every test starts from healthy apps, no annotations and no routes."""
    for i in range(3):
        cluster.app(i)
    cluster.apply(service("web", {"app": "web"}), delete=("HTTPRoute", "split"))
    time.sleep(0.5)
    yield cluster


def test_retries_hide_a_replica_failing_half_its_requests(fresh: Cluster) -> None:
    fresh.app(0, "--fail-every=2")
    without = fresh.load(600)
    assert success(without) < 0.995, without
    fresh.apply(
        service(
            "web",
            {"app": "web"},
            {"retry.gossamer.dev/http": "5xx", "retry.gossamer.dev/limit": "3"},
        )
    )
    time.sleep(1.0)
    with_retries = fresh.load(600)
    assert success(with_retries) >= 0.995, with_retries
    metrics = fresh.client_metrics()
    assert "outbound_http_route_retry_total{" in metrics and 'result="retried"' in metrics


def test_a_slower_replica_gets_clearly_less_than_its_share(fresh: Cluster) -> None:
    fresh.app(2, "--delay-ms=50")
    result = fresh.load(900, "--concurrency=6")
    assert success(result) == 1.0, result
    share = result["by"].get("web-2", 0) / sum(result["by"].values())
    assert share < 0.2, result  # an equal share would be a third


def test_a_replica_killed_under_load_is_routed_around(fresh: Cluster) -> None:
    fresh.apply(
        service(
            "web",
            {"app": "web"},
            {
                "retry.gossamer.dev/http": "5xx",
                "retry.gossamer.dev/limit": "3",
                "balancer.gossamer.dev/failure-accrual": "consecutive",
            },
        )
    )
    time.sleep(1.0)
    before = fresh.load(100)
    assert success(before) == 1.0

    def inbound_requests() -> float:
        return counter_sum(proxy_metrics(fresh.webs[1]), "request_total", 'direction="inbound"')

    # The app of web-1 dies; its proxy keeps answering 502 (nothing on 127.0.0.1:8080).
    fresh.apps.pop("web-1").terminate()
    tried_before = inbound_requests()
    result = fresh.load(2000, "--concurrency=4")
    assert success(result) >= 0.995, result
    assert "web-1" not in result["by"]
    # Failure accrual took it out: after the first failures, hardly any request tries it.
    tried = inbound_requests() - tried_before
    assert tried < 2000 * 0.05, tried


def test_weighted_split_header_canary_and_live_route_changes(fresh: Cluster) -> None:
    fresh.apply(
        http_route(
            "split",
            "web",
            80,
            [
                {
                    "matches": [{"headers": [{"name": "x-canary", "value": "true"}]}],
                    "backendRefs": [backend("web-v2", 1)],
                },
                {"backendRefs": [backend("web-v1", 80), backend("web-v2", 20)]},
            ],
        )
    )
    wait(lambda: fresh.load(20, "--header=x-canary:true")["by"] == {"web-2": 20}, every=0.2)
    result = fresh.load(2000, "--concurrency=4")
    assert success(result) == 1.0, result
    v2 = result["by"].get("web-2", 0) / 2000
    assert 0.15 <= v2 <= 0.25, result
    # Change the split: it applies without restarting anything.
    fresh.apply(
        http_route(
            "split", "web", 80, [{"backendRefs": [backend("web-v1", 50), backend("web-v2", 50)]}]
        )
    )

    def even() -> bool:
        share = fresh.load(400, "--concurrency=4")["by"].get("web-2", 0) / 400
        return 0.4 <= share <= 0.6

    wait(even, timeout=20, every=0.2)
    assert 'route_name="split"' in fresh.client_metrics()


def test_request_timeout_turns_a_slow_answer_into_a_fast_504(fresh: Cluster) -> None:
    for i in range(3):
        fresh.app(i, "--delay-ms=1000")
    fresh.apply(service("web", {"app": "web"}, {"timeout.gossamer.dev/request": "100ms"}))
    time.sleep(1.0)
    result = fresh.load(5, "--concurrency=1")
    assert result["status"] == {"504": 5}, result
    assert result["latency_ms"]["max"] < 400, result


# --- opaque TCP: connections balanced by load ------------------------------------------


@pytest.fixture
def tcp(cluster: Cluster) -> Iterator[Cluster]:
    """Healthy echo servers on every web pod, and the echo service without annotations."""
    for i in range(3):
        cluster.echo(i)
    cluster.apply(echo_service())
    time.sleep(0.5)
    yield cluster


def refused_connects(pod: Pod) -> int:
    """Resets the pod's kernel sent: with nothing listening, one per connection attempt."""
    lines = [line.split() for line in pod.exec(["cat", "/proc/net/snmp"]).stdout.splitlines()]
    names, values = (line for line in lines if line[0] == "Tcp:")
    return int(dict(zip(names, values, strict=True))["OutRsts"])


def test_a_replica_that_holds_its_connections_longer_gets_fewer_new_ones(tcp: Cluster) -> None:
    # Every replica accepts as fast as the others; web-2 keeps each connection 100 ms longer,
    # so it carries more open connections, and P2C weighs endpoints by them.
    tcp.echo(2, "--delay-ms=100")
    result = tcp.tcp_load(400, concurrency=6)
    assert result["errors"] == 0, result
    assert sum(result["by"].values()) == 400, result
    share = result["by"].get("web-2", 0) / 400
    assert share < 0.2, result  # round robin would give it a third


def test_refused_endpoints_are_routed_around_then_taken_out_by_failure_accrual(
    tcp: Cluster,
) -> None:
    tcp.tcp_load(100, concurrency=4)  # the live endpoints' connect latencies are known
    # Two endpoints that are gone (their namespaces refuse every connection) join the three
    # live ones, as when discovery still lists pods that have died.
    tcp.apply(
        *(
            pod_resource(f"gone-{i}", str(pod.ip), {"tcp": "echo"}, "web")
            for i, pod in enumerate(tcp.gone)
        )
    )
    try:
        # Until both have refused once, a connection refused by one may be retried on the
        # other (fresh endpoints look the least loaded): one retry only, so it can fail.
        def tried() -> bool:
            tcp.tcp_load(40, concurrency=4)
            return all(refused_connects(pod) > 0 for pod in tcp.gone)

        wait(tried, timeout=30, every=0.2)
        before = sum(refused_connects(pod) for pod in tcp.gone)
        result = tcp.tcp_load(1000, concurrency=4)
        # A refused connect is tried again on another endpoint: no client sees it.
        assert result["errors"] == 0, result
        assert set(result["by"]) == {"web-0", "web-1", "web-2"}, result
        without_accrual = sum(refused_connects(pod) for pod in tcp.gone) - before
        # P2C draws the two gone endpoints together about one time in ten.
        assert without_accrual >= 40, without_accrual

        tcp.apply(echo_service({"balancer.gossamer.dev/failure-accrual": "consecutive"}))
        time.sleep(1.0)
        # New accrual settings restart the balancer: it learns the latencies again, and the
        # gone endpoints earn their first penalties.
        tcp.tcp_load(200, concurrency=4)
        before = sum(refused_connects(pod) for pod in tcp.gone)
        result = tcp.tcp_load(1000, concurrency=4)
        assert result["errors"] == 0, result
        # Seven refusals in a row take an endpoint out; then only a probe now and then.
        with_accrual = sum(refused_connects(pod) for pod in tcp.gone) - before
        assert with_accrual <= 2 * 5, (with_accrual, without_accrual)
    finally:
        for i in range(len(tcp.gone)):
            tcp.apply(delete=("Pod", f"gone-{i}"))
