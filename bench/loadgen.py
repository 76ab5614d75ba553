"""Load generator command lines (wrk, h2load) and the parsing of what they report.

Three kinds of run, each with its own honest use:

- `wrk_throughput`: HTTP/1.1, a fixed number of connections, closed loop (each connection
  sends its next request when the previous answer arrives). Gives saturated throughput.
  Its latency percentiles are those of a saturated system and suffer coordinated omission,
  so they are kept apart (`wrk_p50_ms`, `wrk_p99_ms`), never reported as *the* latency.
- `h2load_throughput`: the same for HTTP/2 (connections x concurrent streams).
- `h2load_fixed_rate`: open-loop-ish latency below saturation. `h2load --rps` makes each
  connection send one request per 10 ms tick; the connections start 1 ms apart in groups,
  so the ticks of different connections interleave instead of firing together. A request
  waits behind its predecessor on the same HTTP/1 connection only if that one took longer
  than the tick (10 ms); `over_tick` counts those, and the achieved rate is checked against
  the target, so a saturated run is flagged instead of silently reporting short latencies.
  Percentiles come from h2load's per-request log (`--log-file`), not its summary.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from bench.settings import LATENCY_RPS_PER_CONNECTION, RunSettings
from bench.testbed import H1

# h2load's --rps timer period: the minimum gap between two requests of one connection.
TICK_MS = 10.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load generator run reported (requests counted by the tool itself)."""

    requests: int
    seconds: float
    rps: float
    non_2xx: int
    errors: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    target_rps: float | None = None
    over_tick: int = 0

    def problems(self) -> list[str]:
        """Why this run cannot be trusted; empty if it can."""
        found = []
        if self.requests == 0:
            found.append("no request completed")
        if self.non_2xx:
            found.append(f"{self.non_2xx} responses were not 2xx")
        if self.errors:
            found.append(f"{self.errors} socket errors or timeouts")
        if self.target_rps is not None and self.rps < 0.95 * self.target_rps:
            found.append(
                f"fixed-rate run reached {self.rps:.0f} of {self.target_rps:.0f} req/s: "
                "saturated, latency not valid"
            )
        return found


@dataclass(frozen=True, slots=True)
class LoadCommand:
    argv: list[str]
    timeout_s: float
    kind: str  # "wrk", "h2load", "h2load-log"
    log_file: Path | None = None
    target_rps: float | None = None


def wrk_throughput(url: str, settings: RunSettings, seconds: int) -> LoadCommand:
    argv = [
        "wrk",
        "-t1",
        f"-c{settings.h1_connections}",
        f"-d{seconds}s",
        "--timeout",
        "2s",
        "--latency",
        url,
    ]
    return LoadCommand(argv, seconds + 30, "wrk")


def h2load_throughput(url: str, settings: RunSettings, seconds: int) -> LoadCommand:
    argv = [
        "h2load",
        "-t1",
        f"-c{settings.h2_connections}",
        f"-m{settings.h2_streams}",
        f"-D{seconds}",
        url,
    ]
    return LoadCommand(argv, seconds + 30, "h2load")


def h2load_fixed_rate(
    url: str, protocol: str, settings: RunSettings, seconds: int, log_file: Path
) -> LoadCommand:
    rate = settings.latency_rate
    if rate % LATENCY_RPS_PER_CONNECTION:
        raise ValueError(f"latency rate {rate} must be a multiple of {LATENCY_RPS_PER_CONNECTION}")
    connections = rate // LATENCY_RPS_PER_CONNECTION
    per_ms = math.ceil(connections / TICK_MS)  # all connections start within one tick
    argv = ["h2load", *(["--h1", "-m1"] if protocol == H1 else ["-m10"])]
    argv += [
        "-t1",
        f"-c{connections}",
        f"-n{rate * seconds}",
        f"-r{per_ms}",
        "--rate-period=1ms",
        f"--rps={LATENCY_RPS_PER_CONNECTION}",
        f"--log-file={log_file}",
        url,
    ]
    return LoadCommand(argv, seconds * 3 + 30, "h2load-log", log_file, float(rate))


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _search(pattern: str, text: str, what: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise ValueError(f"{what} not found in output:\n{text[-2000:]}")
    return match


def parse_wrk(out: str) -> LoadResult:
    done = _search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s)", out, "request count")
    seconds = float(done.group(2)) * _UNITS_MS[done.group(3)] / 1000.0
    rps = float(_search(r"^Requests/sec:\s*([\d.]+)", out, "Requests/sec").group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket is not None:
        errors = sum(int(g) for g in socket.groups())
    p50 = _search(r"^\s*50%\s+(\S+)", out, "p50").group(1)
    p99 = _search(r"^\s*99%\s+(\S+)", out, "p99").group(1)
    return LoadResult(
        requests=int(done.group(1)),
        seconds=seconds,
        rps=rps,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=errors,
        p50_ms=_duration_ms(p50),
        p99_ms=_duration_ms(p99),
    )


def _h2load_counts(out: str) -> tuple[float, float, int, int, int]:
    """(seconds, req/s, requests done, 2xx, failed + errored + timeout)."""
    finished = _search(r"^finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out, "finished line")
    seconds = float(finished.group(1)) * _UNITS_MS[finished.group(2)] / 1000.0
    requests = _search(
        r"^requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
        "requests line",
    )
    status = _search(r"^status codes: (\d+) 2xx", out, "status codes line")
    done = int(requests.group(1))
    bad = sum(int(requests.group(i)) for i in (3, 4, 5))
    return seconds, float(finished.group(3)), done, int(status.group(1)), bad


def parse_h2load(out: str) -> LoadResult:
    seconds, rps, done, ok, bad = _h2load_counts(out)
    return LoadResult(done, seconds, rps, max(0, done - ok), bad)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def parse_h2load_log(out: str, log_file: Path, target_rps: float) -> LoadResult:
    """Counts from h2load's summary, latencies from its per-request log."""
    seconds, rps, done, _ok, bad = _h2load_counts(out)
    latencies_ms = []
    non_2xx = 0
    for line in log_file.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        status = int(fields[1])
        if not 200 <= status < 300:
            non_2xx += 1
        latencies_ms.append(int(fields[2]) / 1000.0)
    if len(latencies_ms) < done:
        non_2xx += done - len(latencies_ms)  # answered but not logged: count as not proven
    latencies_ms.sort()
    if not latencies_ms:
        return LoadResult(0, seconds, rps, non_2xx, bad, target_rps=target_rps)
    return LoadResult(
        requests=done,
        seconds=seconds,
        rps=rps,
        non_2xx=non_2xx,
        errors=bad,
        p50_ms=percentile(latencies_ms, 0.50),
        p99_ms=percentile(latencies_ms, 0.99),
        max_ms=latencies_ms[-1],
        target_rps=target_rps,
        over_tick=sum(1 for v in latencies_ms if v > TICK_MS),
    )


def parse(command: LoadCommand, out: str) -> LoadResult:
    if command.kind == "wrk":
        return parse_wrk(out)
    if command.kind == "h2load":
        return parse_h2load(out)
    assert command.log_file is not None and command.target_rps is not None
    return parse_h2load_log(out, command.log_file, command.target_rps)
