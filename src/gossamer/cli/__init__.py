"""The `gossamer` command line: one module per command group, wired here.

The CLI is thin: each command parses its flags and calls library code.
"""

from __future__ import annotations

import click

from gossamer import __version__
from gossamer.cli.apply import apply_command, delete_command
from gossamer.cli.check import check_command
from gossamer.cli.controller import controller_command
from gossamer.cli.demo import demo_command
from gossamer.cli.diagnostics import diagnostics_command
from gossamer.cli.get import get_command
from gossamer.cli.identity import identity_command
from gossamer.cli.init import init_command
from gossamer.cli.pods import exec_command, logs_command
from gossamer.cli.proxy import proxy_command
from gossamer.cli.run import run_command
from gossamer.cli.up import down_command, up_command
from gossamer.cli.viz import viz_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gossamer")
def main() -> None:
    """Gossamer: a lightweight service mesh."""


main.add_command(proxy_command)
main.add_command(init_command)
main.add_command(controller_command)
main.add_command(viz_command)
main.add_command(check_command)
main.add_command(diagnostics_command)
main.add_command(demo_command)
main.add_command(identity_command)
for _local_command in (
    up_command,
    down_command,
    run_command,
    exec_command,
    logs_command,
    get_command,
    delete_command,
    apply_command,
):
    main.add_command(_local_command)
