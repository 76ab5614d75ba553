"""What the local-mode commands share: `--state-dir`, `-n`, the store, and the one place
where local mode's errors become messages.

Every local-mode command is wrapped in `reports_errors`: a `LocalModeError`, a
`SandboxError`, a store error or a resource error ends the command with its message and
exit status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from gossamer.control.store import SQLiteStore, StoreError
from gossamer.core.resources import DEFAULT_NAMESPACE, ResourceError
from gossamer.local.errors import LocalModeError
from gossamer.local.pod import SandboxError
from gossamer.local.preflight import require_root
from gossamer.local.state import StateDir

P = ParamSpec("P")
T = TypeVar("T")

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The mesh's state directory (default: $GOSSAMER_HOME, else ~/.gossamer).",
)
namespace_option = click.option(
    "-n",
    "--namespace",
    default=DEFAULT_NAMESPACE,
    show_default=True,
    help="The namespace.",
)


def reports_errors(command: Callable[P, T]) -> Callable[P, T]:
    """Turn local mode's errors into a one-line (or few-line) message and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except (LocalModeError, SandboxError, StoreError, ResourceError) as error:
            raise click.ClickException(str(error)) from None

    return wrapper


def state_of(state_dir: Path | None) -> StateDir:
    """The state directory a command works on; local-mode commands all need root."""
    context = click.get_current_context(silent=True)
    require_root(f"gossamer {context.info_name}" if context is not None else "gossamer")
    return StateDir.at(state_dir)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def open_store(state: StateDir) -> SQLiteStore:
    """The store of an existing mesh state directory (never creates one)."""
    if not state.store_db.exists():
        raise LocalModeError(
            f"no mesh state in {state.root}: start a mesh with `gossamer up` first"
        )
    return SQLiteStore(state.store_db)
