"""Planning a stat from the store's objects, and joining query results into rows: pure."""

from __future__ import annotations

import math
import re
from types import MappingProxyType

import pytest

from gossamer.viz.inventory import (
    Inventory,
    ResourceRef,
    StatKind,
    parse_kind,
    parse_ref,
    row_identities,
    target_patterns,
)
from gossamer.viz.prometheus import Sample
from gossamer.viz.stat import DST_LABEL, StatRequest, StatResults, join_results, plan_stat
from tests.viz.mesh import NS, demo_resources, pod, service, workload


def inventory() -> Inventory:
    resources = demo_resources()
    return Inventory(
        workloads=tuple(r for r in resources if r.kind == "Workload"),
        pods=tuple(r for r in resources if r.kind == "Pod"),
        services=tuple(r for r in resources if r.kind == "Service"),
    )


def sample(value: float, **labels: str) -> Sample:
    return Sample(MappingProxyType(labels), value)


def test_rows_count_live_and_meshed_pods() -> None:
    rows = {row.name: row for row in row_identities(inventory(), StatKind.DEPLOY)}
    assert [(r.meshed, r.pods) for r in rows.values()] == [(1, 1), (1, 1), (0, 1), (1, 1), (1, 1)]
    services = row_identities(inventory(), StatKind.SVC)
    assert [(r.name, r.meshed, r.pods) for r in services] == [("emoji", 1, 1), ("web", 1, 1)]
    assert [r.name for r in row_identities(inventory(), StatKind.POD, "web-0")] == ["web-0"]


def test_a_service_without_selector_selects_nothing() -> None:
    bare = service("x", 80, "10.96.0.99", selector=False)
    inv = Inventory(pods=(pod("x-0", "x", ip="10.1.0.3"),), services=(bare,))
    assert [(r.meshed, r.pods) for r in row_identities(inv, StatKind.SVC)] == [(0, 0)]


@pytest.mark.parametrize(
    ("authority", "row"),
    [
        ("web.demo.svc.cluster.local:8080", "web"),
        ("web.demo.svc.cluster.local", "web"),
        ("web.demo.svc:8080", "web"),
        ("web.demo", "web"),
        ("10.96.0.10:8080", "web"),
        ("10.1.0.5:8080", "web"),  # a pod of web, dialled directly
        ("emoji.demo.svc.cluster.local:9090", "emoji"),
        ("web.other.svc.cluster.local:8080", None),
        ("webx.demo.svc.cluster.local:8080", None),
        ("10.96.0.100:8080", None),
    ],
)
def test_target_patterns_recognise_a_workloads_authorities(authority: str, row: str | None) -> None:
    inv = inventory()
    patterns = target_patterns(inv, StatKind.DEPLOY, row_identities(inv, StatKind.DEPLOY))
    matched = [p.name for p in patterns if p.authority and re.fullmatch(p.authority, authority)]
    assert matched == ([] if row is None else [row])


def test_target_ip_patterns() -> None:
    inv = inventory()
    patterns = {
        p.name: p
        for p in target_patterns(inv, StatKind.DEPLOY, row_identities(inv, StatKind.DEPLOY))
    }
    assert patterns["web"].target_ip is not None
    assert re.fullmatch(patterns["web"].target_ip, "10.96.0.10")
    assert re.fullmatch(patterns["web"].target_ip, "10.1.0.5")
    assert not re.fullmatch(patterns["web"].target_ip, "10.1.0.50")
    assert patterns["vote-bot"].authority == r"10\.1\.0\.7(?::[0-9]+)?"  # no Service: pod IP only
    svc = {p.name: p for p in target_patterns(inv, StatKind.SVC, row_identities(inv, StatKind.SVC))}
    assert svc["emoji"].target_ip == r"(?:10\.96\.0\.11|10\.1\.0\.6)"


def test_inbound_join() -> None:
    plan = plan_stat(StatRequest(StatKind.DEPLOY, NS), inventory())
    key = {"namespace": NS, "deployment": "web"}
    results = StatResults(
        responses=[
            sample(9.0, **key, classification="success"),
            sample(1.0, **key, classification="failure"),
            sample(2.0, namespace=NS, deployment="emoji", classification="failure"),
            sample(5.0, namespace=NS, deployment="gone", classification="success"),
        ],
        requests=[sample(10.0, **key), sample(2.0, namespace=NS, deployment="emoji")],
        latency={0.5: [sample(7.5, **key), sample(math.nan, namespace=NS, deployment="emoji")]},
        tcp_connections=[sample(3.0, **key), sample(0.0, namespace=NS, deployment="idle")],
    )
    rows = {row.name: row for row in join_results(plan, results)}
    assert list(rows) == ["emoji", "idle", "legacy", "vote-bot", "web"]
    assert rows["web"].success_rate == 0.9 and rows["web"].rps == 10.0
    assert rows["web"].latency_ms == {0.5: 7.5}
    assert rows["web"].tcp_connections == 3.0
    # Every response failed: 0%, not "-"; a NaN quantile is no latency.
    assert rows["emoji"].success_rate == 0.0 and rows["emoji"].latency_ms == {0.5: None}
    assert rows["idle"].rps is None and rows["idle"].tcp_connections == 0.0
    assert not rows["legacy"].has_traffic


def test_from_join_keeps_only_rows_with_traffic() -> None:
    source = ResourceRef(StatKind.DEPLOY, NS, "vote-bot")
    plan = plan_stat(StatRequest(StatKind.DEPLOY, NS, source=source), inventory())
    assert plan.key_labels == (DST_LABEL,)
    assert 'deployment="vote-bot"' in plan.queries.requests
    assert 'direction="outbound"' in plan.queries.requests
    results = StatResults(
        responses=[
            sample(4.0, dst_resource="demo/web", classification="success"),
            sample(3.0, classification="success"),  # matched no rule: no row
        ],
        requests=[sample(4.0, dst_resource="demo/web"), sample(3.0)],
    )
    rows = join_results(plan, results)
    assert [(row.name, row.success_rate, row.rps) for row in rows] == [("web", 1.0, 4.0)]


def test_svc_stat_reads_every_clients_outbound_side() -> None:
    plan = plan_stat(StatRequest(StatKind.SVC, NS), inventory())
    assert plan.queries.requests.startswith(
        "sum by (dst_resource) (label_replace(label_replace("
        'irate(request_total{direction="outbound"}'
    )
    assert '"demo/emoji"' in plan.queries.requests and '"demo/web"' in plan.queries.requests


def test_kind_words_and_refs() -> None:
    assert parse_kind("deployments") is StatKind.DEPLOY
    assert parse_kind("po") is StatKind.POD
    assert parse_kind("Service") is StatKind.SVC
    assert parse_ref("deploy/web", "demo") == ResourceRef(StatKind.DEPLOY, "demo", "web")
    for bad in ("web", "deploy/", "deploy/a/b", "cronjob/x"):
        with pytest.raises(ValueError):
            parse_ref(bad, "demo")


def test_unmeshed_workload_rows() -> None:
    inv = Inventory(
        workloads=(workload("w", mesh=False),), pods=(pod("w-0", "w", ip=None, meshed=False),)
    )
    assert [(r.meshed, r.pods) for r in row_identities(inv, StatKind.DEPLOY)] == [(0, 1)]
