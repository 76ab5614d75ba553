"""`gossamer exec POD -- CMD` and `gossamer logs POD`: reach into a pod from the host."""

from __future__ import annotations

import os
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
from gossamer.local.podaccess import exec_argv, exec_env, find_pod, log_file, tail


async def _find(store: Store, namespace: str, name: str) -> Resource:
    try:
        return await find_pod(store, namespace, name)
    finally:
        await store.close()


@click.command("exec")
@click.argument("pod")
@click.argument("command", nargs=-1, required=True)
@namespace_option
@state_dir_option
@reports_errors
def exec_command(
    pod: str, command: tuple[str, ...], namespace: str, state_dir: Path | None
) -> None:
    """Run COMMAND inside POD's network namespace (with the pod's service names).

    It runs as root, so its outbound connections go through the pod's proxy. The exit
    status is COMMAND's.
    """
    state = state_of(state_dir)
    found = run(_find(open_store(state), namespace, pod))
    argv = exec_argv(state, found, command)
    env = exec_env(found)
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    os.execvpe(argv[0], argv, env)


@click.command("logs")
@click.argument("pod")
@namespace_option
@click.option("--proxy", is_flag=True, help="The proxy's log instead of the app's.")
@click.option(
    "--tail", "lines", type=click.IntRange(0), default=None, help="Only the last N lines."
)
@state_dir_option
@reports_errors
def logs_command(
    pod: str, namespace: str, proxy: bool, lines: int | None, state_dir: Path | None
) -> None:
    """Print POD's app output (or its proxy's, with --proxy)."""
    state = state_of(state_dir)
    if not state.pod_dir(namespace, pod).is_dir():
        run(_find(open_store(state), namespace, pod))  # raises UnknownPod with the known pods
    click.echo(tail(log_file(state, namespace, pod, proxy=proxy), lines), nl=False)
