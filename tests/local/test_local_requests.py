"""Local mode's store-side logic against a MemoryStore: `run` requests, apply and delete,
and what the service controller derives from Services and Pods (routes, names, targets)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from gossamer.control.store import MemoryStore
from gossamer.core.resources import (
    Container,
    ContainerPort,
    ObjectMeta,
    PodPhase,
    PodSpec,
    PodStatus,
    ProxyStatus,
    Resource,
    ResourceError,
    ServiceSpec,
    WorkloadSpec,
    load_documents,
)
from gossamer.local.errors import LocalModeError
from gossamer.local.resourceops import apply_all, delete_resource, parse_manifest
from gossamer.local.servicerules import Endpoint
from gossamer.local.supervisor.services import scrape_targets, service_addresses, service_routes
from gossamer.local.workloadrequest import RunRejected, RunRequest, submit, wait_for_pods


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    made = MemoryStore()
    yield made
    await made.close()


WEB = RunRequest("web", "demo", ("python3", "-m", "http.server", "8080"), ports=(8080,), replicas=2)


async def test_run_stores_a_workload_a_service_and_the_account(store: MemoryStore) -> None:
    workload, service = await submit(store, WEB)
    spec = workload.spec_as(WorkloadSpec)
    assert spec.replicas == 2 and spec.ports == (8080,) and spec.mesh
    assert spec.pod_labels("web")["app"] == "web"
    assert service is not None
    service_spec = service.spec_as(ServiceSpec)
    assert dict(service_spec.selector) == {"app": "web"}
    assert [p.port for p in service_spec.ports] == [8080] and service_spec.cluster_ip is None
    assert await store.get("ServiceAccount", "demo", "default")


async def test_run_names_several_ports_and_skips_the_service_without_ports(
    store: MemoryStore,
) -> None:
    _, service = await submit(store, RunRequest("api", "demo", ("x",), ports=(80, 9090)))
    assert service is not None
    assert [p.name for p in service.spec_as(ServiceSpec).ports] == ["tcp-80", "tcp-9090"]
    _, none = await submit(store, RunRequest("job", "demo", ("x",)))
    assert none is None and len(await store.list("Service", "demo")) == 1


async def test_run_refuses_a_taken_name(store: MemoryStore) -> None:
    await submit(store, WEB)
    with pytest.raises(RunRejected, match=r"Service web already exists .*ports 8080"):
        await submit(store, WEB)
    with pytest.raises(RunRejected, match="Workload web already exists"):
        await submit(store, RunRequest("web", "demo", ("x",)))
    # Another namespace is another name.
    await submit(store, RunRequest("web", "other", ("x",), ports=(8080,)))


@pytest.mark.parametrize("port", [4140, 4143, 4190, 4191])
async def test_run_refuses_the_proxys_ports_in_a_meshed_pod(store: MemoryStore, port: int) -> None:
    with pytest.raises(RunRejected, match=f"port {port} is the pod proxy's own"):
        await submit(store, RunRequest("web", "demo", ("x",), ports=(port,)))
    await submit(store, RunRequest("web", "demo", ("x",), ports=(port,), mesh=False))


async def test_run_refuses_duplicate_ports_and_invalid_names(store: MemoryStore) -> None:
    with pytest.raises(RunRejected, match="each port once"):
        await submit(store, RunRequest("web", "demo", ("x",), ports=(80, 80)))
    with pytest.raises(ResourceError, match=r"metadata\.name"):
        await submit(store, RunRequest("Web_1", "demo", ("x",)))
    assert len(await store.list("Workload")) == 0


async def test_wait_for_pods_is_bounded(store: MemoryStore) -> None:
    await store.apply(pod("web-0", ready=True))
    ready, pods = await wait_for_pods(store, "demo", "web", 2, timeout=0.3)
    assert not ready and [p.name for p in pods] == ["web-0"]
    await store.apply(pod("web-1", ready=True))
    ready, pods = await wait_for_pods(store, "demo", "web", 2, timeout=5)
    assert ready and len(pods) == 2


MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
"""


async def test_apply_reports_created_unchanged_configured(store: MemoryStore) -> None:
    first = await apply_all(store, parse_manifest(MANIFEST, "web.yaml"))
    assert [a.outcome for a in first] == ["created"]
    again = await apply_all(store, parse_manifest(MANIFEST, "web.yaml"))
    assert [a.outcome for a in again] == ["unchanged"]
    changed = await apply_all(store, parse_manifest(MANIFEST.replace("80", "81"), "web.yaml"))
    assert [a.outcome for a in changed] == ["configured"]


async def test_apply_keeps_an_allocated_cluster_ip(store: MemoryStore) -> None:
    (applied,) = await apply_all(store, parse_manifest(MANIFEST, "web.yaml"))
    service = applied.resource
    spec = service.spec_as(ServiceSpec)
    await store.update(
        dataclasses.replace(service, spec=dataclasses.replace(spec, cluster_ip="10.78.0.5"))
    )
    (again,) = await apply_all(store, parse_manifest(MANIFEST, "web.yaml"))
    assert again.outcome == "unchanged"
    assert again.resource.spec_as(ServiceSpec).cluster_ip == "10.78.0.5"


def test_apply_rejects_pods_and_points_at_bad_fields() -> None:
    pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a}]\n"
    with pytest.raises(LocalModeError, match="apply a Workload instead"):
        parse_manifest(pod_yaml, "pod.yaml")
    with pytest.raises(ResourceError, match=r"web.yaml:9:5 .*spec.ports\[0\].port"):
        parse_manifest(MANIFEST.replace("port: 80", "port: 0"), "web.yaml")


async def test_delete_service_takes_the_run_workload_along(store: MemoryStore) -> None:
    await submit(store, WEB)
    assert await delete_resource(store, "svc", "demo", "web") == [
        "Service demo/web",
        "Workload demo/web",
    ]
    assert len(await store.list("Workload")) == 0
    with pytest.raises(LocalModeError, match="not found"):
        await delete_resource(store, "services", "demo", "web")
    # A Service that `run` did not make leaves workloads alone.
    await submit(store, RunRequest("web", "demo", ("x",)))
    await apply_all(store, load_documents(MANIFEST))
    assert await delete_resource(store, "service", "demo", "web") == ["Service demo/web"]
    assert len(await store.list("Workload")) == 1


# -- what the service controller derives ---------------------------------------------------
def pod(
    name: str,
    *,
    ready: bool = True,
    ip: str = "10.77.0.2",
    labels: dict[str, str] | None = None,
    meshed: bool = True,
    phase: PodPhase = PodPhase.RUNNING,
) -> Resource:
    return Resource(
        api_version="v1",
        kind="Pod",
        metadata=ObjectMeta(
            name=name,
            namespace="demo",
            labels=labels or {"app": "web", "gossamer.dev/workload": "web"},
        ),
        spec=PodSpec((Container("web", ports=(ContainerPort(8080, name="http"),)),)),
        status=PodStatus(
            phase=phase,
            pod_ip=ip,
            ready=ready,
            proxy=ProxyStatus(ready) if meshed else None,
        ),
    )


def service(cluster_ip: str | None = "10.78.0.1") -> Resource:
    (resource,) = load_documents(MANIFEST)
    spec = resource.spec_as(ServiceSpec)
    return dataclasses.replace(resource, spec=dataclasses.replace(spec, cluster_ip=cluster_ip))


def test_routes_use_ready_pods_and_resolve_named_target_ports() -> None:
    pods = [
        pod("web-0", ip="10.77.0.2"),
        pod("web-1", ip="10.77.0.3", ready=False),
        pod("other", ip="10.77.0.9", labels={"app": "other"}),
    ]
    (route,) = service_routes([service()], pods)
    assert (route.cluster_ip, route.port) == ("10.78.0.1", 80)
    assert route.endpoints == (Endpoint("10.77.0.2", 8080),)
    assert list(service_routes([service(None)], pods)) == []
    assert [a.cluster_ip for a in service_addresses([service(), service(None)])] == ["10.78.0.1"]


def test_scrape_targets_are_meshed_pods_with_addresses() -> None:
    pods = [
        pod("web-0", ip="10.77.0.2"),
        pod("plain", ip="10.77.0.5", meshed=False),
        pod("gone", ip="10.77.0.6", phase=PodPhase.TERMINATING),
    ]
    targets = list(scrape_targets(pods))
    assert [(t.pod, t.workload, t.pod_ip) for t in targets] == [("web-0", "web", "10.77.0.2")]
