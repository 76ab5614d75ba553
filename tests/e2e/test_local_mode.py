"""Local mode end to end, through the CLI, as a user runs it (as root, in real namespaces).

One mesh for the module (`gossamer up` in a temporary state directory, with Prometheus on
an ephemeral host port); the tests run in file order and build on each other: pods are
started, reached by name through their proxies, counted by Prometheus, killed, cut off from
their proxy, survive a crash of the supervisor, are deleted; the mesh then goes down and
nothing of it may remain.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gossamer.local.hosts import ETC_NETNS
from gossamer.local.netns import list_namespaces
from gossamer.local.ownership import marked_processes, process_alive
from gossamer.local.state import RuntimeInfo, StateDir

pytestmark = pytest.mark.netns

CLI = [sys.executable, "-m", "gossamer"]
NS = "demo"
WEB_URL = f"http://web.{NS}.svc.cluster.local:8080/"


@dataclass
class Mesh:
    state: StateDir

    def cli(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CLI, args[0], "--state-dir", str(self.state.root), *args[1:]],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"gossamer {' '.join(args)}: {done.returncode}\n{done.stderr}")
        return done

    def exec(self, pod: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli("exec", pod, "-n", NS, "--", *cmd, check=check)

    def pods(self) -> dict[str, dict]:  # type: ignore[type-arg]
        listing = json.loads(self.cli("get", "pods", "-n", NS, "-o", "json").stdout)
        return {item["metadata"]["name"]: item for item in listing["items"]}

    def runtime(self) -> RuntimeInfo:
        runtime = RuntimeInfo.load(self.state)
        assert runtime is not None
        return runtime

    def metrics(self, pod: str) -> list[tuple[str, dict[str, str], float]]:
        text = self.exec(pod, "curl", "-sf", "http://127.0.0.1:4191/metrics").stdout
        return [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]


def eventually(
    check: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.2
) -> object:
    """The first truthy result of `check()`, retried until `timeout` (then the last error)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            problem: object = f"{check.__name__} stayed false"
        except AssertionError as error:
            problem = error
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {problem}")
        time.sleep(interval)


def host_lines_with_mesh_addresses() -> list[str]:
    """Links, addresses and routes of the host namespace mentioning the mesh's ranges."""
    lines = []
    for argv in (["ip", "-o", "addr"], ["ip", "route", "show", "table", "all"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        lines += [line for line in out.splitlines() if "10.77." in line or "10.78." in line]
    return lines


def leftovers(state: StateDir) -> list[str]:
    node = state.node_name
    found = [f"netns {n}" for n in list_namespaces() if n == node or n.startswith(node + ".")]
    if ETC_NETNS.is_dir():
        found += [f"/etc/netns/{e.name}" for e in ETC_NETNS.iterdir() if e.name.startswith(node)]
    found += [f"process {pid}" for pid in marked_processes(node)]
    found += [f"tokens {state.run_dir}"] if state.run_dir.exists() else []
    return found


def join_tokens(state: StateDir) -> dict[str, bytes]:
    """Each meshed pod's join token, by pod name."""
    directory = state.run_dir / "pods" / NS
    return {pod.name: (pod / "join-token").read_bytes() for pod in directory.iterdir()}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    if os.geteuid() != 0:
        pytest.fail("local mode needs root (CI runs as root)", pytrace=False)
    mesh = Mesh(StateDir.at(tmp_path_factory.mktemp("gossamer-home")))
    assert host_lines_with_mesh_addresses() == []
    try:
        up = mesh.cli("up", "--prometheus-port", "0")
        assert "is up" in up.stdout, up.stdout
        yield mesh
    finally:
        keep_logs(mesh.state, tmp_path_factory.mktemp("gossamer-logs"))
        mesh.cli("down", "--purge", check=False)
        assert leftovers(mesh.state) == []


def keep_logs(state: StateDir, into: Path) -> None:
    """Copy the mesh's logs out of the state directory `down --purge` removes (pytest keeps
    its last temporary directories: the logs of a failed run can be read there)."""
    if state.supervisor_log.exists():
        shutil.copy(state.supervisor_log, into / "supervisor.log")
    if state.pods_dir.is_dir():
        shutil.copytree(state.pods_dir, into / "pods", dirs_exist_ok=True)


def test_run_before_up_is_refused(tmp_path: Path) -> None:
    lonely = Mesh(StateDir.at(tmp_path / "never-up"))
    done = lonely.cli("run", "web", "-n", NS, "--port", "8080", "--", "true", check=False)
    assert done.returncode == 1 and "gossamer up" in done.stderr, done.stderr
    done = lonely.cli("get", "pods", check=False)
    assert done.returncode == 1 and "gossamer up" in done.stderr, done.stderr
    assert not (tmp_path / "never-up").exists()


def test_up_is_idempotent_and_keeps_addresses_off_the_host(mesh: Mesh) -> None:
    runtime = mesh.runtime()
    again = mesh.cli("up")
    assert "already up" in again.stdout and runtime.prometheus_url in again.stdout
    assert mesh.runtime().supervisor_pid == runtime.supervisor_pid
    moved = mesh.cli("up", "--subnet", "10.99.0.0/16", check=False)
    assert moved.returncode == 1 and "made with --subnet 10.77.0.0/16" in moved.stderr
    # The supervisor lives in the node namespace.
    node_ns = os.stat(f"/run/netns/{runtime.node_netns}").st_ino
    assert os.stat(f"/proc/{runtime.supervisor_pid}/ns/net").st_ino == node_ns
    with urllib.request.urlopen(f"{runtime.prometheus_url}/-/ready", timeout=5) as answer:
        assert answer.status == 200
    assert host_lines_with_mesh_addresses() == []
    # The mesh made its own trust and token key, the keys readable by root only.
    identity = mesh.state.identity_dir
    assert runtime.trust_anchors_file == str(identity / "trust-anchors.pem")
    modes = {path.name: path.stat().st_mode & 0o777 for path in identity.iterdir()}
    assert modes == {
        "trust-anchors.pem": 0o644,
        "trust-anchor.key": 0o600,
        "issuer.crt": 0o644,
        "issuer.key": 0o600,
        "token.key": 0o600,
    }
    assert identity.stat().st_mode & 0o777 == 0o700


def test_run_starts_meshed_pods_behind_a_service(mesh: Mesh) -> None:
    web = mesh.cli(
        "run",
        "web",
        "-n",
        NS,
        "--port",
        "8080",
        "--replicas",
        "2",
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
    )
    assert "web.demo.svc.cluster.local (10.78." in web.stdout, web.stdout
    mesh.cli("run", "client", "-n", NS, "--env", "GREETING=hi", "--", "sleep", "infinity")
    mesh.cli("run", "plain", "-n", NS, "--no-mesh", "--", "sleep", "infinity")
    table = mesh.cli("get", "pods", "-n", NS).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"web-0", "web-1", "client-0", "plain-0"}
    assert rows["web-0"][1:4] == ["2/2", "Running", "0"] and rows["plain-0"][1] == "1/1"
    wide = mesh.cli("get", "services", "-A", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAMESPACE",
        "NAME",
        "CLUSTER-IP",
        "PORTS",
        "AGE",
        "TYPE",
        "SELECTOR",
    ]
    assert wide[1].split()[:4] == [NS, "web", wide[1].split()[2], "8080/TCP"]
    service = yaml.safe_load(mesh.cli("get", "service", "web", "-n", NS, "-o", "yaml").stdout)
    assert service["kind"] == "Service" and service["spec"]["clusterIP"].startswith("10.78.")
    workloads = json.loads(mesh.cli("get", "workloads", "-n", NS, "-o", "json").stdout)
    assert {w["metadata"]["name"] for w in workloads["items"]} == {"web", "client", "plain"}


def test_exec_reaches_pods_and_services_through_the_proxies(mesh: Mesh) -> None:
    pods = mesh.pods()
    web_ips = {pods[name]["status"]["podIP"] for name in ("web-0", "web-1")}
    by_ip = mesh.exec("client-0", "curl", "-sf", "-m", "5", f"http://{min(web_ips)}:8080/")
    assert "Directory listing" in by_ip.stdout
    for url in (WEB_URL, "http://web:8080/", "http://web.demo:8080/"):
        assert "Directory listing" in mesh.exec("client-0", "curl", "-sf", "-m", "5", url).stdout
    assert mesh.exec("client-0", "sh", "-c", "echo $GREETING").stdout.strip() == "hi"
    requests = [
        (labels, value)
        for name, labels, value in mesh.metrics("client-0")
        if name == "request_total" and labels.get("direction") == "outbound"
    ]
    by_name = [labels for labels, _ in requests if labels["authority"] == WEB_URL[7:-1]]
    # The proxy resolved the service's VIP to a pod through the destination service.
    assert by_name and {labels["target_ip"] for labels in by_name} <= web_ips, requests
    # ...and the hop between the two proxies was mutual TLS, web's identity checked.
    web_id = "default.demo.serviceaccount.identity.gossamer.cluster.local"
    assert all(labels["tls"] == "true" for labels in by_name), by_name
    assert all(labels["server_id"] == web_id for labels in by_name), by_name
    assert (
        "GET / HTTP/1.1"
        in mesh.cli("logs", "web-0", "-n", NS).stdout + mesh.cli("logs", "web-1", "-n", NS).stdout
    )
    assert "proxy ready" in mesh.cli("logs", "client-0", "-n", NS, "--proxy", "--tail", "5").stdout


def test_unmeshed_pod_reaches_the_service_through_the_node(mesh: Mesh) -> None:
    answers = {mesh.exec("plain-0", "curl", "-sf", "-m", "5", WEB_URL).returncode for _ in range(4)}
    assert answers == {0}
    done = mesh.exec("plain-0", "curl", "-s", "http://127.0.0.1:4191/metrics", check=False)
    assert done.returncode == 7  # nothing listens: no sidecar


def test_prometheus_scrapes_every_meshed_proxy(mesh: Mesh) -> None:
    url = mesh.runtime().prometheus_url
    query = 'sum by (namespace, deployment, pod) (request_total{direction="outbound"})'

    def client_series() -> list[dict]:  # type: ignore[type-arg]
        with urllib.request.urlopen(
            f"{url}/api/v1/query?query={urllib.parse.quote(query)}", timeout=5
        ) as answer:
            return json.load(answer)["data"]["result"]

    series = eventually(client_series, timeout=20)
    assert {"namespace": NS, "deployment": "client", "pod": "client-0"} in [
        s["metric"]
        for s in series  # type: ignore[attr-defined]
    ]
    with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as answer:
        targets = json.load(answer)["data"]["activeTargets"]
    scraped = {t["labels"].get("pod") for t in targets if t["labels"]["job"] == "gossamer-proxy"}
    assert scraped == {"web-0", "web-1", "client-0"}


def test_killed_app_comes_back_with_a_restart_counted(mesh: Mesh) -> None:
    before = mesh.pods()["web-0"]["status"]
    os.kill(before["pids"]["app"], signal.SIGKILL)

    def restarted() -> dict | None:  # type: ignore[type-arg]
        status = mesh.pods()["web-0"]["status"]
        return status if status["restarts"] == 1 and status["ready"] else None

    after = eventually(restarted, timeout=15)
    assert after["pids"]["app"] != before["pids"]["app"]  # type: ignore[index]
    assert after["pids"]["proxy"] == before["pids"]["proxy"]  # type: ignore[index]
    row = mesh.cli("get", "pods", "-n", NS).stdout
    assert any(line.split()[:4] == ["web-0", "2/2", "Running", "1"] for line in row.splitlines())


def test_a_client_without_its_proxy_is_refused_locally(mesh: Mesh) -> None:
    proxy = mesh.pods()["client-0"]["status"]["pids"]["proxy"]
    os.kill(proxy, signal.SIGKILL)
    eventually(lambda: not process_alive(proxy), timeout=5, interval=0.02)
    started = time.monotonic()
    done = mesh.exec("client-0", "curl", "-s", "-m", "5", WEB_URL, check=False)
    # Redirected to 127.0.0.1:4140 where nothing listens: refused at once (curl exit 7),
    # no timeout, nothing sent anywhere else.
    assert done.returncode == 7 and time.monotonic() - started < 2.0, done
    eventually(lambda: mesh.pods()["client-0"]["status"]["ready"], timeout=15)
    assert mesh.exec("client-0", "curl", "-sf", "-m", "5", WEB_URL).returncode == 0


def test_apply_stores_valid_objects_and_rejects_bad_ones(mesh: Mesh) -> None:
    manifest = f"""\
apiVersion: v1
kind: Service
metadata:
  name: web-alias
  namespace: {NS}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"""
    assert "service/web-alias created" in mesh.cli("apply", "-f", "-", input=manifest).stdout
    assert "unchanged" in mesh.cli("apply", "-f", "-", input=manifest).stdout
    alias = mesh.exec("client-0", "curl", "-s", "-m", "5", "http://web-alias/", check=False)
    assert (
        alias.returncode == 0
        or "web-alias" not in mesh.exec("client-0", "cat", "/etc/hosts").stdout
    )
    eventually(
        lambda: (
            mesh.exec("client-0", "curl", "-sf", "-m", "5", "http://web-alias/").returncode == 0
        ),
        timeout=10,
    )
    bad = mesh.cli(
        "apply", "-f", "-", input=manifest.replace("port: 80", "port: 99999"), check=False
    )
    assert (
        bad.returncode == 1 and "<stdin>:9:5" in bad.stderr and "spec.ports[0].port" in bad.stderr
    )
    unknown = mesh.cli(
        "apply", "-f", "-", input="apiVersion: v9\nkind: Gizmo\nmetadata: {name: g}\n", check=False
    )
    assert unknown.returncode == 1 and "unknown kind Gizmo" in unknown.stderr
    broken = mesh.cli("apply", "-f", "-", input="kind: [\n", check=False)
    assert (
        broken.returncode == 1 and "invalid YAML" in broken.stderr and "<stdin>:2" in broken.stderr
    )


def test_clashes_and_unknown_pods_get_clear_errors(mesh: Mesh) -> None:
    clash = mesh.cli("run", "web", "-n", NS, "--port", "9000", "--", "true", check=False)
    assert clash.returncode == 1 and "Service web already exists" in clash.stderr
    proxy_port = mesh.cli("run", "admin", "-n", NS, "--port", "4191", "--", "true", check=False)
    assert proxy_port.returncode == 1 and "proxy's own" in proxy_port.stderr
    for args in (("exec", "nope", "-n", NS, "--", "true"), ("logs", "nope", "-n", NS)):
        done = mesh.cli(*args, check=False)
        assert (
            done.returncode == 1 and "pod nope not found" in done.stderr and "web-0" in done.stderr
        )


def test_a_crash_looping_app_fails_run_early(mesh: Mesh) -> None:
    started = time.monotonic()
    done = mesh.cli("run", "crash", "-n", NS, "--", "sh", "-c", "echo boom; exit 3", check=False)
    assert done.returncode == 1 and time.monotonic() - started < 20
    assert "CrashLoopBackOff" in done.stderr and "exited with code 3" in done.stderr, done.stderr
    assert "boom" in mesh.cli("logs", "crash-0", "-n", NS).stdout
    assert "Workload demo/crash deleted" in mesh.cli("delete", "workload", "crash", "-n", NS).stdout


def test_scaling_a_workload_by_apply(mesh: Mesh) -> None:
    workload = yaml.safe_load(mesh.cli("get", "workload", "web", "-n", NS, "-o", "yaml").stdout)
    workload["spec"]["replicas"] = 3
    del workload["status"], workload["metadata"]["resourceVersion"]
    assert "configured" in mesh.cli("apply", "-f", "-", input=yaml.safe_dump(workload)).stdout
    eventually(lambda: mesh.pods().get("web-2", {}).get("status", {}).get("ready"), timeout=20)
    workload["spec"]["replicas"] = 2
    mesh.cli("apply", "-f", "-", input=yaml.safe_dump(workload))
    eventually(lambda: "web-2" not in mesh.pods(), timeout=20)
    assert not [n for n in list_namespaces() if n.endswith(f".{NS}.web-2")]


def test_a_deleted_pod_is_replaced(mesh: Mesh) -> None:
    before = mesh.pods()["plain-0"]
    assert "Pod demo/plain-0 deleted" in mesh.cli("delete", "pod", "plain-0", "-n", NS).stdout

    def replaced() -> bool:
        pod = mesh.pods().get("plain-0")
        return bool(
            pod and pod["metadata"]["uid"] != before["metadata"]["uid"] and pod["status"]["ready"]
        )

    eventually(replaced, timeout=20)
    assert not process_alive(before["status"]["pids"]["app"])


def test_up_with_a_taken_port_changes_nothing(tmp_path: Path) -> None:
    other = Mesh(StateDir.at(tmp_path / "other"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = other.cli("up", "--prometheus-port", port, check=False)
    assert done.returncode == 1 and f"127.0.0.1:{port}" in done.stderr, done.stderr
    assert "--prometheus-port" in done.stderr
    assert leftovers(other.state) == [] and not other.state.runtime_file.exists()


def test_a_second_state_dir_is_an_independent_mesh(mesh: Mesh, tmp_path: Path) -> None:
    other = Mesh(StateDir.at(tmp_path / "second"))
    assert other.state.node_name != mesh.state.node_name
    try:
        other.cli("up", "--prometheus-port", "0")
        assert other.runtime().prometheus_url != mesh.runtime().prometheus_url
        # The same names and the same addresses, in another node: no clash.
        other.cli(
            "run", "web", "-n", NS, "--port", "8080", "--", "python3", "-m", "http.server", "8080"
        )
        other.cli("run", "client", "-n", NS, "--", "sleep", "infinity")
        answer = other.exec("client-0", "curl", "-s", "-i", "-m", "5", WEB_URL)
        assert "200 OK" in answer.stdout, (
            answer,
            other.cli("logs", "client-0", "-n", NS, "--proxy").stdout,
        )
        assert set(other.pods()) == {"web-0", "client-0"}
        assert "web-1" in mesh.pods()
    finally:
        other.cli("down", "--purge", check=False)
    assert leftovers(other.state) == []
    assert mesh.exec("client-0", "curl", "-sf", "-m", "5", WEB_URL).returncode == 0


def test_supervisor_crash_then_up_brings_the_pods_back(mesh: Mesh) -> None:
    runtime = mesh.runtime()
    old_apps = [pod["status"]["pids"]["app"] for pod in mesh.pods().values()]
    old_uids = {name: pod["metadata"]["uid"] for name, pod in mesh.pods().items()}
    old_tokens = join_tokens(mesh.state)
    assert set(old_tokens) == {"web-0", "web-1", "client-0"}  # meshed pods only
    os.kill(runtime.supervisor_pid, signal.SIGKILL)
    eventually(lambda: not process_alive(runtime.supervisor_pid), timeout=5, interval=0.02)
    refused = mesh.cli("run", "late", "-n", NS, "--", "true", check=False)
    assert refused.returncode == 1 and "gossamer up" in refused.stderr
    assert "is up" in mesh.cli("up").stdout
    assert mesh.runtime().supervisor_pid != runtime.supervisor_pid
    assert mesh.runtime().prometheus_url == runtime.prometheus_url

    def all_ready() -> bool:
        pods = mesh.pods()
        return len(pods) == 4 and all(p["status"]["ready"] for p in pods.values())

    eventually(all_ready, timeout=30)
    assert not any(process_alive(pid) for pid in old_apps)
    assert mesh.exec("client-0", "curl", "-sf", "-m", "5", WEB_URL).returncode == 0
    # Pods made again are new Pod objects, with fresh tokens for their new uids.
    new_uids = {name: pod["metadata"]["uid"] for name, pod in mesh.pods().items()}
    assert not set(new_uids.values()) & set(old_uids.values())
    new_tokens = join_tokens(mesh.state)
    assert set(new_tokens) == set(old_tokens)
    assert all(new_tokens[name] != old_tokens[name] for name in new_tokens)


def test_delete_service_stops_its_pods(mesh: Mesh) -> None:
    done = mesh.cli("delete", "service", "web", "-n", NS)
    assert "Service demo/web deleted" in done.stdout and "Workload demo/web deleted" in done.stdout
    eventually(lambda: set(mesh.pods()) == {"client-0", "plain-0"}, timeout=20)
    eventually(lambda: set(join_tokens(mesh.state)) == {"client-0"}, timeout=10)
    node = mesh.state.node_name
    assert not [n for n in list_namespaces() if n.startswith(f"{node}.{NS}.web-")]
    gone = mesh.exec("client-0", "curl", "-s", "-m", "5", WEB_URL, check=False)
    assert gone.returncode != 0


def test_down_leaves_nothing(mesh: Mesh) -> None:
    done = mesh.cli("down")
    assert "is down" in done.stdout
    assert leftovers(mesh.state) == []
    assert not mesh.state.runtime_file.exists() and mesh.state.store_db.exists()
    assert host_lines_with_mesh_addresses() == []
    assert not mesh.state.run_dir.exists()  # no join token outlives the mesh
    assert (mesh.state.identity_dir / "issuer.key").exists()  # the trust stays for next time
    again = mesh.cli("down", "--purge")
    assert "is down" in again.stdout and not mesh.state.root.exists()
