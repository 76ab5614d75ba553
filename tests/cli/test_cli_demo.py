"""`gossamer demo`'s steps without a running mesh: what it submits (as `gossamer run` does),
idempotence, the bounded traffic wait, and the error before `gossamer up`. The whole flow on
a real mesh is tests/e2e/test_demo.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossamer.cli import main
from gossamer.cli.demo import deploy, next_steps, run_request, traffic_flows, wait_for_traffic
from gossamer.control.store import MemoryStore, SQLiteStore
from gossamer.core.resources import ServiceSpec, WorkloadSpec
from gossamer.demo.manifest import workloads
from gossamer.local.state import RuntimeInfo, StateDir
from gossamer.viz.inventory import StatKind
from gossamer.viz.prometheus import PrometheusClient
from gossamer.viz.stat import StatRow
from tests.viz.mesh import demo_resources, fake_pods
from tests.viz.support import PrometheusProcess, free_port, running_prometheus


def test_run_requests_follow_the_manifest() -> None:
    by_name = {w.name: run_request(w) for w in workloads("shop", python="/py")}
    assert list(by_name) == ["emoji", "voting", "web", "vote-bot"]
    web = by_name["web"]
    assert web.namespace == "shop" and web.ports == (8080,) and web.service_account == "web"
    assert web.command == ("/py", "-m", "gossamer.demo", "web")
    assert web.env["DEMO_EMOJI_ADDR"] == "emoji.shop.svc.cluster.local:9090"
    assert by_name["vote-bot"].ports == () and by_name["vote-bot"].mesh


async def test_deploy_submits_like_run_and_is_idempotent() -> None:
    store = MemoryStore()
    requests = [run_request(w) for w in workloads("demo", python="/py")]
    first = await deploy(store, requests)
    assert [(d.name, d.created) for d in first] == [
        ("emoji", True),
        ("voting", True),
        ("web", True),
        ("vote-bot", True),
    ]
    services = {s.name: s.spec_as(ServiceSpec) for s in await store.list("Service", "demo")}
    assert set(services) == {"emoji", "voting", "web"}  # vote-bot serves nothing
    assert sorted(p.port for p in services["emoji"].ports) == [8080, 9090]
    assert dict(services["web"].selector) == {"app": "web"}
    bot = await store.get("Workload", "demo", "vote-bot")
    assert bot.spec_as(WorkloadSpec).env["DEMO_WEB_ADDR"] == "web.demo.svc.cluster.local:8080"

    again = await deploy(store, requests)
    assert not any(d.created for d in again)
    assert len(await store.list("Workload", "demo")) == 4


def test_traffic_flows_needs_every_serving_workload() -> None:
    rows = [
        StatRow(StatKind.DEPLOY, "demo", "web", 1, 1, rps=2.0),
        StatRow(StatKind.DEPLOY, "demo", "emoji", 1, 1, rps=0.0),
        StatRow(StatKind.DEPLOY, "demo", "vote-bot", 1, 1),
    ]
    assert traffic_flows(rows, ["web"])
    assert not traffic_flows(rows, ["web", "emoji"])
    assert not traffic_flows(rows, ["voting"])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), fake_pods()) as running:
        yield running


def test_wait_for_traffic(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    async def wait(url: str, serving: list[str], timeout: float) -> tuple[bool, list[StatRow]]:
        store = SQLiteStore(tmp_path / "store.db")
        try:
            if not await store.list("Workload"):
                for resource in demo_resources():
                    await store.apply(resource)
            return await wait_for_traffic(store, PrometheusClient(url), "demo", serving, timeout)
        finally:
            await store.close()

    flowing, rows = asyncio.run(wait(prometheus.url, ["web", "emoji"], 10))
    assert flowing and {r.name for r in rows} >= {"web", "emoji"}

    started = time.monotonic()
    flowing, rows = asyncio.run(wait(prometheus.url, ["vote-bot"], 1.0))  # sends, never serves
    assert not flowing and rows and time.monotonic() - started < 5

    started = time.monotonic()
    down = f"http://127.0.0.1:{free_port()}"
    flowing, rows = asyncio.run(wait(down, ["web"], 1.0))
    assert not flowing and rows == [] and time.monotonic() - started < 5


def test_next_steps_name_the_state_dir_and_prometheus(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path)
    runtime = RuntimeInfo(
        node_netns="n",
        subnet="10.77.0.0/16",
        gateway="10.77.0.1",
        service_cidr="10.78.0.0/16",
        cluster_domain="cluster.local",
        supervisor_pid=1,
        prometheus_url="http://127.0.0.1:9090",
    )
    text = "\n".join(next_steps("demo", state, runtime))
    assert f"gossamer viz stat deploy -n demo --state-dir {tmp_path}" in text
    assert "--from deploy/vote-bot" in text
    assert "curl -s http://web.demo.svc.cluster.local:8080/api/leaderboard" in text
    assert "Prometheus: http://127.0.0.1:9090" in text


def test_demo_before_up(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "gossamer up" in result.stderr
