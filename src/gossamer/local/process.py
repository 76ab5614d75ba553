"""A process the sandbox started inside a pod: its PID, its log files, and a bounded stop.

Each process leads its own session (started with `start_new_session`), so a stop signals
exactly the process group this sandbox created, by its id, and never anything found by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


class PodProcess:
    """Handle to a process running in a pod; stdout and stderr go to files."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], stdout: Path, stderr: Path):
        self.name = name
        self._popen = popen
        self.stdout_path = stdout
        self.stderr_path = stderr

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = 30.0) -> int:
        """Wait for exit; raises subprocess.TimeoutExpired after `timeout` seconds."""
        return self._popen.wait(timeout=timeout)

    def _signal(self, sig: signal.Signals) -> None:
        # The group id is our child's pid (it leads the session we created for it), so this
        # reaches what it forked too, and nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def send_sigterm(self) -> None:
        """Ask the process to stop, without waiting (see `terminate`)."""
        if self._popen.poll() is None:
            self._signal(signal.SIGTERM)

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds; the exit code."""
        if self._popen.poll() is not None:
            self._signal(signal.SIGKILL)  # a leftover grandchild may still hold the group
            return self._popen.wait()
        self._signal(signal.SIGTERM)
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self._popen.wait(timeout=timeout)

    def stdout(self) -> str:
        return _read(self.stdout_path)

    def stderr(self) -> str:
        return _read(self.stderr_path)

    def describe(self, lines: int = 20) -> str:
        """Exit state and the tail of stderr, for error messages."""
        state = "running" if self.poll() is None else f"exited with {self.poll()}"
        tail = "\n".join(self.stderr().splitlines()[-lines:])
        return f"{self.name} (pid {self.pid}) {state}; stderr tail:\n{tail or '(empty)'}"

    def __repr__(self) -> str:
        return f"PodProcess({self.name!r}, pid={self.pid}, returncode={self.poll()})"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
