"""`python -m bench.destination_scale`: the destination service at scale.

A measurement, not a test. It fills a SQLite store (local mode's real backend) with 1,000
Services of 10 Running meshed pods each, all in one namespace (the worst case for anything
that scans a namespace), starts `gossamer controller destination` as its own process (so its
memory is its own), and opens 100 `Get` streams from this process over real gRPC, one per
service on 100 different services. Then, phase by phase, it writes changes to the store from
this process, stamping each write, and measures the time until every watcher of the changed
service has seen it, from the endpoint sets the watchers rebuild from the updates:

- spread: one change at a time to a watched service, cycling through a pod added, a pod
  removed, a pod's IP changed and the Service's targetPort changed (every endpoint changes);
- burst: changes to different watched services written at a fixed rate without waiting,
  each timed until its watchers saw it (the destination works through a backlog);
- fan-out: 100 more watchers on one service, changes to it timed until all 100 saw them.

Also: how long 100 watchers wait for their first answer at startup, and the destination's
RSS (VmRSS now, VmHWM peak) and CPU time per phase. With two or more cores the destination
runs on cpu1 and this process (writer and watchers) on cpu0 (`--cpus LOAD,SERVICE` picks
others: `bench/run` passes its own CPU plan). Target: p99 under 1 s.

Prints a table and writes bench/results/destination-scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.loadgen import percentile
from bench.procstat import cpu_seconds
from gossamer.api.gen import destination_pb2 as pb
from gossamer.api.gen import destination_pb2_grpc as pb_grpc
from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource

NAMESPACE = "scale"
RESULTS = Path(__file__).resolve().parent / "results" / "destination-scale.json"
TARGET_P99_MS = 1000.0
CHANGE_DEADLINE_S = 10.0

Address = tuple[str, int]
# (this process's CPU, the destination's CPU), or None to leave both unpinned.
Cores = tuple[int, int] | None


# -- the population ---------------------------------------------------------------------------


def service_name(index: int) -> str:
    return f"svc-{index:04d}"


def service(index: int, target_port: int = 8080) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service_name(index), "namespace": NAMESPACE},
            "spec": {
                "clusterIP": f"10.96.{index // 250}.{index % 250 + 1}",
                "selector": {"app": service_name(index)},
                "ports": [{"name": "http", "port": 80, "targetPort": target_port}],
            },
        }
    )


def pod_ip(serial: int) -> str:
    return f"10.{100 + serial // 65536}.{serial // 256 % 256}.{serial % 256}"


def pod(service_index: int, name: str, ip: str) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {"app": service_name(service_index)},
            },
            "spec": {
                "serviceAccountName": service_name(service_index),
                "containers": [{"name": "app", "command": ["app"]}],
            },
            "status": {"phase": "Running", "podIP": ip, "ready": True, "proxy": {"ready": True}},
        }
    )


@dataclass
class Population:
    """What the store holds, as the writer tracks it: pod name -> IP, per service."""

    pods: dict[int, dict[str, str]] = field(default_factory=dict)
    target_ports: dict[int, int] = field(default_factory=dict)
    next_serial: int = 0

    def new_ip(self) -> str:
        self.next_serial += 1
        return pod_ip(self.next_serial)

    def endpoints(self, index: int) -> set[Address]:
        port = self.target_ports[index]
        return {(ip, port) for ip in self.pods[index].values()}


async def populate(store: SQLiteStore, services: int, pods_per_service: int) -> Population:
    population = Population()
    for index in range(services):
        await store.apply(service(index))
        population.target_ports[index] = 8080
        population.pods[index] = {}
        for replica in range(pods_per_service):
            name = f"{service_name(index)}-{replica}"
            ip = population.new_ip()
            await store.apply(pod(index, name, ip))
            population.pods[index][name] = ip
    return population


# -- watchers and changes ---------------------------------------------------------------------


@dataclass(eq=False)
class Change:
    """A write and the endpoint set every watcher of its service must reach."""

    kind: str
    expected: set[Address]
    written_at: float = 0.0
    waiting: set[Watcher] = field(default_factory=set)
    seen_at: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def seen(self, watcher: Watcher, now: float) -> None:
        self.waiting.discard(watcher)
        self.seen_at.append(now)
        if not self.waiting:
            self.done.set()

    @property
    def all_seen_ms(self) -> float:
        return (max(self.seen_at) - self.written_at) * 1000


class Watcher:
    """One `Get` stream; keeps the endpoint set its updates describe."""

    def __init__(self, stub: pb_grpc.DestinationStub, index: int) -> None:
        self.index = index
        self.endpoints: set[Address] = set()
        self.pending: list[Change] = []
        self.first_answer = asyncio.Event()
        self.opened_at = time.monotonic()
        self.first_answer_at = 0.0
        path = f"{service_name(index)}.{NAMESPACE}.svc.cluster.local:80"
        self._call = stub.Get(pb.GetDestination(scheme="k8s", path=path))
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for update in self._call:
            which = update.WhichOneof("update")
            if which == "add":
                self.endpoints.update((a.addr.ip, a.addr.port) for a in update.add.addrs)
            elif which == "remove":
                self.endpoints.difference_update((a.ip, a.port) for a in update.remove.addrs)
            else:
                self.endpoints.clear()
            now = time.monotonic()
            if not self.first_answer.is_set():
                self.first_answer_at = now
                self.first_answer.set()
            # A change seen settles the earlier ones too: a watcher that was told the latest
            # state need not have been shown every state before it.
            for position, change in enumerate(self.pending):
                if change.expected == self.endpoints:
                    for settled in self.pending[: position + 1]:
                        settled.seen(self, now)
                    del self.pending[: position + 1]
                    break

    def expect(self, change: Change) -> None:
        change.waiting.add(self)
        self.pending.append(change)

    def close(self) -> None:
        self._call.cancel()
        self.task.cancel()


class Writer:
    """Makes changes to the store, round-robin over four kinds."""

    KINDS = ("pod added", "pod removed", "pod IP changed", "service targetPort changed")

    def __init__(self, store: SQLiteStore, population: Population) -> None:
        self.store = store
        self.population = population
        self.count = 0

    async def change(self, index: int, watchers: list[Watcher], kind: str | None = None) -> Change:
        kind = kind or self.KINDS[self.count % len(self.KINDS)]
        self.count += 1
        pods = self.population.pods[index]
        write: Callable[[], Any]
        if kind == "pod added":
            name, ip = f"{service_name(index)}-x{self.count}", self.population.new_ip()
            pods[name] = ip

            def write() -> Any:
                return self.store.apply(pod(index, name, ip))
        elif kind == "pod removed":
            name = next(iter(pods))
            del pods[name]

            def write() -> Any:
                return self.store.delete("Pod", NAMESPACE, name)
        elif kind == "pod IP changed":
            name = next(iter(pods))
            ip = pods[name] = self.population.new_ip()

            def write() -> Any:
                return self.store.apply(pod(index, name, ip))
        else:
            port = self.population.target_ports[index] = (
                8081 if self.population.target_ports[index] == 8080 else 8080
            )

            def write() -> Any:
                return self.store.apply(service(index, port))

        change = Change(kind, self.population.endpoints(index))
        for watcher in watchers:
            watcher.expect(change)
        change.written_at = time.monotonic()
        await write()
        return change


# -- phases -----------------------------------------------------------------------------------


def summary(values_ms: list[float], timeouts: int = 0) -> dict[str, Any]:
    ordered = sorted(values_ms)
    return {
        "count": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50), 1) if ordered else None,
        "p99_ms": round(percentile(ordered, 0.99), 1) if ordered else None,
        "max_ms": round(ordered[-1], 1) if ordered else None,
        "timeouts": timeouts,
    }


async def settle(changes: list[Change]) -> tuple[list[Change], int]:
    """Wait for every change to be seen by all its watchers (or the deadline)."""
    done, late = [], 0
    for change in changes:
        remaining = change.written_at + CHANGE_DEADLINE_S - time.monotonic()
        try:
            await asyncio.wait_for(change.done.wait(), max(remaining, 0.001))
            done.append(change)
        except TimeoutError:
            late += 1
    return done, late


async def spread_phase(
    writer: Writer, by_service: dict[int, list[Watcher]], count: int
) -> dict[str, Any]:
    watched = sorted(by_service)
    per_kind: dict[str, list[float]] = {kind: [] for kind in Writer.KINDS}
    timeouts = 0
    for number in range(count):
        index = watched[number % len(watched)]
        change = await writer.change(index, by_service[index])
        done, late = await settle([change])
        timeouts += late
        for seen in done:
            per_kind[seen.kind].append(seen.all_seen_ms)
        await asyncio.sleep(0.005)
    result = {kind: summary(values) for kind, values in per_kind.items()}
    result["all"] = summary([v for values in per_kind.values() for v in values], timeouts)
    return result


async def burst_phase(
    writer: Writer, by_service: dict[int, list[Watcher]], count: int, rate: float
) -> dict[str, Any]:
    watched = sorted(by_service)
    changes = []
    started = time.monotonic()
    for number in range(count):
        await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))
        index = watched[number % len(watched)]
        changes.append(await writer.change(index, by_service[index], "pod IP changed"))
    done, late = await settle(changes)
    return summary([change.all_seen_ms for change in done], late)


async def fanout_phase(
    writer: Writer, stub: pb_grpc.DestinationStub, index: int, watchers: int, count: int
) -> dict[str, Any]:
    crowd = [Watcher(stub, index) for _ in range(watchers)]
    try:
        await asyncio.gather(*(w.first_answer.wait() for w in crowd))
        all_seen: list[float] = []
        each_seen: list[float] = []
        timeouts = 0
        for _ in range(count):
            change = await writer.change(index, crowd)
            done, late = await settle([change])
            timeouts += late
            for seen in done:
                all_seen.append(seen.all_seen_ms)
                each_seen.extend((t - seen.written_at) * 1000 for t in seen.seen_at)
            await asyncio.sleep(0.005)
    finally:
        for watcher in crowd:
            watcher.close()
    return {"all watchers": summary(all_seen, timeouts), "each watcher": summary(each_seen)}


# -- the destination process ------------------------------------------------------------------


def memory_kb(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


async def serve(store_path: Path, poll_interval: float) -> None:
    """What `gossamer controller destination` does, with another store poll interval."""
    import logging
    import signal

    from gossamer.control.destination import DestinationServer

    logging.basicConfig(level=logging.INFO)
    store = SQLiteStore(store_path, poll_interval=poll_interval)
    server = DestinationServer(store)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await server.start("127.0.0.1", 0)
    await stop.wait()
    await server.stop()
    await store.close()


async def start_destination(
    store_path: Path, log: Path, poll_interval: float | None, cores: Cores
) -> tuple[asyncio.subprocess.Process, int]:
    if poll_interval is None:
        command = ["-m", "gossamer", "controller", "destination", "--store", str(store_path)]
        command += ["--addr", "127.0.0.1:0"]
    else:
        command = ["-m", "bench.destination_scale", "--serve", str(store_path)]
        command += ["--poll-interval", str(poll_interval)]
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command, stdout=asyncio.subprocess.DEVNULL, stderr=sink
        )
    if cores is not None:
        os.sched_setaffinity(process.pid, {cores[1]})
        os.sched_setaffinity(0, {cores[0]})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise SystemExit(f"the destination service exited:\n{log.read_text()}")
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return process, int(found.group(1))
        await asyncio.sleep(0.05)
    raise SystemExit("the destination service did not start listening within 30 s")


# -- the run ----------------------------------------------------------------------------------


async def idle_memory(directory: Path, poll_interval: float | None, cores: Cores) -> dict[str, int]:
    """The destination's memory over an empty store, answering one watcher: its baseline."""
    store = SQLiteStore(directory / "empty.db")
    await store.apply(service(0))
    process, port = await start_destination(
        directory / "empty.db", directory / "empty.log", poll_interval, cores
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watcher = Watcher(pb_grpc.DestinationStub(channel), 0)
            await asyncio.wait_for(watcher.first_answer.wait(), 30)
            watcher.close()
        return memory_kb(process.pid)
    finally:
        process.terminate()
        await process.wait()
        await store.close()


async def run(options: argparse.Namespace) -> dict[str, Any]:
    cores: Cores = options.cpus
    if cores is None and len(os.sched_getaffinity(0)) >= 2:
        cores = (0, 1)
    with tempfile.TemporaryDirectory(prefix="gossamer-destination-scale-") as temp:
        directory = Path(temp)
        memory_idle = await idle_memory(directory, options.poll_interval, cores)
        store = SQLiteStore(directory / "store.db")
        started = time.monotonic()
        population = await populate(store, options.services, options.pods)
        populate_s = time.monotonic() - started
        exec_at = time.monotonic()
        process, port = await start_destination(
            directory / "store.db", directory / "dest.log", options.poll_interval, cores
        )
        pid = process.pid
        phases: dict[str, Any] = {}
        cpu: dict[str, float] = {}
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.DestinationStub(channel)
                step = max(1, options.services // options.watchers)
                watched = [i * step for i in range(options.watchers)]
                watchers = [Watcher(stub, index) for index in watched]
                await asyncio.wait_for(
                    asyncio.gather(*(w.first_answer.wait() for w in watchers)), 120
                )
                phases["startup: first answer"] = summary(
                    [(w.first_answer_at - w.opened_at) * 1000 for w in watchers]
                )
                ready_s = max(w.first_answer_at for w in watchers) - exec_at
                for watcher in watchers:
                    assert watcher.endpoints == population.endpoints(watcher.index)
                # Since exec: interpreter start, the store read, the index, the first answers.
                cpu["startup"] = cpu_seconds(pid)
                memory_synced = memory_kb(pid)
                by_service = {w.index: [w] for w in watchers}
                writer = Writer(store, population)

                before = cpu_seconds(pid)
                phases["spread"] = await spread_phase(writer, by_service, options.changes)
                cpu["spread"] = cpu_seconds(pid) - before

                before = cpu_seconds(pid)
                phases[f"burst ({options.burst_rate:g} changes/s)"] = await burst_phase(
                    writer, by_service, options.burst, options.burst_rate
                )
                cpu["burst"] = cpu_seconds(pid) - before

                before = cpu_seconds(pid)
                hot = options.services - 1
                phases[f"fan-out ({options.watchers} watchers, 1 service)"] = await fanout_phase(
                    writer, stub, hot, options.watchers, options.fanout
                )
                cpu["fan-out"] = cpu_seconds(pid) - before
                for watcher in watchers:
                    watcher.close()
            memory_end = memory_kb(pid)
        finally:
            process.terminate()
            await process.wait()
            await store.close()
    return {
        "config": {
            "services": options.services,
            "pods_per_service": options.pods,
            "endpoints": options.services * options.pods,
            "watchers": options.watchers,
            "store": "SQLite (writer and destination in separate processes)",
            "namespace": f"all in one ({NAMESPACE})",
            "cores": f"destination on cpu{cores[1]}, writer and watchers on cpu{cores[0]}"
            if cores is not None
            else "unpinned",
            "store_poll_interval_s": options.poll_interval or 0.1,
            "populate_s": round(populate_s, 1),
            "exec_to_all_answered_s": round(ready_s, 2),
        },
        "phases": phases,
        "destination": {
            "rss_empty_store_mib": round(memory_idle["VmRSS"] / 1024, 1),
            "rss_after_sync_mib": round(memory_synced["VmRSS"] / 1024, 1),
            "rss_end_mib": round(memory_end["VmRSS"] / 1024, 1),
            "peak_rss_mib": round(memory_end["VmHWM"] / 1024, 1),
            "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        },
        "target_p99_ms": TARGET_P99_MS,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for phase, value in result["phases"].items():
        if "count" in value:
            out.append((phase, value))
        else:
            out.extend((f"{phase}: {name}", stats) for name, stats in value.items())
    return out


def verdict(result: dict[str, Any]) -> bool:
    changes = [stats for name, stats in rows(result) if not name.startswith("startup")]
    return all(
        stats["timeouts"] == 0 and (stats["p99_ms"] or 0) < TARGET_P99_MS for stats in changes
    )


def print_table(result: dict[str, Any]) -> None:
    config = result["config"]
    print(
        f"destination at scale: {config['services']} services x {config['pods_per_service']} "
        f"pods ({config['endpoints']} endpoints), {config['watchers']} watchers, "
        f"{config['store']} polled every {config['store_poll_interval_s']:g} s; {config['cores']}"
    )
    print(
        f"from exec to all {config['watchers']} watchers answered: "
        f"{config['exec_to_all_answered_s']} s"
    )
    header = f"{'phase':58} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'late':>5}"
    print(header)
    print("-" * len(header))
    for name, stats in rows(result):
        print(
            f"{name:58} {stats['count']:>5} {stats['p50_ms']:>8} {stats['p99_ms']:>8} "
            f"{stats['max_ms']:>8} {stats['timeouts']:>5}"
        )
    dest = result["destination"]
    print(
        f"destination RSS: {dest['rss_empty_store_mib']} MiB on an empty store, "
        f"{dest['rss_after_sync_mib']} MiB after sync, {dest['rss_end_mib']} MiB at the end, "
        f"peak {dest['peak_rss_mib']} MiB; CPU s: "
        + ", ".join(f"{name} {value}" for name, value in dest["cpu_s"].items())
    )
    met = "met" if result["met"] else "MISSED"
    print(f"target: every change seen by all its watchers with p99 < {TARGET_P99_MS:g} ms: {met}")


def _cpus(text: str) -> tuple[int, int]:
    load, _, service = text.partition(",")
    try:
        return int(load), int(service)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not LOAD,SERVICE CPU numbers: {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.destination_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10, help="pods per service")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=200, help="spread phase changes")
    parser.add_argument("--burst", type=int, default=300, help="burst phase changes")
    parser.add_argument("--burst-rate", type=float, default=300.0, help="changes per second")
    parser.add_argument("--fanout", type=int, default=40, help="fan-out phase changes")
    parser.add_argument(
        "--poll-interval",
        type=float,
        help="run the destination with this store poll interval (default: the CLI's, 0.1 s)",
    )
    parser.add_argument(
        "--cpus",
        type=_cpus,
        metavar="LOAD,SERVICE",
        help="pin this process (writer, watchers) and the destination to these CPUs "
        "(default with two or more: 0,1)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the destination itself
    options = parser.parse_args(argv)
    if options.serve is not None:
        asyncio.run(serve(options.serve, options.poll_interval or 0.1))
        return 0
    result = asyncio.run(run(options))
    result["met"] = verdict(result)
    print_table(result)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
