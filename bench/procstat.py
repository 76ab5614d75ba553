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
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RSS_SAMPLE_INTERVAL_S = 0.1
PF_KTHREAD = 0x00200000


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"pid {pid}: no VmRSS in /proc/{pid}/status (exited?)")


def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces; fields after its ")" are fixed.
        return stat.read().rsplit(")", 1)[1].split()


class OtherWork:
    """CPU time used by processes outside the testbed: other work disturbing the run.

    Ours are the processes in the testbed's network namespaces and the benchmark process
    itself. Kernel threads are left out (softirq work for our own packets runs in them).
    Reaped children count through their parent's cutime/cstime, so short-lived processes of
    another test suite are seen too.
    """

    def __init__(self, netns_inodes: frozenset[int], own_pids: frozenset[int]) -> None:
        self._netns = netns_inodes
        self._own = own_pids

    def cpu_seconds(self) -> float:
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) in self._own:
                continue
            try:
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino in self._netns:
                    continue
                fields = _stat_fields(entry.name)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if int(fields[6]) & PF_KTHREAD:
                continue
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))  # u/s time, children's
        return ticks / CLOCK_TICKS


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
    other_cpu_s: float  # used by processes outside the testbed (see OtherWork)
    cpu_s_by_pid: dict[int, float] = field(default_factory=dict)

    @property
    def other_util(self) -> float:
        return self.other_cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class Meter:
    """`with Meter(pids) as meter: ...; meter.usage`: CPU, peak RSS and core busy time."""

    def __init__(self, pids: Sequence[int], other: OtherWork) -> None:
        self._pids = list(pids)
        self._other = other
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
        self._cpu0 = {pid: cpu_seconds(pid) for pid in self._pids}
        self._cores0 = core_times()
        self._other0 = self._other.cpu_seconds()
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
        cpu = {pid: cpu_seconds(pid) - self._cpu0[pid] for pid in self._pids}
        other = self._other.cpu_seconds() - self._other0
        busy = {}
        for core, (b1, t1) in core_times().items():
            b0, t0 = self._cores0.get(core, (b1, t1))
            busy[core] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        self.usage = Usage(wall, sum(cpu.values()), dict(self._rss), busy, max(0.0, other), cpu)


def machine_busy(seconds: float = 1.0) -> dict[str, float]:
    """Fraction of each core busy over `seconds` (before the testbed runs: other work)."""
    before = core_times()
    time.sleep(seconds)
    busy = {}
    for core, (b1, t1) in core_times().items():
        b0, t0 = before.get(core, (b1, t1))
        busy[core] = round((b1 - b0) / (t1 - t0), 3) if t1 > t0 else 0.0
    return busy
