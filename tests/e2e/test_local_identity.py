"""Identity and automatic mutual TLS in local mode, end to end through the CLI, as root in
real namespaces.

Unusable trust files are refused before anything is made. Then one mesh for the module runs
with the user's own trust anchor and issuer (made here with the identity package) and a 1h
certificate lifetime; the tests run in file order and build on each other: a server and a
client of two service accounts talk mutual TLS with each other's identity in their metrics,
`gossamer identity` and `gossamer check` show the certificates, a replaced pod's old token is
refused by the identity service (its proxy says so through the pod's status), and `down`
leaves no token behind and the user's files where they were.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from gossamer.control.identity import (
    generate_issuer,
    generate_trust_anchor,
    write_private,
    write_public,
)
from gossamer.local.hosts import ETC_NETNS
from gossamer.local.netns import list_namespaces
from gossamer.local.ownership import marked_processes, process_alive
from gossamer.local.pod import PROXY_UID
from gossamer.local.state import RuntimeInfo, StateDir

pytestmark = pytest.mark.netns

CLI = [sys.executable, "-m", "gossamer"]
NS = "ident"
SERVER_URL = f"http://server.{NS}.svc.cluster.local:8080/"


def identity(service_account: str) -> str:
    return f"{service_account}.{NS}.serviceaccount.identity.gossamer.cluster.local"


@dataclass(frozen=True)
class Trust:
    anchors: Path
    issuer_certificate: Path
    issuer_key: Path

    def flags(self) -> list[str]:
        return [
            "--identity-trust-anchors-file",
            str(self.anchors),
            "--identity-issuer-certificate-file",
            str(self.issuer_certificate),
            "--identity-issuer-key-file",
            str(self.issuer_key),
        ]

    def contents(self) -> list[bytes]:
        return [self.anchors.read_bytes(), self.issuer_certificate.read_bytes()]


def make_trust(directory: Path, *, issuer_signed_by_another: bool = False) -> Trust:
    anchor = generate_trust_anchor(lifetime=timedelta(days=30))
    signer = generate_trust_anchor() if issuer_signed_by_another else anchor
    issuer = generate_issuer(*signer, lifetime=timedelta(days=30))
    directory.mkdir(parents=True, exist_ok=True)
    trust = Trust(directory / "ca.crt", directory / "issuer.crt", directory / "issuer.key")
    write_public(trust.anchors, anchor.certificate_pem())
    write_public(trust.issuer_certificate, issuer.certificate_pem())
    write_private(trust.issuer_key, issuer.key_pem())
    return trust


def gossamer(
    state: StateDir, *args: str, check: bool = True, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    split = args.index("--") if "--" in args else len(args)
    argv = [*CLI, *args[:split], "--state-dir", str(state.root), *args[split:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"gossamer {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done


def eventually(check: Callable[[], Any], *, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{check.__name__} not true within {timeout}s")
        time.sleep(0.2)


def leftovers(state: StateDir) -> list[str]:
    node = state.node_name
    found = [f"netns {n}" for n in list_namespaces() if n == node or n.startswith(node + ".")]
    if ETC_NETNS.is_dir():
        found += [f"/etc/netns/{e.name}" for e in ETC_NETNS.iterdir() if e.name.startswith(node)]
    found += [f"process {pid}" for pid in marked_processes(node)]
    found += [str(state.run_dir)] if state.run_dir.exists() else []
    return found


@dataclass
class Mesh:
    state: StateDir
    trust: Trust

    def pods(self) -> dict[str, dict[str, Any]]:
        out = gossamer(self.state, "get", "pods", "-n", NS, "-o", "json").stdout
        return {pod["metadata"]["name"]: pod for pod in json.loads(out)["items"]}

    def pod(self, name: str) -> dict[str, Any]:
        """The pod's object; an empty one while it is being replaced."""
        return self.pods().get(name, {"metadata": {}, "status": {}})

    def ready_pods(self) -> set[str]:
        return {name for name, pod in self.pods().items() if pod["status"]["ready"]}

    def exec(self, pod: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return gossamer(self.state, "exec", pod, "-n", NS, "--", *cmd, check=check)

    def metric_lines(self, pod: str, name: str) -> list[str]:
        text = self.exec(pod, "curl", "-sf", "http://127.0.0.1:4191/metrics").stdout
        return [line for line in text.splitlines() if line.startswith(name + "{")]

    def token_file(self, pod: str) -> Path:
        return self.state.run_dir / "pods" / NS / pod / "join-token"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    if os.geteuid() != 0:
        pytest.fail("local mode needs root (CI runs as root)", pytrace=False)
    trust = make_trust(tmp_path_factory.mktemp("users-own-trust"))
    mesh = Mesh(StateDir.at(tmp_path_factory.mktemp("gossamer-identity")), trust)
    try:
        up = gossamer(
            mesh.state,
            "up",
            "--prometheus-port",
            "0",
            *trust.flags(),
            "--identity-cert-lifetime",
            "1h",
        )
        assert "is up" in up.stdout and f"trust:        {trust.anchors}" in up.stdout, up.stdout
        assert "certificates for 1h" in up.stdout
        pods = {
            "server": "--service-account server-sa --port 8080 -- python3 -m http.server 8080",
            "client": "--service-account client-sa -- sleep infinity",
        }
        for name, args in pods.items():
            gossamer(mesh.state, "run", name, "-n", NS, *args.split())
        yield mesh
    finally:
        gossamer(mesh.state, "down", "--purge", check=False)
        assert leftovers(mesh.state) == []


def test_unusable_trust_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path / "refused")
    good = make_trust(tmp_path / "good")
    foreign = make_trust(tmp_path / "foreign", issuer_signed_by_another=True)
    cases = [
        (good.flags()[:4], "go together: give all three"),
        (foreign.flags(), "is not signed by any trust anchor"),
        (
            [*good.flags()[:4], "--identity-issuer-key-file", str(tmp_path / "missing.key")],
            f"cannot read the issuer key file {tmp_path / 'missing.key'}",
        ),
        (
            [*good.flags()[:4], "--identity-issuer-key-file", str(foreign.issuer_key)],
            "the issuer key does not match the issuer certificate",
        ),
    ]
    for flags, message in cases:
        done = gossamer(state, "up", "--prometheus-port", "0", *flags, check=False)
        assert done.returncode == 1 and message in done.stderr, (flags, done.stderr)
    short = gossamer(state, "up", "--identity-cert-lifetime", "10s", check=False)
    assert short.returncode == 2 and "between 1m and 8760h" in short.stderr
    assert leftovers(state) == [] and not state.runtime_file.exists()


def test_the_mesh_runs_with_the_users_trust(mesh: Mesh) -> None:
    runtime = RuntimeInfo.load(mesh.state)
    assert runtime is not None
    assert runtime.trust_anchors_file == str(mesh.trust.anchors)
    assert runtime.identity_addr == f"{runtime.gateway}:8080"
    assert runtime.identity_cert_lifetime == 3600
    # The proxies read a copy of the user's anchors; nothing else of the trust is copied.
    assert (
        mesh.state.run_dir / "trust-anchors.pem"
    ).read_bytes() == mesh.trust.anchors.read_bytes()
    assert [p.name for p in mesh.state.identity_dir.iterdir()] == ["token.key"]
    again = gossamer(mesh.state, "up", *mesh.trust.flags())
    assert "already up" in again.stdout
    other = make_trust(mesh.state.root.parent / "other-trust")
    moved = gossamer(mesh.state, "up", *other.flags(), check=False)
    assert moved.returncode == 1 and f"runs with the trust anchors {mesh.trust.anchors}" in (
        moved.stderr
    )
    longer = gossamer(mesh.state, "up", "--identity-cert-lifetime", "2h", check=False)
    assert longer.returncode == 1 and "down" in longer.stderr


def test_tokens_are_private_to_the_proxy_uid(mesh: Mesh) -> None:
    for pod in ("server-0", "client-0"):
        info = mesh.token_file(pod).stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (PROXY_UID, 0o600)
    anchors = mesh.state.run_dir / "trust-anchors.pem"
    assert stat.S_IMODE(anchors.stat().st_mode) == 0o644


def test_meshed_pods_talk_mutual_tls_as_their_service_accounts(mesh: Mesh) -> None:
    assert mesh.exec("client-0", "curl", "-sf", "-m", "5", SERVER_URL).returncode == 0
    outbound = [
        line
        for line in mesh.metric_lines("client-0", "request_total")
        if 'direction="outbound"' in line and 'authority="server.' in line
    ]
    assert outbound and all('tls="true"' in line for line in outbound), outbound
    assert all(f'server_id="{identity("server-sa")}"' in line for line in outbound), outbound
    inbound = [
        line
        for line in mesh.metric_lines("server-0", "request_total")
        if 'direction="inbound"' in line
    ]
    assert any(
        'tls="true"' in line and f'client_id="{identity("client-sa")}"' in line for line in inbound
    ), inbound


def test_gossamer_identity_shows_the_certificate(mesh: Mesh) -> None:
    shown = gossamer(mesh.state, "identity", "server-0", "-n", NS).stdout
    assert f"dns names:   {identity('server-sa')}" in shown
    issuer = x509.load_pem_x509_certificate(mesh.trust.issuer_certificate.read_bytes())
    assert f"issuer:      {issuer.subject.rfc4514_string()}" in shown
    assert "not before:" in shown and "left)" in shown
    pem = gossamer(mesh.state, "identity", "server-0", "-n", NS, "--pem").stdout
    leaf, chained = x509.load_pem_x509_certificates(pem.encode())
    assert chained == issuer
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert (
        timedelta(hours=1) <= lifetime <= timedelta(hours=1, minutes=1)
    )  # --identity-cert-lifetime


def test_check_covers_identity(mesh: Mesh) -> None:
    checked = gossamer(mesh.state, "check", "--wait", "30s", "-v", timeout=90)
    lines = checked.stdout.splitlines()
    assert "gossamer-identity" in lines
    runtime = RuntimeInfo.load(mesh.state)
    assert runtime is not None
    assert f"\u221a the identity service answers ({runtime.identity_addr})" in lines
    assert any(
        line.startswith("\u221a every meshed pod's proxy holds a valid certificate (2 proxies")
        for line in lines
    ), checked.stdout
    # Trust that ends within 60 days is a warning, which does not fail the check.
    assert "\u203c the trust anchors and the issuer are valid for at least 60 days" in lines
    assert lines[-1] == "Status check results are \u221a"


def test_a_replaced_pod_cannot_use_its_old_token(mesh: Mesh) -> None:
    before = mesh.pod("client-0")
    old_token = mesh.token_file("client-0").read_bytes()
    gossamer(mesh.state, "delete", "pod", "client-0", "-n", NS)

    def replaced() -> dict[str, Any] | None:
        pod = mesh.pod("client-0")
        fresh = pod["metadata"].get("uid") != before["metadata"]["uid"]
        fresh = fresh and pod["status"].get("ready")
        return pod if fresh else None

    after = eventually(replaced)
    assert mesh.token_file("client-0").read_bytes() != old_token
    assert mesh.exec("client-0", "curl", "-sf", "-m", "5", SERVER_URL).returncode == 0

    # The new pod's proxy restarted with the old pod's token: the identity service refuses
    # it, the proxy keeps asking, and the pod's status says why.
    mesh.token_file("client-0").write_bytes(old_token)
    proxy = after["status"]["pids"]["proxy"]
    os.kill(proxy, signal.SIGKILL)
    eventually(lambda: not process_alive(proxy), timeout=5)

    def refused() -> dict[str, Any] | None:
        status = mesh.pod("client-0")["status"]
        return status if status.get("reason") == "CertificateNotIssued" else None

    status = eventually(refused, timeout=30)
    assert "was replaced since its join token was made" in status["message"], status
    assert not status["ready"]
    table = gossamer(mesh.state, "get", "pods", "-n", NS).stdout
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert rows["client-0"][2] == "CertificateNotIssued", table
    checked = gossamer(mesh.state, "check", check=False)
    assert checked.returncode == 1
    assert f"{NS}/client-0: no certificate" in checked.stdout and "was replaced" in checked.stdout
    # Replaced once more, it gets a token of its own and works again.
    gossamer(mesh.state, "delete", "pod", "client-0", "-n", NS)
    eventually(lambda: "client-0" in mesh.ready_pods(), timeout=30)
    assert mesh.exec("client-0", "curl", "-sf", "-m", "5", SERVER_URL).returncode == 0


def test_after_a_supervisor_crash_the_mesh_keeps_the_users_trust(mesh: Mesh) -> None:
    crashed = RuntimeInfo.load(mesh.state)
    assert crashed is not None
    os.kill(crashed.supervisor_pid, signal.SIGKILL)
    eventually(lambda: not process_alive(crashed.supervisor_pid), timeout=5)
    assert "is up" in gossamer(mesh.state, "up").stdout  # no trust flags this time
    runtime = RuntimeInfo.load(mesh.state)
    assert runtime is not None and runtime.supervisor_pid != crashed.supervisor_pid
    assert runtime.trust_anchors_file == str(mesh.trust.anchors)
    assert runtime.identity_cert_lifetime == 3600
    eventually(lambda: mesh.ready_pods() == {"server-0", "client-0"}, timeout=30)
    assert mesh.exec("client-0", "curl", "-sf", "-m", "5", SERVER_URL).returncode == 0
    issuer = x509.load_pem_x509_certificate(mesh.trust.issuer_certificate.read_bytes())
    pem = gossamer(mesh.state, "identity", "client-0", "-n", NS, "--pem").stdout
    assert x509.load_pem_x509_certificates(pem.encode())[1] == issuer


def test_down_leaves_no_token_and_keeps_the_users_trust(mesh: Mesh) -> None:
    before = mesh.trust.contents()
    assert "is down" in gossamer(mesh.state, "down").stdout
    assert leftovers(mesh.state) == []
    assert mesh.state.identity_dir.is_dir()  # the token key stays with the store
    gossamer(mesh.state, "down", "--purge")
    assert not mesh.state.root.exists() and not mesh.state.run_dir.exists()
    assert mesh.trust.contents() == before and mesh.trust.issuer_key.exists()
