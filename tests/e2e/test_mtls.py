"""Identity and mutual TLS between meshed pods, in namespaces, with the real identity and
destination services: certificates issued from join tokens, every meshed hop encrypted and
authenticated, bad certificates refused, rotation under traffic without a failed request."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gossamer.control.identity import (
    ensure_token_key,
    ensure_trust,
    generate_issuer,
    generate_trust_anchor,
    mint_join_token,
)
from gossamer.local.netns import Node, sandbox
from gossamer.local.pod import PROXY_UID, PYTHON, Pod
from tests.e2e.netns_mesh import (
    ControlPlane,
    MeshStore,
    SandboxCluster,
    ServicePort,
    pod_resource,
    proxy_metrics,
    service_resource,
    start_meshed_proxy,
    wait,
)

APPS = Path(__file__).parent / "apps"
DOMAIN = "cluster.local"
MARKER = "GOSSAMER-PLAINTEXT-MARKER-7f3a"

pytestmark = pytest.mark.netns


def identity(sa: str, ns: str = "demo") -> str:
    return f"{sa}.{ns}.serviceaccount.identity.gossamer.{DOMAIN}"


@dataclass
class Mesh(SandboxCluster):
    dir: Path
    web: Pod
    plain: Pod
    anchors_pem: str
    issuer_cert: Path
    issuer_key: Path
    tokens: Path | None = None
    vips: dict[str, str] = field(default_factory=dict)

    def curl(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return self.client.exec(["curl", "-s", "--max-time", "5", *args], timeout=timeout)


def build_mesh(node: Node, base: Path, lifetime: str) -> Mesh:
    trust = ensure_trust(base / "identity", DOMAIN)
    token_key = ensure_token_key(base / "token.key")
    control, client = node.add_pod("control"), node.add_pod("client")
    web, plain = node.add_pod("web"), node.add_pod("plain")
    mesh = Mesh(
        node, MeshStore(base / "store.db"), control, client, base, web, plain,
        trust.trust_anchors.read_text(), trust.issuer_certificate, trust.issuer_key,
        vips={"web": "10.78.0.20", "plain": "10.78.0.21"},
    )  # fmt: skip
    uids = mesh.store.apply(
        service_resource("web", mesh.vips["web"], {"app": "web"}, [ServicePort(80, 8080)]),
        service_resource("plain", mesh.vips["plain"], {"app": "plain"}, [ServicePort(80, 8080)]),
        pod_resource("web-0", str(web.ip), {"app": "web"}, "web"),
        pod_resource("client-0", str(client.ip), {"app": "client"}, "client"),
        pod_resource("plain-0", str(plain.ip), {"app": "plain"}, "plain", meshed=False),
    )
    controllers = ControlPlane(control, mesh.store)
    controllers.start("destination")
    controllers.start(
        "identity", "--lifetime", lifetime, "--trust-anchors", str(trust.trust_anchors),
        "--issuer-cert", str(trust.issuer_certificate), "--issuer-key", str(trust.issuer_key),
        "--token-key", str(base / "token.key"),
    )  # fmt: skip
    # Tokens live where the proxy's uid can reach them (pytest's temp dirs are 0700 root).
    tokens = Path(tempfile.mkdtemp(prefix="gossamer-tokens-", dir="/run"))
    tokens.chmod(0o711)
    for pod, name, sa in ((web, "web-0", "web"), (client, "client-0", "client")):
        own = tokens / name
        own.mkdir(mode=0o700)
        os.chown(own, PROXY_UID, PROXY_UID)
        token = own / "join-token"
        token.write_bytes(mint_join_token(token_key, "demo", name, uids[name], sa, 3600))
        os.chown(token, PROXY_UID, PROXY_UID)
        token.chmod(0o600)
        start_meshed_proxy(
            pod,
            {
                **controllers.proxy_env(),
                "GOSSAMER_PROXY_IDENTITY_LOCAL_NAME": identity(sa),
                "GOSSAMER_PROXY_IDENTITY_TRUST_ANCHORS": mesh.anchors_pem,
                "GOSSAMER_PROXY_IDENTITY_TOKEN_FILE": str(token),
            },
        )
    mesh.tokens = tokens
    for pod, name in ((web, "web"), (plain, "plain")):
        app = pod.spawn([PYTHON, str(APPS / "http_app.py"), "8080", name])
        pod.wait_for_port(8080, process=app)
    return mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with sandbox(prefix="mtls") as node:
        built = None
        try:
            built = build_mesh(node, tmp_path_factory.mktemp("mtls"), "1h")
            yield built
        finally:
            for pod in node.pods.values():
                pod.stop_processes()
            if built is not None and built.tokens is not None:
                shutil.rmtree(built.tokens, ignore_errors=True)


def test_meshed_hop_is_mutual_tls_with_both_identities_in_metrics(mesh: Mesh) -> None:
    reply = mesh.curl(f"http://{mesh.vips['web']}/").stdout
    assert reply == "hello from web"
    client_metrics = mesh.client_metrics()
    web_metrics = proxy_metrics(mesh.web)
    assert f'server_id="{identity("web")}"' in client_metrics
    assert 'direction="outbound"' in client_metrics and 'tls="true"' in client_metrics
    inbound = [
        line for line in web_metrics.splitlines()
        if line.startswith("request_total") and 'direction="inbound"' in line
    ]  # fmt: skip
    assert any(
        f'client_id="{identity("client")}"' in line and 'tls="true"' in line for line in inbound
    )
    assert "identity_cert_expiration_timestamp_seconds" in web_metrics
    # An unmeshed destination is plaintext, and says why.
    assert mesh.curl(f"http://{mesh.vips['plain']}/").stdout == "hello from plain"
    client_metrics = mesh.client_metrics()
    assert 'no_tls_reason="not_provided_by_service_discovery"' in client_metrics


def _capture(pod: Pod, send: Callable[[], None]) -> bytes:
    pcap = pod.state_dir / f"capture-{time.monotonic_ns()}.pcap"
    dump = pod.spawn(
        ["tcpdump", "-i", "eth0", "-U", "--immediate-mode", "-n", "-w", str(pcap), "tcp"],
        name="tcpdump",
    )
    wait(lambda: "listening on" in dump.stderr(), timeout=10)
    send()
    # Stop only once tcpdump has written what its filter received.
    time.sleep(1.0)
    dump.terminate()
    return pcap.read_bytes()


def test_captured_bytes_between_meshed_pods_hold_no_plaintext(mesh: Mesh) -> None:
    def post(vip: str) -> Callable[[], None]:
        def send() -> None:
            result = mesh.curl("--data-binary", MARKER * 20, f"http://{vip}/echo")
            assert MARKER in result.stdout

        return send

    meshed = _capture(mesh.web, post(mesh.vips["web"]))
    assert meshed, "the capture saw no packets"
    assert MARKER.encode() not in meshed
    unmeshed = _capture(mesh.plain, post(mesh.vips["plain"]))
    assert MARKER.encode() in unmeshed


def _probe(mesh: Mesh, *args: str, port: int = 8080) -> dict[str, object]:
    # From the unmeshed pod to web's app port: web's iptables send it to its inbound proxy.
    out = mesh.plain.exec(
        [PYTHON, str(APPS / "tls_probe.py"), str(mesh.web.ip), str(port), identity("web"), *args]
    ).stdout
    return json.loads(out)


def _leaf(
    path: Path, issuer_cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
    name: str, not_before: datetime.datetime, not_after: datetime.datetime,
) -> tuple[Path, Path]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    chain = cert.public_bytes(serialization.Encoding.PEM) + issuer_cert.public_bytes(
        serialization.Encoding.PEM
    )
    cert_path.write_bytes(chain)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_bad_certificates_and_garbage_are_refused_and_nothing_breaks(mesh: Mesh) -> None:
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    # A client certificate from another CA.
    other_anchor = generate_trust_anchor(DOMAIN)
    other_issuer = generate_issuer(other_anchor.certificate, other_anchor.key, DOMAIN)
    foreign = _leaf(
        mesh.dir / "foreign", other_issuer.certificate, other_issuer.key,
        identity("client"), now - day, now + day,
    )  # fmt: skip
    # An expired certificate from the mesh's own issuer.
    issuer_cert = x509.load_pem_x509_certificate(mesh.issuer_cert.read_bytes())
    issuer_key = serialization.load_pem_private_key(mesh.issuer_key.read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    expired = _leaf(
        mesh.dir / "expired", issuer_cert, issuer_key, identity("client"), now - 3 * day, now - day
    )
    for cert, key in (foreign, expired):
        result = _probe(mesh, "--cert", str(cert), "--key", str(key))
        assert "hello" not in str(result["reply"])
    # No client certificate at all.
    assert "hello" not in str(_probe(mesh)["reply"])
    # Garbage that starts like a TLS record, to the app port and to the proxy's own port.
    _probe(mesh, "--garbage")
    _probe(mesh, "--garbage", port=4143)
    # The proxy's own port takes only opaque transport inside mesh TLS, even from a client
    # with a valid certificate.
    # A valid client certificate from the mesh's issuer is accepted (authentication only).
    valid = _leaf(
        mesh.dir / "valid", issuer_cert, issuer_key, identity("client"), now - day, now + day
    )
    direct = _probe(mesh, "--cert", str(valid[0]), "--key", str(valid[1]), port=4143)
    assert "200" not in str(direct["reply"])
    ok = _probe(mesh, "--cert", str(valid[0]), "--key", str(valid[1]))
    assert ok["handshake"] and "200" in str(ok["reply"])
    # The proxy is unharmed: meshed traffic still flows.
    assert mesh.curl(f"http://{mesh.vips['web']}/").stdout == "hello from web"


def test_a_server_proving_another_identity_is_refused(mesh: Mesh) -> None:
    """Discovery says the endpoint is "impostor"; servers that cannot prove exactly that are
    refused: one with a mesh certificate for another name, one from another CA, and a
    meshed proxy of another identity (which does not even terminate TLS for that name)."""
    fake = mesh.node.add_pod("fake")
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    issuer_cert = x509.load_pem_x509_certificate(mesh.issuer_cert.read_bytes())
    issuer_key = serialization.load_pem_private_key(mesh.issuer_key.read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    other_anchor = generate_trust_anchor(DOMAIN)
    other_issuer = generate_issuer(other_anchor.certificate, other_anchor.key, DOMAIN)
    certs = {
        8080: _leaf(mesh.dir / "wrong-name", issuer_cert, issuer_key, identity("web"),
                    now - day, now + day),
        8081: _leaf(mesh.dir / "other-ca", other_issuer.certificate, other_issuer.key,
                    identity("impostor"), now - day, now + day),
    }  # fmt: skip
    for port, (cert, key) in certs.items():
        server = fake.spawn([PYTHON, str(APPS / "tls_server.py"), str(port), str(cert), str(key)])
        fake.wait_for_port(port, process=server)
    vip = "10.78.0.22"
    mesh.apply(
        service_resource(
            "fake", vip, {"app": "fake"}, [ServicePort(80, 8080, "a"), ServicePort(81, 8081, "b")]
        ),
        pod_resource("fake-0", str(fake.ip), {"app": "fake"}, "impostor"),
    )
    for port in (80, 81):

        def proved_wrong(port: int = port) -> bool:
            # Until discovery has the new service, the VIP is unreachable: wait for that.
            out = mesh.curl("-D", "-", "-o", "/dev/null", f"http://{vip}:{port}/").stdout
            assert "200" not in out.split("\n", 1)[0], out
            return "failed to prove identity " + identity("impostor") in out

        wait(proved_wrong)
    # web's own proxy, named "impostor" by discovery: it passes the unknown name through to
    # its plaintext app, so the handshake fails; no request leaves the client in clear.
    mesh.apply(pod_resource("web-0", str(mesh.web.ip), {"app": "web"}, "impostor"))
    try:

        def refused() -> bool:
            out = mesh.curl("-D", "-", "-o", "/dev/null", f"http://{mesh.vips['web']}/").stdout
            return out.startswith("HTTP/1.1 502") and "TLS handshake" in out

        wait(refused)
    finally:
        mesh.apply(pod_resource("web-0", str(mesh.web.ip), {"app": "web"}, "web"))
    wait(lambda: mesh.curl(f"http://{mesh.vips['web']}/").stdout == "hello from web")


def test_opaque_tcp_to_a_service_is_mutual_tls_to_the_peer_proxys_own_port(mesh: Mesh) -> None:
    """An opaque connection to a service goes to the endpoint its balancer chose, inside mesh
    TLS to that pod's proxy port with the transport header naming the app's port."""
    port, vip = 6379, "10.78.0.23"  # 6379 is in the default opaque list
    echo = mesh.web.spawn([PYTHON, str(APPS / "tcp_echo.py"), "server", str(port), "--banner"])
    mesh.web.wait_for_port(port, process=echo)
    mesh.apply(service_resource("cache", vip, {"app": "web"}, [ServicePort(port, port)]))
    # No half-close: asyncio's TLS transports cannot write an EOF, so one does not cross
    # mesh TLS (the connection is closed by the client once the echo is back).
    client = [PYTHON, str(APPS / "tcp_echo.py"), "client", vip, str(port), "100000", "--banner",
              "--no-eof"]  # fmt: skip

    def echoed() -> bool:
        # Until discovery has the new service, the VIP leads nowhere: wait for that.
        done = mesh.client.exec(client, check=False, timeout=10)
        if done.returncode != 0:
            return False
        result = json.loads(done.stdout)
        return bool(result["echoed_sha"] == result["sent_sha"] and result["banner"] == "BANNER\n")

    wait(echoed)
    outbound = [
        line for line in mesh.client_metrics().splitlines()
        if line.startswith("tcp_open_total") and 'direction="outbound"' in line
        and 'peer="dst"' in line and f'target_addr="{mesh.web.ip}:{port}"' in line
    ]  # fmt: skip
    assert outbound and all(
        'tls="true"' in line and f'server_id="{identity("web")}"' in line for line in outbound
    ), outbound
    # On web's side the connection arrived on the proxy's own port, for the app's port.
    inbound = [
        line for line in proxy_metrics(mesh.web).splitlines()
        if line.startswith("tcp_open_total") and 'direction="inbound"' in line
        and f'target_addr="127.0.0.1:{port}"' in line
    ]  # fmt: skip
    assert any(f'client_id="{identity("client")}"' in line for line in inbound), inbound


def test_rotation_under_continuous_traffic_loses_no_request(tmp_path: Path) -> None:
    with sandbox(prefix="rot") as node:
        try:
            mesh = build_mesh(node, tmp_path, "4s")
            url = f"http://{mesh.vips['web']}/"
            deadline = time.monotonic() + 12
            sent = failed = 0
            while time.monotonic() < deadline and sent < 2000:
                reply = mesh.curl(url)
                sent += 1
                failed += reply.stdout != "hello from web"
            refreshes = [
                line for line in proxy_metrics(mesh.web).splitlines()
                if line.startswith("identity_cert_refresh_count ")
            ]  # fmt: skip
            assert failed == 0, f"{failed} of {sent} requests failed during rotation"
            assert sent > 50
            assert refreshes and float(refreshes[0].split()[1]) >= 3
        finally:
            for pod in node.pods.values():
                pod.stop_processes()
            shutil.rmtree(mesh.tokens or "/nonexistent", ignore_errors=True)
