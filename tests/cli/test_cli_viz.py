"""`gossamer viz stat` end to end through the CLI: a state directory, a real Prometheus
scraping canned proxies, and the errors a user meets before `gossamer up`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossamer.cli import main
from tests.viz.mesh import NS, demo_resources, fake_pods
from tests.viz.state_dir import write_state_dir
from tests.viz.support import PrometheusProcess, free_port, running_prometheus


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), fake_pods()) as running:
        yield running


@pytest.fixture(scope="module")
def state_dir(prometheus: PrometheusProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("state")
    write_state_dir(root, prometheus_url=prometheus.url, resources=demo_resources())
    return root


def viz(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["viz", *args])
    return result.exit_code, result.stdout, result.stderr


def table(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    return {line.split()[0]: line.split() for line in lines}


def test_stat_deploy_table(state_dir: Path) -> None:
    code, out, err = viz("stat", "deploy", "-n", NS, "--state-dir", str(state_dir))
    assert code == 0, err
    rows = table(out)
    assert rows["NAME"] == [
        "NAME",
        "MESHED",
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
        "TCP_CONN",
    ]
    _, meshed, success, rps, p50, p95, p99, tcp = rows["web"]
    assert meshed == "1/1" and success == "90.00%" and rps.endswith("rps")
    assert float(rps.removesuffix("rps")) > 0
    assert (p50, p95, p99, tcp) == ("8ms", "10ms", "10ms", "3")
    assert rows["idle"][2:] == ["-"] * 6  # no traffic, like Linkerd
    assert rows["legacy"][1] == "0/1"


def test_stat_json_and_type_slash_name(state_dir: Path) -> None:
    code, out, err = viz(
        "stat", "deploy/web", "-n", NS, "-o", "json", "--state-dir", str(state_dir)
    )
    assert code == 0, err
    [row] = json.loads(out)
    assert row["name"] == "web" and row["kind"] == "deployment" and row["meshed"] == "1/1"
    assert row["success"] == pytest.approx(0.9) and row["rps"] > 0
    assert row["latency_ms_p50"] == pytest.approx(7.5) and row["tcp_open_connections"] == 3


def test_stat_from(state_dir: Path) -> None:
    code, out, err = viz(
        "stat", "deploy", "-n", NS, "--from", "deploy/vote-bot", "--state-dir", str(state_dir)
    )
    assert code == 0, err
    rows = table(out)
    assert set(rows) == {"NAME", "web"}
    assert rows["web"][2] == "90.00%" and rows["web"][7] == "2"


def test_stat_svc_and_all_namespaces(state_dir: Path) -> None:
    code, out, err = viz("stat", "svc", "-A", "--state-dir", str(state_dir))
    assert code == 0, err
    rows = table(out)
    assert rows["NAMESPACE"][:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["emoji", "web"]


def test_prometheus_url_override_that_is_down(state_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = viz(
        "stat", "deploy", "-n", NS, "--state-dir", str(state_dir), "--prometheus-url", url
    )
    assert code == 1
    assert f"Prometheus at {url} is not reachable: connection refused" in err


def test_without_a_mesh(tmp_path: Path) -> None:
    code, _, err = viz("stat", "deploy", "--state-dir", str(tmp_path / "none"))
    assert code == 1
    assert "run `gossamer up` first" in err


def test_empty_namespace_says_so(state_dir: Path) -> None:
    code, out, err = viz("stat", "deploy", "-n", "nothing", "--state-dir", str(state_dir))
    assert code == 0 and out == ""
    assert "No deployments found in namespace nothing" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stat", "cronjob"], "unknown resource type 'cronjob'"),
        (["stat", "deploy", "--from", "web"], "is not TYPE/NAME"),
        (["stat", "deploy", "--window", "soon"], "invalid duration"),
        (["stat", "deploy", "--window", "0s"], "positive duration"),
        (["stat", "deploy/web", "web"], "not both"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    code, _, err = viz(*args)
    assert code == 2 and message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stat", "deploy", "nope"], "deploy/nope not found in namespace demo"),
        (["stat", "deploy", "--from", "deploy/nope"], "deploy/nope not found in namespace demo"),
        (["stat", "deploy", "--from", "svc/web"], "--from takes a workload or a pod"),
    ],
)
def test_missing_resources(state_dir: Path, args: list[str], message: str) -> None:
    code, _, err = viz(*args, "-n", NS, "--state-dir", str(state_dir))
    assert code == 1 and message in err
