"""One scenario, once: warm-up, saturated throughput, fixed-rate latency, and the checks.

A run fails loudly (`ScenarioFailed`) instead of reporting a number it cannot vouch for:
a load generator that saw non-2xx answers or socket errors, a fixed-rate run that could
not hold its rate, a proxy that used no CPU (traffic went around it), or a Gossamer proxy
whose metrics did not count the requests sent through it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen
from bench.bringup import BringupError, LiveTestbed
from bench.loadgen import LoadCommand, LoadResult
from bench.procstat import Meter, Usage
from bench.scenarios import Scenario
from bench.settings import RunSettings
from bench.testbed import H1
from gossamer.local.pod import Pod, SandboxError

# Other processes using more than this share of a core during a run disturb it.
DISTURBED = 0.05


class ScenarioFailed(RuntimeError):
    """The scenario's numbers cannot be trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One scenario measured once (one round)."""

    throughput: LoadResult
    latency: LoadResult
    throughput_usage: Usage
    latency_usage: Usage
    proxied: bool  # False for the direct path: no proxy CPU to count
    # Gossamer proxies: requests their metrics counted during this round.
    counted_requests: dict[str, int]
    rss_kb_load: dict[str, int]  # per proxy instance, the peak over both load runs

    @property
    def cpu_us_per_req(self) -> float | None:
        """Proxy CPU time (summed over the path's proxies) per request, saturated run."""
        return self._per_request(self.throughput_usage, self.throughput)

    @property
    def cpu_us_per_req_fixed_rate(self) -> float | None:
        return self._per_request(self.latency_usage, self.latency)

    @property
    def proxy_core_util(self) -> float | None:
        """Proxy CPU time over wall time during the throughput run (1.0 = one full core)."""
        usage = self.throughput_usage
        return usage.cpu_s / usage.wall_s if self.proxied else None

    @property
    def other_util(self) -> float:
        """Share of a core used by processes outside the testbed during the runs."""
        return max(self.throughput_usage.other_util, self.latency_usage.other_util)

    @property
    def disturbed(self) -> bool:
        return self.other_util > DISTURBED

    def _per_request(self, usage: Usage, result: LoadResult) -> float | None:
        if not self.proxied or result.requests == 0:
            return None
        return usage.cpu_s * 1e6 / result.requests


class ScenarioRunner:
    def __init__(self, live: LiveTestbed, settings: RunSettings, work_dir: Path) -> None:
        self.live = live
        self.settings = settings
        self.work_dir = work_dir
        self.other = live.other_work()

    def run(self, scenario: Scenario) -> Measurement:
        live, settings = self.live, self.settings
        pod = live.pods[scenario.client_pod]
        url = live.url(scenario.target)
        names = scenario.proxies
        self._require_alive(names)
        pids = [live.proxies[name].pid for name in names]
        gossamer = [name for name in names if live.spec.proxy(name).kind == "gossamer"]
        counts_before = {name: live.gossamer_counts(name) for name in gossamer}

        self._load(pod, self._throughput(scenario, url, settings.warmup_s), scenario)
        with Meter(pids, self.other) as throughput_meter:
            throughput = self._load(
                pod, self._throughput(scenario, url, settings.throughput_s), scenario
            )
        # The per-request log stays in the work directory (kept when a scenario fails).
        log = Path(tempfile.mkstemp(dir=self.work_dir, prefix=scenario.path, suffix=".log")[1])
        command = loadgen.h2load_fixed_rate(
            url, scenario.protocol, settings, settings.latency_s, log
        )
        with Meter(pids, self.other) as latency_meter:
            latency = self._load(pod, command, scenario)
        log.unlink()
        self._require_alive(names)

        usage_t, usage_l = throughput_meter.usage, latency_meter.usage
        assert usage_t is not None and usage_l is not None
        if names and usage_t.cpu_s <= 0:
            raise ScenarioFailed(
                f"{scenario.name}: the proxies {', '.join(names)} used no CPU time during "
                f"{throughput.requests} requests: traffic did not go through them"
            )
        counted = {}
        for name in gossamer:
            requests0, ok0 = counts_before[name]
            requests1, ok1 = live.gossamer_counts(name)
            sent = throughput.requests + latency.requests
            if requests1 - requests0 < sent or ok1 - ok0 < sent:
                raise ScenarioFailed(
                    f"{scenario.name}: {name} counted {requests1 - requests0} requests and "
                    f"{ok1 - ok0} successes in its metrics, but the load generators completed "
                    f"at least {sent}: traffic bypassed the proxy or its metrics are off"
                )
            counted[name] = requests1 - requests0
        rss = {
            name: max(usage_t.rss_kb_max[pid], usage_l.rss_kb_max[pid])
            for name, pid in zip(names, pids, strict=True)
        }
        return Measurement(
            throughput=throughput,
            latency=latency,
            throughput_usage=usage_t,
            latency_usage=usage_l,
            proxied=bool(names),
            counted_requests=counted,
            rss_kb_load=rss,
        )

    def _throughput(self, scenario: Scenario, url: str, seconds: int) -> LoadCommand:
        if scenario.protocol == H1:
            return loadgen.wrk_throughput(url, self.settings, seconds)
        return loadgen.h2load_throughput(url, self.settings, seconds)

    def _load(self, pod: Pod, command: LoadCommand, scenario: Scenario) -> LoadResult:
        argv = [*self.live.cpus.taskset("load"), *command.argv]
        try:
            done = pod.exec(argv, timeout=command.timeout_s, check=False)
        except SandboxError as error:
            raise ScenarioFailed(f"{scenario.name}: {error}") from None
        if done.returncode != 0:
            raise ScenarioFailed(
                f"{scenario.name}: {' '.join(command.argv)} exited with {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-1500:]}"
            )
        try:
            result = loadgen.parse(command, done.stdout)
        except ValueError as error:
            raise ScenarioFailed(f"{scenario.name}: {command.argv[0]}: {error}") from None
        problems = result.problems()
        if problems:
            raise ScenarioFailed(
                f"{scenario.name}: {' '.join(command.argv)}: {'; '.join(problems)}"
            )
        return result

    def _require_alive(self, names: tuple[str, ...]) -> None:
        for name in names:
            process = self.live.proxies[name]
            if process.poll() is not None:
                raise ScenarioFailed(f"proxy {process.describe()}")


def check_paths(live: LiveTestbed, scenarios: list[Scenario]) -> dict[str, str]:
    """Preflight: one request along each path; returns the failures by scenario name."""
    failures = {}
    for scenario in scenarios:
        try:
            live.check_path(scenario)
        except (BringupError, SandboxError) as error:
            failures[scenario.name] = f"preflight: {error}"
    return failures
