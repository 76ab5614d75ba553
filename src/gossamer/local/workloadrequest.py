"""`gossamer run` as library code: the Workload and Service it stores, checks, and the wait.

A run request becomes a `Workload` (replicas of a command, labelled `app: NAME`) and, when it
has ports, a `Service` of the same name selecting `app: NAME` with those ports. The Service
is annotated with the workload it was made for, so `gossamer delete service NAME` can remove
both. Both are validated exactly as applied YAML would be; a name already taken, or a port
the pod's proxy needs, is refused before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from gossamer.control.store import AlreadyExists, NotFound, Store
from gossamer.core.resources import (
    APP_LABEL,
    ObjectMeta,
    PodStatus,
    Resource,
    ServicePort,
    ServiceSpec,
    WorkloadSpec,
    validate,
)
from gossamer.core.resources.pod import DEFAULT_SERVICE_ACCOUNT
from gossamer.local.errors import LocalModeError

WORKLOAD_ANNOTATION = "local.gossamer.dev/workload"
# The meshed pod's proxy listens on these (outbound, inbound, tap, admin).
PROXY_PORTS = (4140, 4143, 4190, 4191)


class RunRejected(LocalModeError):
    """The request clashes with what exists, or cannot run as asked."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    name: str
    namespace: str
    command: tuple[str, ...]
    ports: tuple[int, ...] = ()
    replicas: int = 1
    service_account: str = DEFAULT_SERVICE_ACCOUNT
    env: Mapping[str, str] = field(default_factory=dict)
    mesh: bool = True


def workload_of(request: RunRequest) -> Resource:
    return validate(
        Resource(
            api_version="local.gossamer.dev/v1alpha1",
            kind="Workload",
            metadata=ObjectMeta(name=request.name, namespace=request.namespace),
            spec=WorkloadSpec(
                command=request.command,
                replicas=request.replicas,
                env=dict(request.env),
                ports=request.ports,
                service_account_name=request.service_account,
                mesh=request.mesh,
            ),
        )
    )


def service_of(request: RunRequest) -> Resource | None:
    if not request.ports:
        return None
    several = len(request.ports) > 1
    ports = tuple(
        ServicePort(port=port, name=f"tcp-{port}" if several else None) for port in request.ports
    )
    return validate(
        Resource(
            api_version="v1",
            kind="Service",
            metadata=ObjectMeta(
                name=request.name,
                namespace=request.namespace,
                annotations={WORKLOAD_ANNOTATION: request.name},
            ),
            spec=ServiceSpec(ports=ports, selector={APP_LABEL: request.name}),
        )
    )


def check_ports(request: RunRequest) -> None:
    if len(set(request.ports)) != len(request.ports):
        raise RunRejected(f"--port: each port once (got {', '.join(map(str, request.ports))})")
    if request.mesh:
        taken = sorted(set(request.ports) & set(PROXY_PORTS))
        if taken:
            raise RunRejected(
                f"port {taken[0]} is the pod proxy's own (4140, 4143, 4190, 4191 are taken in a "
                "meshed pod): choose another port, or --no-mesh"
            )


async def _exists(store: Store, kind: str, namespace: str, name: str) -> Resource | None:
    try:
        return await store.get(kind, namespace, name)
    except NotFound:
        return None


async def submit(store: Store, request: RunRequest) -> tuple[Resource, Resource | None]:
    """Check and store the Workload (and Service); returns them as stored."""
    check_ports(request)
    workload, service = workload_of(request), service_of(request)
    where = f"namespace {request.namespace}"
    if service is not None and (old := await _exists(store, "Service", *_key(request))):
        ports = ", ".join(str(p.port) for p in old.spec_as(ServiceSpec).ports)
        raise RunRejected(
            f"a Service {request.name} already exists in {where} (ports {ports}): "
            f"`gossamer delete service {request.name} -n {request.namespace}` first, "
            "or choose another name"
        )
    if await _exists(store, "Workload", *_key(request)) is not None:
        raise RunRejected(
            f"a Workload {request.name} already exists in {where}: "
            f"`gossamer delete workload {request.name} -n {request.namespace}` first, "
            "or choose another name"
        )
    account = Resource(
        api_version="v1",
        kind="ServiceAccount",
        metadata=ObjectMeta(name=request.service_account, namespace=request.namespace),
    )
    with contextlib.suppress(AlreadyExists):
        await store.create(account)
    stored_service = await store.create(service) if service is not None else None
    try:
        stored_workload = await store.create(workload)
    except AlreadyExists:
        if stored_service is not None:
            await store.delete("Service", *_key(request), missing_ok=True)
        raise RunRejected(f"a Workload {request.name} was just created in {where}") from None
    return stored_workload, stored_service


def _key(request: RunRequest) -> tuple[str, str]:
    return (request.namespace, request.name)


def pod_names(name: str, replicas: int) -> list[str]:
    return [f"{name}-{index}" for index in range(replicas)]


# A pod whose app has exited this often is crash-looping: waiting longer will not help.
CRASH_LOOP_RESTARTS = 2


async def wait_for_pods(
    store: Store, namespace: str, name: str, replicas: int, timeout: float
) -> tuple[bool, list[Resource]]:
    """Poll until every pod of the workload is ready (True), or until `timeout` passes or a
    pod is crash-looping (False); returns the pods as last seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    wanted = set(pod_names(name, replicas))
    while True:
        pods = [pod for pod in await store.list("Pod", namespace) if pod.name in wanted]
        statuses = [pod.status_as(PodStatus) or PodStatus() for pod in pods]
        if len(pods) == len(wanted) and all(status.ready for status in statuses):
            return True, pods
        crashing = any(
            status.restarts >= CRASH_LOOP_RESTARTS and not status.ready for status in statuses
        )
        if crashing or loop.time() >= deadline:
            return False, pods
        await asyncio.sleep(0.2)
