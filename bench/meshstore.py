"""The mesh's store for the testbed: its Pods, Services and HTTPRoutes, as resources.

The certified pods (mutual TLS) and the routed path's pods are Pods of one SQLite store,
which the destination, identity and policy services in the control pod read. Each Pod is
Running with a ready proxy at the IP the sandbox gave its pod (or, for a pod's alias, the
pod's second address: two Pods, one sandbox pod), labelled `app=<service>` when a Service
lists it (else `app=<pod>`); each Service selects its pods by that label and may
carry traffic annotations (the routed path's retries); each HTTPRoute is the routed path's
two rules: a header match to a canary backend, then every other request to the Service. The
default mesh path's Service has neither annotations nor an HTTPRoute, so the policy service
gives it only its default route.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.testbed import MESH_NAMESPACE, HttpRouteSpec, ServiceSpec, Testbed
from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource


def pod_resource(name: str, ip: str, app: str, service_account: str | None = None) -> Resource:
    """A running, meshed Pod of the mesh's store, labelled `app=<app>`."""
    spec: dict[str, Any] = {"containers": [{"name": "app", "command": ["origin"]}]}
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": MESH_NAMESPACE, "labels": {"app": app}},
            "spec": spec,
            "status": {"phase": "Running", "podIP": ip, "proxy": {"ready": True}},
        }
    )


def service_resource(service: ServiceSpec) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": service.name,
                "namespace": MESH_NAMESPACE,
                "annotations": dict(service.annotations),
            },
            "spec": {
                "clusterIP": service.vip,
                "selector": {"app": service.name},
                "ports": [{"name": "http", "port": service.port,
                           "targetPort": service.target_port}],
            },
        }
    )  # fmt: skip


def route_resource(route: HttpRouteSpec, port: int) -> Resource:
    """The routed path's HTTPRoute: the canary rule first (Gateway API keeps rule order
    among equal matches), then the catch-all to the Service itself."""
    header, value = route.canary
    return Resource.from_dict(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": route.name, "namespace": MESH_NAMESPACE},
            "spec": {
                "parentRefs": [
                    {"group": "core", "kind": "Service", "name": route.service, "port": port}
                ],
                "rules": [
                    {
                        "matches": [{"headers": [{"name": header, "value": value}]}],
                        "backendRefs": [{"name": route.canary_backend, "port": port}],
                    },
                    {"backendRefs": [{"name": route.service, "port": port}]},
                ],
            },
        }
    )


def resources(testbed: Testbed, pod_ips: Mapping[str, str]) -> list[Resource]:
    """Every resource of the mesh's store, given the IP of each of its Pods (pod or alias)."""
    out = [
        pod_resource(name, pod_ips[name], app, testbed.address_owner(name).service_account)
        for name, app in testbed.store_pods().items()
    ]
    out += [service_resource(service) for service in testbed.services]
    out += [route_resource(route, testbed.service(route.service).port) for route in testbed.routes]
    return out


async def apply(path: Path, items: list[Resource]) -> dict[tuple[str, str], str]:
    """Applies resources to the SQLite store; returns each one's uid by (kind, name)."""
    store = SQLiteStore(path)
    try:
        uids = {}
        for resource in items:
            stored = await store.apply(resource)
            uids[(stored.kind, stored.name)] = stored.metadata.uid
        return uids
    finally:
        await store.close()
