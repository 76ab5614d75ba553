"""`gossamer demo [-n demo]`: deploy the demo app on the local mesh and show it working.

Each of the demo's workloads (`gossamer.demo.manifest.workloads()`) is submitted exactly as
`gossamer run` submits one (`gossamer.local.workloadrequest`): a Workload, and a Service of
the same name with its ports. Workloads already there are left as they are, so running the
command again only waits and shows. Then, each wait bounded: every pod ready; traffic from
vote-bot visible in Prometheus for every serving workload; the `viz stat` table; where to
look next.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from gossamer.cli.local_common import state_dir_option, state_of
from gossamer.cli.viz import cli_errors
from gossamer.control.store import NotFound, SQLiteStore, Store
from gossamer.demo.manifest import DEMO_NAMESPACE, DemoWorkload, workloads
from gossamer.local.launcher import running_mesh
from gossamer.local.state import RuntimeInfo, StateDir
from gossamer.local.workloadrequest import RunRejected, RunRequest, submit, wait_for_pods
from gossamer.viz.errors import VizError
from gossamer.viz.inventory import StatKind
from gossamer.viz.prometheus import PrometheusClient
from gossamer.viz.render import render_table
from gossamer.viz.stat import StatRequest, StatRow, run_stat

POLL_INTERVAL_S = 2.0


def run_request(workload: DemoWorkload) -> RunRequest:
    return RunRequest(
        name=workload.name,
        namespace=workload.namespace,
        command=tuple(workload.command),
        ports=tuple(workload.ports),
        replicas=workload.replicas,
        service_account=workload.service_account,
        env=dict(workload.env),
    )


@dataclass(frozen=True, slots=True)
class Deployed:
    name: str
    created: bool


async def deploy(store: Store, requests: Sequence[RunRequest]) -> list[Deployed]:
    """Submit each request whose Workload does not exist yet, in order."""
    out: list[Deployed] = []
    for request in requests:
        try:
            await store.get("Workload", request.namespace, request.name)
            out.append(Deployed(request.name, created=False))
            continue
        except NotFound:
            pass
        await submit(store, request)
        out.append(Deployed(request.name, created=True))
    return out


async def wait_until_ready(
    store: Store, requests: Sequence[RunRequest], timeout: float
) -> list[str]:
    """Names of the workloads whose pods were not all ready before the deadline."""
    deadline = time.monotonic() + timeout
    late: list[str] = []
    for request in requests:
        remaining = max(0.0, deadline - time.monotonic())
        ready, _ = await wait_for_pods(
            store, request.namespace, request.name, request.replicas, remaining
        )
        if not ready:
            late.append(request.name)
    return late


def traffic_flows(rows: Sequence[StatRow], serving: Sequence[str]) -> bool:
    by_name = {row.name: row for row in rows}
    return all(
        (row := by_name.get(name)) is not None and row.rps is not None and row.rps > 0
        for name in serving
    )


async def wait_for_traffic(
    store: Store,
    client: PrometheusClient,
    namespace: str,
    serving: Sequence[str],
    timeout: float,
) -> tuple[bool, list[StatRow]]:
    """Poll `viz stat deploy` until every serving workload has requests (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = await run_stat(store, client, StatRequest(StatKind.DEPLOY, namespace))
        except VizError:
            rows = []  # Prometheus may still be starting: try again until the deadline
        if traffic_flows(rows, serving) or time.monotonic() >= deadline:
            return traffic_flows(rows, serving), rows
        await asyncio.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))


def next_steps(namespace: str, state: StateDir, runtime: RuntimeInfo) -> list[str]:
    flag = "" if state == StateDir.at(None) else f" --state-dir {state.root}"
    ns = f"-n {namespace}{flag}"
    url = f"http://web.{namespace}.svc.{runtime.cluster_domain}:8080/api/leaderboard"
    return [
        "Where to look next:",
        f"  gossamer viz stat deploy {ns}",
        f"  gossamer viz stat deploy {ns} --from deploy/vote-bot",
        f"  gossamer get pods {ns}",
        f"  gossamer exec vote-bot-0 {ns} -- curl -s {url}",
        f"  gossamer logs vote-bot-0 {ns}",
        f"  Prometheus: {runtime.prometheus_url}",
    ]


@click.command("demo")
@click.option("-n", "--namespace", default=DEMO_NAMESPACE, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(1, 600),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the demo's pods to be ready.",
)
@click.option(
    "--traffic-timeout",
    type=click.FloatRange(0, 600),
    default=90.0,
    show_default=True,
    help="Seconds to wait for traffic to show in Prometheus (0: do not wait).",
)
@state_dir_option
def demo_command(
    namespace: str, timeout: float, traffic_timeout: float, state_dir: Path | None
) -> None:
    """Deploy the demo (web, emoji, voting, vote-bot) and show its golden metrics."""
    with cli_errors():
        state = state_of(state_dir)
        runtime = running_mesh(state)
        demo = workloads(namespace, python=sys.executable)
        asyncio.run(_demo(state, runtime, namespace, demo, timeout, traffic_timeout))
    for line in next_steps(namespace, state, runtime):
        click.echo(line)


async def _demo(
    state: StateDir,
    runtime: RuntimeInfo,
    namespace: str,
    demo: Sequence[DemoWorkload],
    timeout: float,
    traffic_timeout: float,
) -> None:
    requests = [run_request(workload) for workload in demo]
    store = SQLiteStore(state.store_db)
    try:
        click.echo(f"Deploying the demo to namespace {namespace}:")
        for item in await deploy(store, requests):
            verb = "created" if item.created else "already there"
            click.echo(f"  workload/{item.name} {verb}")
        click.echo(f"Waiting up to {timeout:.0f}s for its pods to be ready...")
        late = await wait_until_ready(store, requests, timeout)
        if late:
            names = ", ".join(f"{name}-0" for name in late)
            raise RunRejected(
                f"pods of {', '.join(late)} were not ready within {timeout:.0f}s: see "
                f"`gossamer get pods -n {namespace}` and `gossamer logs POD -n {namespace}` "
                f"({names})"
            )
        if traffic_timeout <= 0:
            return
        serving = [workload.name for workload in demo if workload.ports]
        click.echo(f"Waiting up to {traffic_timeout:.0f}s for traffic to show in Prometheus...")
        client = PrometheusClient(runtime.prometheus_url)
        flowing, rows = await wait_for_traffic(store, client, namespace, serving, traffic_timeout)
        click.echo("")
        if rows:
            click.echo(render_table(rows))
            click.echo("")
        if not flowing:
            click.echo(
                f"No traffic seen for every serving workload within {traffic_timeout:.0f}s; "
                "Prometheus scrapes every 5s, so try `gossamer viz stat` again shortly.",
                err=True,
            )
    finally:
        await store.close()
