"""`gossamer diagnostics proxy-metrics`: a proxy's raw `/metrics`, as Linkerd's command.

Pod addresses exist only inside the node's network namespace, so the request goes out of a
socket made there (`gossamer.local.nssocket`, which needs root), straight to the pod's admin
port, as Prometheus scrapes it. Each pod's text is preceded by a header naming it.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import click

from gossamer.cli.local_common import state_dir_option
from gossamer.cli.viz import LocalMesh, cli_errors, open_local_mesh
from gossamer.core.resources import DEFAULT_NAMESPACE, Resource
from gossamer.local.nssocket import socket_in_netns
from gossamer.viz.errors import ResourceNotFound, VizError
from gossamer.viz.inventory import (
    StatKind,
    is_live,
    is_meshed,
    load_inventory,
    parse_ref,
    pod_status,
    workload_pods,
)
from gossamer.viz.proxyadmin import ADMIN_PORT, fetch_admin


@click.group("diagnostics")
def diagnostics_command() -> None:
    """Look inside the mesh's components."""


@diagnostics_command.command("proxy-metrics")
@click.argument("target", metavar="POD | pod/POD | deploy/NAME")
@click.option("-n", "--namespace", default=DEFAULT_NAMESPACE, show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=5.0, show_default=True)
@state_dir_option
def proxy_metrics_command(
    target: str, namespace: str, timeout: float, state_dir: Path | None
) -> None:
    """Print the raw Prometheus metrics of a pod's proxy (every pod of a workload with
    deploy/NAME), fetched from its admin port."""
    if "/" not in target:
        target = f"pod/{target}"
    try:
        ref = parse_ref(target, namespace)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if ref.kind is StatKind.SVC:
        raise click.UsageError("proxy-metrics takes a pod or a workload (pod/NAME, deploy/NAME)")
    with cli_errors():
        mesh = open_local_mesh(state_dir)
        pods = asyncio.run(pods_of(mesh, ref.kind, namespace, ref.name))
        for index, pod in enumerate(pods, start=1):
            click.echo(f"#\n# POD {pod.name} ({index} of {len(pods)})\n#")
            click.echo(_fetch(mesh, pod, timeout).decode("utf-8", "replace"), nl=False)


async def pods_of(mesh: LocalMesh, kind: StatKind, namespace: str, name: str) -> list[Resource]:
    store = mesh.store()
    try:
        inventory = await load_inventory(store, namespace)
    finally:
        await store.close()
    if kind is StatKind.POD:
        pods = [pod for pod in inventory.pods if pod.name == name]
        if not pods:
            raise ResourceNotFound("pod", namespace, name)
        return pods
    workload = next((w for w in inventory.workloads if w.name == name), None)
    if workload is None:
        raise ResourceNotFound("deploy", namespace, name)
    pods = [pod for pod in workload_pods(inventory, workload) if is_live(pod)]
    if not pods:
        raise VizError(f"deploy/{name} has no running pods in namespace {namespace}")
    return pods


def _fetch(mesh: LocalMesh, pod: Resource, timeout: float) -> bytes:
    if not is_meshed(pod):
        raise VizError(f"pod {pod.namespace}/{pod.name} has no proxy (it runs unmeshed)")
    ip = pod_status(pod).pod_ip
    if ip is None:
        raise VizError(f"pod {pod.namespace}/{pod.name} has no IP address yet")
    make_socket = partial(socket_in_netns, mesh.runtime.node_netns)
    return fetch_admin(make_socket, ip, "/metrics", port=ADMIN_PORT, timeout=timeout)
