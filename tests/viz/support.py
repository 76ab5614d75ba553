"""Test doubles with real processes: canned proxy metrics over HTTP, and a real Prometheus.

`CannedProxies` is one HTTP server on 127.0.0.1 serving `/metrics/<pod>` for every fake pod:
counters grow linearly with time at the rate each series declares, gauges hold their value,
so Prometheus' `irate` of them is the declared rate. `PrometheusProcess` runs Debian's
`prometheus` binary on a free loopback port with a temporary data directory, scraping each
fake pod every second with the target labels local mode gives a proxy (`namespace`, `pod`,
`deployment`), through `__metrics_path__`.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gossamer.proxy.metrics import LATENCY_BUCKETS_MS


@dataclass(frozen=True)
class Series:
    """One canned series: a counter growing by `rate` per second, or a gauge (`gauge=True`)."""

    name: str
    labels: Mapping[str, str]
    rate: float
    gauge: bool = False

    def render(self, elapsed: float) -> str:
        value = self.rate if self.gauge else int(self.rate * elapsed)
        pairs = ",".join(f'{k}="{v}"' for k, v in self.labels.items())
        return f"{self.name}{{{pairs}}} {value}\n"


def http_series(
    direction: str,
    authority: str,
    *,
    rps: float,
    failures: float = 0.0,
    latency_ms: float = 7.0,
    target_addr: str = "10.1.0.5:8080",
) -> list[Series]:
    """request/response counters and a latency histogram whose every response lands in the
    bucket holding `latency_ms` (so quantiles interpolate inside that bucket)."""
    base = {
        "direction": direction,
        "authority": authority,
        "target_addr": target_addr,
        "target_ip": target_addr.rsplit(":", 1)[0],
        "tls": "no_identity",
    }
    out = [Series("request_total", base, rps)]
    for status, classification, rate in (
        ("200", "success", rps - failures),
        ("500", "failure", failures),
    ):
        if rate <= 0:
            continue
        labels = {**base, "status_code": status}
        out.append(Series("response_total", {**labels, "classification": classification}, rate))
        for bound in (*LATENCY_BUCKETS_MS, float("inf")):
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(
                Series(
                    "response_latency_ms_bucket",
                    {**labels, "le": le},
                    rate if latency_ms <= bound else 0.0,
                )
            )
    return out


def tcp_series(direction: str, peer: str, open_connections: float, target_ip: str) -> Series:
    return Series(
        "tcp_open_connections",
        {
            "direction": direction,
            "peer": peer,
            "target_addr": f"{target_ip}:8080",
            "target_ip": target_ip,
            "tls": "no_identity",
        },
        open_connections,
        gauge=True,
    )


@dataclass
class FakePod:
    namespace: str
    pod: str
    deployment: str
    series: list[Series] = field(default_factory=list)


class CannedProxies:
    """One HTTP server on 127.0.0.1 answering `/metrics/<pod>` for each fake pod."""

    def __init__(self, pods: Sequence[FakePod]) -> None:
        self.pods = {pod.pod: pod for pod in pods}
        self.started = time.monotonic()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pod = owner.pods.get(urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1])
                if pod is None:
                    self.send_error(404)
                    return
                elapsed = time.monotonic() - owner.started
                body = "".join(s.render(elapsed) for s in pod.series).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> CannedProxies:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusProcess:
    """Debian's prometheus on 127.0.0.1:<free port>, scraping fake pods every second."""

    def __init__(self, workdir: Path, proxies: CannedProxies) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run scripts/setup")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {
                    "job_name": "gossamer-proxy",
                    "static_configs": [
                        {
                            "targets": [proxies.address],
                            "labels": {
                                "__metrics_path__": f"/metrics/{pod.pod}",
                                "namespace": pod.namespace,
                                "pod": pod.pod,
                                "deployment": pod.deployment,
                            },
                        }
                        for pod in proxies.pods.values()
                    ],
                }
            ],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        self.argv = [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusProcess:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def query(self, expr: str) -> list[dict[str, object]]:
        data = urllib.parse.urlencode({"query": expr}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data, timeout=5) as response:
            result: list[dict[str, object]] = json.load(response)["data"]["result"]
            return result

    def wait_for(self, expr: str, count: int, timeout: float = 30.0) -> None:
        """Until `expr` has at least `count` series (bounded; the log says why on failure)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError, KeyError, ValueError):
                result = self.query(expr)
                last = result
                if len(result) >= count:
                    return
            time.sleep(0.25)
        raise AssertionError(
            f"{expr}: fewer than {count} series after {timeout}s ({last}); "
            f"log: {self.log.read_text()[-2000:]}"
        )


@contextlib.contextmanager
def running_prometheus(workdir: Path, pods: Sequence[FakePod]) -> Iterator[PrometheusProcess]:
    """Canned proxies and a Prometheus scraping them, with two scrapes of each done."""
    with CannedProxies(pods) as proxies, PrometheusProcess(workdir, proxies) as prometheus:
        prometheus.wait_for("up == 1", len(pods))
        # irate needs two samples of each series.
        prometheus.wait_for("count_over_time(up[1m]) >= 2", len(pods))
        yield prometheus
