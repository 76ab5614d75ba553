"""Local mode's checks: the state directory, the control plane, identity, Prometheus, the
data plane.

Each check reads afresh (files, store, Prometheus) so a retry sees the current state. What
`gossamer up` wrote is the source of truth: `runtime.json` (node namespace, Prometheus URL,
supervisor pid, service addresses, trust files) and `supervisor.json` (the supervisor's
own report). The identity checks are in `identity`; what checks read is in `context`.
"""

from __future__ import annotations

import asyncio
import os

from gossamer.core.resources import PodPhase, Resource
from gossamer.healthcheck.context import (
    UP_HINT,
    LocalCheckContext,
    connect_in_netns,
    pod_names,
    split_address,
)
from gossamer.healthcheck.framework import Category, Check, CheckFailure
from gossamer.healthcheck.identity import IDENTITY_CHECKS
from gossamer.local.launcher import supervisor_marker
from gossamer.local.nssocket import NETNS_DIR
from gossamer.local.ownership import is_ours, process_alive
from gossamer.local.prometheus_config import PROXY_JOB
from gossamer.local.state import SupervisorState
from gossamer.viz.inventory import is_meshed, pod_status
from gossamer.viz.prometheus import PrometheusError

__all__ = ["LOCAL_CHECKS", "LocalCheckContext"]

# -- gossamer-local --------------------------------------------------------------------------


async def state_dir_exists(ctx: LocalCheckContext) -> str | None:
    if not ctx.state.root.is_dir():
        raise CheckFailure(f"{ctx.state.root} does not exist")
    return None


async def runtime_recorded(ctx: LocalCheckContext) -> str | None:
    ctx.runtime()
    return None


async def store_readable(ctx: LocalCheckContext) -> str | None:
    workloads = await ctx.store().list("Workload")
    return f"{len(workloads)} workload(s)"


# -- gossamer-control-plane ------------------------------------------------------------------


async def node_namespace_exists(ctx: LocalCheckContext) -> str | None:
    netns = ctx.runtime().node_netns
    if not os.path.exists(os.path.join(NETNS_DIR, netns)):
        raise CheckFailure(f"network namespace {netns} does not exist")
    return None


async def supervisor_running(ctx: LocalCheckContext) -> str | None:
    pid = ctx.runtime().supervisor_pid
    if is_ours(pid, supervisor_marker(ctx.state)):
        return f"pid {pid}"
    if process_alive(pid):
        raise CheckFailure(f"pid {pid} is alive but is not this mesh's supervisor")
    raise CheckFailure(f"the supervisor (pid {pid}) is not running")


async def supervisor_ready(ctx: LocalCheckContext) -> str | None:
    report = ctx.supervisor()
    if report is None:
        raise CheckFailure(f"{ctx.state.supervisor_file} does not exist")
    if report.state != SupervisorState.READY:
        why = f": {report.message}" if report.message else ""
        raise CheckFailure(f"the supervisor is {report.state}{why}")
    return None


async def destination_accepts(ctx: LocalCheckContext) -> str | None:
    runtime = ctx.runtime()
    host, port = split_address(runtime.destination_addr, "destination")
    await connect_in_netns(runtime.node_netns, host, port)
    return runtime.destination_addr


# -- gossamer-prometheus ---------------------------------------------------------------------


async def prometheus_ready(ctx: LocalCheckContext) -> str | None:
    client = ctx.prometheus()
    try:
        ready = await asyncio.to_thread(client.ready)
    except PrometheusError as error:
        raise CheckFailure(str(error)) from None
    if not ready:
        raise CheckFailure(f"Prometheus at {client.url} is not ready yet")
    return client.url


def _running_meshed(pods: list[Resource]) -> list[Resource]:
    return [pod for pod in pods if is_meshed(pod) and pod_status(pod).phase is PodPhase.RUNNING]


async def prometheus_scrapes_proxies(ctx: LocalCheckContext) -> str | None:
    """Every running meshed pod is a target, and every target's last scrape worked (`up`)."""
    client = ctx.prometheus()
    try:
        samples = await asyncio.to_thread(client.query, f'up{{job="{PROXY_JOB}"}}')
    except PrometheusError as error:
        raise CheckFailure(str(error)) from None
    up = {(s.labels.get("namespace", ""), s.labels.get("pod", "")): s.value for s in samples}
    meshed = _running_meshed(await ctx.pods())
    missing = [pod for pod in meshed if (pod.namespace, pod.name) not in up]
    down = [pod for pod in meshed if up.get((pod.namespace, pod.name)) == 0]
    if missing:
        raise CheckFailure(
            f"not scraped yet: {pod_names(missing)}",
            "Prometheus picks up new pods within a few seconds; try `gossamer check --wait 30s`",
        )
    if down:
        raise CheckFailure(
            f"scrapes fail (up == 0): {pod_names(down)}",
            "see the targets' errors at <prometheus>/targets and the pods' proxy.log",
        )
    return f"{len(meshed)} proxies"


# -- gossamer-data-plane ---------------------------------------------------------------------


async def pods_running(ctx: LocalCheckContext) -> str | None:
    pods = await ctx.pods()
    waiting = [pod for pod in pods if pod_status(pod).phase is not PodPhase.RUNNING]
    if waiting:
        details = "; ".join(
            f"{pod.namespace}/{pod.name} is {pod_status(pod).phase}"
            + (f" ({pod_status(pod).message})" if pod_status(pod).message else "")
            for pod in waiting[:5]
        )
        raise CheckFailure(details)
    return f"{len(pods)} pod(s)"


async def proxies_ready(ctx: LocalCheckContext) -> str | None:
    pods = [
        pod
        for pod in await ctx.pods()
        if is_meshed(pod) and pod_status(pod).phase in (PodPhase.PENDING, PodPhase.RUNNING)
    ]
    unready = [pod for pod in pods if not _proxy_ready(pod)]
    if unready:
        raise CheckFailure(f"proxy not ready: {pod_names(unready)}")
    return f"{len(pods)} meshed pod(s)"


def _proxy_ready(pod: Resource) -> bool:
    proxy = pod_status(pod).proxy
    return proxy is not None and proxy.ready


LOCAL_CHECKS: tuple[Category[LocalCheckContext], ...] = (
    Category(
        "gossamer-local",
        (
            Check("the state directory exists", state_dir_exists, UP_HINT, fatal=True),
            Check("`gossamer up` has recorded the runtime", runtime_recorded, UP_HINT, fatal=True),
            Check("the store can be read", store_readable, "the store is store.db", fatal=True),
        ),
    ),
    Category(
        "gossamer-control-plane",
        (
            Check(
                "the node network namespace exists",
                node_namespace_exists,
                "`gossamer down` then `gossamer up` rebuilds the node",
            ),
            Check(
                "the supervisor is running",
                supervisor_running,
                "`gossamer up` starts it again; see supervisor.log in the state directory",
            ),
            Check(
                "the supervisor reports ready",
                supervisor_ready,
                "see supervisor.log in the state directory",
            ),
            Check(
                "the destination service accepts connections",
                destination_accepts,
                "see supervisor.log in the state directory",
            ),
        ),
    ),
    IDENTITY_CHECKS,
    Category(
        "gossamer-prometheus",
        (
            Check(
                "Prometheus is ready",
                prometheus_ready,
                "the supervisor runs Prometheus; see prometheus/ in the state directory",
            ),
            Check(
                "Prometheus scrapes every meshed pod's proxy",
                prometheus_scrapes_proxies,
                "see <prometheus>/targets",
            ),
        ),
    ),
    Category(
        "gossamer-data-plane",
        (
            Check(
                "every pod is running",
                pods_running,
                "`gossamer get pods -A` and `gossamer logs POD -n NS` show why",
            ),
            Check(
                "every meshed pod's proxy is ready",
                proxies_ready,
                "see the pod's proxy.log in pods/NS/POD/ of the state directory",
            ),
        ),
    ),
)
