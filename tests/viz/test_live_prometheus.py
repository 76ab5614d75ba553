"""viz stat against a real Prometheus scraping canned proxy metrics."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from gossamer.control.store import SQLiteStore
from gossamer.viz.inventory import ResourceRef, StatKind
from gossamer.viz.prometheus import PrometheusClient
from gossamer.viz.stat import StatRequest, StatRow, run_stat
from tests.viz.mesh import NS, demo_resources, fill_store
from tests.viz.support import PrometheusProcess


def stat(prometheus: PrometheusProcess, tmp_path: Path, request: StatRequest) -> dict[str, StatRow]:
    async def run() -> list[StatRow]:
        path = tmp_path / "store.db"
        if not path.exists():
            await fill_store(path, demo_resources())
        store = SQLiteStore(path)
        try:
            return await run_stat(store, PrometheusClient(prometheus.url), request)
        finally:
            await store.close()

    return {row.name: row for row in asyncio.run(run())}


def test_inbound_deploy(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, NS))
    print(rows)
    assert list(rows) == ["emoji", "idle", "legacy", "vote-bot", "web"]
    web = rows["web"]
    assert (web.meshed, web.pods) == (1, 1)
    assert web.success_rate is not None and 0.85 < web.success_rate < 0.95
    assert web.rps is not None and 7 < web.rps < 13
    assert web.latency_ms[0.5] == pytest.approx(7.5)
    assert web.latency_ms[0.95] == pytest.approx(9.75)
    assert web.latency_ms[0.99] == pytest.approx(9.95)
    assert web.tcp_connections == 3
    assert rows["emoji"].success_rate == 1.0
    for quiet in ("idle", "legacy", "vote-bot"):
        assert rows[quiet].rps is None and rows[quiet].success_rate is None
    assert (rows["legacy"].meshed, rows["legacy"].pods) == (0, 1)


def test_named_deploy_reads_only_its_series(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, NS, name="emoji"))
    assert list(rows) == ["emoji"]
    assert rows["emoji"].rps == pytest.approx(4, abs=1.5)
    assert rows["emoji"].latency_ms[0.5] == pytest.approx(2.5)


def test_from_deploy_shows_what_it_talks_to(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    source = ResourceRef(StatKind.DEPLOY, NS, "vote-bot")
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, NS, source=source))
    assert list(rows) == ["web"]
    web = rows["web"]
    assert web.success_rate is not None and 0.85 < web.success_rate < 0.95
    assert web.rps is not None and 7 < web.rps < 13
    assert web.latency_ms[0.5] == pytest.approx(7.5)
    assert web.tcp_connections == 2  # vote-bot's connections to web's cluster IP

    source = ResourceRef(StatKind.DEPLOY, NS, "web")
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, NS, source=source))
    assert list(rows) == ["emoji"]
    assert rows["emoji"].success_rate == 1.0 and rows["emoji"].tcp_connections == 1


def test_from_deploy_to_a_named_target_without_traffic(
    prometheus: PrometheusProcess, tmp_path: Path
) -> None:
    source = ResourceRef(StatKind.DEPLOY, NS, "vote-bot")
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, NS, "emoji", source=source))
    assert list(rows) == ["emoji"] and rows["emoji"].rps is None


def test_svc_rows_are_what_meshed_clients_sent(
    prometheus: PrometheusProcess, tmp_path: Path
) -> None:
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.SVC, NS))
    assert list(rows) == ["emoji", "web"]
    assert (rows["web"].meshed, rows["web"].pods) == (1, 1)
    assert rows["web"].rps is not None and 7 < rows["web"].rps < 13
    assert rows["web"].tcp_connections == 2
    assert rows["emoji"].success_rate == 1.0


def test_pod_rows(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.POD, NS))
    assert list(rows) == ["emoji-0", "idle-0", "legacy-0", "vote-bot-0", "web-0", "web-old"]
    assert rows["web-0"].success_rate is not None and 0.85 < rows["web-0"].success_rate < 0.95
    assert (rows["web-old"].meshed, rows["web-old"].pods) == (0, 0)  # failed: not live


def test_all_namespaces(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, None))
    assert rows["web"].namespace == NS and rows["web"].rps is not None


def test_a_window_shorter_than_two_scrapes_has_no_rates(
    prometheus: PrometheusProcess, tmp_path: Path
) -> None:
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, NS, window_s=0.5))
    assert all(row.rps is None for row in rows.values())
    assert rows["web"].tcp_connections == 3  # a gauge needs no window


def test_nan_never_escapes(prometheus: PrometheusProcess, tmp_path: Path) -> None:
    rows = stat(prometheus, tmp_path, StatRequest(StatKind.DEPLOY, NS))
    for row in rows.values():
        for value in (row.success_rate, row.rps, *row.latency_ms.values()):
            assert value is None or math.isfinite(value)
