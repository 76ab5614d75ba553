"""`gossamer run NAME -n NS [--port P]... [--replicas N] -- CMD...`: start a workload.

Stores a Workload and (with ports) a Service of the same name, then waits, bounded by
`--timeout`, until every pod is ready, and prints them. The supervisor does the rest.
"""

from __future__ import annotations

from pathlib import Path

import click

from gossamer.cli.get import render
from gossamer.cli.local_common import (
    namespace_option,
    open_store,
    reports_errors,
    run,
    state_dir_option,
    state_of,
)
from gossamer.control.store import Store
from gossamer.core.resources import PodStatus, Resource, ServiceSpec
from gossamer.local.launcher import running_mesh
from gossamer.local.workloadrequest import RunRejected, RunRequest, submit, wait_for_pods


def _parse_env(values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


async def _run(
    store: Store, request: RunRequest, wait: bool, timeout: float
) -> tuple[Resource | None, bool, list[Resource]]:
    try:
        _, service = await submit(store, request)
        if not wait:
            return service, True, []
        ready, pods = await wait_for_pods(
            store, request.namespace, request.name, request.replicas, timeout
        )
        if service is not None:
            service = await store.get("Service", request.namespace, request.name)
        return service, ready, pods
    finally:
        await store.close()


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True)
@namespace_option
@click.option(
    "--port",
    "ports",
    type=click.IntRange(1, 65535),
    multiple=True,
    help="A port the app serves (repeat for more).",
)
@click.option("--replicas", type=click.IntRange(0, 100), default=1, show_default=True)
@click.option("--service-account", default="default", show_default=True)
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="App environment (repeat).")
@click.option("--no-mesh", is_flag=True, help="Run without the proxy sidecar.")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 600),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the pods to be ready (0: do not wait).",
)
@state_dir_option
@reports_errors
def run_command(
    name: str,
    command: tuple[str, ...],
    namespace: str,
    ports: tuple[int, ...],
    replicas: int,
    service_account: str,
    env: tuple[str, ...],
    no_mesh: bool,
    timeout: float,
    state_dir: Path | None,
) -> None:
    """Run CMD as NAME in NS: `replicas` pods behind a Service NAME.NS with --port ports.

    Put `--` before CMD when it has options of its own.
    """
    state = state_of(state_dir)
    running_mesh(state)
    request = RunRequest(
        name=name,
        namespace=namespace,
        command=command,
        ports=ports,
        replicas=replicas,
        service_account=service_account,
        env=_parse_env(env),
        mesh=not no_mesh,
    )
    service, ready, pods = run(_run(open_store(state), request, timeout > 0, timeout))
    click.echo(f"workload/{name} created in {namespace}")
    if service is not None:
        ip = service.spec_as(ServiceSpec).cluster_ip or "<pending>"
        click.echo(f"service/{name} created: {name}.{namespace}.svc.cluster.local ({ip})")
    if pods:
        click.echo(render(pods, "Pod", "table"))
    if not ready:
        problems = [
            f"  {pod.name}: {status.reason or status.phase}: {status.message}"
            for pod in pods
            if (status := pod.status_as(PodStatus)) and status.message
        ]
        raise RunRejected(
            f"the pods of {name} are not all ready (waited up to {timeout:.0f}s)"
            + ("\n" + "\n".join(problems) if problems else "")
            + f"\nsee `gossamer logs {name}-0 -n {namespace}` (add --proxy for the proxy's)"
        )
