"""The service controller: virtual IPs, DNAT rules, pod hosts files and scrape targets.

It watches Services and Pods and, after every change (coalesced over a few milliseconds),
brings four things in line with them:

- every Service without a `clusterIP` gets one from the service CIDR (written to its spec,
  as Kubernetes' allocator does; an address already held stays with its Service);
- the node namespace's nat table: each TCP port of each Service with a VIP, DNAT-ed to the
  ready pods its selector matches (named target ports resolved through the pod's spec);
- every pod's hosts file (`ClusterDNS`);
- the list of meshed, running pods that Prometheus scrapes (`on_targets`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable

from gossamer.control.store import Store, StoreError, WatchEventType
from gossamer.core.resources import (
    WORKLOAD_LABEL,
    PodPhase,
    PodSpec,
    PodStatus,
    Resource,
    ServiceSpec,
    selector_matches,
)
from gossamer.local.hosts import ServiceAddress
from gossamer.local.prometheus_config import ScrapeTarget
from gossamer.local.servicerules import Endpoint, ServiceRoute, render_nat_table
from gossamer.local.supervisor.dns import ClusterDNS
from gossamer.local.supervisor.network import NodeNetwork
from gossamer.local.vips import ServiceCIDRExhausted, ServiceIPAllocator

log = logging.getLogger(__name__)

Key = tuple[str, str]
COALESCE_SECONDS = 0.02


class ServiceController:
    def __init__(
        self,
        store: Store,
        network: NodeNetwork,
        dns: ClusterDNS,
        allocator: ServiceIPAllocator,
        on_targets: Callable[[list[ScrapeTarget]], None],
    ) -> None:
        self._store = store
        self._network = network
        self._dns = dns
        self._allocator = allocator
        self._on_targets = on_targets
        self._services: dict[Key, Resource] = {}
        self._pods: dict[Key, Resource] = {}
        self._synced: set[str] = set()
        self._changed = asyncio.Event()
        self._nat_table: str | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch("Service", self._services))
            group.create_task(self._watch("Pod", self._pods))
            group.create_task(self._reconcile_loop())

    async def _watch(self, kind: str, objects: dict[Key, Resource]) -> None:
        async for event in self._store.watch(kind):
            if event.type is WatchEventType.RESET:
                objects.clear()
                self._synced.discard(kind)
                continue
            if event.type is WatchEventType.SYNCED:
                self._synced.add(kind)
            elif event.resource is not None:
                key = (event.resource.namespace, event.resource.name)
                if event.type is WatchEventType.DELETED:
                    objects.pop(key, None)
                else:
                    objects[key] = event.resource
            if self._synced >= {"Service", "Pod"}:
                self._changed.set()

    async def _reconcile_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(COALESCE_SECONDS)
            self._changed.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("service reconcile failed; retrying on the next change")

    async def reconcile(self) -> None:
        await self._allocate_addresses()
        routes = list(service_routes(self._services.values(), self._pods.values()))
        table = render_nat_table(routes, self._network.subnet)
        if table != self._nat_table:
            await self._network.apply_service_rules(table)
            self._nat_table = table
        self._dns.set_services(service_addresses(self._services.values()))
        self._on_targets(list(scrape_targets(self._pods.values())))

    async def _allocate_addresses(self) -> None:
        present = {f"{namespace}/{name}" for namespace, name in self._services}
        for gone in self._allocator.holders() - present:
            self._allocator.release(gone)
        for key, service in sorted(self._services.items()):
            holder = f"{key[0]}/{key[1]}"
            spec = service.spec_as(ServiceSpec)
            if spec.headless:
                continue
            if spec.cluster_ip is not None and self._allocator.reserve(holder, spec.cluster_ip):
                continue
            try:
                address = self._allocator.allocate(holder)
            except ServiceCIDRExhausted as error:
                log.error("Service %s/%s: %s", *key, error)
                continue
            if spec.cluster_ip is not None:
                log.warning(
                    "Service %s/%s: clusterIP %s is taken or outside %s; moving it to %s",
                    *key,
                    spec.cluster_ip,
                    self._allocator.network,
                    address,
                )
            updated = dataclasses.replace(
                service, spec=dataclasses.replace(spec, cluster_ip=str(address))
            )
            try:
                self._services[key] = await self._store.update(updated)
            except StoreError as error:
                # Changed or deleted meanwhile: the watch brings the news and another round.
                log.info("Service %s/%s: clusterIP not written (%s)", *key, error)


def _ready_pod_ip(pod: Resource) -> str | None:
    status = pod.status_as(PodStatus)
    if status is None or status.phase != PodPhase.RUNNING or not status.ready:
        return None
    return status.pod_ip


def service_routes(
    services: Iterable[Resource], pods: Iterable[Resource]
) -> Iterable[ServiceRoute]:
    """Each TCP port of each Service with a VIP and a selector, with its ready endpoints."""
    pod_list = list(pods)
    for service in services:
        spec = service.spec_as(ServiceSpec)
        if spec.cluster_ip is None or spec.headless or not spec.selector:
            continue
        members = [
            pod
            for pod in pod_list
            if pod.namespace == service.namespace
            and selector_matches(spec.selector, pod.metadata.labels)
        ]
        for port in spec.ports:
            if port.protocol != "TCP":
                continue
            endpoints = []
            for pod in members:
                ip = _ready_pod_ip(pod)
                target = _target_port(port.target_port, pod)
                if ip is not None and target is not None:
                    endpoints.append(Endpoint(ip, target))
            yield ServiceRoute(
                service.namespace,
                service.name,
                spec.cluster_ip,
                port.port,
                tuple(sorted(endpoints)),
            )


def _target_port(target: int | str | None, pod: Resource) -> int | None:
    if isinstance(target, int):
        return target
    if target is None:
        return None
    named = pod.spec_as(PodSpec).port_named(target)
    return None if named is None else named.container_port


def service_addresses(services: Iterable[Resource]) -> Iterable[ServiceAddress]:
    for service in services:
        spec = service.spec_as(ServiceSpec)
        if spec.cluster_ip is not None and not spec.headless:
            yield ServiceAddress(service.namespace, service.name, spec.cluster_ip)


def scrape_targets(pods: Iterable[Resource]) -> Iterable[ScrapeTarget]:
    """Meshed pods whose proxy is up: a pod with `status.proxy` has a sidecar."""
    for pod in pods:
        status = pod.status_as(PodStatus)
        if status is None or status.proxy is None or status.pod_ip is None:
            continue
        if status.phase not in (PodPhase.RUNNING, PodPhase.PENDING):
            continue
        workload = pod.metadata.labels.get(WORKLOAD_LABEL, pod.name)
        yield ScrapeTarget(pod.namespace, pod.name, workload, status.pod_ip)
