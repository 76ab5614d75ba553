"""`gossamer apply` and `gossamer delete` as library code, over the store interface.

Apply validates every document first (a bad one rejects the whole file, naming the line and
field), then writes each object with the store's apply semantics and says whether it was
created, configured or unchanged. Two local-mode rules on top: `Pod` objects belong to the
workload controller and cannot be applied (apply a Workload), and a Service applied without
a `clusterIP` keeps the one it was given, as Kubernetes keeps an allocated address.

Deleting a Service made by `gossamer run` also deletes its Workload (the annotation names
it), so its pods stop and their namespaces go.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gossamer.control.store import NotFound, Store
from gossamer.core.resources import (
    BUILTIN_KINDS,
    Resource,
    ServiceSpec,
    describe_object,
    load_documents,
)
from gossamer.local.errors import LocalModeError
from gossamer.local.workloadrequest import WORKLOAD_ANNOTATION

MANAGED_KINDS = {"Pod": "Pods are made by the workload controller: apply a Workload instead"}


@dataclass(frozen=True, slots=True)
class Applied:
    resource: Resource
    outcome: str  # created | configured | unchanged


def parse_manifest(text: str, source: str) -> list[Resource]:
    """Every document, validated; ManifestError (a ResourceError) names line and field."""
    resources = load_documents(text, source)
    for resource in resources:
        why = MANAGED_KINDS.get(resource.kind)
        if why is not None:
            raise LocalModeError(f"{source}: {resource.describe()}: {why}")
    return resources


async def _current(store: Store, resource: Resource) -> Resource | None:
    try:
        return await store.get(resource.kind, resource.namespace, resource.name)
    except NotFound:
        return None


def _keep_cluster_ip(resource: Resource, current: Resource | None) -> Resource:
    if resource.kind != "Service" or current is None:
        return resource
    spec, old = resource.spec_as(ServiceSpec), current.spec_as(ServiceSpec)
    if spec.cluster_ip is not None or old.cluster_ip is None:
        return resource
    return dataclasses.replace(resource, spec=dataclasses.replace(spec, cluster_ip=old.cluster_ip))


async def apply_all(store: Store, resources: list[Resource]) -> list[Applied]:
    results = []
    for resource in resources:
        current = await _current(store, resource)
        stored = await store.apply(_keep_cluster_ip(resource, current))
        if current is None:
            outcome = "created"
        elif stored.resource_version == current.resource_version:
            outcome = "unchanged"
        else:
            outcome = "configured"
        results.append(Applied(stored, outcome))
    return results


async def delete_resource(store: Store, kind_word: str, namespace: str, name: str) -> list[str]:
    """Delete the object (and a run-made Service's Workload); the objects deleted."""
    info = BUILTIN_KINDS.resolve(kind_word)
    try:
        resource = await store.get(info.kind, namespace, name)
    except NotFound:
        raise LocalModeError(
            f"{describe_object(info.kind, namespace, name)} not found "
            f"(`gossamer get {info.plural} -n {namespace}` lists them)"
        ) from None
    await store.delete(info.kind, namespace, name, missing_ok=True)
    deleted = [resource.describe()]
    workload = resource.metadata.annotations.get(WORKLOAD_ANNOTATION)
    if (
        info.kind == "Service"
        and workload is not None
        and await store.delete("Workload", namespace, workload, missing_ok=True)
    ):
        deleted.append(describe_object("Workload", namespace, workload))
    return deleted
