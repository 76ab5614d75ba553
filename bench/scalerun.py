"""`bench/run`'s destination-scale step: `python -m bench.destination_scale` in a pod.

The measurement is the standalone one at its full size (1,000 services x 10 endpoints, 100
watchers; about 30 s), run in the testbed's control pod, so that it too stays inside the
sandbox's namespaces (its destination service listens on that pod's loopback). The run is
pinned like the rest of the bench: writer and watchers on the load core, the destination
service on the proxy core. It runs after the HTTP scenarios, when the proxies are idle, is
bounded in time, and a run that fails, overruns or misses no result is reported as failed.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.bringup import BENCH_PACKAGE_ENV
from bench.settings import CpuPlan
from gossamer.local.pod import PYTHON, Pod

# About 30 s on the project's machine; a busy machine may take twice as long.
TIMEOUT_S = 240.0


def run_in_pod(pod: Pod, cpus: CpuPlan, out: Path) -> dict[str, Any]:
    """`{"status": "ok" | "failed", "error", "seconds", "result"}`; the result (the JSON
    `bench.destination_scale` writes, also left at `out`) is None when it failed."""
    argv = [
        *cpus.taskset("load"), PYTHON, "-m", "bench.destination_scale",
        "--cpus", f"{cpus.load},{cpus.proxy}", "--out", str(out),
    ]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    started = time.monotonic()
    process = pod.spawn(argv, name="destination-scale", env=BENCH_PACKAGE_ENV)
    try:
        code = process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        return _failed(f"no result within {TIMEOUT_S:.0f} s", started)
    finally:
        if process.poll() is None:
            process.terminate()
    if code != 0 or not out.exists():
        return _failed(f"exited with {code}: {process.describe()}", started)
    return {
        "status": "ok",
        "error": None,
        "seconds": round(time.monotonic() - started, 1),
        "result": json.loads(out.read_text()),
    }


def _failed(error: str, started: float) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": error,
        "seconds": round(time.monotonic() - started, 1),
        "result": None,
    }
