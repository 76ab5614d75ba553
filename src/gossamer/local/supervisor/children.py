"""Starting and stopping the supervisor's child processes (apps, proxies, Prometheus).

Each child leads its own session (so it outlives a crash of the supervisor, and a stop
signals exactly its process group), appends its stdout and stderr to one log file, and
carries the mesh's owner marker in its environment (see `gossamer.local.ownership`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from gossamer.local.ownership import OWNER_ENV

STOP_TIMEOUT = 5.0


class Child:
    """One started process: its handle, start time and log file."""

    def __init__(self, role: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.role = role
        self.process = process
        self.log = log
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def ran_for(self) -> float:
        return time.monotonic() - self.started

    async def wait(self) -> int:
        return await self.process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def send_sigterm(self) -> None:
        if self.running:
            self._signal(signal.SIGTERM)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the group, SIGKILL it after `timeout`; the exit code."""
        if self.running:
            self._signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                pass
        # Also reaches a grandchild that outlived the leader and still holds the group.
        self._signal(signal.SIGKILL)
        return await self.process.wait()


async def spawn(
    role: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    owner: str,
    log: Path,
) -> Child:
    """Start `argv` in a new session, output appended to `log`, marked as `owner`'s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**env, OWNER_ENV: owner}
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
            cwd="/",
            start_new_session=True,
        )
    return Child(role, process, log)
