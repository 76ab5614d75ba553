"""Which endpoints an address names: a pure index of Services and Pods.

Theory of operation: the index holds the current Services and Pods (fed by store watches).
`resolve(path)` turns `host:port` into a `Resolution`: the service it names (by DNS name or
virtual IP), or a single pod (by pod IP), or nothing. Each endpoint carries what the proxy
needs: address, weight, identity (when its pod is meshed), protocol hint and labels.

A pod is meshed when its status carries proxy information (`status.proxy`), which the local
runtime sets for pods it started with a sidecar. Only Running pods with an IP are endpoints.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gossamer.control.identity.names import identity_name
from gossamer.core.resources import (
    WORKLOAD_LABEL,
    PodPhase,
    PodSpec,
    PodStatus,
    Resource,
    ServicePort,
    ServiceSpec,
    selector_matches,
)

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    weight: int = 10_000
    identity: str | None = None
    opaque: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What an address resolves to. `exists` is False when it names no service or pod."""

    exists: bool
    endpoints: Mapping[tuple[str, int], Endpoint] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # The service this resolution follows, so changes to it can be routed to subscribers.
    service: Key | None = None


NOT_FOUND = Resolution(exists=False)


@dataclass(frozen=True, slots=True)
class _Pod:
    key: Key
    labels: Mapping[str, str]
    ip: str | None
    running: bool
    meshed: bool
    service_account: str
    port_names: Mapping[str, int]


class EndpointIndex:
    def __init__(self, cluster_domain: str = "cluster.local", trust_domain: str = "cluster.local"):
        self.cluster_domain = cluster_domain
        self.trust_domain = trust_domain
        self._services: dict[Key, tuple[ServiceSpec, Mapping[str, str]]] = {}
        self._by_vip: dict[str, Key] = {}
        self._pods: dict[Key, _Pod] = {}
        self._by_pod_ip: dict[str, Key] = {}

    # -- feeding -------------------------------------------------------------------------
    def set_service(self, resource: Resource) -> None:
        key = (resource.namespace, resource.name)
        self.remove_service(key)
        spec = resource.spec_as(ServiceSpec)
        self._services[key] = (spec, dict(resource.metadata.annotations))
        if spec.cluster_ip and spec.cluster_ip != "None":
            self._by_vip[spec.cluster_ip] = key

    def remove_service(self, key: Key) -> None:
        old = self._services.pop(key, None)
        if old is not None and old[0].cluster_ip:
            self._by_vip.pop(old[0].cluster_ip, None)

    def set_pod(self, resource: Resource) -> None:
        key = (resource.namespace, resource.name)
        self.remove_pod(key)
        spec = resource.spec_as(PodSpec)
        status = resource.status_as(PodStatus) or PodStatus()
        port_names = {
            port.name: port.container_port
            for container in spec.containers
            for port in container.ports
            if port.name
        }
        pod = _Pod(
            key=key,
            labels=dict(resource.metadata.labels),
            ip=status.pod_ip,
            running=status.phase == PodPhase.RUNNING,
            meshed=status.proxy is not None,
            service_account=spec.service_account_name,
            port_names=port_names,
        )
        self._pods[key] = pod
        if pod.ip:
            self._by_pod_ip[pod.ip] = key

    def remove_pod(self, key: Key) -> None:
        old = self._pods.pop(key, None)
        if old is not None and old.ip and self._by_pod_ip.get(old.ip) == key:
            del self._by_pod_ip[old.ip]

    def clear_services(self) -> None:
        self._services.clear()
        self._by_vip.clear()

    def clear_pods(self) -> None:
        self._pods.clear()
        self._by_pod_ip.clear()

    # -- queries -------------------------------------------------------------------------
    def services_selecting(self, namespace: str, labels: Mapping[str, str]) -> list[Key]:
        return [
            key
            for key, (spec, _) in self._services.items()
            if key[0] == namespace and spec.selector and selector_matches(spec.selector, labels)
        ]

    def pod_labels(self, key: Key) -> Mapping[str, str] | None:
        pod = self._pods.get(key)
        return pod.labels if pod is not None else None

    def resolve(self, path: str) -> Resolution:
        host, port = split_path(path)
        if port is None:
            return NOT_FOUND
        try:
            ipaddress.ip_address(host)
        except ValueError:
            key = self._service_by_name(host)
        else:
            key = self._by_vip.get(host)
            if key is None:
                pod_key = self._by_pod_ip.get(host)
                return self._pod_resolution(pod_key, host, port)
        if key is None or key not in self._services:
            return NOT_FOUND
        return self._service_resolution(key, port)

    def _service_by_name(self, host: str) -> Key | None:
        parts = host.rstrip(".").lower().split(".")
        suffix = ["svc", *self.cluster_domain.split(".")]
        if len(parts) >= 2 and (parts[2:] == suffix or parts[2:] == ["svc"] or len(parts) == 2):
            return (parts[1], parts[0])
        return None

    def _service_resolution(self, key: Key, port: int) -> Resolution:
        spec, annotations = self._services[key]
        service_port = next((p for p in spec.ports if p.port == port), None)
        if service_port is None:
            return NOT_FOUND
        labels = {"service": key[1], "namespace": key[0], "port": str(port)}
        endpoints: dict[tuple[str, int], Endpoint] = {}
        opaque = _is_opaque(service_port, annotations)
        if spec.selector:
            for pod in self._pods.values():
                if pod.key[0] != key[0] or not pod.running or not pod.ip:
                    continue
                if not selector_matches(spec.selector, pod.labels):
                    continue
                target = _target_port(service_port, pod)
                if target is None:
                    continue
                endpoints[(pod.ip, target)] = self._endpoint(pod, target, opaque)
        return Resolution(True, endpoints, labels, key)

    def _pod_resolution(self, key: Key | None, ip: str, port: int) -> Resolution:
        pod = self._pods.get(key) if key is not None else None
        if pod is None or not pod.running:
            return NOT_FOUND
        return Resolution(True, {(ip, port): self._endpoint(pod, port, False)}, {}, None)

    def _endpoint(self, pod: _Pod, port: int, opaque: bool) -> Endpoint:
        namespace, name = pod.key
        labels = {"pod": name, "serviceaccount": pod.service_account}
        workload = pod.labels.get(WORKLOAD_LABEL)
        if workload:
            labels["deployment"] = workload
        identity = (
            identity_name(pod.service_account, namespace, self.trust_domain) if pod.meshed else None
        )
        return Endpoint(pod.ip or "", port, identity=identity, opaque=opaque, labels=labels)


def split_path(path: str) -> tuple[str, int | None]:
    host, sep, port_text = path.rpartition(":")
    if not sep or not port_text.isdigit():
        return path, None
    port = int(port_text)
    return host.strip("[]"), port if 0 < port < 65536 else None


def _target_port(port: ServicePort, pod: _Pod) -> int | None:
    target = port.target_port if port.target_port is not None else port.port
    if isinstance(target, int):
        return target
    return pod.port_names.get(target)


def _is_opaque(port: ServicePort, annotations: Mapping[str, str]) -> bool:
    if port.app_protocol and port.app_protocol.endswith("opaque"):
        return True
    opaque_ports = annotations.get("config.gossamer.dev/opaque-ports", "")
    return str(port.port) in {p.strip() for p in opaque_ports.split(",")}


def diff(
    old: Mapping[tuple[str, int], Endpoint], new: Mapping[tuple[str, int], Endpoint]
) -> tuple[list[Endpoint], list[tuple[str, int]]]:
    """(added or changed endpoints, removed addresses) between two endpoint sets."""
    added = [ep for addr, ep in new.items() if old.get(addr) != ep]
    removed = [addr for addr in old if addr not in new]
    return added, removed


def affected(index: EndpointIndex, namespace: str, labels: Iterable[Mapping[str, str]]) -> set[Key]:
    out: set[Key] = set()
    for label_set in labels:
        out.update(index.services_selecting(namespace, label_set))
    return out
