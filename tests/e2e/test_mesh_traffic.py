"""Pod A calls pod B through both sidecars, in real network namespaces with iptables rules.

Pod A runs its clients as root, so `gossamer init`'s OUTPUT rules send their connections to
A's outbound proxy; pod B's PREROUTING rules send them to B's inbound proxy, which forwards
to the app on 127.0.0.1. Each test checks that the bytes arrived intact and that both
proxies' metrics saw the traffic.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gossamer.local.netns import Node, sandbox
from gossamer.local.pod import PYTHON, Pod

APPS = Path(__file__).parent / "apps"
HTTP_PORT = 8080
WS_PORT = 8081
H2_PORT = 8082
GRPC_PORT = 8083
TCP_PORT = 7000
OPAQUE_PORT = 6379  # in the default opaque list: no detection, server speaks first
MB = 1 << 20

pytestmark = pytest.mark.netns


@dataclass
class Mesh:
    node: Node
    a: Pod
    b: Pod

    def run_in_a(self, *cmd: str, timeout: float = 60.0) -> str:
        return self.a.exec(list(cmd), timeout=timeout).stdout

    def metrics(self, pod: Pod) -> dict[str, list[tuple[dict[str, str], float]]]:
        text = pod.exec(["curl", "-sf", "http://127.0.0.1:4191/metrics"]).stdout
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((sample.labels, sample.value))
        return out


def total(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def _nginx_h2(pod: Pod, port: int, root: Path) -> list[str]:
    conf = pod.state_dir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
user root;
pid {pod.state_dir}/nginx.pid;
error_log {pod.state_dir}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {pod.state_dir}/nginx-body;
  proxy_temp_path {pod.state_dir}/nginx-proxy;
  fastcgi_temp_path {pod.state_dir}/nginx-fcgi;
  uwsgi_temp_path {pod.state_dir}/nginx-uwsgi;
  scgi_temp_path {pod.state_dir}/nginx-scgi;
  server {{
    listen {port} http2;
    root {root};
  }}
}}
"""
    )
    return ["nginx", "-c", str(conf)]


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    with sandbox(prefix="e2e") as node:
        a, b = node.add_pod("a"), node.add_pod("b")
        for pod in (a, b):
            pod.install_init_rules()
            pod.start_proxy({"GOSSAMER_PROXY_LOG_LEVEL": "info"})
        static = b.state_dir / "www"
        static.mkdir()
        (static / "big.bin").write_bytes(hashlib.sha256(b"seed").digest() * (5 * MB // 32))
        apps = [
            ([PYTHON, str(APPS / "http_app.py"), str(HTTP_PORT)], HTTP_PORT),
            ([PYTHON, str(APPS / "ws_app.py"), "server", str(WS_PORT)], WS_PORT),
            ([PYTHON, str(APPS / "grpc_app.py"), "server", str(GRPC_PORT)], GRPC_PORT),
            ([PYTHON, str(APPS / "tcp_echo.py"), "server", str(TCP_PORT)], TCP_PORT),
            (
                [PYTHON, str(APPS / "tcp_echo.py"), "server", str(OPAQUE_PORT), "--banner"],
                OPAQUE_PORT,
            ),
            (_nginx_h2(b, H2_PORT, static), H2_PORT),
        ]
        for cmd, port in apps:
            process = b.spawn(cmd)
            b.wait_for_port(port, timeout=20, process=process)
        try:
            yield Mesh(node, a, b)
        finally:
            for pod in (a, b):
                pod.stop_processes()


def test_http1_large_bodies_cross_both_proxies(mesh: Mesh) -> None:
    url = f"http://{mesh.b.ip}:{HTTP_PORT}"
    before_a, before_b = mesh.metrics(mesh.a), mesh.metrics(mesh.b)
    # Download 6 MB, compare with the origin's hash.
    out = mesh.run_in_a(
        "sh", "-c", f"curl -sf -D - {url}/bytes/{6 * MB} -o /tmp/gsm-e2e-dl && "
        "sha256sum /tmp/gsm-e2e-dl && rm -f /tmp/gsm-e2e-dl"
    )  # fmt: skip
    header_sha = next(
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("x-sha256")
    )
    body_sha = out.strip().splitlines()[-1].split()[0]
    assert body_sha == header_sha
    # Upload 8 MB chunked and 8 MB with content-length; the echo must come back intact.
    payload = mesh.a.state_dir / "upload.bin"
    payload.write_bytes(bytes(range(256)) * (8 * MB // 256))
    want = hashlib.sha256(payload.read_bytes()).hexdigest()
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        echoed = mesh.run_in_a(
            "sh", "-c",
            f"curl -sf {' '.join(extra)} --data-binary @{payload} {url}/echo | sha256sum",
        )  # fmt: skip
        assert echoed.split()[0] == want
    after_a, after_b = mesh.metrics(mesh.a), mesh.metrics(mesh.b)
    authority = f"{mesh.b.ip}:{HTTP_PORT}"
    sent = total(after_a, "request_total", direction="outbound", authority=authority) - total(
        before_a, "request_total", direction="outbound", authority=authority
    )
    received = total(after_b, "request_total", direction="inbound", authority=authority) - total(
        before_b, "request_total", direction="inbound", authority=authority
    )
    assert sent == 3
    assert received == 3
    ok = total(after_b, "response_total", direction="inbound", status_code="200")
    assert ok >= 3
    assert total(after_a, "response_total", direction="outbound", classification="success") >= 3


def test_http1_status_classification(mesh: Mesh) -> None:
    url = f"http://{mesh.b.ip}:{HTTP_PORT}/status/503"
    code = mesh.run_in_a("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert code == "503"
    samples = mesh.metrics(mesh.a)
    assert total(samples, "response_total", status_code="503", classification="failure") >= 1


def test_websocket_upgrade_is_tunnelled(mesh: Mesh) -> None:
    out = mesh.run_in_a(
        PYTHON, str(APPS / "ws_app.py"), "client", f"ws://{mesh.b.ip}:{WS_PORT}/", "20", "65536"
    )
    result = json.loads(out)
    assert result["sent"] == result["got"]
    assert result["text"] == "HELLO"
    samples = mesh.metrics(mesh.b)
    assert total(samples, "response_total", direction="inbound", status_code="101") >= 1


def test_http2_prior_knowledge_download(mesh: Mesh) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is missing: scripts/setup installs it")
    want = hashlib.sha256((mesh.b.state_dir / "www" / "big.bin").read_bytes()).hexdigest()
    out = mesh.run_in_a(
        "sh", "-c",
        f"curl -sf --http2-prior-knowledge -w '%{{http_version}}\\n' "
        f"-o /tmp/gsm-e2e-h2 http://{mesh.b.ip}:{H2_PORT}/big.bin && "
        "sha256sum /tmp/gsm-e2e-h2 && rm -f /tmp/gsm-e2e-h2",
    )  # fmt: skip
    lines = out.strip().splitlines()
    assert lines[0] == "2"
    assert lines[-1].split()[0] == want
    authority = f"{mesh.b.ip}:{H2_PORT}"
    assert total(mesh.metrics(mesh.a), "request_total", direction="outbound", authority=authority)
    assert total(mesh.metrics(mesh.b), "request_total", direction="inbound", authority=authority)


def test_grpc_unary_and_streaming(mesh: Mesh) -> None:
    out = mesh.run_in_a(PYTHON, str(APPS / "grpc_app.py"), "client", str(mesh.b.ip), str(GRPC_PORT))
    result = json.loads(out)
    assert result["unary"] == "echo:hi"
    assert result["unary_big_sha"] == result["unary_big_expected"]
    assert result["server_stream"] == [f"item-{i}" for i in range(5)]
    assert result["client_stream"] == result["client_stream_expected"]
    assert result["bidi"] == ["A", "B", "C"]
    assert result["fail"] == ["NOT_FOUND", "no such thing: x"]
    samples = mesh.metrics(mesh.b)
    assert total(samples, "response_total", direction="inbound", grpc_status="0") >= 5
    failed = total(
        samples, "response_total", direction="inbound", grpc_status="5", classification="failure"
    )
    assert failed >= 1


@pytest.mark.parametrize(("port", "banner"), [(TCP_PORT, False), (OPAQUE_PORT, True)])
def test_opaque_tcp_both_directions_with_half_close(mesh: Mesh, port: int, banner: bool) -> None:
    before = total(mesh.metrics(mesh.b), "tcp_open_total", direction="inbound", peer="src")
    args = [PYTHON, str(APPS / "tcp_echo.py"), "client", str(mesh.b.ip), str(port), str(3 * MB)]
    result = json.loads(mesh.run_in_a(*args, *(["--banner"] if banner else [])))
    assert result["echoed_sha"] == result["sent_sha"]
    # The server's reply after our half-close proves EOF crossed both proxies one way only.
    assert result["trailer"] == "bye:" + result["sent_sha"]
    assert result["banner"] == ("BANNER\n" if banner else "")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = mesh.metrics(mesh.b)
        if total(after, "tcp_open_total", direction="inbound", peer="src") > before:
            break
        time.sleep(0.1)
    target = f"127.0.0.1:{port}"
    assert total(after, "tcp_read_bytes_total", direction="inbound", target_addr=target) >= 3 * MB


def test_refused_upstream_is_502_with_reason(mesh: Mesh) -> None:
    out = mesh.run_in_a("curl", "-s", "-D", "-", "-o", "/dev/null", f"http://{mesh.b.ip}:9999/")
    assert out.startswith("HTTP/1.1 502")
    assert "gossamer-proxy-error:" in out.lower()
