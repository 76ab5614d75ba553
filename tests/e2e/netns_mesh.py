"""The pieces the namespace e2e modules build a mesh from, so each module shows only its shape.

- Resources of the store: `service_resource` (a cluster IP, a selector, ports, traffic
  annotations), `pod_resource` (Running at the sandbox pod's IP, with a ready proxy when
  meshed), `http_route` and `grpc_route` (rules for one port of a parent Service). All in
  namespace `demo` unless told otherwise.
- `MeshStore`: writes them to (and deletes them from) the SQLite store the controllers read.
- `ControlPlane`: `gossamer controller <component>` processes in the control pod on that
  store, each on its usual port; `proxy_env()` points a proxy at the ones it started.
- `start_meshed_proxy`: a pod's init rules, then its proxy.
- `SandboxCluster`: the node, the store, the control pod and a meshed client pod, which a
  module's own cluster extends with its replicas and apps; `start_mesh` brings them up.
- `wait`, `proxy_metrics` and `counter_sum` for what the tests poll and read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource
from gossamer.local.netns import Node
from gossamer.local.pod import ADMIN_PORT, PYTHON, Pod, PodProcess

NAMESPACE = "demo"
# Each controller's port, and the proxy setting that points at it.
CONTROLLERS = {
    "destination": (8086, "GOSSAMER_PROXY_DESTINATION_SVC_ADDR"),
    "policy": (8090, "GOSSAMER_PROXY_POLICY_SVC_ADDR"),
    "identity": (8080, "GOSSAMER_PROXY_IDENTITY_SVC_ADDR"),
}


class ServicePort(NamedTuple):
    port: int
    target_port: int
    name: str | None = None


def service_resource(
    name: str,
    vip: str,
    selector: Mapping[str, str],
    ports: Sequence[ServicePort],
    annotations: Mapping[str, str] | None = None,
    *,
    namespace: str = NAMESPACE,
) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": dict(annotations or {}),
            },
            "spec": {
                "clusterIP": vip,
                "selector": dict(selector),
                "ports": [
                    {"port": port.port, "targetPort": port.target_port}
                    | ({"name": port.name} if port.name is not None else {})
                    for port in ports
                ],
            },
        }
    )


def pod_resource(
    name: str,
    ip: str,
    labels: Mapping[str, str],
    service_account: str,
    *,
    meshed: bool = True,
    namespace: str = NAMESPACE,
) -> Resource:
    """A Running Pod at `ip`; a meshed one has a ready proxy (discovery then says mTLS)."""
    status: dict[str, Any] = {"phase": "Running", "podIP": ip}
    if meshed:
        status["proxy"] = {"ready": True}
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {
                "serviceAccountName": service_account,
                "containers": [{"name": "app", "command": ["x"]}],
            },
            "status": status,
        }
    )


def http_route(
    name: str, parent: str, port: int, rules: list[dict[str, Any]], *, namespace: str = NAMESPACE
) -> Resource:
    """An HTTPRoute with `rules` for Service `parent`'s `port`."""
    return _route("HTTPRoute", name, parent, port, rules, namespace)


def grpc_route(
    name: str, parent: str, port: int, rules: list[dict[str, Any]], *, namespace: str = NAMESPACE
) -> Resource:
    """A GRPCRoute with `rules` for Service `parent`'s `port`."""
    return _route("GRPCRoute", name, parent, port, rules, namespace)


def _route(
    kind: str, name: str, parent: str, port: int, rules: list[dict[str, Any]], namespace: str
) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "parentRefs": [{"group": "core", "kind": "Service", "name": parent, "port": port}],
                "rules": rules,
            },
        }
    )


@dataclass(frozen=True)
class MeshStore:
    """The SQLite store of the mesh, written from the test process between requests."""

    path: Path
    namespace: str = NAMESPACE

    def apply(self, *resources: Resource, delete: tuple[str, str] | None = None) -> dict[str, str]:
        """Applies `resources`, then deletes `delete` (kind, name) if it is there; returns
        the uid of each resource applied, by name."""

        async def run() -> dict[str, str]:
            store = SQLiteStore(self.path)
            try:
                uids = {}
                for resource in resources:
                    stored = await store.apply(resource)
                    uids[stored.name] = stored.metadata.uid
                if delete is not None:
                    await store.delete(delete[0], self.namespace, delete[1], missing_ok=True)
                return uids
            finally:
                await store.close()

        return asyncio.run(run())


@dataclass
class ControlPlane:
    """Controllers in the control pod, all reading one store."""

    pod: Pod
    store: MeshStore
    running: dict[str, PodProcess] = field(default_factory=dict)

    def start(self, component: str, *options: str) -> PodProcess:
        """Starts `gossamer controller COMPONENT` with `options` and waits for its port."""
        port = CONTROLLERS[component][0]
        process = self.pod.spawn(
            [PYTHON, "-m", "gossamer", "controller", component,
             "--store", str(self.store.path), "--addr", f"0.0.0.0:{port}", *options],
            name=component,
        )  # fmt: skip
        self.pod.wait_for_port(port, timeout=20, process=process)
        self.running[component] = process
        return process

    def stop(self, component: str) -> None:
        self.running[component].terminate()

    def proxy_env(self) -> dict[str, str]:
        """The proxy settings that point at every controller started."""
        return {
            CONTROLLERS[component][1]: f"{self.pod.ip}:{CONTROLLERS[component][0]}"
            for component in self.running
        }


def start_meshed_proxy(pod: Pod, env: Mapping[str, str] | None = None) -> PodProcess:
    """Installs the pod's init rules, then starts its proxy with `env` and waits until ready."""
    pod.install_init_rules()
    return pod.start_proxy(env)


@dataclass
class SandboxCluster:
    """A sandbox node with the mesh's store, a control pod and a meshed client pod."""

    node: Node
    store: MeshStore
    control: Pod
    client: Pod

    def apply(self, *resources: Resource, delete: tuple[str, str] | None = None) -> None:
        self.store.apply(*resources, delete=delete)

    def start_mesh(
        self,
        replicas: Sequence[Pod],
        run_app: Callable[[int], object],
        controllers: Sequence[str] = ("destination", "policy"),
    ) -> ControlPlane:
        """Starts `controllers` on the store, then each replica's proxy (default settings)
        and its app (`run_app(index)`), then the client's proxy, pointed at the controllers."""
        control_plane = ControlPlane(self.control, self.store)
        for component in controllers:
            control_plane.start(component)
        for index, replica in enumerate(replicas):
            start_meshed_proxy(replica)
            run_app(index)
        start_meshed_proxy(self.client, control_plane.proxy_env())
        return control_plane

    def client_metrics(self) -> str:
        return proxy_metrics(self.client)


def wait(check: Callable[[], bool], timeout: float = 15.0, *, every: float = 0.1) -> None:
    """Calls `check` every `every` seconds until it is true; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)


def proxy_metrics(pod: Pod) -> str:
    """The Prometheus text of the pod's proxy (its admin server)."""
    return pod.exec(["curl", "-sf", f"http://127.0.0.1:{ADMIN_PORT}/metrics"]).stdout


def counter_sum(metrics: str, name: str, *labels: str) -> float:
    """The sum of counter `name` over the series that carry every one of `labels`
    (`'direction="inbound"'`)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name + "{") and all(label in line for label in labels)
    )
