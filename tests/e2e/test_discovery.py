"""Outbound discovery in namespaces: a client pod reaches a service's virtual IP, which its
proxy resolves to the pods behind it through the destination service, and keeps doing so
while the control plane is down."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gossamer.local.netns import sandbox
from gossamer.local.pod import PYTHON, Pod
from tests.e2e.netns_mesh import (
    ControlPlane,
    MeshStore,
    SandboxCluster,
    ServicePort,
    pod_resource,
    service_resource,
    start_meshed_proxy,
    wait,
)

APPS = Path(__file__).parent / "apps"
VIP = "10.78.0.10"

pytestmark = pytest.mark.netns


@dataclass
class Cluster(SandboxCluster):
    web: list[Pod]
    controllers: ControlPlane

    def curl(self, url: str) -> str:
        return self.client.exec(["curl", "-sf", "--max-time", "5", url]).stdout


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with sandbox(prefix="disc") as node:
        control, client = node.add_pod("control"), node.add_pod("client")
        web = [node.add_pod("web0"), node.add_pod("web1")]
        store = MeshStore(tmp_path / "store.db")
        cluster = Cluster(node, store, control, client, web, ControlPlane(control, store))
        try:
            cluster.apply(
                service_resource("web", VIP, {"app": "web"}, [ServicePort(80, 8080, "http")]),
                *(
                    pod_resource(f"web-{i}", str(pod.ip), {"app": "web"}, "web")
                    for i, pod in enumerate(web)
                ),
            )
            cluster.controllers.start("destination")
            for pod in web:
                start_meshed_proxy(pod)
                app = pod.spawn([PYTHON, str(APPS / "http_app.py"), "8080", str(pod.ip)])
                pod.wait_for_port(8080, process=app)
            start_meshed_proxy(client, cluster.controllers.proxy_env())
            yield cluster
        finally:
            for pod in (control, client, *web):
                pod.stop_processes()


def test_virtual_ip_is_resolved_and_survives_a_control_plane_outage(cluster: Cluster) -> None:
    url = f"http://{VIP}/"
    web_ips = {str(pod.ip) for pod in cluster.web}
    seen = {cluster.curl(url).rsplit(" ", 1)[-1] for _ in range(40)}
    assert seen == web_ips  # both replicas answer: requests are balanced over endpoints
    metrics = cluster.client_metrics()
    assert "destination_watches 1" in metrics
    assert "destination_connected 1" in metrics
    for ip in web_ips:
        assert f'target_addr="{ip}:8080"' in metrics

    # Control plane down: the proxy keeps routing with what it last knew.
    cluster.controllers.stop("destination")
    wait(lambda: "destination_watch_stale 1" in cluster.client_metrics(), timeout=10)
    assert {cluster.curl(url).rsplit(" ", 1)[-1] for _ in range(6)} <= web_ips

    # Back up, with web-1 gone from the store: the proxy follows without a restart.
    cluster.apply(delete=("Pod", "web-1"))
    cluster.controllers.start("destination")
    wait(lambda: "destination_watch_stale 0" in cluster.client_metrics(), timeout=20)
    only = str(cluster.web[0].ip)
    wait(lambda: {cluster.curl(url).rsplit(" ", 1)[-1] for _ in range(4)} == {only}, timeout=10)
