"""Readiness probes that run inside a pod's network namespace.

Python 3.11 has no `os.setns`, so a probe is a small stdlib-only program run with
`ip netns exec`: it retries a TCP connect (or an HTTP GET that must answer 200) until its
deadline and reports through its exit code. One probe process covers the whole wait; the
caller also watches the process being waited for, so a crash is reported at once instead of
after the timeout.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

from gossamer.local.process import PodProcess

# argv: mode ("tcp" or "http"), host, port, path, timeout seconds.
PROBE_SCRIPT = r"""
import socket, sys, time
mode, host, port, path, timeout = sys.argv[1:6]
port, timeout = int(port), float(timeout)
deadline = time.monotonic() + timeout
last = "no attempt"
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        sys.exit(f"not ready after {timeout}s: {last}")
    try:
        with socket.create_connection((host, port), timeout=min(1.0, left)) as s:
            if mode == "tcp":
                sys.exit(0)
            head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            s.sendall(head.encode())
            status = s.makefile("rb").readline().split()
            if len(status) >= 2 and status[1] == b"200":
                sys.exit(0)
            last = "answered " + b" ".join(status).decode(errors="replace")
    except OSError as error:
        last = repr(error)
    time.sleep(0.05)
"""


class ProbeFailed(RuntimeError):
    """The target did not become ready in time, or the process behind it exited."""


def run_probe(
    netns_argv: Sequence[str],
    python: str,
    *,
    mode: str,
    host: str,
    port: int,
    path: str = "/",
    timeout: float,
    watch: PodProcess | None = None,
) -> None:
    """Run the probe via `netns_argv` (e.g. `ip netns exec NS`); raise ProbeFailed on failure."""
    argv = [*netns_argv, python, "-I", "-c", PROBE_SCRIPT, mode, host, str(port), path]
    probe = subprocess.Popen(
        [*argv, str(timeout)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    target = f"{mode}://{host}:{port}{path if mode == 'http' else ''}"
    # The probe gives up by itself at `timeout`; the margin only covers its start-up.
    deadline = time.monotonic() + timeout + 10.0
    try:
        while probe.poll() is None:
            if watch is not None and watch.poll() is not None:
                raise ProbeFailed(f"{target}: {watch.describe()}")
            if time.monotonic() > deadline:
                raise ProbeFailed(f"{target}: probe process hung")
            time.sleep(0.05)
    finally:
        if probe.poll() is None:
            probe.kill()
        _, err = probe.communicate()
    if probe.returncode != 0:
        detail = err.strip().splitlines()[-1] if err.strip() else f"exit {probe.returncode}"
        extra = f"\n{watch.describe()}" if watch is not None else ""
        raise ProbeFailed(f"{target}: {detail}{extra}")
