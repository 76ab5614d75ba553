"""`gossamer viz`: the mesh's golden metrics on the command line (`viz stat`).

Flags are parsed here; the rows come from `gossamer.viz.stat`, the text from
`gossamer.viz.render`. Every error of the viz package, the store or the local runtime becomes
one message and exit status 1 in `cli_errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gossamer.cli.local_common import state_dir_option
from gossamer.control.store import SQLiteStore, StoreError
from gossamer.core.durations import parse_duration
from gossamer.core.resources import DEFAULT_NAMESPACE, ResourceError
from gossamer.local.errors import LocalModeError, MeshNotRunning
from gossamer.local.state import RuntimeInfo, StateDir
from gossamer.viz.errors import VizError
from gossamer.viz.inventory import parse_kind, parse_ref
from gossamer.viz.prometheus import PrometheusClient
from gossamer.viz.promql import PromQLError, range_duration
from gossamer.viz.render import render_json, render_table
from gossamer.viz.stat import StatRequest, StatRow, run_stat


@contextmanager
def cli_errors() -> Iterator[None]:
    """The one place where library errors become a CLI message and exit status 1."""
    try:
        yield
    except (VizError, LocalModeError, StoreError, ResourceError, PromQLError) as error:
        raise click.ClickException(str(error)) from None


@dataclass(frozen=True, slots=True)
class LocalMesh:
    """A running local mesh's state directory and what `gossamer up` recorded in it."""

    state: StateDir
    runtime: RuntimeInfo

    def store(self) -> SQLiteStore:
        return SQLiteStore(self.state.store_db)


def open_local_mesh(state_dir: Path | None) -> LocalMesh:
    """The mesh of `state_dir`; MeshNotRunning when `gossamer up` has not made one there."""
    state = StateDir.at(state_dir)
    runtime = RuntimeInfo.load(state) if state.root.is_dir() else None
    if runtime is None or not state.store_db.is_file():
        raise MeshNotRunning(f"no local mesh in {state.root}: run `gossamer up` first")
    return LocalMesh(state, runtime)


def prometheus_url_option(function: Any) -> Any:
    return click.option(
        "--prometheus-url",
        default=None,
        help="Prometheus to query (default: the one `gossamer up` started).",
    )(function)


@click.group("viz")
def viz_command() -> None:
    """Observe the mesh: golden metrics from the proxies, through Prometheus."""


@viz_command.command("stat")
@click.argument("resource")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=DEFAULT_NAMESPACE, show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True, help="Rows of every namespace.")
@click.option(
    "--from",
    "from_resource",
    metavar="TYPE/NAME",
    help="Show the outbound traffic of this workload or pod (deploy/NAME, pod/NAME) "
    "towards the rows, instead of the rows' inbound traffic.",
)
@click.option("--from-namespace", help="Namespace of --from (default: -n).")
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "-t",
    "--window",
    default="30s",
    show_default=True,
    help="How far back rates and latencies look (irate window).",
)
@state_dir_option
@prometheus_url_option
def stat_command(
    resource: str,
    name: str | None,
    namespace: str,
    all_namespaces: bool,
    from_resource: str | None,
    from_namespace: str | None,
    output: str,
    window: str,
    state_dir: Path | None,
    prometheus_url: str | None,
) -> None:
    """Success rate, RPS, latency percentiles and TCP connections per resource.

    RESOURCE is deploy, pod or svc, optionally with a name (`deploy web` or `deploy/web`).
    A svc row shows what meshed clients sent to the Service.
    """
    if "/" in resource:
        if name is not None:
            raise click.UsageError("give either TYPE/NAME or TYPE NAME, not both")
        resource, name = resource.split("/", 1)
    try:
        kind = parse_kind(resource)
        source = (
            parse_ref(from_resource, from_namespace or namespace)
            if from_resource is not None
            else None
        )
        window_s = parse_duration(window)
        range_duration(window_s)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    request = StatRequest(
        kind=kind,
        namespace=None if all_namespaces else namespace,
        name=name,
        source=source,
        window_s=window_s,
    )
    with cli_errors():
        mesh = open_local_mesh(state_dir)
        client = PrometheusClient(prometheus_url or mesh.runtime.prometheus_url)
        rows = asyncio.run(_stat(mesh, client, request))
    if output == "json":
        click.echo(render_json(rows))
    elif not rows:
        where = "any namespace" if all_namespaces else f"namespace {namespace}"
        click.echo(f"No {kind.json_kind}s found in {where}.", err=True)
    else:
        click.echo(render_table(rows, all_namespaces=all_namespaces))


async def _stat(mesh: LocalMesh, client: PrometheusClient, request: StatRequest) -> list[StatRow]:
    store = mesh.store()
    try:
        return await run_stat(store, client, request)
    finally:
        await store.close()
