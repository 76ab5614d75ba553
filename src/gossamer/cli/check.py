"""`gossamer check`: is the mesh healthy? Linkerd's output, local mode's checks.

The checks are data (`gossamer.healthcheck.local.LOCAL_CHECKS`); this module runs them and
prints each result as it arrives, under its category's heading and a dashed underline, as
Linkerd does: a check mark (U+221A) before what passed; a cross (U+00D7) before what failed,
followed by what was found and a `see:` hint, indented; a double exclamation mark (U+203C)
before a failed warning. The last line sums up: `Status check results are` and a mark.

The exit status is 1 when any check failed (warnings do not count).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import click

from gossamer.cli.local_common import state_dir_option
from gossamer.cli.viz import cli_errors, prometheus_url_option
from gossamer.core.durations import parse_duration
from gossamer.healthcheck.framework import CheckResult, run_checks
from gossamer.healthcheck.local import LOCAL_CHECKS, LocalCheckContext
from gossamer.local.state import StateDir

OK, FAIL, WARN = "\u221a", "\u00d7", "\u203c"


def format_result(result: CheckResult, *, verbose: bool = False) -> list[str]:
    glyph = OK if result.ok else (WARN if result.warning else FAIL)
    line = f"{glyph} {result.description}"
    if result.ok:
        return [f"{line} ({result.detail})" if verbose and result.detail else line]
    lines = [line]
    if result.detail:
        lines.extend(f"    {part}" for part in result.detail.splitlines())
    if result.hint:
        lines.append(f"    see: {result.hint}")
    return lines


async def run_local_checks(
    context: LocalCheckContext, wait_s: float, emit: Callable[[str], None], verbose: bool
) -> bool:
    """Run and print every check; True when none failed."""
    category = None
    failed = False
    try:
        async for result in run_checks(LOCAL_CHECKS, context, wait_s=wait_s):
            if result.category != category:
                if category is not None:
                    emit("")
                category = result.category
                emit(category)
                emit("-" * len(category))
            for line in format_result(result, verbose=verbose):
                emit(line)
            failed = failed or result.failed
    finally:
        await context.close()
    emit("")
    emit(f"Status check results are {FAIL if failed else OK}")
    return not failed


@click.command("check")
@click.option(
    "--wait",
    default="0s",
    show_default=True,
    help="Retry failing checks for this long (for example right after `gossamer up`).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show details of passing checks.")
@state_dir_option
@prometheus_url_option
def check_command(
    wait: str, verbose: bool, state_dir: Path | None, prometheus_url: str | None
) -> None:
    """Check that the local mesh is up and healthy."""
    try:
        wait_s = parse_duration(wait)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--wait") from None
    context = LocalCheckContext(StateDir.at(state_dir), prometheus_url)
    with cli_errors():
        healthy = asyncio.run(run_local_checks(context, wait_s, click.echo, verbose))
    if not healthy:
        raise SystemExit(1)
