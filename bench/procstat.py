"""CPU time, resident memory and per-core busy time, read from /proc.

CPU time is utime + stime of /proc/<pid>/stat (all threads of the process), in clock ticks
(10 ms); RSS is VmRSS of /proc/<pid>/status. `Meter` takes a snapshot before and after a
load run and samples RSS in a thread while it runs, keeping the maximum per process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RSS_SAMPLE_INTERVAL_S = 0.1


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces; fields after its ")" are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"pid {pid}: no VmRSS in /proc/{pid}/status (exited?)")


def core_times() -> dict[str, tuple[int, int]]:
    """Per core: (busy ticks, total ticks) since boot, from /proc/stat."""
    cores = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks = [int(v) for v in values[:8]]
                idle = ticks[3] + ticks[4]  # idle + iowait
                cores[name] = (sum(ticks) - idle, sum(ticks))
    return cores


@dataclass(frozen=True, slots=True)
class Usage:
    """What the measured processes used during one load run."""

    wall_s: float
    cpu_s: float  # summed over the processes
    rss_kb_max: dict[int, int]  # per pid
    core_busy: dict[str, float]  # fraction of each core busy (all processes on it)


class Meter:
    """`with Meter(pids) as meter: ...; meter.usage`: CPU, peak RSS and core busy time."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._pids = list(pids)
        self._rss = {pid: 0 for pid in self._pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self.usage: Usage | None = None

    def _sample_once(self) -> None:
        for pid in self._pids:
            self._rss[pid] = max(self._rss[pid], rss_kb(pid))

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self._sample_once()

    def __enter__(self) -> Meter:
        self._sample_once()
        self._cpu0 = sum(cpu_seconds(pid) for pid in self._pids)
        self._cores0 = core_times()
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall = time.monotonic() - self._t0
        self._stop.set()
        self._thread.join()
        if exc_info[0] is not None:
            return
        self._sample_once()
        cpu = sum(cpu_seconds(pid) for pid in self._pids) - self._cpu0
        busy = {}
        for core, (b1, t1) in core_times().items():
            b0, t0 = self._cores0.get(core, (b1, t1))
            busy[core] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        self.usage = Usage(wall, cpu, dict(self._rss), busy)
