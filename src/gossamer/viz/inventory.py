"""What exists, from the store: the rows of a stat, and how outbound traffic maps to them.

Pure functions over resources, plus `load_inventory` which reads them from a `Store`.

Rows. A `deploy` row is a Workload (Linkerd's deployment; the proxy's metrics label its pods
`deployment`), a `pod` row a Pod, a `svc` row a Service. MESHED counts the live pods behind a
row (not Succeeded or Failed) and those of them that have a proxy (`status.proxy` is set).

Outbound traffic. The proxy labels an outbound request with the `authority` it was sent to and
a connection with the `target_ip` it dialled (a cluster IP, or the endpoint discovery chose),
not with the workload behind them. `target_patterns` turns the store's view into the regexes
that recognise a row's traffic: a Service by its DNS names (`web.demo`, `web.demo.svc`,
`web.demo.svc.cluster.local`, with or without a port), its cluster IP and its pods' IPs; a
workload by the Services that select its pods and by its pods' IPs; a pod by its IP. When
one pod sits behind several rows (two Services selecting it), the last row's rule wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gossamer.control.store import Store
from gossamer.core.resources import (
    WORKLOAD_LABEL,
    PodPhase,
    PodStatus,
    Resource,
    ServiceSpec,
    WorkloadSpec,
    selector_matches,
)

CLUSTER_DOMAIN = "cluster.local"
_GONE = (PodPhase.SUCCEEDED, PodPhase.FAILED)


class StatKind(StrEnum):
    """What a stat's rows are: Linkerd's resource words."""

    DEPLOY = "deploy"
    POD = "pod"
    SVC = "svc"

    @property
    def json_kind(self) -> str:
        return {"deploy": "deployment", "pod": "pod", "svc": "service"}[self.value]


_KIND_WORDS: dict[str, StatKind] = {
    **dict.fromkeys(("deploy", "deployment", "deployments", "workload", "workloads", "wl"),
                    StatKind.DEPLOY),
    **dict.fromkeys(("po", "pod", "pods"), StatKind.POD),
    **dict.fromkeys(("svc", "service", "services"), StatKind.SVC),
}  # fmt: skip


def parse_kind(word: str) -> StatKind:
    """`deploy`, `deployment`, `po`, `svc`, ... -> StatKind; ValueError names the choices."""
    kind = _KIND_WORDS.get(word.lower())
    if kind is None:
        raise ValueError(f"unknown resource type {word!r}: use deploy, pod or svc")
    return kind


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """`deploy/web` in a namespace."""

    kind: StatKind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def parse_ref(text: str, namespace: str) -> ResourceRef:
    """`deploy/web` (or `pod/web-0`) -> ResourceRef; ValueError for anything else."""
    word, slash, name = text.partition("/")
    if not slash or not name or "/" in name:
        raise ValueError(f"{text!r} is not TYPE/NAME (for example deploy/web)")
    return ResourceRef(parse_kind(word), namespace, name)


@dataclass(frozen=True, slots=True)
class Inventory:
    """The store's workloads, pods and services (in one namespace, or all)."""

    workloads: tuple[Resource, ...] = ()
    pods: tuple[Resource, ...] = ()
    services: tuple[Resource, ...] = ()


async def load_inventory(store: Store, namespace: str | None) -> Inventory:
    """Workloads, pods and services of `namespace` (None: every namespace)."""
    return Inventory(
        workloads=tuple(await store.list("Workload", namespace)),
        pods=tuple(await store.list("Pod", namespace)),
        services=tuple(await store.list("Service", namespace)),
    )


@dataclass(frozen=True, slots=True)
class RowIdentity:
    """One row of a stat before its metrics: what it is and how meshed its pods are."""

    namespace: str
    name: str
    meshed: int
    pods: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def pod_status(pod: Resource) -> PodStatus:
    return pod.status_as(PodStatus) or PodStatus()


def is_live(pod: Resource) -> bool:
    return pod_status(pod).phase not in _GONE


def is_meshed(pod: Resource) -> bool:
    return pod_status(pod).proxy is not None


def workload_pods(inventory: Inventory, workload: Resource) -> list[Resource]:
    return [
        pod
        for pod in inventory.pods
        if pod.namespace == workload.namespace
        and pod.metadata.labels.get(WORKLOAD_LABEL) == workload.name
    ]


def service_pods(inventory: Inventory, service: Resource) -> list[Resource]:
    selector = service.spec_as(ServiceSpec).selector
    if not selector:  # a Service without a selector selects no pods (Kubernetes' rule)
        return []
    return [
        pod
        for pod in inventory.pods
        if pod.namespace == service.namespace and selector_matches(selector, pod.metadata.labels)
    ]


def service_selects_workload(service: Resource, workload: Resource) -> bool:
    selector = service.spec_as(ServiceSpec).selector
    if not selector or service.namespace != workload.namespace:
        return False
    return selector_matches(selector, workload.spec_as(WorkloadSpec).pod_labels(workload.name))


def _identity(resource: Resource, pods: Iterable[Resource]) -> RowIdentity:
    live = [pod for pod in pods if is_live(pod)]
    meshed = sum(1 for pod in live if is_meshed(pod))
    return RowIdentity(resource.namespace, resource.name, meshed, len(live))


def row_identities(
    inventory: Inventory, kind: StatKind, name: str | None = None
) -> list[RowIdentity]:
    """The rows of a stat, sorted by (namespace, name); only `name`'s when it is given."""
    rows: list[RowIdentity]
    if kind is StatKind.DEPLOY:
        rows = [_identity(w, workload_pods(inventory, w)) for w in inventory.workloads]
    elif kind is StatKind.POD:
        rows = [_identity(pod, [pod]) for pod in inventory.pods]
    else:
        rows = [_identity(s, service_pods(inventory, s)) for s in inventory.services]
    if name is not None:
        rows = [row for row in rows if row.name == name]
    return sorted(rows, key=lambda row: row.key)


@dataclass(frozen=True, slots=True)
class TargetPattern:
    """How to recognise one row's outbound traffic: `authority` and `target_ip` regexes
    (fully anchored; None when nothing can match)."""

    namespace: str
    name: str
    authority: str | None
    target_ip: str | None


def _alternatives(patterns: Sequence[str]) -> str | None:
    unique = list(dict.fromkeys(patterns))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else "(?:" + "|".join(unique) + ")"


_PORT = "(?::[0-9]+)?"


def _ip_authority(ip: str) -> str:
    host = f"\\[{re.escape(ip)}\\]" if ":" in ip else re.escape(ip)
    return host + _PORT


def service_authorities(service: Resource, cluster_domain: str = CLUSTER_DOMAIN) -> list[str]:
    """Regexes of the authorities a client may use for a Service."""
    name, namespace = re.escape(service.name), re.escape(service.namespace)
    domain = re.escape(cluster_domain)
    out = [f"{name}\\.{namespace}(?:\\.svc(?:\\.{domain})?)?{_PORT}"]
    cluster_ip = service.spec_as(ServiceSpec).cluster_ip
    if cluster_ip and cluster_ip != "None":
        out.append(_ip_authority(cluster_ip))
    return out


def _service_ips(service: Resource) -> list[str]:
    cluster_ip = service.spec_as(ServiceSpec).cluster_ip
    return [re.escape(cluster_ip)] if cluster_ip and cluster_ip != "None" else []


def _pod_ips(pods: Iterable[Resource]) -> list[str]:
    return [re.escape(ip) for pod in pods if (ip := pod_status(pod).pod_ip)]


def target_patterns(
    inventory: Inventory,
    kind: StatKind,
    rows: Sequence[RowIdentity],
    cluster_domain: str = CLUSTER_DOMAIN,
) -> list[TargetPattern]:
    """For each row, the regexes that recognise outbound traffic to it."""
    wanted = {row.key for row in rows}
    out: list[TargetPattern] = []
    if kind is StatKind.SVC:
        for service in inventory.services:
            if (service.namespace, service.name) not in wanted:
                continue
            # Discovery resolves a Service to its endpoints: proxies dial the pods' IPs.
            pods = [pod for pod in service_pods(inventory, service) if is_live(pod)]
            out.append(
                TargetPattern(
                    service.namespace,
                    service.name,
                    _alternatives(service_authorities(service, cluster_domain)),
                    _alternatives(_service_ips(service) + _pod_ips(pods)),
                )
            )
    elif kind is StatKind.DEPLOY:
        for workload in inventory.workloads:
            if (workload.namespace, workload.name) not in wanted:
                continue
            services = [s for s in inventory.services if service_selects_workload(s, workload)]
            pods = [pod for pod in workload_pods(inventory, workload) if is_live(pod)]
            authorities = [a for s in services for a in service_authorities(s, cluster_domain)]
            authorities += [_ip_authority(ip) for pod in pods if (ip := pod_status(pod).pod_ip)]
            ips = [ip for s in services for ip in _service_ips(s)] + _pod_ips(pods)
            out.append(
                TargetPattern(
                    workload.namespace,
                    workload.name,
                    _alternatives(authorities),
                    _alternatives(ips),
                )
            )
    else:
        for pod in inventory.pods:
            ip = pod_status(pod).pod_ip
            if (pod.namespace, pod.name) in wanted and ip:
                out.append(
                    TargetPattern(
                        pod.namespace, pod.name, _ip_authority(ip), _alternatives(_pod_ips([pod]))
                    )
                )
    return out
