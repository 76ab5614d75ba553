"""What a result was measured on: date, CPU, kernel, tool versions, the commit."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from gossamer import __version__ as gossamer_version

REPO = Path(__file__).resolve().parent.parent


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (done.stdout + done.stderr).strip()


def _first_line(argv: list[str]) -> str:
    lines = _output(argv).splitlines()
    return lines[0].strip() if lines else "unavailable"


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _commit() -> str:
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"])
    return f"{commit}{'+dirty-src' if dirty and dirty != 'unavailable' else ''}"


def describe() -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "commit": _commit(),
        # Other work on the machine skews every figure; a high load average says so.
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "versions": {
            "python": sys.version.split()[0],
            "gossamer": gossamer_version,
            "haproxy": _first_line(["haproxy", "-v"]),
            "nginx": _first_line(["nginx", "-v"]),
            "wrk": _first_line(["wrk", "-v"]),
            "h2load": _first_line(["h2load", "--version"]),
        },
    }
