"""The workload controller: `replicas` pods of every Workload, and a `Pod` object for each.

Workloads come from a store watch; a Workload's pods are `NAME-0 .. NAME-(replicas-1)`.
A pod whose workload is gone, or whose workload's spec changed, is stopped (and started
again from the new spec). Pods report changes through `PodRuntime`'s callback; one writer
task turns them into store writes in order, so a stopped pod's last status can never be
written after its `Pod` object was deleted. A `Pod` object deleted by someone else (`gossamer
delete pod`) restarts that pod, as a ReplicaSet would replace it. The first write of a pod's
`Pod` object tells its runtime the object's uid, which its join token is bound to.

The controller knows only the `Store` interface, never its backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from collections.abc import Coroutine
from typing import Any

from gossamer.control.store import NotFound, Store, StoreError, WatchEvent, WatchEventType
from gossamer.core.resources import Resource, WorkloadSpec, WorkloadStatus
from gossamer.local.supervisor.dns import ClusterDNS
from gossamer.local.supervisor.network import NodeNetwork
from gossamer.local.supervisor.podruntime import PodPlan, PodRuntime, PodSettings

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


class WorkloadController:
    def __init__(
        self,
        store: Store,
        network: NodeNetwork,
        dns: ClusterDNS,
        settings: PodSettings,
        preferred_ips: dict[Key, ipaddress.IPv4Address] | None = None,
    ) -> None:
        self._store = store
        self._network = network
        self._dns = dns
        self._settings = settings
        self._preferred_ips = dict(preferred_ips or {})
        self._workloads: dict[Key, Resource] = {}
        self._runtimes: dict[Key, PodRuntime] = {}
        self._stopping: dict[Key, PodRuntime] = {}
        self._uids: dict[Key, str] = {}
        self._dirty: set[Key] = set()
        self._to_delete: set[Key] = set()
        self._workload_status: dict[Key, WorkloadStatus] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def run(self) -> None:
        """Watch Workloads and Pods and write statuses until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_workloads())
            group.create_task(self._watch_pods())
            group.create_task(self._write_loop())

    async def _watch_workloads(self) -> None:
        in_snapshot = False
        async for event in self._store.watch("Workload"):
            if event.type is WatchEventType.RESET:
                in_snapshot = True
                self._workloads.clear()
            elif event.type is WatchEventType.SYNCED:
                in_snapshot = False
            elif event.resource is not None:
                key = (event.resource.namespace, event.resource.name)
                if event.type is WatchEventType.DELETED:
                    self._workloads.pop(key, None)
                else:
                    self._workloads[key] = event.resource
            if not in_snapshot:
                self._reconcile()

    async def _watch_pods(self) -> None:
        async for event in self._store.watch("Pod"):
            self._on_pod_event(event)

    def _on_pod_event(self, event: WatchEvent) -> None:
        if event.type is not WatchEventType.DELETED or event.resource is None:
            return
        key = (event.resource.namespace, event.resource.name)
        runtime = self._runtimes.get(key)
        if runtime is not None and self._uids.get(key) == event.resource.metadata.uid:
            log.info("Pod %s/%s was deleted: restarting it", *key)
            self._uids.pop(key, None)
            self._stop(key)

    def _desired(self) -> dict[Key, PodPlan]:
        plans = {}
        for (namespace, workload), resource in self._workloads.items():
            spec = resource.spec_as(WorkloadSpec)
            for index in range(spec.replicas):
                key = (namespace, f"{workload}-{index}")
                plans[key] = PodPlan(
                    namespace, key[1], workload, spec, self._preferred_ips.get(key)
                )
        return plans

    def _reconcile(self) -> None:
        if self._closing:
            return
        desired = self._desired()
        for key, runtime in list(self._runtimes.items()):
            plan = desired.get(key)
            if plan is None or (plan.workload, plan.spec) != (
                runtime.plan.workload,
                runtime.plan.spec,
            ):
                self._stop(key)
        for key, plan in desired.items():
            if key not in self._runtimes and key not in self._stopping:
                runtime = PodRuntime(plan, self._network, self._dns, self._settings, self._changed)
                self._runtimes[key] = runtime
                runtime.start()
                self._changed(runtime)
        self._wake.set()

    def _stop(self, key: Key) -> None:
        runtime = self._runtimes.pop(key)
        self._stopping[key] = runtime
        if runtime.pod_ip is not None:
            self._preferred_ips[key] = ipaddress.IPv4Address(runtime.pod_ip)
        self._spawn(self._stop_runtime(key, runtime))

    async def _stop_runtime(self, key: Key, runtime: PodRuntime) -> None:
        try:
            await runtime.stop()
        except Exception:
            log.exception("stopping pod %s/%s", *key)
        self._to_delete.add(key)
        self._wake.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _changed(self, runtime: PodRuntime) -> None:
        self._dirty.add(runtime.key)
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._write_pending()

    async def _write_pending(self) -> None:
        for key in sorted(self._dirty):
            self._dirty.discard(key)
            runtime = self._runtimes.get(key) or self._stopping.get(key)
            if runtime is None or key in self._to_delete:
                continue
            try:
                stored = await self._store.apply(runtime.to_resource())
            except StoreError as error:
                log.warning("writing Pod %s/%s: %s", *key, error)
                continue
            if self._runtimes.get(key) is not runtime:
                continue
            self._uids[key] = stored.metadata.uid
            runtime.bind_uid(stored.metadata.uid)
            if runtime.uid != stored.metadata.uid:
                # Deleted and written again before the deletion was seen: its join token
                # names the old uid, so the pod starts again as a new one.
                log.info("Pod %s/%s was replaced under its pod: restarting it", *key)
                self._uids.pop(key, None)
                self._stop(key)
        for key in sorted(self._to_delete):
            self._to_delete.discard(key)
            self._uids.pop(key, None)
            try:
                await self._store.delete("Pod", *key, missing_ok=True)
            except StoreError as error:
                log.warning("deleting Pod %s/%s: %s", *key, error)
            self._stopping.pop(key, None)
            self._reconcile()
        await self._write_workload_statuses()

    async def _write_workload_statuses(self) -> None:
        counts: dict[Key, list[int]] = {key: [0, 0] for key in self._workloads}
        for runtime in self._runtimes.values():
            count = counts.get((runtime.plan.namespace, runtime.plan.workload))
            if count is not None:
                count[0] += 1
                count[1] += runtime.ready
        for key, (replicas, ready) in counts.items():
            status = WorkloadStatus(replicas=replicas, ready_replicas=ready)
            if self._workload_status.get(key) == status:
                continue
            workload = self._workloads[key]
            unconditional = dataclasses.replace(workload.metadata, resource_version="")
            try:
                await self._store.update_status(
                    dataclasses.replace(workload, metadata=unconditional, status=status)
                )
                self._workload_status[key] = status
            except NotFound:
                pass
            except StoreError as error:
                log.warning("writing Workload %s/%s status: %s", *key, error)

    async def shutdown(self) -> None:
        """Stop every pod and delete every Pod object (the supervisor is going away)."""
        self._closing = True
        for key in list(self._runtimes):
            self._stop(key)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=30.0)
        await self._write_pending()

    def runtimes(self) -> list[PodRuntime]:
        return list(self._runtimes.values())
