"""`gossamer get KIND [NAME]`: list resources of the local mesh's store, as kubectl does.

Tables for pods (NAME, READY, STATUS, RESTARTS, AGE, IP), services (NAME, CLUSTER-IP,
PORTS, AGE) and workloads; any other kind gets NAME and AGE. `-A` adds a NAMESPACE column;
`-o wide` adds more columns; `-o json|yaml` print the objects (a `List` when there are
several, like kubectl).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
import yaml

from gossamer.cli.local_common import (
    namespace_option,
    open_store,
    reports_errors,
    run,
    state_dir_option,
    state_of,
)
from gossamer.control.store import Store
from gossamer.core.resources import (
    BUILTIN_KINDS,
    WORKLOAD_LABEL,
    PodStatus,
    Resource,
    ServiceSpec,
    WorkloadSpec,
    WorkloadStatus,
    dump_documents,
    format_selector,
)
from gossamer.local.supervisor.podruntime import NETNS_ANNOTATION

OUTPUTS = ("table", "wide", "json", "yaml")


def age(timestamp: str, now: datetime | None = None) -> str:
    """kubectl's short age: `42s`, `5m`, `3h`, `2d`."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def pod_columns(pod: Resource, wide: bool) -> list[str]:
    status = pod.status_as(PodStatus) or PodStatus()
    total = 2 if status.proxy is not None else 1
    ready = total if status.ready else int(status.proxy is not None and status.proxy.ready)
    shown = status.reason or str(status.phase)
    row = [
        pod.name,
        f"{ready}/{total}",
        shown,
        str(status.restarts),
        age(pod.metadata.creation_timestamp),
        status.pod_ip or "<none>",
    ]
    if wide:
        row += [
            pod.metadata.labels.get(WORKLOAD_LABEL, "<none>"),
            "yes" if status.proxy is not None else "no",
            pod.metadata.annotations.get(NETNS_ANNOTATION, "<none>"),
        ]
    return row


def service_columns(service: Resource, wide: bool) -> list[str]:
    spec = service.spec_as(ServiceSpec)
    ports = ",".join(
        f"{port.port}/{port.protocol}"
        + (f"->{port.target_port}" if wide and port.target_port != port.port else "")
        for port in spec.ports
    )
    row = [
        service.name,
        spec.cluster_ip or "<pending>",
        ports,
        age(service.metadata.creation_timestamp),
    ]
    if wide:
        row += [spec.type, format_selector(spec.selector) or "<none>"]
    return row


def workload_columns(workload: Resource, wide: bool) -> list[str]:
    spec = workload.spec_as(WorkloadSpec)
    status = workload.status_as(WorkloadStatus) or WorkloadStatus()
    row = [
        workload.name,
        f"{status.ready_replicas}/{spec.replicas}",
        "yes" if spec.mesh else "no",
        age(workload.metadata.creation_timestamp),
    ]
    if wide:
        row += [" ".join(spec.command), spec.service_account_name]
    return row


COLUMNS = {
    "Pod": (
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"],
        ["WORKLOAD", "MESHED", "NETNS"],
        pod_columns,
    ),
    "Service": (["NAME", "CLUSTER-IP", "PORTS", "AGE"], ["TYPE", "SELECTOR"], service_columns),
    "Workload": (
        ["NAME", "READY", "MESHED", "AGE"],
        ["COMMAND", "SERVICE-ACCOUNT"],
        workload_columns,
    ),
}


def render(
    resources: Sequence[Resource],
    kind: str,
    output: str,
    *,
    all_namespaces: bool = False,
    single: bool = False,
) -> str:
    """`single`: one object asked for by name, printed as itself rather than in a List."""
    if output == "json":
        return json.dumps(_as_document(resources, single), indent=2)
    if output == "yaml":
        if single:
            return dump_documents(resources).rstrip("\n")
        return yaml.safe_dump(_as_document(resources, single), sort_keys=False).rstrip("\n")
    wide = output == "wide"
    header, extra, columns = COLUMNS.get(
        kind, (["NAME", "AGE"], [], lambda r, w: [r.name, age(r.metadata.creation_timestamp)])
    )
    head = [*header, *(extra if wide else [])]
    rows = [columns(resource, wide) for resource in resources]
    if all_namespaces:
        head = ["NAMESPACE", *head]
        rows = [[resource.namespace, *row] for resource, row in zip(resources, rows, strict=True)]
    return render_table(head, rows)


def _as_document(resources: Sequence[Resource], single: bool) -> dict[str, object]:
    if single and len(resources) == 1:
        return resources[0].to_dict()
    return {"apiVersion": "v1", "kind": "List", "items": [r.to_dict() for r in resources]}


async def _fetch(
    store: Store, kind: str, namespace: str | None, name: str | None
) -> list[Resource]:
    try:
        if name is not None:
            assert namespace is not None
            return [await store.get(kind, namespace, name)]
        return list(await store.list(kind, namespace))
    finally:
        await store.close()


@click.command("get")
@click.argument("kind")
@click.argument("name", required=False)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default="table", show_default=True)
@state_dir_option
@reports_errors
def get_command(
    kind: str,
    name: str | None,
    namespace: str,
    all_namespaces: bool,
    output: str,
    state_dir: Path | None,
) -> None:
    """List pods, services, workloads, serviceaccounts (or show one by NAME)."""
    info = BUILTIN_KINDS.resolve(kind)
    store = open_store(state_of(state_dir))
    scope = None if all_namespaces and name is None else namespace
    resources = run(_fetch(store, info.kind, scope, name))
    if not resources and output in ("table", "wide"):
        where = "any namespace" if scope is None else f"namespace {scope}"
        click.echo(f"No {info.plural or info.kind} found in {where}.", err=True)
        return
    click.echo(
        render(resources, info.kind, output, all_namespaces=scope is None, single=name is not None)
    )
