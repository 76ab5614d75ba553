"""`gossamer apply -f FILE|-` and `gossamer delete KIND NAME`: manage the store's resources."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gossamer.cli.local_common import (
    namespace_option,
    open_store,
    reports_errors,
    run,
    state_dir_option,
    state_of,
)
from gossamer.control.store import Store
from gossamer.core.resources import Resource
from gossamer.local.errors import LocalModeError
from gossamer.local.resourceops import Applied, apply_all, delete_resource, parse_manifest


async def _apply(store: Store, resources: list[Resource]) -> list[Applied]:
    try:
        return await apply_all(store, resources)
    finally:
        await store.close()


async def _delete(store: Store, kind: str, namespace: str, name: str) -> list[str]:
    try:
        return await delete_resource(store, kind, namespace, name)
    finally:
        await store.close()


def _read(source: str) -> tuple[str, str]:
    if source == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(source).read_text(), source
    except (OSError, UnicodeDecodeError) as error:
        raise LocalModeError(f"cannot read {source}: {error}") from None


@click.command("apply")
@click.option("-f", "--filename", "source", required=True, help="A YAML file, or - for stdin.")
@state_dir_option
@reports_errors
def apply_command(source: str, state_dir: Path | None) -> None:
    """Create or update the resources of a YAML file (all valid, or none written)."""
    text, name = _read(source)
    resources = parse_manifest(text, name)
    if not resources:
        raise LocalModeError(f"{name}: no objects to apply")
    state = state_of(state_dir)
    for applied in run(_apply(open_store(state), resources)):
        resource = applied.resource
        click.echo(
            f"{resource.kind.lower()}/{resource.name} {applied.outcome} ({resource.namespace})"
        )


@click.command("delete")
@click.argument("kind")
@click.argument("name")
@namespace_option
@state_dir_option
@reports_errors
def delete_command(kind: str, name: str, namespace: str, state_dir: Path | None) -> None:
    """Delete a resource. A Service made by `gossamer run` takes its Workload (and pods) along."""
    state = state_of(state_dir)
    for deleted in run(_delete(open_store(state), kind, namespace, name)):
        click.echo(f"{deleted} deleted")
