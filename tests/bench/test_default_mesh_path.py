"""The benchmark's default mesh path (`gossamer-discovered`): the routed path without anything
a Service opts into (no annotation, no HTTPRoute), so the client's proxy serves every request
on the policy's default route, balanced over two addresses of one server pod. Its scenario and
testbed data, its store resources through the real policy translation and the proxy's router,
the runner's route and balance checks on it, and the report: the ‡ column, the Routing cost
line, the 0.85x target (now the default path's) and the route rules + retries row reported
without a target."""

from __future__ import annotations

import dataclasses
import random

import pytest

from bench import meshstore, render, report
from bench.__main__ import _versus_unrouted
from bench.report import ScenarioRecord
from bench.runner import OUTBOUND, ROUTE_METRICS, ScenarioFailed, route_labels
from bench.scenarios import DEFAULT_ROUTE, SCENARIOS, Scenario
from bench.settings import QUICK
from bench.testbed import (
    H1,
    H2,
    MESH_NAMESPACE,
    PROTOCOLS,
    SERVICE_PORT,
    TESTBED,
    Endpoint,
    origin_port,
)
from gossamer.control.policy import PolicyIndex, outbound_policy
from gossamer.proxy.routing import CompiledRoutes
from tests.bench.test_routed_and_scale import CPUS, _Live, _measurement, _report, _runner

BY_NAME = {s.name: s for s in SCENARIOS}


def default(p: str) -> Scenario:
    return BY_NAME[f"gossamer-discovered/{p}"]


# Scenarios and testbed --------------------------------------------------------------------


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_default_path_dials_a_plain_service_over_two_addresses_of_one_server_pod(
    p: str,
) -> None:
    scenario = default(p)
    assert scenario.target.service is not None and scenario.target.port == SERVICE_PORT
    service = TESTBED.service(scenario.target.service)
    # Nothing the Service opts into: no annotation, no HTTPRoute, no canary to preflight.
    assert service.annotations == ()
    assert not [route for route in TESTBED.routes if route.service == service.name]
    assert scenario.canary is None and scenario.route == DEFAULT_ROUTE
    assert not service.vip.startswith("10.77.") and service.target_port == origin_port(p)
    # The client follows the destination and policy services (plaintext, like gossamer-mesh).
    client = TESTBED.pod(scenario.client_pod)
    assert client.meshed and client.routed and client.service_account is None
    # Two endpoints, both addresses of one server pod of its own, balanced on the origin's port.
    assert len(service.pods) == 2
    (server,) = {TESTBED.address_owner(name) for name in service.pods}
    assert server.name == service.pods[0] and server.aliases == service.pods[1:]
    assert scenario.balanced == tuple(Endpoint(name, origin_port(p)) for name in service.pods)
    client_proxy, server_proxy = (TESTBED.proxy(name) for name in scenario.proxies)
    assert (client_proxy.pod, server_proxy.pod) == (client.name, server.name)
    assert all(TESTBED.proxy(name).kind == "gossamer" for name in scenario.proxies)


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_default_path_mirrors_the_routed_one_with_pods_of_its_own(p: str) -> None:
    """Same shape as gossamer-routed (and so as gossamer-mesh's processes), but its own pods,
    proxies, Service and VIP: neither path's figures include the other's state."""
    mine, rules = default(p), BY_NAME[f"gossamer-routed/{p}"]
    assert set(mine.proxies).isdisjoint(rules.proxies)
    assert mine.client_pod != rules.client_pod
    mine_service = TESTBED.service(mine.target.service or "")
    rules_service = TESTBED.service(rules.target.service or "")
    assert mine_service.vip != rules_service.vip
    assert set(mine_service.pods).isdisjoint(rules_service.pods)
    for a, b in (
        (mine.client_pod, rules.client_pod),
        (mine_service.pods[0], rules_service.pods[0]),
    ):
        assert dataclasses.replace(TESTBED.pod(a), name=b, aliases=TESTBED.pod(b).aliases) == (
            TESTBED.pod(b)
        )
    pods = [pod for pod in TESTBED.pods if pod.name.startswith("ds-") and pod.name.endswith(p)]
    assert [pod.name for pod in pods] == [mine.client_pod, mine_service.pods[0]]
    assert {spec.name for spec in TESTBED.proxies if spec.pod in {pod.name for pod in pods}} == (
        set(mine.proxies)
    )
    # Store labels: the server pod's two addresses select the Service; the client is no Pod.
    labels = TESTBED.store_pods()
    assert labels[f"ds-b-{p}"] == labels[f"ds-b2-{p}"] == f"ds-{p}"
    assert f"ds-a-{p}" not in labels


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_default_path_is_measured_right_after_the_unrouted_one(p: str) -> None:
    scenario = default(p)
    assert scenario.unrouted == f"gossamer-mesh/{p}"
    order = [s.name for s in SCENARIOS]
    assert order.index(scenario.name) == order.index(f"gossamer-mesh/{p}") + 1
    assert order.index(f"gossamer-routed/{p}") == order.index(scenario.name) + 1
    assert scenario.baseline == f"haproxy-chain/{p}"
    assert scenario.ratio_label == (
        "discovered_mesh_path" if p == H1 else f"discovered_mesh_path_{p}"
    )


def test_the_quick_selection_for_routing_cost_takes_all_three_paths() -> None:
    import re

    chosen = [s.name for s in SCENARIOS if re.search("gossamer-(mesh|routed|discovered)", s.name)]
    assert chosen == [
        f"gossamer-{path}/{p}" for p in PROTOCOLS for path in ("mesh", "discovered", "routed")
    ]


# The store as the control plane reads it --------------------------------------------------


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_policy_gives_the_plain_service_only_its_default_route(p: str) -> None:
    ips = {name: f"10.77.0.{i + 2}" for i, name in enumerate(TESTBED.store_pods())}
    index = PolicyIndex()
    resources = meshstore.resources(TESTBED, ips)
    for resource in resources:
        if resource.kind == "Service":
            index.set_service(resource)
        elif resource.kind == "HTTPRoute":
            index.set_route(resource)
    service = TESTBED.service(default(p).target.service or "")
    (stored,) = [r for r in resources if r.kind == "Service" and r.name == service.name]
    assert stored.to_dict()["metadata"].get("annotations", {}) == {}
    target = index.resolve(f"{service.vip}:{service.port}")
    assert target is not None and target.service == (MESH_NAMESPACE, service.name)
    assert list(index.routes_for(target.service)) == []
    entry = index.service(target.service)
    assert entry is not None
    (port,) = entry.spec.ports
    policy = outbound_policy(entry, port, [])
    assert policy.service == service.name  # the proxy's route metrics name it as the parent
    routes = CompiledRoutes(policy, random.Random(1))
    # Every request takes the default route without a match being tried.
    chosen = routes.always
    assert routes.errors == [] and chosen is not None
    assert (chosen.route_name, chosen.route_kind) == (DEFAULT_ROUTE, DEFAULT_ROUTE)
    (backend,) = chosen.backends
    assert backend.authority == f"{service.name}.{MESH_NAMESPACE}.svc.cluster.local:80"
    assert not chosen.retry.enabled  # no retry annotation: no replay buffer
    # Its two Pods: Running, one per address of the server pod, selected by the Service.
    pods = [r.to_dict() for r in resources if r.kind == "Pod"]
    selected = [pod for pod in pods if pod["metadata"]["labels"] == {"app": service.name}]
    assert sorted(pod["metadata"]["name"] for pod in selected) == sorted(service.pods)
    assert len({pod["status"]["podIP"] for pod in selected}) == 2


# The runner's checks ----------------------------------------------------------------------

D, D2 = "10.77.0.11:8080", "10.77.0.12:8080"  # the default h1 path's two endpoints


class _DefaultLive(_Live):
    def address(self, endpoint: Endpoint) -> str:
        return {"ds-b-h1": D, "ds-b2-h1": D2}[endpoint.pod or ""]


def test_the_default_route_is_counted_on_the_services_series_by_name_and_kind() -> None:
    # The policy's default route of the Service dialled, not the proxy's own fallback for an
    # address without policy (also `default`, but with the address as its parent).
    assert route_labels(default(H1)) == (
        'route_name="default"',
        'route_kind="default"',
        'parent_name="ds-h1"',
    )
    assert route_labels(BY_NAME["gossamer-routed/h2"]) == (
        'route_name="rt-h2"',
        'parent_name="rt-h2"',
    )
    scenario = default(H2)
    runner = _runner(live := _DefaultLive({}, 100))
    before = runner._route_counts(scenario)
    assert before == (100, 100)
    assert live.asked == [(scenario.proxies[0], route_labels(scenario))]
    runner.live = _DefaultLive({}, 1100)  # type: ignore[assignment]
    runner._check_route(scenario, before, 1000)
    runner.live = _DefaultLive({}, 1099)  # type: ignore[assignment]
    with pytest.raises(
        ScenarioFailed,
        match=r"on route default of ds-h2, .*the policy's default route was not in force",
    ):
        runner._check_route(scenario, before, 1000)


def test_the_default_paths_client_proxy_balances_over_its_two_endpoints() -> None:
    scenario = default(H1)
    runner = _runner(_DefaultLive({}, 0, {D: 10, D2: 20}))
    before = runner._endpoint_counts(scenario)
    runner.live = live = _DefaultLive({}, 0, {D: 530, D2: 500})  # type: ignore[assignment]
    assert runner._check_balance(scenario, before, 1000) == {"ds-b-h1": 520, "ds-b2-h1": 480}
    assert live.asked == [
        (scenario.proxies[0], (OUTBOUND, f'target_addr="{address}"')) for address in (D, D2)
    ]
    runner.live = _DefaultLive({}, 0, {D: 1030, D2: 20})  # type: ignore[assignment]
    with pytest.raises(ScenarioFailed, match=r"0 of 1000 requests to the endpoint ds-b2-h1"):
        runner._check_balance(scenario, before, 1000)
    assert ROUTE_METRICS == "outbound_http_route_"


# Report -----------------------------------------------------------------------------------


def test_the_default_path_is_compared_with_the_unrouted_one_and_carries_the_target() -> None:
    result = _report()
    ratios = result["ratios"]
    assert ratios["discovered_mesh_path_rps_vs_unrouted"] == 0.92
    assert ratios["discovered_mesh_path_h2_rps_vs_unrouted"] == 0.8
    # Path: 106.5 µs/req against 100; client proxy: 66 against 60; server: 40.5 against 40.
    assert ratios["discovered_mesh_path_extra_cpu_us_per_req"] == pytest.approx(6.5, abs=0.05)
    assert ratios["discovered_mesh_path_client_extra_cpu_us_per_req"] == pytest.approx(
        6.0, abs=0.05
    )
    rows = {row["name"]: row for row in result["scenarios"]}
    row = rows["gossamer-discovered/h1"]
    assert row["unrouted"] == "gossamer-mesh/h1" and row["rps_target_vs_unrouted"] == 0.85
    assert row["server_extra_cpu_us_per_req"] == pytest.approx(0.5, abs=0.05)
    assert row["counted_by_endpoint"] == {"ds-b-h1": 13524, "ds-b2-h1": 14076}
    targets = {t["target"]: t for t in result["targets"]}
    what = "default routed mesh path (discovery + P2C, no route rules)"
    h1 = targets[f"{what} HTTP/1.1 rps >= 0.85x the unrouted mesh path (same run)"]
    h2 = targets[f"{what} HTTP/2 rps >= 0.85x the unrouted mesh path (same run)"]
    assert (h1["value"], h1["met"], h1["disturbed"]) == (0.92, True, False)
    assert (h2["value"], h2["met"]) == (0.8, False)


def test_route_rules_and_retries_are_reported_against_both_paths_without_a_target() -> None:
    result = _report()
    h1, h2 = result["reported"]
    assert h1 == {
        "what": "route rules + retries (header-match HTTPRoute, retry annotation) HTTP/1.1",
        "rps_vs_unrouted": 0.88,
        "client_extra_cpu_us_per_req": pytest.approx(10.0, abs=0.05),
        "rps_vs_default": 0.957,
        "client_extra_cpu_us_per_req_vs_default": pytest.approx(4.0, abs=0.05),
        "disturbed": False,
    }
    assert (h2["rps_vs_unrouted"], h2["rps_vs_default"]) == (0.5, 0.625)
    assert "met" not in h1 and all("route rules +" not in t["target"] for t in result["targets"])
    # A run without the routed rows reports nothing for them.
    records = [
        ScenarioRecord(mesh := BY_NAME["gossamer-mesh/h1"], [_measurement(mesh, 1e4, [1.8, 1.2])])
    ]
    machine = {
        "date": "d", "cpu": "c", "cores": 2, "commit": "x", "loadavg": ["0", "0", "0"],
        "core_busy_before_start": {"cpu0": 0.0, "cpu1": 0.0},
    }  # fmt: skip
    idle = {name: 20000 for name in mesh.proxies}
    alone = report.build(records, idle, QUICK, CPUS, machine)
    assert alone["reported"] == []
    assert "route rules +" not in render.markdown(alone)


def test_the_table_and_routing_cost_show_both_routed_rows_against_the_unrouted_one() -> None:
    text = render.markdown(_report())
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| gossamer-discovered/h1 "))
    assert "| 0.92, +6.5 µs |" in row
    assert "| 0.88, +11.0 µs |" in next(
        line for line in lines if line.startswith("| gossamer-routed/h1 ")
    )
    assert "`gossamer-discovered` is the default mesh path" in text
    assert "`gossamer-routed` adds what a Service opts into" in text
    cost = lines[lines.index("**Routing cost**") + 2 :]
    assert cost[0] == (
        "- gossamer-discovered/h1: 0.92x the rps of gossamer-mesh/h1 (target >= 0.85); +6.5 µs "
        "CPU per request over the path: +6.0 µs in the client's proxy (66.0 µs/req), +0.5 µs on "
        "the server side; the client's proxy sent 49%/51% of the requests to its 2 endpoints "
        "(ds-b-h1, ds-b2-h1)"
    )
    assert cost[1].startswith("- gossamer-routed/h1: 0.88x the rps of gossamer-mesh/h1 (reported")
    assert [line.split(":")[0] for line in cost[:4]] == [
        f"- gossamer-{path}/{p}" for p in (H1, H2) for path in ("discovered", "routed")
    ]
    targets = lines[lines.index("**Targets**") + 2 :]
    assert (
        "- [MET] default routed mesh path (discovery + P2C, no route rules) HTTP/1.1 rps >= 0.85x "
        "the unrouted mesh path (same run): 0.92" in targets
    )
    assert (
        "- [MISSED] default routed mesh path (discovery + P2C, no route rules) HTTP/2 rps >= "
        "0.85x the unrouted mesh path (same run): 0.8" in targets
    )
    assert (
        "- route rules + retries (header-match HTTPRoute, retry annotation) HTTP/1.1: 0.88x "
        "unrouted, +10.0 µs/req in the client proxy; against the default path: 0.96x, "
        "+4.0 µs/req (reported, no target)" in targets
    )
    assert (
        "- route rules + retries (header-match HTTPRoute, retry annotation) HTTP/2: 0.50x "
        "unrouted, +10.0 µs/req in the client proxy; against the default path: 0.62x, "
        "+4.0 µs/req (reported, no target)" in targets
    )


def test_each_rounds_progress_line_compares_the_default_path_with_its_unrouted_round() -> None:
    mesh, mine = BY_NAME["gossamer-mesh/h1"], default(H1)
    by_name = {
        mesh.name: ScenarioRecord(mesh, [_measurement(mesh, 10000.0, [1.8, 1.2])]),
        mine.name: ScenarioRecord(
            mine, [_measurement(mine, 9200.0, [27600 * us * 1e-6 for us in (66, 40.5)])]
        ),
    }
    assert _versus_unrouted(by_name[mine.name], by_name, 1) == (
        ", 0.92x unrouted, +6.5 µs CPU/req (client proxy +6.0)"
    )
    assert _versus_unrouted(by_name[mesh.name], by_name, 1) == ""
