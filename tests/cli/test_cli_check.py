"""`gossamer check` on missing, partial and broken state directories: what fails is marked
with a cross and a hint, and the exit status is 1; what works gets a check mark."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossamer.cli import main
from gossamer.cli.check import FAIL, OK, WARN
from gossamer.control.identity import (
    ensure_trust,
    generate_issuer,
    generate_trust_anchor,
    write_private,
    write_public,
)
from gossamer.local.launcher import supervisor_marker
from gossamer.local.ownership import OWNER_ENV
from gossamer.local.state import RuntimeInfo, StateDir, SupervisorStatus
from tests.viz.mesh import demo_resources, fake_pods, pod, workload
from tests.viz.state_dir import write_state_dir
from tests.viz.support import PrometheusProcess, free_port, running_prometheus


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), fake_pods()) as running:
        yield running


def check(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.stdout.splitlines()


def marks(lines: list[str]) -> dict[str, str]:
    """{check description: OK, FAIL or WARN}."""
    return {line[2:]: line[0] for line in lines if line[:1] in (OK, FAIL, WARN) and line[1] == " "}


def with_trust(state: StateDir, *, lifetime: timedelta | None = None) -> StateDir:
    """Trust files in the state directory, named by runtime.json as `gossamer up` does."""
    if lifetime is None:
        paths = ensure_trust(state.identity_dir)
        files = (paths.trust_anchors, paths.issuer_certificate, paths.issuer_key)
    else:
        anchor = generate_trust_anchor(lifetime=lifetime)
        issuer = generate_issuer(*anchor, lifetime=lifetime)
        state.identity_dir.mkdir(parents=True, exist_ok=True)
        files = tuple(state.identity_dir / name for name in ("anchors.pem", "i.crt", "i.key"))
        write_public(files[0], anchor.certificate_pem())
        write_public(files[1], issuer.certificate_pem())
        write_private(files[2], issuer.key_pem())
    runtime = RuntimeInfo.load(state)
    assert runtime is not None
    dataclasses.replace(
        runtime,
        identity_addr="10.1.0.1:8080",
        trust_anchors_file=str(files[0]),
        issuer_certificate_file=str(files[1]),
        issuer_key_file=str(files[2]),
    ).save(state)
    return state


def test_no_state_directory_stops_at_the_first_check(tmp_path: Path) -> None:
    code, lines = check("--state-dir", str(tmp_path / "missing"))
    assert code == 1
    assert lines[:3] == ["gossamer-local", "--------------", f"{FAIL} the state directory exists"]
    assert "see: run `gossamer up` (as root) to start the local mesh" in lines[4]
    assert lines[-1] == f"Status check results are {FAIL}"
    assert len(marks(lines)) == 1


def test_a_directory_without_runtime(tmp_path: Path) -> None:
    code, lines = check("--state-dir", str(tmp_path))
    assert code == 1
    assert marks(lines) == {
        "the state directory exists": OK,
        "`gossamer up` has recorded the runtime": FAIL,
    }
    assert any("runtime.json does not exist" in line for line in lines)


def test_partial_mesh(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    """Store and Prometheus work; the supervisor and node are gone; a pod failed."""
    write_state_dir(tmp_path, prometheus_url=prometheus.url, resources=demo_resources())
    code, lines = check("--state-dir", str(tmp_path))
    assert code == 1
    assert marks(lines) == {
        "the state directory exists": OK,
        "`gossamer up` has recorded the runtime": OK,
        "the store can be read": OK,
        "the node network namespace exists": FAIL,
        "the supervisor is running": FAIL,
        "the supervisor reports ready": FAIL,
        "the destination service accepts connections": FAIL,
        "the trust anchors and the issuer are valid": FAIL,
        "the trust anchors and the issuer are valid for at least 60 days": WARN,
        "the identity service answers": FAIL,
        "every meshed pod's proxy holds a valid certificate": FAIL,
        "Prometheus is ready": OK,
        "Prometheus scrapes every meshed pod's proxy": OK,
        "every pod is running": FAIL,
        "every meshed pod's proxy is ready": OK,
    }
    text = "\n".join(lines)
    assert "the supervisor (pid 0) is not running" in text
    assert "runtime.json names no trust files" in text

    assert "demo/web-old is Failed" in text
    for heading in ("gossamer-control-plane", "gossamer-prometheus", "gossamer-data-plane"):
        assert heading in lines


def test_a_recycled_supervisor_pid(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    write_state_dir(tmp_path, prometheus_url=prometheus.url, supervisor_pid=os.getpid())
    code, lines = check("--state-dir", str(tmp_path))
    assert code == 1
    assert f"    pid {os.getpid()} is alive but is not this mesh's supervisor" in lines


@pytest.fixture
def fake_supervisor(tmp_path: Path) -> Iterator[int]:
    """A process carrying the supervisor's owner marker for the state directory tmp_path."""
    marker = supervisor_marker(StateDir.at(tmp_path))
    env = {**os.environ, OWNER_ENV: marker}
    process = subprocess.Popen(["sleep", "60"], env=env)
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=5)


def test_healthy_parts_pass(
    prometheus: PrometheusProcess, tmp_path: Path, fake_supervisor: int
) -> None:
    """A supervisor that reports ready; every pod running, every proxy scraped."""
    resources = [r for r in demo_resources() if r.name != "web-old"]
    state = write_state_dir(
        tmp_path,
        prometheus_url=prometheus.url,
        resources=resources,
        supervisor_pid=fake_supervisor,
        supervisor=SupervisorStatus(pid=fake_supervisor, state="ready"),
    )
    with_trust(state)
    code, lines = check("--state-dir", str(tmp_path), "-v")
    found = marks(lines)
    failing = {k for k, v in found.items() if v != OK}
    # Only what needs the node's network namespace (which this test does not make) fails.
    assert failing == {
        "the node network namespace exists",
        "the destination service accepts connections",
        "the identity service answers",
        "every meshed pod's proxy holds a valid certificate",
    }
    assert code == 1
    assert f"{OK} every meshed pod's proxy is ready (4 meshed pod(s))" in lines
    assert any(
        line.startswith(f"{OK} the trust anchors and the issuer are valid (") for line in lines
    )


def test_trust_near_its_end_warns_and_broken_trust_fails(tmp_path: Path) -> None:
    state = with_trust(write_state_dir(tmp_path), lifetime=timedelta(days=20))
    _, lines = check("--state-dir", str(tmp_path))
    found = marks(lines)
    assert found["the trust anchors and the issuer are valid"] == OK
    assert found["the trust anchors and the issuer are valid for at least 60 days"] == WARN
    assert any("the issuer expires" in line for line in lines)
    runtime = RuntimeInfo.load(state)
    assert runtime is not None
    # An issuer key that is not the issuer's.
    Path(runtime.issuer_key_file).write_bytes(generate_trust_anchor().key_pem())
    _, lines = check("--state-dir", str(tmp_path))
    assert marks(lines)["the trust anchors and the issuer are valid"] == FAIL
    assert (
        "    "
        + f"{runtime.issuer_certificate_file}: the issuer key does not match the issuer certificate"
        in lines
    )


def test_unscraped_and_unready_pods(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    resources = [
        workload("web"),
        workload("new"),
        pod("web-0", "web", ip="10.1.0.5"),
        pod("new-0", "new", ip="10.1.0.20", ready=False),
    ]
    write_state_dir(
        tmp_path,
        prometheus_url=prometheus.url,
        resources=resources,
        supervisor=SupervisorStatus(pid=1, state="failed", message="prometheus exited"),
    )
    code, lines = check("--state-dir", str(tmp_path))
    assert code == 1
    found = marks(lines)
    assert found["Prometheus scrapes every meshed pod's proxy"] == FAIL
    assert found["every meshed pod's proxy is ready"] == FAIL
    text = "\n".join(lines)
    assert "not scraped yet: demo/new-0" in text
    assert "proxy not ready: demo/new-0" in text
    assert "the supervisor is failed: prometheus exited" in text


def test_prometheus_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    write_state_dir(tmp_path, prometheus_url=url, resources=demo_resources())
    code, lines = check("--state-dir", str(tmp_path))
    assert code == 1
    assert marks(lines)["Prometheus is ready"] == FAIL
    assert f"    Prometheus at {url} is not reachable: connection refused" in lines


def test_wait_is_bounded(tmp_path: Path) -> None:
    code, lines = check("--state-dir", str(tmp_path / "missing"), "--wait", "1500ms")
    assert code == 1 and f"{FAIL} the state directory exists" in lines


def test_bad_wait() -> None:
    result = CliRunner().invoke(main, ["check", "--wait", "soon"])
    assert result.exit_code == 2 and "invalid duration" in result.stderr
