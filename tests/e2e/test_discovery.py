"""Outbound discovery in namespaces: a client pod reaches a service's virtual IP, which its
proxy resolves to the pods behind it through the destination service, and keeps doing so
while the control plane is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource
from gossamer.local.netns import Node, sandbox
from gossamer.local.pod import PYTHON, Pod, PodProcess

APPS = Path(__file__).parent / "apps"
VIP = "10.78.0.10"
DESTINATION_PORT = 8086

pytestmark = pytest.mark.netns


def _service() -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "clusterIP": VIP,
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        }
    )


def _pod(name: str, ip: str) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": "web"}},
            "spec": {
                "serviceAccountName": "web",
                "containers": [{"name": "app", "command": ["x"]}],
            },
            "status": {"phase": "Running", "podIP": ip, "proxy": {"ready": True}},
        }
    )


def _write(store_path: Path, *resources: Resource, delete: tuple[str, str] | None = None) -> None:
    async def run() -> None:
        store = SQLiteStore(store_path)
        try:
            for resource in resources:
                await store.apply(resource)
            if delete is not None:
                await store.delete(delete[0], "demo", delete[1])
        finally:
            await store.close()

    asyncio.run(run())


def _wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


class Cluster:
    def __init__(self, node: Node, store_path: Path) -> None:
        self.node = node
        self.store_path = store_path
        self.control = node.add_pod("control")
        self.client = node.add_pod("client")
        self.web = [node.add_pod("web0"), node.add_pod("web1")]
        self.destination: PodProcess | None = None

    def start_destination(self) -> None:
        self.destination = self.control.spawn(
            [PYTHON, "-m", "gossamer", "controller", "destination",
             "--store", str(self.store_path), "--addr", f"0.0.0.0:{DESTINATION_PORT}"],
            name="destination",
        )  # fmt: skip
        self.control.wait_for_port(DESTINATION_PORT, timeout=20, process=self.destination)

    def stop_destination(self) -> None:
        assert self.destination is not None
        self.destination.terminate()

    def curl(self, url: str) -> str:
        return self.client.exec(["curl", "-sf", "--max-time", "5", url]).stdout

    def metrics(self, pod: Pod) -> str:
        return pod.exec(["curl", "-sf", "http://127.0.0.1:4191/metrics"]).stdout


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with sandbox(prefix="disc") as node:
        cluster = Cluster(node, tmp_path / "store.db")
        try:
            _write(
                cluster.store_path,
                _service(),
                *(_pod(f"web-{i}", str(pod.ip)) for i, pod in enumerate(cluster.web)),
            )
            cluster.start_destination()
            for web in cluster.web:
                web.install_init_rules()
                web.start_proxy()
                app = web.spawn([PYTHON, str(APPS / "http_app.py"), "8080", str(web.ip)])
                web.wait_for_port(8080, process=app)
            cluster.client.install_init_rules()
            cluster.client.start_proxy(
                {"GOSSAMER_PROXY_DESTINATION_SVC_ADDR": f"{cluster.control.ip}:{DESTINATION_PORT}"}
            )
            yield cluster
        finally:
            for pod in (cluster.control, cluster.client, *cluster.web):
                pod.stop_processes()


def test_virtual_ip_is_resolved_and_survives_a_control_plane_outage(cluster: Cluster) -> None:
    url = f"http://{VIP}/"
    web_ips = {str(pod.ip) for pod in cluster.web}
    seen = {cluster.curl(url).rsplit(" ", 1)[-1] for _ in range(40)}
    assert seen == web_ips  # both replicas answer: requests are balanced over endpoints
    metrics = cluster.metrics(cluster.client)
    assert "destination_watches 1" in metrics
    assert "destination_connected 1" in metrics
    for ip in web_ips:
        assert f'target_addr="{ip}:8080"' in metrics

    # Control plane down: the proxy keeps routing with what it last knew.
    cluster.stop_destination()
    _wait(lambda: "destination_watch_stale 1" in cluster.metrics(cluster.client))
    assert {cluster.curl(url).rsplit(" ", 1)[-1] for _ in range(6)} <= web_ips

    # Back up, with web-1 gone from the store: the proxy follows without a restart.
    _write(cluster.store_path, delete=("Pod", "web-1"))
    cluster.start_destination()
    _wait(lambda: "destination_watch_stale 0" in cluster.metrics(cluster.client), timeout=20)
    only = str(cluster.web[0].ip)
    _wait(lambda: {cluster.curl(url).rsplit(" ", 1)[-1] for _ in range(4)} == {only})
