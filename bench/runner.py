"""One scenario, once: warm-up, saturated throughput, fixed-rate latency, and the checks.

A run fails loudly (`ScenarioFailed`) instead of reporting a number it cannot vouch for:
a load generator that saw non-2xx answers or socket errors, a fixed-rate run that could
not hold its rate, a proxy that used no CPU (traffic went around it), or a Gossamer proxy
whose metrics did not count the requests sent through it (on an mTLS path: as mutual TLS,
`tls="true"`, on both proxies). On a routed path the client's proxy must count every request
on the scenario's route of the Service it dials (its HTTPRoute; on the default mesh path, the
policy's default route), and its outbound per-endpoint series (`target_addr` the
endpoint's address) must count them all over the endpoints its balancer shares them
between, and each endpoint at least `MIN_BALANCED_SHARE` of them. (The endpoints are two
addresses of one server pod, so the server's proxy cannot tell them apart in its own
counts; the client's, which chose between them, can.)

On a path with a TLS hop, the runner also counts the connections opened to the hop's
server during the warm-up, the throughput run and the fixed-rate run (`tls_opened`): with
connection reuse on both sides, the measured runs open none and measure steady-state TLS.

The Certify scenario runs `python -m bench.certify --drive` in its pod instead: closed loop
with 16 requests in flight, for as long as a throughput run, after the same warm-up.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import loadgen
from bench.bringup import BENCH_PACKAGE_ENV, BringupError, LiveTestbed
from bench.certify import IN_FLIGHT
from bench.loadgen import LoadCommand, LoadResult
from bench.procstat import Meter, Usage
from bench.scenarios import CERTIFY, DEFAULT_ROUTE, Scenario
from bench.settings import RunSettings
from bench.testbed import H1, Endpoint
from gossamer.local.pod import Pod, SandboxError, base_env

# Other processes using more than this share of a core during a run disturb it.
DISTURBED = 0.05
# On a routed path, each endpoint must serve at least this share of the requests: else the
# balancer did not balance (P2C over equal endpoints gives each about half).
MIN_BALANCED_SHARE = 0.05
# The per-route series of a Gossamer proxy's /metrics.
ROUTE_METRICS = "outbound_http_route_"
# The client proxy's series of requests it sent to one endpoint (with its `target_addr`).
OUTBOUND = 'direction="outbound"'


def route_labels(scenario: Scenario) -> tuple[str, ...]:
    """The labels of the client proxy's series for the scenario's route: its name, and the
    Service it dials as the parent (the proxy names the parent after the policy's Service;
    without a policy, after the address); the default route also by its kind."""
    labels = [f'route_name="{scenario.route}"']
    if scenario.route == DEFAULT_ROUTE:
        labels.append(f'route_kind="{DEFAULT_ROUTE}"')
    if scenario.target.service is not None:
        labels.append(f'parent_name="{scenario.target.service}"')
    return tuple(labels)


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
    # Connections opened to the TLS hop's server: {"warmup", "throughput", "fixed_rate"}.
    tls_opened: dict[str, int] | None = None
    proxy_pids: dict[str, int] = field(default_factory=dict)
    # Routed paths: requests the client's proxy sent to each balanced endpoint (by name).
    counted_by_endpoint: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_us_per_req_by_proxy(self) -> dict[str, float]:
        """Each proxy's CPU time per request of the saturated run (all requests of the run,
        also for a proxy that served only its share of them)."""
        requests = self.throughput.requests
        if not requests:
            return {}
        by_pid = self.throughput_usage.cpu_s_by_pid
        return {
            name: by_pid[pid] * 1e6 / requests
            for name, pid in self.proxy_pids.items()
            if pid in by_pid
        }

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
        if scenario.kind == CERTIFY:
            return self._run_certify(scenario)
        live, settings = self.live, self.settings
        pod = live.pods[scenario.client_pod]
        url = live.url(scenario.target)
        names = scenario.proxies
        self._require_alive(names)
        pids = [live.proxies[name].pid for name in names]
        gossamer = [name for name in names if live.spec.proxy(name).kind == "gossamer"]
        # On an mTLS path every request must be counted as mutual TLS by both proxies.
        labels = ('tls="true"',) if scenario.mtls else ()
        counts_before = {name: live.gossamer_counts(name, *labels) for name in gossamer}
        route_before = self._route_counts(scenario)
        endpoints_before = self._endpoint_counts(scenario)
        hop = scenario.tls_hop
        syns = [self._syns(hop)]

        self._load(pod, self._throughput(scenario, url, settings.warmup_s), scenario)
        syns.append(self._syns(hop))
        with Meter(pids, self.other) as throughput_meter:
            throughput = self._load(
                pod, self._throughput(scenario, url, settings.throughput_s), scenario
            )
        syns.append(self._syns(hop))
        # The per-request log stays in the work directory (kept when a scenario fails).
        log = Path(tempfile.mkstemp(dir=self.work_dir, prefix=scenario.path, suffix=".log")[1])
        command = loadgen.h2load_fixed_rate(
            url, scenario.protocol, settings, settings.latency_s, log
        )
        with Meter(pids, self.other) as latency_meter:
            latency = self._load(pod, command, scenario)
        syns.append(self._syns(hop))
        log.unlink()
        self._require_alive(names)
        tls_opened = None
        if hop is not None:
            tls_opened = {
                run: syns[i + 1] - syns[i]
                for i, run in enumerate(("warmup", "throughput", "fixed_rate"))
            }

        usage_t, usage_l = throughput_meter.usage, latency_meter.usage
        assert usage_t is not None and usage_l is not None
        if names and usage_t.cpu_s <= 0:
            raise ScenarioFailed(
                f"{scenario.name}: the proxies {', '.join(names)} used no CPU time during "
                f"{throughput.requests} requests: traffic did not go through them"
            )
        sent = throughput.requests + latency.requests
        counted = self._check_counts(scenario, gossamer, labels, counts_before, sent)
        self._check_route(scenario, route_before, sent)
        by_endpoint = self._check_balance(scenario, endpoints_before, sent)
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
            tls_opened=tls_opened,
            proxy_pids=dict(zip(names, pids, strict=True)),
            counted_by_endpoint=by_endpoint,
        )

    def _check_counts(
        self,
        scenario: Scenario,
        gossamer: list[str],
        labels: tuple[str, ...],
        before: dict[str, tuple[int, int]],
        sent: int,
    ) -> dict[str, int]:
        """Requests each Gossamer proxy counted during the runs: at least `sent` each."""
        counted = {}
        for name in gossamer:
            requests1, ok1 = self.live.gossamer_counts(name, *labels)
            requests, successes = requests1 - before[name][0], ok1 - before[name][1]
            if requests < sent or successes < sent:
                raise ScenarioFailed(
                    f"{scenario.name}: {name} counted {requests} requests and {successes} "
                    f"successes {' '.join(labels)} in its metrics, but the load generators "
                    f"completed at least {sent}: traffic bypassed the proxy"
                    + (", or did not go over mutual TLS" if labels else "")
                    + ", or its metrics are off"
                )
            counted[name] = requests
        return counted

    def _endpoint_counts(self, scenario: Scenario) -> dict[str, tuple[int, int]]:
        """(requests, successes) the client's proxy has sent to each balanced endpoint, by
        the endpoint's Pod name."""
        counts = {}
        for endpoint in scenario.balanced:
            assert endpoint.pod is not None  # a Pod of the store, not a loopback address
            addr = f'target_addr="{self.live.address(endpoint)}"'
            counts[endpoint.pod] = self.live.gossamer_counts(scenario.proxies[0], OUTBOUND, addr)
        return counts

    def _check_balance(
        self, scenario: Scenario, before: dict[str, tuple[int, int]], sent: int
    ) -> dict[str, int]:
        """The client's proxy must have sent every request to one of the balanced endpoints
        (retries may add more) and each endpoint at least its share; returns the requests
        by endpoint."""
        if not scenario.balanced:
            return {}
        after = self._endpoint_counts(scenario)
        counted = {name: after[name][0] - before[name][0] for name in after}
        successes = sum(after[name][1] - before[name][1] for name in after)
        client, requests = scenario.proxies[0], sum(counted.values())
        if requests < sent or successes < sent:
            raise ScenarioFailed(
                f"{scenario.name}: {client} counted {requests} requests and {successes} "
                f"successes to the endpoints {', '.join(counted)} together, but the load "
                f"generators completed at least {sent}: requests went elsewhere, or its "
                "metrics are off"
            )
        for name, count in counted.items():
            if count < MIN_BALANCED_SHARE * sent:
                raise ScenarioFailed(
                    f"{scenario.name}: {client} sent {count} of {sent} requests to the "
                    f"endpoint {name} (under {MIN_BALANCED_SHARE:.0%}): the requests were not "
                    "balanced"
                )
        return counted

    def _route_counts(self, scenario: Scenario) -> tuple[int, int] | None:
        if scenario.route is None:
            return None
        return self.live.gossamer_counts(
            scenario.proxies[0], *route_labels(scenario), prefix=ROUTE_METRICS
        )

    def _check_route(self, scenario: Scenario, before: tuple[int, int] | None, sent: int) -> None:
        """The client's proxy must have served every request on the scenario's route of the
        Service it dials: its HTTPRoute (not the default route, which would mean the policy
        was not in force), or the policy's default route on the default mesh path (not the
        proxy's own fallback for an address without policy, whose parent is the address)."""
        after = self._route_counts(scenario)
        if before is None or after is None:
            return
        requests, successes = after[0] - before[0], after[1] - before[1]
        if requests < sent or successes < sent:
            what = "the policy's default route" if scenario.route == DEFAULT_ROUTE else "the route"
            raise ScenarioFailed(
                f"{scenario.name}: {scenario.proxies[0]} counted {requests} requests and "
                f"{successes} successes on route {scenario.route} of {scenario.target.service}, "
                f"but the load generators completed at least {sent}: {what} was not in force"
            )

    def _syns(self, hop: Endpoint | None) -> int:
        if hop is None:
            return 0
        try:
            return self.live.syn_count(hop)
        except (BringupError, SandboxError) as error:
            raise ScenarioFailed(f"counting connections to {hop}: {error}") from None

    def _run_certify(self, scenario: Scenario) -> Measurement:
        """The driver warms up, says `warm`, and drives once told to: the meter covers the
        measured run alone, not the driver's start-up or warm-up."""
        live, settings = self.live, self.settings
        (name,) = scenario.proxies
        self._require_alive(scenario.proxies)
        pid = live.proxies[name].pid
        pod = live.pods[scenario.client_pod]
        argv = live.certify_argv(
            "--drive", live.address(scenario.target),
            "--warmup", str(settings.warmup_s), "--seconds", str(settings.throughput_s),
            "--in-flight", str(IN_FLIGHT),
        )  # fmt: skip
        stderr_path = Path(tempfile.mkstemp(dir=self.work_dir, prefix="certify", suffix=".err")[1])
        with stderr_path.open("wb") as stderr:
            driver = subprocess.Popen(
                [*pod.netns_argv(), *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=base_env(BENCH_PACKAGE_ENV),
                cwd="/",
            )
        assert driver.stdin is not None and driver.stdout is not None
        lines = _Lines(driver.stdout.fileno())
        try:
            if lines.read(time.monotonic() + settings.warmup_s + 60) != "warm":
                raise ScenarioFailed(self._driver_failed(scenario, driver, stderr_path))
            with Meter([pid], self.other) as meter:
                driver.stdin.write(b"go\n")
                driver.stdin.flush()
                line = lines.read(time.monotonic() + settings.throughput_s + 60)
            if line is None:
                raise ScenarioFailed(self._driver_failed(scenario, driver, stderr_path))
            driver.wait(timeout=30)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
            driver.stdin.close()
            driver.stdout.close()
        stderr_path.unlink()
        self._require_alive(scenario.proxies)
        out = json.loads(line)
        count, seconds = int(out["certificates"]), float(out["seconds"])
        result = LoadResult(
            requests=count,
            seconds=seconds,
            rps=count / seconds if seconds > 0 else 0.0,
            non_2xx=0,
            errors=int(out["failed"]),
            p50_ms=out["p50_ms"],
            p99_ms=out["p99_ms"],
            max_ms=out["max_ms"],
        )
        problems = result.problems()
        if problems:
            raise ScenarioFailed(f"{scenario.name}: {'; '.join(problems)}")
        usage = meter.usage
        assert usage is not None
        if usage.cpu_s <= 0:
            raise ScenarioFailed(f"{scenario.name}: {name} used no CPU time for {count} certs")
        return Measurement(
            throughput=result,
            latency=result,
            throughput_usage=usage,
            latency_usage=usage,
            proxied=True,
            counted_requests={},
            rss_kb_load={name: usage.rss_kb_max[pid]},
        )

    def _driver_failed(self, scenario: Scenario, driver: subprocess.Popen[bytes], err: Path) -> str:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        return (
            f"{scenario.name}: the Certify driver stopped (exit {driver.returncode}): "
            f"{err.read_text(errors='replace').strip()[-1500:]}"
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


class _Lines:
    """Lines from a pipe, each awaited until a deadline (None at the deadline or at EOF)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def read(self, deadline: float) -> str | None:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().strip()


def check_paths(live: LiveTestbed, scenarios: list[Scenario]) -> dict[str, str]:
    """Preflight: one request along each path; returns the failures by scenario name."""
    failures = {}
    for scenario in scenarios:
        try:
            live.check_path(scenario)
        except (BringupError, SandboxError) as error:
            failures[scenario.name] = f"preflight: {error}"
    return failures
