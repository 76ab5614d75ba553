"""Which endpoints an address names: a pure index of Services and Pods.

Theory of operation: the index holds the current Services and Pods (fed by store watches).
`resolve(path)` turns `host:port` into a `Resolution`: the service it names (by DNS name or
virtual IP), or a single pod (by pod IP), or nothing. Each endpoint carries what the proxy
needs: address, weight, identity (when its pod is meshed), protocol hint and labels.

Cost at scale (thousands of pods, many streams per service): membership is kept
incrementally, so nothing scans every pod. Each Service knows the pods its selector picks
(`_members`) and each pod the Services that pick it (`_selected_by`); a pod event finds its
Services through an index of selectors by one of their label pairs, and a Service whose
selector changed re-reads the pods of its namespace only. A Service port's resolution is
built from its members once and cached until the Service or one of its pods changes, so N
streams on one service cost one resolution per change, not N scans of every pod.
`set_pod`/`remove_pod` return the Services a pod event touched, for waking their streams.

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
    # The service this resolution follows, so changes to it can be routed to subscribers
    # (also set when a name or port names no endpoints yet, so its appearance is noticed).
    service: Key | None = None
    # The address a pod-IP target follows (several pods may have held it; a Running one wins).
    address: str | None = None


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
        self._by_pod_ip: dict[str, set[Key]] = {}
        self._pods_in_namespace: dict[str, set[Key]] = {}
        # (namespace, label, value) -> Services whose selector holds that pair (each Service
        # is filed under one pair of its selector: a pod lacking it cannot match).
        self._selectors: dict[tuple[str, str, str], set[Key]] = {}
        self._members: dict[Key, set[Key]] = {}
        self._selected_by: dict[Key, set[Key]] = {}
        self._resolutions: dict[Key, dict[int, Resolution]] = {}

    # -- feeding -------------------------------------------------------------------------
    def set_service(self, resource: Resource) -> None:
        key = (resource.namespace, resource.name)
        spec = resource.spec_as(ServiceSpec)
        old = self._services.get(key)
        members = self._members.get(key) if old and old[0].selector == spec.selector else None
        self.remove_service(key)
        self._services[key] = (spec, dict(resource.metadata.annotations))
        if spec.cluster_ip and spec.cluster_ip != "None":
            self._by_vip[spec.cluster_ip] = key
        if not spec.selector:
            return
        self._selectors.setdefault(_selector_slot(key[0], spec.selector), set()).add(key)
        if members is None:
            members = {
                pod_key
                for pod_key in self._pods_in_namespace.get(key[0], ())
                if selector_matches(spec.selector, self._pods[pod_key].labels)
            }
        self._members[key] = members
        for pod_key in members:
            self._selected_by.setdefault(pod_key, set()).add(key)

    def remove_service(self, key: Key) -> None:
        old = self._services.pop(key, None)
        self._resolutions.pop(key, None)
        if old is None:
            return
        spec = old[0]
        if spec.cluster_ip and self._by_vip.get(spec.cluster_ip) == key:
            del self._by_vip[spec.cluster_ip]
        if spec.selector:
            slot = _selector_slot(key[0], spec.selector)
            self._selectors[slot].discard(key)
            if not self._selectors[slot]:
                del self._selectors[slot]
        for pod_key in self._members.pop(key, set()):
            self._selected_by[pod_key].discard(key)

    def set_pod(self, resource: Resource) -> set[Key]:
        """Add or replace a pod; returns the Services it was or is now an endpoint of."""
        key = (resource.namespace, resource.name)
        old = self._pods.get(key)
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
        if old is not None:
            self._forget_address(old)
        self._pods[key] = pod
        self._pods_in_namespace.setdefault(key[0], set()).add(key)
        if pod.ip:
            self._by_pod_ip.setdefault(pod.ip, set()).add(key)
        before = set(self._selected_by.get(key, ()))
        if old is not None and old.labels == pod.labels:
            after = before
        else:
            after = set(self.services_selecting(key[0], pod.labels))
            for service in before - after:
                self._members[service].discard(key)
            for service in after - before:
                self._members[service].add(key)
            self._selected_by[key] = after
        touched = before | after
        self._forget_resolutions(touched)
        return touched

    def remove_pod(self, key: Key) -> set[Key]:
        """Forget a pod; returns the Services it was an endpoint of."""
        old = self._pods.pop(key, None)
        if old is None:
            return set()
        self._forget_address(old)
        self._pods_in_namespace[key[0]].discard(key)
        touched = self._selected_by.pop(key, set())
        for service in touched:
            self._members[service].discard(key)
        self._forget_resolutions(touched)
        return touched

    def clear_services(self) -> None:
        self._services.clear()
        self._by_vip.clear()
        self._selectors.clear()
        self._members.clear()
        self._selected_by.clear()
        self._resolutions.clear()

    def clear_pods(self) -> None:
        self._pods.clear()
        self._by_pod_ip.clear()
        self._pods_in_namespace.clear()
        self._selected_by.clear()
        for members in self._members.values():
            members.clear()
        self._resolutions.clear()

    def _forget_address(self, pod: _Pod) -> None:
        holders = self._by_pod_ip.get(pod.ip or "")
        if holders is not None:
            holders.discard(pod.key)
            if not holders:
                del self._by_pod_ip[pod.ip or ""]

    def _forget_resolutions(self, services: Iterable[Key]) -> None:
        for service in services:
            self._resolutions.pop(service, None)

    # -- queries -------------------------------------------------------------------------
    def services_selecting(self, namespace: str, labels: Mapping[str, str]) -> list[Key]:
        candidates: set[Key] = set()
        for label, value in labels.items():
            candidates.update(self._selectors.get((namespace, label, value), ()))
        return sorted(
            key for key in candidates if selector_matches(self._services[key][0].selector, labels)
        )

    def pod_labels(self, key: Key) -> Mapping[str, str] | None:
        pod = self._pods.get(key)
        return pod.labels if pod is not None else None

    def pod_ip(self, key: Key) -> str | None:
        pod = self._pods.get(key)
        return pod.ip if pod is not None else None

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
                return self._pod_resolution(host, port)
        if key is None:
            return NOT_FOUND
        if key not in self._services:
            return Resolution(False, service=key)
        cached = self._resolutions.setdefault(key, {})
        resolution = cached.get(port)
        if resolution is None:
            resolution = cached[port] = self._service_resolution(key, port)
        return resolution

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
            return Resolution(False, service=key)
        labels = {"service": key[1], "namespace": key[0], "port": str(port)}
        endpoints: dict[tuple[str, int], Endpoint] = {}
        opaque = _is_opaque(service_port, annotations)
        for pod_key in sorted(self._members.get(key, ())):
            pod = self._pods[pod_key]
            if not pod.running or not pod.ip:
                continue
            target = _target_port(service_port, pod)
            if target is None:
                continue
            endpoints[(pod.ip, target)] = self._endpoint(pod, target, opaque)
        return Resolution(True, endpoints, labels, key)

    def _pod_resolution(self, ip: str, port: int) -> Resolution:
        # An address is reused once its pod has finished, while that pod may still be
        # listed: the Running holder is the endpoint.
        running = sorted(k for k in self._by_pod_ip.get(ip, ()) if self._pods[k].running)
        if not running:
            return Resolution(False, address=ip)
        pod = self._pods[running[0]]
        return Resolution(True, {(ip, port): self._endpoint(pod, port, False)}, address=ip)

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


def _selector_slot(namespace: str, selector: Mapping[str, str]) -> tuple[str, str, str]:
    label = min(selector)
    return (namespace, label, selector[label])


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
