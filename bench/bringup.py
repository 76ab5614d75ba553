"""Starts the testbed in the `gossamer.local` pod sandbox and answers questions about it.

Every process is started through `Pod.spawn` (so the sandbox records its PID and stops it
by PID when the node is destroyed) with a `taskset` prefix: origins on the load core,
proxies on the proxy core. The Gossamer proxies run as the proxy uid (2102) in meshed pods,
exactly as `gossamer run` will start them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from bench import configs
from bench.procstat import OtherWork
from bench.scenarios import Scenario
from bench.settings import CpuPlan
from bench.testbed import (
    GOSSAMER_ADMIN_PORT,
    H2,
    ORIGIN_BODY,
    ORIGIN_H1_PORT,
    ORIGIN_H2_PORT,
    Endpoint,
    ProxySpec,
    Testbed,
)
from gossamer.local.netns import Node
from gossamer.local.pod import PROXY_UID, PYTHON, Pod, SandboxError
from gossamer.local.process import PodProcess

GOSSAMER_ENV = {"GOSSAMER_PROXY_LOG_LEVEL": "warn"}
# What /proc/<pid>/comm must say, so that we measure the proxy and not a wrapper.
_COMM = {"gossamer": "python", "haproxy": "haproxy", "nginx": "nginx"}
_READY_TIMEOUT_S = 30.0


class BringupError(RuntimeError):
    """A part of the testbed did not start or does not answer."""


class LiveTestbed:
    """The running testbed: its pods, and the process of every proxy instance."""

    def __init__(self, node: Node, spec: Testbed, cpus: CpuPlan) -> None:
        self.node = node
        self.spec = spec
        self.cpus = cpus
        self.pods: dict[str, Pod] = {}
        self.proxies: dict[str, PodProcess] = {}
        # Proxies that did not start, with the reason: their scenarios fail, the rest run.
        self.broken: dict[str, str] = {}

    def other_work(self) -> OtherWork:
        """Measures CPU used outside this testbed's namespaces (and this process)."""
        names = [self.node.netns, *(pod.netns for pod in self.pods.values())]
        inodes = frozenset(os.stat(f"/run/netns/{name}").st_ino for name in names)
        return OtherWork(inodes, frozenset({os.getpid()}))

    # Addresses ----------------------------------------------------------------------------

    def address(self, endpoint: Endpoint) -> str:
        host = "127.0.0.1" if endpoint.pod is None else str(self.pods[endpoint.pod].ip)
        return f"{host}:{endpoint.port}"

    def url(self, endpoint: Endpoint) -> str:
        return f"http://{self.address(endpoint)}/"

    # Start-up -----------------------------------------------------------------------------

    def start(self) -> None:
        for pod_spec in self.spec.pods:
            pod = self.pods[pod_spec.name] = self.node.add_pod(pod_spec.name)
            if pod_spec.meshed:
                pod.install_init_rules()
        for pod_spec in self.spec.pods:
            if pod_spec.origin:
                self._start_origin(self.pods[pod_spec.name])
        for proxy in self.spec.proxies:
            try:
                self.proxies[proxy.name] = self._start_proxy(proxy)
            except BringupError as error:
                self.broken[proxy.name] = str(error)

    def _spawn(
        self,
        pod: Pod,
        argv: list[str],
        role: str,
        name: str,
        uid: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PodProcess:
        return pod.spawn([*self.cpus.taskset(role), *argv], name=name, uid=uid, env=env)

    def _write(self, pod: Pod, name: str, text: str) -> Path:
        path = pod.state_dir / name
        path.write_text(text)
        return path

    def _nginx(self, pod: Pod, name: str, render: Callable[[Path], str], role: str) -> PodProcess:
        """nginx with its own prefix directory (pid file, temp paths) in the pod's state dir."""
        work = pod.state_dir / name
        work.mkdir(exist_ok=True)
        path = self._write(pod, f"{name}.conf", render(work))
        return self._spawn(pod, ["nginx", "-p", str(work), "-c", str(path)], role, name)

    def _start_origin(self, pod: Pod) -> None:
        process = self._nginx(pod, "origin", configs.origin_nginx, "load")
        for port in (ORIGIN_H1_PORT, ORIGIN_H2_PORT):
            self._wait_port(pod, port, process)

    def _start_proxy(self, spec: ProxySpec) -> PodProcess:
        pod = self.pods[spec.pod]
        if spec.kind == "gossamer":
            argv = [PYTHON, "-m", "gossamer.proxy"]
            process = self._spawn(pod, argv, "proxy", spec.name, uid=PROXY_UID, env=GOSSAMER_ENV)
            try:
                pod.wait_for_http(
                    GOSSAMER_ADMIN_PORT, "/ready", timeout=_READY_TIMEOUT_S, process=process
                )
            except SandboxError as error:
                raise BringupError(f"{spec.name}: {error}") from None
        elif spec.kind == "haproxy":
            path = self._write(pod, f"{spec.name}.cfg", configs.haproxy(spec, self.address))
            process = self._spawn(pod, ["haproxy", "-db", "-f", str(path)], "proxy", spec.name)
        elif spec.kind == "nginx":
            process = self._nginx(
                pod,
                spec.name,
                lambda work: configs.nginx_proxy(spec, work, self.address),
                "proxy",
            )
        else:
            raise BringupError(f"{spec.name}: unknown proxy kind {spec.kind!r}")
        try:
            for route in spec.routes:
                self._wait_port(pod, route.port, process)
        except BringupError:
            process.terminate()
            raise
        comm = Path(f"/proc/{process.pid}/comm").read_text().strip()
        if not comm.startswith(_COMM[spec.kind]):
            raise BringupError(f"{spec.name}: pid {process.pid} is {comm!r}, not the proxy")
        return process

    def _wait_port(self, pod: Pod, port: int, process: PodProcess) -> None:
        try:
            pod.wait_for_port(port, timeout=_READY_TIMEOUT_S, process=process)
        except SandboxError as error:
            raise BringupError(str(error)) from None

    # Checks -------------------------------------------------------------------------------

    def check_path(self, scenario: Scenario) -> None:
        """One request along the scenario's path must answer 200 with the origin's body."""
        pod = self.pods[scenario.client_pod]
        flags = ["--http2-prior-knowledge"] if scenario.protocol == H2 else ["--http1.1"]
        url = self.url(scenario.target)
        done = pod.exec(
            ["curl", "-sS", "--max-time", "5", *flags, "-w", "\n%{http_code} %{http_version}", url],
            check=False,
            timeout=15,
        )
        body, _, trailer = done.stdout.rpartition("\n")
        want_version = "2" if scenario.protocol == H2 else "1.1"
        if done.returncode != 0 or trailer != f"200 {want_version}" or body != ORIGIN_BODY:
            raise BringupError(
                f"{scenario.name}: GET {url} from pod {pod.name} gave "
                f"{trailer or 'nothing'!r} body {body!r} {done.stderr.strip()}"
            )

    def gossamer_counts(self, name: str) -> tuple[int, int]:
        """(requests, successful responses) a Gossamer proxy has counted in its /metrics."""
        pod = self.pods[self.spec.proxy(name).pod]
        url = f"http://127.0.0.1:{GOSSAMER_ADMIN_PORT}/metrics"
        done = pod.exec(["curl", "-sS", "--max-time", "5", url], check=False, timeout=15)
        if done.returncode != 0:
            raise BringupError(f"{name}: GET {url} failed: {done.stderr.strip()}")
        return _metric_sum(done.stdout, "request_total"), _metric_sum(
            done.stdout, "response_total", 'classification="success"'
        )


def _metric_sum(text: str, name: str, must_contain: str = "") -> int:
    total = 0.0
    pattern = re.compile(rf"^{name}(\{{.*\}})?\s+([0-9.eE+-]+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and must_contain in (match.group(1) or ""):
            total += float(match.group(2))
    return int(total)
