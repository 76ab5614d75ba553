"""The benchmark's routed mesh path and destination-scale parts that need no sandbox: the
scenario and testbed data, the store's resources as the real policy translation and the
proxy's router read them, the runner's counting checks, the report's comparison with the
unrouted path, and the destination-scale section."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from bench import destination_scale, meshstore, render, report
from bench.loadgen import LoadResult
from bench.procstat import Usage
from bench.report import ScenarioRecord
from bench.runner import (
    MIN_BALANCED_SHARE,
    OUTBOUND,
    ROUTE_METRICS,
    Measurement,
    ScenarioFailed,
    ScenarioRunner,
)
from bench.scenarios import DESTINATION_SCALE, SCENARIOS, Scenario
from bench.settings import QUICK, CpuPlan
from bench.testbed import (
    CANARY_HEADER,
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
from gossamer.proxy.routing.request import RequestInfo

CPUS = CpuPlan(load="0", proxy="1", pinned=True)
BY_NAME = {s.name: s for s in SCENARIOS}


def routed(p: str) -> Scenario:
    return BY_NAME[f"gossamer-routed/{p}"]


# Scenarios and testbed --------------------------------------------------------------------


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_routed_path_dials_a_vip_balanced_over_two_addresses_of_one_server_pod(p: str) -> None:
    scenario = routed(p)
    assert scenario.target.service is not None and scenario.target.port == SERVICE_PORT
    service = TESTBED.service(scenario.target.service)
    assert not service.vip.startswith("10.77.")  # outside the pod subnet
    assert ("retry.gossamer.dev/http", "5xx") in service.annotations
    assert service.target_port == origin_port(p)
    # The client: meshed, routed (destination + policy), plaintext like the unrouted path.
    client = TESTBED.pod(scenario.client_pod)
    assert client.meshed and client.routed and client.service_account is None
    # Two endpoints (Pods of the store), both addresses of one server pod: its own and its
    # alias. The client's proxy balances between them, on the origin's port.
    assert len(service.pods) == 2
    (server,) = {TESTBED.address_owner(name) for name in service.pods}
    assert server.name == service.pods[0] and server.aliases == service.pods[1:]
    assert scenario.balanced == tuple(Endpoint(name, origin_port(p)) for name in service.pods)
    # The path's proxies: the client's, then the server pod's one inbound proxy.
    client_proxy, server_proxy = (TESTBED.proxy(name) for name in scenario.proxies)
    assert (client_proxy.pod, server_proxy.pod) == (client.name, server.name)
    assert all(TESTBED.proxy(name).kind == "gossamer" for name in scenario.proxies)


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_routed_path_has_the_unrouted_paths_processes(p: str) -> None:
    """One client proxy, one server pod with one inbound proxy and one origin, as on
    gossamer-mesh: the comparison measures routing, not more processes on the proxy core."""
    scenario, unrouted = routed(p), BY_NAME[f"gossamer-mesh/{p}"]
    assert len(scenario.proxies) == len(unrouted.proxies) == 2
    clients = [TESTBED.pod(TESTBED.proxy(s.proxies[0]).pod) for s in (scenario, unrouted)]
    servers = [TESTBED.pod(TESTBED.proxy(s.proxies[1]).pod) for s in (scenario, unrouted)]
    assert all(pod.meshed and not pod.origin for pod in clients)
    # The server pods differ in their name and the routed one's second address only.
    assert dataclasses.replace(servers[0], name=servers[1].name, aliases=()) == servers[1]
    # The routed path's pods run no proxy or origin beyond the path's own.
    pods = [pod for pod in TESTBED.pods if pod.name.startswith("rt-") and pod.name.endswith(p)]
    assert [pod.name for pod in pods] == [clients[0].name, servers[0].name]
    assert {spec.name for spec in TESTBED.proxies if spec.pod in {pod.name for pod in pods}} == (
        set(scenario.proxies)
    )


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_routed_path_is_compared_with_the_unrouted_mesh_path_measured_just_before(
    p: str,
) -> None:
    scenario = routed(p)
    assert scenario.unrouted == f"gossamer-mesh/{p}"
    unrouted = BY_NAME[scenario.unrouted]
    assert unrouted.target.service is None and not TESTBED.pod(unrouted.client_pod).routed
    # Measured within a minute of it in each round (only the default mesh path, which has the
    # target, runs between them), so drift in the machine's speed hits them alike.
    order = [s.name for s in SCENARIOS]
    assert order.index(scenario.name) == order.index(unrouted.name) + 2
    assert order[order.index(unrouted.name) + 1] == f"gossamer-discovered/{p}"
    assert scenario.baseline == f"haproxy-chain/{p}"
    assert scenario.ratio_label == ("routed_mesh_path" if p == H1 else f"routed_mesh_path_{p}")


def test_vips_are_distinct_and_every_pod_is_in_at_most_one_service() -> None:
    vips = [service.vip for service in TESTBED.services]
    assert len(vips) == len(set(vips))
    listed = [name for service in TESTBED.services for name in service.pods]
    assert len(listed) == len(set(listed))
    for name in listed:
        TESTBED.address_owner(name)  # a pod, or a pod's alias
    # An alias names one address: no pod and no other alias has its name.
    names = [pod.name for pod in TESTBED.pods] + [a for pod in TESTBED.pods for a in pod.aliases]
    assert len(names) == len(set(names))
    # Certified pods keep their own label unless a Service lists them.
    labels = TESTBED.store_pods()
    assert labels["mt-a-h1"] == "mt-a-h1" and labels["mt-b-h1"] == "mt-h1"
    assert labels["rt-b-h1"] == labels["rt-b2-h1"] == "rt-h1"
    assert "rt-a-h1" not in labels and "gm-a-h1" not in labels
    with pytest.raises(KeyError):
        TESTBED.address_owner("rt-c-h1")


def test_the_destination_scale_run_is_selected_by_name_like_a_scenario() -> None:
    import re

    assert not re.search("routed", DESTINATION_SCALE)
    assert re.search("destination", DESTINATION_SCALE)
    assert DESTINATION_SCALE not in BY_NAME
    assert destination_scale._cpus("0,1") == (0, 1)


# The store as the control plane reads it --------------------------------------------------


def _resources() -> list[Any]:
    ips = {name: f"10.77.0.{i + 2}" for i, name in enumerate(TESTBED.store_pods())}
    return meshstore.resources(TESTBED, ips)


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_route_matches_the_canary_header_first_and_takes_every_other_request(p: str) -> None:
    index = PolicyIndex()
    for resource in _resources():
        if resource.kind == "Service":
            index.set_service(resource)
        elif resource.kind == "HTTPRoute":
            index.set_route(resource)
    service = TESTBED.service(routed(p).target.service or "")
    target = index.resolve(f"{service.vip}:{service.port}")
    assert target is not None and target.service == (MESH_NAMESPACE, service.name)
    entry = index.service(target.service)
    assert entry is not None
    (port,) = entry.spec.ports
    policy = outbound_policy(entry, port, index.routes_for(target.service))
    routes = CompiledRoutes(policy, random.Random(1))
    assert routes.errors == [] and routes.always is None  # every request is matched
    plain = RequestInfo(b"GET", b"/", headers=[(b"host", service.vip.encode())])
    chosen = routes.select(plain)
    assert chosen is not None and chosen.route_name == routed(p).route
    (backend,) = chosen.backends
    assert backend.authority == f"{service.name}.{MESH_NAMESPACE}.svc.cluster.local:80"
    assert chosen.retry.enabled and chosen.retry.retryable_status(503)
    header = [(CANARY_HEADER[0].encode(), CANARY_HEADER[1].encode())]
    canary = routes.select(RequestInfo(b"GET", b"/", headers=header))
    assert canary is not None and canary.route_name == routed(p).route
    (canary_backend,) = canary.backends
    assert canary_backend.authority.startswith(f"rt-canary-{p}.{MESH_NAMESPACE}.svc")
    assert TESTBED.service(f"rt-canary-{p}").pods == ()  # a 503 if the canary rule is taken


def test_store_pods_are_running_meshed_and_labelled_for_their_service() -> None:
    pods = {r.name: r for r in _resources() if r.kind == "Pod"}
    services = {r.name: r for r in _resources() if r.kind == "Service"}
    assert set(pods) == set(TESTBED.store_pods())
    for name, app in TESTBED.store_pods().items():
        data = pods[name].to_dict()
        assert data["metadata"]["labels"] == {"app": app}
        assert data["status"]["phase"] == "Running"
    for service in TESTBED.services:
        assert services[service.name].to_dict()["spec"]["selector"] == {"app": service.name}
    # The certified pods' Pods name their service account; the routed server's (both) have
    # the default one.
    assert pods["mt-b-h1"].to_dict()["spec"]["serviceAccountName"] == "mt-b-h1"
    for name in ("rt-b-h1", "rt-b2-h1"):
        assert pods[name].to_dict()["spec"]["serviceAccountName"] == "default"


@pytest.mark.parametrize("p", PROTOCOLS)
def test_the_routed_service_has_two_endpoints_one_per_address_of_the_server_pod(p: str) -> None:
    """The destination service's view: two Running Pods, each with one of the server pod's
    two addresses, both selected by the Service."""
    service = TESTBED.service(routed(p).target.service or "")
    ips = {name: f"10.77.0.{i + 2}" for i, name in enumerate(TESTBED.store_pods())}
    pods = [r.to_dict() for r in meshstore.resources(TESTBED, ips) if r.kind == "Pod"]
    selected = [pod for pod in pods if pod["metadata"]["labels"] == {"app": service.name}]
    assert sorted(pod["metadata"]["name"] for pod in selected) == sorted(service.pods)
    assert sorted(pod["status"]["podIP"] for pod in selected) == sorted(
        ips[name] for name in service.pods
    )
    assert len({pod["status"]["podIP"] for pod in selected}) == 2


# The runner's counting checks -------------------------------------------------------------


B, B2 = "10.77.0.9:8080", "10.77.0.10:8080"  # the routed h1 path's two endpoints


class _Live:
    """What the runner's checks ask of the live testbed: counts in each proxy's /metrics
    (`by_address`: on the client's outbound series of an endpoint address), and addresses."""

    def __init__(
        self, counts: dict[str, int], route: int, by_address: dict[str, int] | None = None
    ) -> None:
        self.counts = counts
        self.route = route
        self.by_address = by_address or {}
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def address(self, endpoint: Endpoint) -> str:
        return {"rt-b-h1": B, "rt-b2-h1": B2}[endpoint.pod or ""]

    def gossamer_counts(self, name: str, *labels: str, prefix: str = "") -> tuple[int, int]:
        self.asked.append((name, labels))
        if prefix == ROUTE_METRICS:
            return self.route, self.route
        for label in labels:
            if label.startswith("target_addr="):
                count = self.by_address.get(label.removeprefix("target_addr=").strip('"'), 0)
                return count, count
        return self.counts[name], self.counts[name]


def _runner(live: _Live) -> ScenarioRunner:
    runner = ScenarioRunner.__new__(ScenarioRunner)  # no testbed: only the checks run
    runner.live = live  # type: ignore[assignment]
    return runner


def test_both_proxies_of_the_routed_path_count_every_request() -> None:
    scenario = routed(H1)
    client, server = scenario.proxies
    zero = {name: (0, 0) for name in scenario.proxies}
    counted = _runner(_Live({client: 1000, server: 1000}, 1000))._check_counts(
        scenario, list(scenario.proxies), (), zero, 1000
    )
    assert counted == {client: 1000, server: 1000}
    for short in (client, server):
        counts = {client: 1000, server: 1000, short: 999}
        with pytest.raises(ScenarioFailed, match=f"{short} counted 999 requests"):
            _runner(_Live(counts, 1000))._check_counts(
                scenario, list(scenario.proxies), (), zero, 1000
            )


def _balance(before: dict[str, int], after: dict[str, int], sent: int) -> dict[str, int]:
    scenario = routed(H1)
    runner = _runner(_Live({}, 0, before))
    counts = runner._endpoint_counts(scenario)
    runner.live = live = _Live({}, 0, after)  # type: ignore[assignment]
    counted = runner._check_balance(scenario, counts, sent)
    # Asked of the client's proxy, on its outbound series of each endpoint's address.
    assert live.asked == [
        (scenario.proxies[0], (OUTBOUND, f'target_addr="{address}"')) for address in (B, B2)
    ]
    return counted


def test_the_client_proxy_sends_every_request_to_the_two_endpoints_each_its_share() -> None:
    # Counted on the client's outbound per-endpoint series, as differences over the runs.
    assert _balance({B: 100, B2: 50}, {B: 620, B2: 530}, 1000) == {"rt-b-h1": 520, "rt-b2-h1": 480}
    assert _balance({}, {B: 510, B2: 500}, 1000) == {"rt-b-h1": 510, "rt-b2-h1": 500}  # a retry
    with pytest.raises(ScenarioFailed, match="to the endpoints rt-b-h1, rt-b2-h1 together"):
        _balance({}, {B: 500, B2: 499}, 1000)
    few = int(MIN_BALANCED_SHARE * 1000) - 1
    with pytest.raises(ScenarioFailed, match=f"sent {few} of 1000 .* rt-b2-h1 .*not balanced"):
        _balance({}, {B: 1000 - few, B2: few}, 1000)
    with pytest.raises(ScenarioFailed, match="not balanced"):
        _balance({}, {B: 1000, B2: 0}, 1000)
    # An unrouted path balances nothing: nothing asked, nothing checked.
    runner = _runner(_Live({}, 0))
    mesh = BY_NAME["gossamer-mesh/h1"]
    assert runner._endpoint_counts(mesh) == {} and runner._check_balance(mesh, {}, 1000) == {}


def test_every_request_must_be_served_on_the_scenarios_route() -> None:
    scenario = routed(H2)
    runner = _runner(_Live({}, 100))
    before = runner._route_counts(scenario)
    assert before == (100, 100)
    runner.live = _Live({}, 1100)  # type: ignore[assignment]
    runner._check_route(scenario, before, 1000)
    runner.live = _Live({}, 1099)  # type: ignore[assignment]
    with pytest.raises(ScenarioFailed, match=r"on route rt-h2.*the route was not in force"):
        runner._check_route(scenario, before, 1000)
    # An unrouted path has no route to check.
    assert runner._route_counts(BY_NAME["gossamer-mesh/h2"]) is None


# Report -----------------------------------------------------------------------------------


def _measurement(
    scenario: Scenario, rps: float, cpu_by_proxy: list[float], split: float = 0.5
) -> Measurement:
    names = scenario.proxies
    requests = int(rps * 3)
    pids = list(range(len(names)))
    by_pid = dict(zip(pids, cpu_by_proxy, strict=True))

    def usage(scale: float) -> Usage:
        return Usage(
            3.0,
            sum(cpu_by_proxy) * scale,
            {pid: 30000 for pid in pids},
            {"cpu0": 0.5, "cpu1": 0.95},
            0.0,
            {pid: cpu * scale for pid, cpu in by_pid.items()},
        )

    return Measurement(
        throughput=LoadResult(requests, 3.0, rps, 0, 0, 0.1, 0.2, 0.3),
        latency=LoadResult(6000, 3.0, 2000.0, 0, 0, 0.2, 0.5, 1.0, target_rps=2000.0),
        throughput_usage=usage(1.0),
        latency_usage=usage(0.2),
        proxied=True,
        counted_requests={name: requests for name in names},
        rss_kb_load={name: 30000 for name in names},
        proxy_pids=dict(zip(names, pids, strict=True)),
        counted_by_endpoint={
            endpoint.pod or "": round(requests * share)
            for endpoint, share in zip(scenario.balanced, (split, 1 - split), strict=False)
        },
    )


def _scale_result() -> dict[str, Any]:
    phases = {
        "startup: first answer": destination_scale.summary([20.0, 40.0]),
        "spread": {"all": destination_scale.summary([95.0, 97.0])},
        "burst (300 changes/s)": destination_scale.summary([60.0, 110.0]),
        "fan-out (100 watchers, 1 service)": {
            "all watchers": destination_scale.summary([98.0, 116.0]),
            "each watcher": destination_scale.summary([96.0, 115.0]),
        },
    }
    result = {
        "config": {
            "services": 1000, "pods_per_service": 10, "endpoints": 10000, "watchers": 100,
            "store": "SQLite", "cores": "destination on cpu1, writer and watchers on cpu0",
            "store_poll_interval_s": 0.1, "exec_to_all_answered_s": 0.76,
        },
        "phases": phases,
        "destination": {
            "rss_empty_store_mib": 63.2, "rss_after_sync_mib": 94.7, "rss_end_mib": 96.3,
            "peak_rss_mib": 96.3, "cpu_s": {"startup": 0.7},
        },
    }  # fmt: skip
    result["met"] = destination_scale.verdict(result)
    return result


def _report(
    rps_routed: tuple[float, float] = (8800.0, 5000.0),
    rps_default: tuple[float, float] = (9200.0, 8000.0),
) -> dict[str, Any]:
    records = []
    for p, rps, rps_d in zip((H1, H2), rps_routed, rps_default, strict=True):
        mesh, default, route = (
            BY_NAME[f"gossamer-mesh/{p}"], BY_NAME[f"gossamer-discovered/{p}"], routed(p)
        )  # fmt: skip
        records += [
            # Unrouted: 60 + 40 µs/req at 10,000 rps; default: client 66, server 40.5; routed:
            # client 70, server 41.
            ScenarioRecord(mesh, [_measurement(mesh, 10000.0, [1.8, 1.2])]),
            ScenarioRecord(
                default,
                [_measurement(default, rps_d, [rps_d * 3 * us * 1e-6 for us in (66, 40.5)], 0.49)],
            ),
            ScenarioRecord(
                route,
                [_measurement(route, rps, [rps * 3 * us * 1e-6 for us in (70, 41)], 0.52)],
            ),
        ]
    idle = {name: 20000 for record in records for name in record.scenario.proxies}
    machine = {
        "date": "d", "cpu": "c", "cores": 2, "commit": "x", "loadavg": ["0", "0", "0"],
        "core_busy_before_start": {"cpu0": 0.0, "cpu1": 0.0},
    }  # fmt: skip
    scale = {"status": "ok", "error": None, "seconds": 28.0, "result": _scale_result()}
    return report.build(records, idle, QUICK, CPUS, machine, scale)


def test_routed_rows_are_compared_with_the_unrouted_path_of_the_same_run() -> None:
    result = _report()
    ratios = result["ratios"]
    assert ratios["routed_mesh_path_rps_vs_unrouted"] == 0.88
    assert ratios["routed_mesh_path_h2_rps_vs_unrouted"] == 0.5
    # Path: 111 µs/req against 100; client proxy: 70 against 60; server: 41 against 40.
    assert ratios["routed_mesh_path_extra_cpu_us_per_req"] == pytest.approx(11.0, abs=0.05)
    assert ratios["routed_mesh_path_client_extra_cpu_us_per_req"] == pytest.approx(10.0, abs=0.05)
    rows = {row["name"]: row for row in result["scenarios"]}
    row = rows["gossamer-routed/h1"]
    assert row["unrouted"] == "gossamer-mesh/h1" and row["rps_vs_unrouted"] == 0.88
    assert row["cpu_us_per_req_by_proxy"]["gossamer-routed-a-h1"] == pytest.approx(70.0, abs=0.05)
    assert row["server_extra_cpu_us_per_req"] == pytest.approx(1.0, abs=0.05)
    assert row["counted_by_endpoint"] == {"rt-b-h1": 13728, "rt-b2-h1": 12672}
    assert "rps_vs_unrouted" not in rows["gossamer-mesh/h1"]
    assert "counted_by_endpoint" not in rows["gossamer-mesh/h1"]
    # Route rules and retries are reported, not a target: the target is the default path's.
    assert row["rps_target_vs_unrouted"] is None
    assert [t["target"] for t in result["targets"] if "0.85x" in t["target"]] == [
        f"default routed mesh path (discovery + P2C, no route rules) {what} rps >= 0.85x the "
        "unrouted mesh path (same run)"
        for what in ("HTTP/1.1", "HTTP/2")
    ]
    assert [item["rps_vs_unrouted"] for item in result["reported"]] == [0.88, 0.5]


def test_the_table_shows_routing_cost_and_the_routing_section_explains_it() -> None:
    text = render.markdown(_report())
    assert "| vs unrouted‡ |" in text
    line = next(line for line in text.splitlines() if line.startswith("| gossamer-routed/h1 "))
    assert "| 0.88, +11.0 µs |" in line
    mesh = next(line for line in text.splitlines() if line.startswith("| gossamer-mesh/h1 "))
    assert mesh.count("|") == line.count("|")
    assert "**Routing cost**" in text
    assert "two endpoints are two addresses of that one pod" in text
    assert (
        "- gossamer-routed/h1: 0.88x the rps of gossamer-mesh/h1 (reported, no target); +11.0 µs "
        "CPU per request over the path: +10.0 µs in the client's proxy (70.0 µs/req), +1.0 µs on "
        "the server side; the client's proxy sent 52%/48% of the requests to its 2 endpoints "
        "(rt-b-h1, rt-b2-h1)" in text
    )
    assert "routed mesh-path HTTP/2 rps >= 0.85x" not in text  # no longer a target


def test_the_destination_scale_run_gets_its_section_and_target() -> None:
    result = _report()
    text = render.markdown(result)
    assert "**Destination service at scale**" in text
    assert (
        "| fan-out (100 watchers, 1 service): all watchers | 2 | 98.0 | 116.0 | 116.0 | 0 |" in text
    )
    assert "| burst (300 changes/s) | 2 | 60.0 | 110.0 | 110.0 | 0 |" in text
    assert "Destination RSS: 63.2 MiB on an empty store, 94.7 MiB after sync, peak 96.3 MiB" in text
    (target,) = [t for t in result["targets"] if t["target"].startswith("destination at scale")]
    assert target["met"] is True and target["value"] == 116.0
    # The section comes after the table and before the targets.
    assert (
        text.index("| gossamer-routed/h2 ")
        < text.index("**Destination service")
        < text.index("**Targets**")
    )


def test_a_failed_scale_run_is_reported_as_failed() -> None:
    result = report.build(
        [], {}, QUICK, CPUS,
        {"date": "d", "cpu": "c", "cores": 2, "commit": "x", "loadavg": ["0", "0", "0"],
         "core_busy_before_start": {"cpu0": 0.0, "cpu1": 0.0}},
        {"status": "failed", "error": "no result within 240 s", "seconds": 240.0, "result": None},
    )  # fmt: skip
    text = render.markdown(result)
    assert "FAILED: no result within 240 s" in text
    assert "| scenario |" not in text  # no HTTP scenario ran: no table
    (target,) = [t for t in result["targets"] if t["target"].startswith("destination at scale")]
    assert target["met"] is None
