"""`bench/run [--quick]`: runs the side-by-side benchmark, then the destination service at
scale, and writes bench/results/latest.* (and destination-scale.json)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench import destination_scale, environment, render, report, scalerun
from bench.bringup import LiveTestbed
from bench.procstat import machine_busy, rss_kb
from bench.report import ScenarioRecord
from bench.runner import Measurement, ScenarioFailed, ScenarioRunner, check_paths
from bench.scenarios import CERTIFY, DESTINATION_SCALE, SCENARIOS, Scenario
from bench.settings import FULL, QUICK, CpuPlan, RunSettings
from bench.testbed import CONTROL_ONLY, CONTROL_POD, TESTBED
from gossamer.local.netns import cleanup_leftovers, sandbox

SANDBOX_PREFIX = "gbench"
RESULTS = Path(__file__).resolve().parent / "results"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round (under 3 min)")
    parser.add_argument("--rounds", type=int, help="rounds (default: 1 quick, 3 full)")
    parser.add_argument(
        "--only",
        metavar="REGEX",
        help=f"run only scenarios matching REGEX ({DESTINATION_SCALE!r} for the scale run)",
    )
    parser.add_argument("--rate", type=int, help="fixed latency rate, req/s (multiple of 100)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where latest.json/md, destination-scale.json go"
    )
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> RunSettings:
    base = QUICK if args.quick else FULL
    return dataclasses.replace(
        base,
        rounds=args.rounds or base.rounds,
        latency_rate=args.rate or base.latency_rate,
    )


def _say(text: str) -> None:
    print(text, flush=True)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the sandbox's cleanup


def _summary(scenario: Scenario, m: Measurement) -> str:
    unit = "certs/s" if scenario.kind == CERTIFY else "rps"
    text = (
        f"{m.throughput.rps:>9,.0f} {unit}, p50 {m.latency.p50_ms:.3f} ms, "
        f"p99 {m.latency.p99_ms:.3f} ms"
    )
    if m.cpu_us_per_req is not None:
        text += f", {m.cpu_us_per_req:.1f} µs CPU/req, proxy core {m.proxy_core_util:.0%}"
    return text


def _versus_unrouted(
    record: ScenarioRecord, by_name: dict[str, ScenarioRecord], round_no: int
) -> str:
    """`, 0.91x unrouted, +8.2 µs CPU/req (client proxy +7.9)` against the unrouted path's
    measurement of the same round, if it has one."""
    unrouted = by_name.get(record.scenario.unrouted or "")
    if unrouted is None or len(unrouted.rounds) < round_no or not record.rounds:
        return ""
    mine, theirs = record.rounds[-1], unrouted.rounds[round_no - 1]
    text = f", {mine.throughput.rps / theirs.throughput.rps:.2f}x unrouted"
    cpu, base = mine.cpu_us_per_req, theirs.cpu_us_per_req
    if cpu is not None and base is not None:
        text += f", {cpu - base:+.1f} µs CPU/req"
        client = mine.cpu_us_per_req_by_proxy.get(record.scenario.proxies[0])
        base_client = theirs.cpu_us_per_req_by_proxy.get(unrouted.scenario.proxies[0])
        if client is not None and base_client is not None:
            text += f" (client proxy {client - base_client:+.1f})"
    return text


def _measure(
    live: LiveTestbed, scenarios: list[Scenario], settings: RunSettings, work_dir: Path
) -> tuple[list[ScenarioRecord], dict[str, int]]:
    records = [ScenarioRecord(s) for s in scenarios]
    for record in records:
        broken = [f"{n}: {live.broken[n]}" for n in record.scenario.proxies if n in live.broken]
        if broken:
            record.error = "proxy did not start: " + "; ".join(broken)
    healthy = [r.scenario for r in records if r.error is None]
    for name, error in check_paths(live, healthy).items():
        next(r for r in records if r.scenario.name == name).error = error
    idle_rss = {name: rss_kb(process.pid) for name, process in live.proxies.items()}
    runner = ScenarioRunner(live, settings, work_dir)
    by_name = {record.scenario.name: record for record in records}
    for round_no in range(1, settings.rounds + 1):
        for record in records:
            if record.error is not None:
                continue
            name = record.scenario.name
            try:
                measurement = runner.run(record.scenario)
            except ScenarioFailed as error:
                record.error = str(error)
                _say(f"[{round_no}/{settings.rounds}] {name:<22} FAILED: {error}")
                continue
            record.rounds.append(measurement)
            summary = _summary(record.scenario, measurement)
            summary += _versus_unrouted(record, by_name, round_no)
            if measurement.tls_opened is not None:
                summary += ", TLS connections opened " + "/".join(
                    str(n) for n in measurement.tls_opened.values()
                )
            _say(f"[{round_no}/{settings.rounds}] {name:<22} {summary}")
    for record in records:
        if record.error and not record.rounds:
            _say(f"FAILED {record.scenario.name}: {record.error}")
    return records, idle_rss


def _destination_scale(live: LiveTestbed, cpus: CpuPlan, out: Path) -> dict[str, Any]:
    _say(f"bench: {DESTINATION_SCALE}: 1,000 services x 10 endpoints, 100 watchers ...")
    outcome = scalerun.run_in_pod(live.pods[CONTROL_POD], cpus, out / "destination-scale.json")
    result = outcome["result"]
    if result is None:
        _say(f"bench: {DESTINATION_SCALE} FAILED: {outcome['error']}")
        return outcome
    phases = dict(destination_scale.rows(result))
    fanout = next(stats for name, stats in phases.items() if name.endswith("all watchers"))
    burst = next(stats for name, stats in phases.items() if name.startswith("burst"))
    _say(
        f"bench: {DESTINATION_SCALE} in {outcome['seconds']:.0f} s: fan-out p50 "
        f"{fanout['p50_ms']} ms, p99 {fanout['p99_ms']} ms; burst p99 {burst['p99_ms']} ms; "
        f"destination peak RSS {result['destination']['peak_rss_mib']} MiB; target "
        + ("met" if result["met"] else "MISSED")
    )
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if os.geteuid() != 0:
        print("bench/run: needs root (network namespaces, iptables)", file=sys.stderr)
        return 2
    settings = _settings(args)
    scenarios = [s for s in SCENARIOS if not args.only or re.search(args.only, s.name)]
    scale = not args.only or re.search(args.only, DESTINATION_SCALE) is not None
    if not scenarios and not scale:
        print(f"bench/run: no scenario matches {args.only!r}", file=sys.stderr)
        return 2
    cpus = CpuPlan.for_this_machine()
    # This process only waits and samples /proc; keep it off the proxies' core.
    os.sched_setaffinity(0, {int(cpus.load)})
    signal.signal(signal.SIGTERM, _on_sigterm)
    cleanup_leftovers(prefix=SANDBOX_PREFIX)
    machine = environment.describe()  # before the testbed adds its own load
    machine["core_busy_before_start"] = busy = machine_busy()
    if max(busy.values()) > 0.1:
        _say(
            f"bench: WARNING: the machine is not idle before start ({busy}); figures will be noisy"
        )
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="gossamer-bench-"))
    _say(
        f"bench: {settings.name} run, {len(scenarios)} scenarios x {settings.rounds} round(s)"
        + (f" and {DESTINATION_SCALE}; " if scale else "; ")
        + f"load+origins on cpu{cpus.load}, proxies on cpu{cpus.proxy}; logs in {work_dir}"
    )
    keep_logs = True
    try:
        scale_result = None
        with sandbox(prefix=SANDBOX_PREFIX, state_dir=work_dir) as node:
            live = LiveTestbed(node, TESTBED if scenarios else CONTROL_ONLY, cpus)
            try:
                live.start()
                _say(f"bench: testbed up in {time.monotonic() - started:.1f} s")
                records, idle_rss = _measure(live, scenarios, settings, work_dir)
                if scale:
                    scale_result = _destination_scale(live, cpus, args.out)
            finally:
                live.close()
        result = report.build(records, idle_rss, settings, cpus, machine, scale_result)
        json_path, md_path = render.write(result, args.out)
        _say("\n" + render.markdown(result))
        failed = sum(1 for r in records if r.error)
        written = [json_path, md_path]
        if scale_result is not None:
            failed += scale_result["status"] != "ok"
            written.append(args.out / "destination-scale.json")
        keep_logs = bool(failed)
        _say(
            f"bench: wrote {', '.join(map(str, written))} in {time.monotonic() - started:.0f} s"
            + (f"; {failed} scenario(s) FAILED, logs kept in {work_dir}" if failed else "")
        )
        return 1 if failed else 0
    finally:
        if not keep_logs:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The sandbox's cleanup ran on the way out: its processes and namespaces are gone.
        print("\nbench: interrupted; testbed stopped and removed", file=sys.stderr)
        sys.exit(130)
