"""Which processes belong to a local mesh, and stopping them by PID without mistakes.

Every process the supervisor starts (apps, proxies, Prometheus) and the supervisor itself
carry `GOSSAMER_LOCAL_OWNER=<node>/<role...>` in their environment. A recorded PID is only
signalled after `/proc/<pid>/environ` shows that marker, so a PID the kernel has since given
to an unrelated process is left alone. Each of these processes leads its own session, so a
stop signals its process group: the process and whatever it forked, nothing else.

A process that is not our child is reaped by someone else; until then it is a zombie, which
counts as gone here (`kill(pid, 0)` alone would call it alive).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

OWNER_ENV = "GOSSAMER_LOCAL_OWNER"
_PROC = Path("/proc")


def owner_marker(node: str, *role: str) -> str:
    return "/".join((node, *role))


def process_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # The state follows the parenthesised command name, which may itself hold spaces.
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"] and state != ["X"]


def owner_of(pid: int) -> str | None:
    """The process's `GOSSAMER_LOCAL_OWNER`, or None (no such process, or no marker)."""
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    prefix = f"{OWNER_ENV}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def is_ours(pid: int, marker: str) -> bool:
    """True if `pid` is alive and carries exactly `marker`, or a marker under it."""
    owner = owner_of(pid)
    if owner is None or not process_alive(pid):
        return False
    return owner == marker or owner.startswith(marker + "/")


def marked_processes(marker: str) -> Iterator[int]:
    """PIDs of live processes carrying `marker` (or a marker under it)."""
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and is_ours(int(entry.name), marker):
            yield int(entry.name)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_processes(pids: Iterable[int], marker: str, timeout: float = 10.0) -> list[int]:
    """SIGTERM each of `pids` that carries `marker`, SIGKILL what is left after `timeout`.

    Returns the PIDs that were ours and got signalled.
    """
    ours = [pid for pid in set(pids) if is_ours(pid, marker)]
    for pid in ours:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(process_alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in ours:
        if process_alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(process_alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    return ours
