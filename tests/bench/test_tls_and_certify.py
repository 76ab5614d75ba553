"""The benchmark's mTLS and Certify parts that need no sandbox: rendered HAProxy and nginx
TLS configurations (checked by the real `haproxy -c` and `nginx -t`), the scenario data,
the report's rows, ratios, targets and notes, and the Certify driver's plumbing."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import configs, render, report
from bench.certify import read_requests, write_requests
from bench.configs import TlsFiles
from bench.loadgen import LoadResult
from bench.procstat import Usage
from bench.report import ScenarioRecord
from bench.runner import Measurement, _Lines
from bench.scenarios import CERTIFY, SCENARIOS
from bench.settings import QUICK, CpuPlan
from bench.testbed import H1, H2, INBOUND_PORT, TESTBED, Endpoint, named, tls_identity
from gossamer.api.gen import identity_pb2 as pb
from gossamer.control.identity import Issuer, ensure_trust

CPUS = CpuPlan(load="0", proxy="1", pinned=True)


def _resolve(endpoint: Endpoint) -> str:
    return f"10.77.0.9:{endpoint.port}" if endpoint.pod else f"127.0.0.1:{endpoint.port}"


def _tls_files(directory: Path, name: str) -> TlsFiles:
    trust = ensure_trust(directory / "identity")
    issuer_cert = x509.load_pem_x509_certificate(trust.issuer_certificate.read_bytes())
    issuer_key = serialization.load_pem_private_key(trust.issuer_key.read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = Issuer(issuer_cert, issuer_key).issue(
        key.public_key(), tls_identity(name), now=datetime.now(UTC), lifetime=timedelta(hours=1)
    )
    chain = leaf.certificate.public_bytes(serialization.Encoding.PEM) + issuer_cert.public_bytes(
        serialization.Encoding.PEM
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files = TlsFiles(
        trust.trust_anchors, directory / "c.crt", directory / "c.key", directory / "c.pem"
    )
    files.chain.write_bytes(chain)
    files.key.write_bytes(key_pem)
    files.bundle.write_bytes(chain + key_pem)
    return files


# Configurations -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [H1, H2])
def test_haproxy_tls_chain_is_mutual_tls_1_3_with_the_expected_server_name(
    tmp_path: Path, protocol: str
) -> None:
    files = _tls_files(tmp_path, "x")
    a = configs.haproxy(TESTBED.proxy(named("haproxy-tls-a", protocol)), _resolve, files)
    b = configs.haproxy(TESTBED.proxy(named("haproxy-tls-b", protocol)), _resolve, files)
    expected = tls_identity(named("haproxy-tls-b", protocol))
    alpn = "alpn h2" if protocol == H2 else "alpn http/1.1"
    for text in (a, b):
        assert "ssl-min-ver TLSv1.3" in text and "http-reuse always" in text
    server = next(line for line in a.splitlines() if line.strip().startswith("server "))
    assert f" ssl verify required ca-file {files.ca} crt {files.bundle}" in server
    assert f"sni str({expected}) verifyhost {expected}" in server and alpn in server
    bind = next(line for line in b.splitlines() if line.strip().startswith("bind "))
    assert f"ssl crt {files.bundle} verify required ca-file {files.ca}" in bind and alpn in bind
    # The plaintext chain stays plaintext.
    plain = configs.haproxy(TESTBED.proxy(named("haproxy-chain-a", protocol)), _resolve)
    assert " ssl " not in plain


@pytest.mark.parametrize("protocol", [H1, H2])
def test_nginx_tls_chain_is_mutual_tls_1_3_and_keeps_upstream_connections(
    tmp_path: Path, protocol: str
) -> None:
    files = _tls_files(tmp_path, "x")
    a = configs.nginx_proxy(
        TESTBED.proxy(named("nginx-tls-a", protocol)), tmp_path, _resolve, files
    )
    b = configs.nginx_proxy(
        TESTBED.proxy(named("nginx-tls-b", protocol)), tmp_path, _resolve, files
    )
    assert "proxy_pass https://up0;" in a and "proxy_ssl_verify on;" in a
    assert f"proxy_ssl_name {tls_identity(named('nginx-tls-b', protocol))};" in a
    assert "proxy_ssl_protocols TLSv1.3;" in a and f"proxy_ssl_certificate {files.chain};" in a
    assert "ssl_verify_client on;" in b and "ssl_protocols TLSv1.3;" in b
    assert f"ssl_client_certificate {files.ca};" in b
    # nginx's default of 1000 requests per upstream connection would re-handshake.
    for text in (a, b):
        assert f"keepalive_requests {configs.KEEPALIVE_REQUESTS};" in text


def test_tls_routes_without_files_are_refused() -> None:
    with pytest.raises(ValueError, match="TLS files"):
        configs.haproxy(TESTBED.proxy(named("haproxy-tls-b", H1)), _resolve)


@pytest.mark.parametrize("instance", ["haproxy-tls-a", "haproxy-tls-b"])
@pytest.mark.parametrize("protocol", [H1, H2])
def test_haproxy_accepts_the_rendered_tls_configs(
    tmp_path: Path, instance: str, protocol: str
) -> None:
    assert shutil.which("haproxy"), "haproxy is missing: scripts/setup installs it"
    files = _tls_files(tmp_path, "x")
    path = tmp_path / "h.cfg"
    path.write_text(configs.haproxy(TESTBED.proxy(named(instance, protocol)), _resolve, files))
    done = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("instance", ["nginx-tls-a", "nginx-tls-b"])
@pytest.mark.parametrize("protocol", [H1, H2])
def test_nginx_accepts_the_rendered_tls_configs(
    tmp_path: Path, instance: str, protocol: str
) -> None:
    assert shutil.which("nginx"), "nginx is missing: scripts/setup installs it"
    assert os.geteuid() == 0, "nginx -t opens its files as root: run the tests as root, as CI does"
    files = _tls_files(tmp_path, "x")
    path = tmp_path / "n.conf"
    spec = TESTBED.proxy(named(instance, protocol))
    path.write_text(configs.nginx_proxy(spec, tmp_path, _resolve, files))
    done = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


# Scenarios ------------------------------------------------------------------------------


def test_every_tls_scenario_counts_connections_at_a_tls_listener() -> None:
    tls = [s for s in SCENARIOS if s.mtls]
    assert {s.name for s in tls} == {
        f"{path}/{p}" for path in ("haproxy-tls", "gossamer-mtls", "nginx-tls") for p in (H1, H2)
    }
    for scenario in tls:
        assert scenario.tls_hop is not None and scenario.tls_hop.pod is not None
        for name in scenario.proxies:
            TESTBED.proxy(name)  # exists
        if scenario.system != "gossamer":
            # Sidecars behind the `gossamer init` rules: A dials the hop (B's pod, the
            # origin's port), B's REDIRECT takes it to B on 4143, which requires client certs.
            a, b = (TESTBED.proxy(name) for name in scenario.proxies)
            assert TESTBED.pod(a.pod).meshed and TESTBED.pod(b.pod).meshed
            assert a.routes[0].upstream == scenario.tls_hop and a.routes[0].upstream_identity
            assert b.pod == scenario.tls_hop.pod
            assert b.routes[0].tls_listen and b.routes[0].port == INBOUND_PORT


def test_the_mtls_mesh_path_dials_a_service_vip_between_certified_pods() -> None:
    for p in (H1, H2):
        scenario = next(s for s in SCENARIOS if s.name == f"gossamer-mtls/{p}")
        assert scenario.target.service is not None
        service = TESTBED.service(scenario.target.service)
        assert not service.vip.startswith("10.77.")  # outside the pod subnet
        (server_name,) = service.pods
        client, server = TESTBED.pod(scenario.client_pod), TESTBED.pod(server_name)
        assert client.meshed and client.service_account
        assert server.meshed and server.service_account and server.origin
        assert scenario.tls_hop == Endpoint(server.name, service.target_port)
        assert scenario.baseline == f"haproxy-tls/{p}"
        assert [TESTBED.proxy(n).pod for n in scenario.proxies] == [client.name, server.name]


def test_certify_is_one_scenario_measuring_the_identity_service() -> None:
    (scenario,) = [s for s in SCENARIOS if s.kind == CERTIFY]
    assert SCENARIOS[-1] is scenario
    (name,) = scenario.proxies
    assert TESTBED.proxy(name).kind == "identity"
    assert scenario.ratio_label is None


# Report ---------------------------------------------------------------------------------


def _usage(cpu_s: float, pids: list[int], wall_s: float = 3.0) -> Usage:
    return Usage(wall_s, cpu_s, {pid: 30000 for pid in pids}, {"cpu0": 0.5, "cpu1": 0.95}, 0.0)


def _measurement(
    names: tuple[str, ...], rps: float, cpu_s: float, tls: dict[str, int] | None = None
) -> Measurement:
    requests = int(rps * 3)
    throughput = LoadResult(requests, 3.0, rps, 0, 0, 0.1, 0.2, 0.3)
    latency = LoadResult(6000, 3.0, 2000.0, 0, 0, 0.2, 0.5, 1.0, target_rps=2000.0)
    pids = list(range(len(names)))
    return Measurement(
        throughput=throughput,
        latency=latency,
        throughput_usage=_usage(cpu_s, pids),
        latency_usage=_usage(cpu_s / 5, pids),
        proxied=bool(names),
        counted_requests={},
        rss_kb_load={name: 30000 + i for i, name in enumerate(names)},
        tls_opened=tls,
    )


def _report() -> dict[str, object]:
    by_name = {s.name: s for s in SCENARIOS}
    haproxy, gossamer = by_name["haproxy-tls/h1"], by_name["gossamer-mtls/h1"]
    certify = next(s for s in SCENARIOS if s.kind == CERTIFY)
    reused = {"warmup": 31, "throughput": 0, "fixed_rate": 0}
    redialled = {"warmup": 31, "throughput": 60, "fixed_rate": 0}
    records = [
        ScenarioRecord(haproxy, [_measurement(haproxy.proxies, 20000, 2.0, reused)]),
        ScenarioRecord(gossamer, [_measurement(gossamer.proxies, 12000, 2.0, redialled)]),
        ScenarioRecord(certify, [_measurement(certify.proxies, 1700, 2.9)]),
    ]
    idle = {name: 20000 for record in records for name in record.scenario.proxies}
    machine = {
        "date": "d", "cpu": "c", "cores": 2, "commit": "x", "loadavg": ["0", "0", "0"],
        "core_busy_before_start": {"cpu0": 0.0, "cpu1": 0.0},
    }  # fmt: skip
    return report.build(records, idle, QUICK, CPUS, machine)


def test_mtls_ratios_are_against_the_haproxy_tls_chain_and_the_target_is_half() -> None:
    result = _report()
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["mesh_mtls_rps_vs_haproxy_tls"] == 0.6
    assert ratios["mesh_mtls_cpu_per_req_vs_haproxy_tls"] == round(
        (2.0e6 / 36000) / (2.0e6 / 60000), 3
    )
    targets = result["targets"]
    assert isinstance(targets, list)
    (target,) = [t for t in targets if t["target"].startswith("mTLS mesh-path")]
    assert target["value"] == 0.6 and target["met"] is True


def test_tls_reuse_is_reported_and_handshakes_during_measured_runs_are_noted() -> None:
    result = _report()
    rows = {row["name"]: row for row in result["scenarios"]}  # type: ignore[attr-defined]
    assert rows["haproxy-tls/h1"]["tls_connections_opened"] == {
        "warmup": 31, "throughput": 0, "fixed_rate": 0,
    }  # fmt: skip
    assert rows["haproxy-tls/h1"]["tls_handshakes_per_1k_req"] == 0.0
    assert rows["gossamer-mtls/h1"]["tls_handshakes_per_1k_req"] == round(60_000 / 42000, 3)
    notes = result["notes"]
    assert isinstance(notes, list)
    assert any(n.startswith("gossamer-mtls/h1: 1.4 new TLS connections") for n in notes)
    text = render.markdown(result)
    assert "**TLS connection reuse**" in text
    assert "- haproxy-tls/h1: 31 in the warm-up runs, 0 in the throughput runs" in text


def test_certify_row_counts_certificates_and_the_identity_service_alone() -> None:
    result = _report()
    certify = result["certify"]
    assert isinstance(certify, dict)
    assert certify["certificates_per_s"] == 1700.0
    assert certify["cpu_us_per_certificate"] == round(2.9e6 / 5100, 2)
    assert certify["p50_ms"] == 0.1 and certify["p99_ms"] == 0.2
    assert certify["rss_kb_load"] == 30000 and certify["rss_kb_idle"] == 20000
    text = render.markdown(result)
    assert "| certify/grpc† | 1,700 |" in text
    # Not a Gossamer proxy: the proxy RSS target does not include the identity service.
    targets = result["targets"]
    assert isinstance(targets, list)
    (rss,) = [t for t in targets if "RSS" in t["target"]]
    assert rss["value"] == round(30001 / 1024, 1)


# Certify plumbing -----------------------------------------------------------------------


def test_certify_requests_survive_the_file_between_processes(tmp_path: Path) -> None:
    requests = [
        pb.CertifyRequest(
            identity=f"sa-{i}", token=bytes([i]) * i, certificate_signing_request=b"x"
        )
        for i in range(5)
    ]
    path = tmp_path / "requests.bin"
    write_requests(path, requests)
    assert read_requests(path) == requests


def test_driver_lines_are_read_until_a_deadline() -> None:
    import time

    read_fd, write_fd = os.pipe()
    try:
        lines = _Lines(read_fd)
        os.write(write_fd, b'warm\n{"a"')
        assert lines.read(time.monotonic() + 1) == "warm"
        assert lines.read(time.monotonic() + 0.05) is None  # no newline yet
        os.write(write_fd, b": 1}\n")
        assert lines.read(time.monotonic() + 1) == '{"a": 1}'
        os.close(write_fd)
        write_fd = -1
        assert lines.read(time.monotonic() + 1) is None  # EOF
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
