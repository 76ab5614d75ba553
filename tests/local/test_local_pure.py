"""Pure parts of local mode: restart backoff, VIP allocation, hosts files, DNAT rules,
Prometheus config and scrape targets, the state directory's names and files."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest
import yaml

from gossamer.local.backoff import RestartBackoff
from gossamer.local.hosts import (
    PodIdentity,
    ServiceAddress,
    render_hosts,
    service_names,
    write_in_place,
)
from gossamer.local.prometheus_config import (
    PROXY_JOB,
    ScrapeTarget,
    command_line,
    render_config,
    render_targets,
)
from gossamer.local.servicerules import Endpoint, ServiceRoute, render_nat_table
from gossamer.local.state import RuntimeInfo, StateDir, SupervisorStatus
from gossamer.local.vips import ServiceCIDRExhausted, ServiceIPAllocator


# -- backoff --------------------------------------------------------------------------------
def test_backoff_doubles_up_to_a_minute() -> None:
    backoff = RestartBackoff()
    delays = [backoff.delay_after_exit(0.5) for _ in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_forgives_a_long_healthy_run() -> None:
    backoff = RestartBackoff()
    for _ in range(5):
        backoff.delay_after_exit(0.1)
    assert backoff.delay_after_exit(120.0) == 1
    assert backoff.delay_after_exit(0.1) == 2


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RestartBackoff(initial=0)
    with pytest.raises(ValueError):
        RestartBackoff(initial=10, maximum=5)


# -- VIPs -----------------------------------------------------------------------------------
def test_vips_lowest_free_first_and_stable_per_holder() -> None:
    allocator = ServiceIPAllocator("10.78.0.0/16")
    assert str(allocator.allocate("demo/web")) == "10.78.0.1"
    assert str(allocator.allocate("demo/api")) == "10.78.0.2"
    assert str(allocator.allocate("demo/web")) == "10.78.0.1"
    allocator.release("demo/web")
    assert str(allocator.allocate("demo/db")) == "10.78.0.1"


def test_vips_reserve_what_services_already_hold() -> None:
    allocator = ServiceIPAllocator("10.78.0.0/16")
    assert allocator.reserve("demo/web", "10.78.0.1")
    assert allocator.reserve("demo/web", "10.78.0.1")  # again: no change
    assert not allocator.reserve("demo/api", "10.78.0.1")  # held by web
    assert not allocator.reserve("demo/api", "10.77.0.5")  # outside the CIDR
    assert not allocator.reserve("demo/api", "10.78.0.0")  # the network address
    assert not allocator.reserve("demo/api", "not an ip")
    assert str(allocator.allocate("demo/api")) == "10.78.0.2"
    assert allocator.holder(ipaddress.IPv4Address("10.78.0.1")) == "demo/web"
    assert allocator.holders() == {"demo/web", "demo/api"}
    # Moving a holder to another address frees its old one.
    assert allocator.reserve("demo/web", "10.78.0.9")
    assert str(allocator.allocate("demo/new")) == "10.78.0.1"


def test_vips_exhausted() -> None:
    allocator = ServiceIPAllocator("10.78.0.0/30")
    allocator.allocate("a/a")
    allocator.allocate("a/b")
    with pytest.raises(ServiceCIDRExhausted):
        allocator.allocate("a/c")
    with pytest.raises(ValueError):
        ServiceIPAllocator("10.78.0.0/31")


# -- hosts files ----------------------------------------------------------------------------
SERVICES = [
    ServiceAddress("demo", "web", "10.78.0.1"),
    ServiceAddress("other", "db", "10.78.0.7"),
]


def test_hosts_file_lists_every_form_of_every_name() -> None:
    text = render_hosts(PodIdentity("demo", "client-0", "10.77.0.4"), reversed(SERVICES))
    assert text.splitlines()[1:] == [
        "127.0.0.1\tlocalhost",
        "10.77.0.4\tclient-0",
        "10.78.0.1\tweb.demo.svc.cluster.local web.demo.svc web.demo web",
        "10.78.0.7\tdb.other.svc.cluster.local db.other.svc db.other",
    ]


def test_short_name_only_in_the_pods_own_namespace() -> None:
    web = SERVICES[0]
    assert "web" in service_names(web, "demo", "cluster.local")
    assert "web" not in service_names(web, "other", "cluster.local")
    assert service_names(web, "x", "example.org")[0] == "web.demo.svc.example.org"


def test_hosts_written_in_place_keep_their_inode(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    assert write_in_place(path, "a long first version\n")
    inode = os.stat(path).st_ino
    assert write_in_place(path, "short\n")
    assert not write_in_place(path, "short\n")
    assert path.read_text() == "short\n" and os.stat(path).st_ino == inode


# -- DNAT rules -----------------------------------------------------------------------------
SUBNET = ipaddress.IPv4Network("10.77.0.0/16")


def route(*endpoints: Endpoint, port: int = 8080) -> ServiceRoute:
    return ServiceRoute("demo", "web", "10.78.0.1", port, tuple(endpoints))


def test_dnat_spreads_over_endpoints_evenly() -> None:
    table = render_nat_table(
        [route(Endpoint("10.77.0.4", 80), Endpoint("10.77.0.2", 80), Endpoint("10.77.0.3", 80))],
        SUBNET,
    )
    chain = route().chain
    assert "-A GOSSAMER_SERVICES -d 10.78.0.1/32 -p tcp -m tcp --dport 8080" in table
    rules = [line for line in table.splitlines() if line.startswith(f"-A {chain} ")]
    assert rules == [
        f"-A {chain} -p tcp -m statistic --mode random --probability 0.3333333333 "
        "-j DNAT --to-destination 10.77.0.2:80",
        f"-A {chain} -p tcp -m statistic --mode random --probability 0.5000000000 "
        "-j DNAT --to-destination 10.77.0.3:80",
        f"-A {chain} -p tcp -j DNAT --to-destination 10.77.0.4:80",
    ]


def test_dnat_table_is_whole_and_masquerades_translated_connections() -> None:
    table = render_nat_table([], SUBNET)
    assert table.startswith("*nat\n") and table.endswith("COMMIT\n")
    for chain in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"):
        assert f":{chain} ACCEPT [0:0]" in table
    assert "-A PREROUTING" in table and "-A OUTPUT" in table
    assert "-A POSTROUTING -s 10.77.0.0/16 -m conntrack --ctstate DNAT" in table
    assert "DNAT --to" not in table


def test_dnat_leaves_out_ports_without_endpoints_and_is_deterministic() -> None:
    empty = route(port=9000)
    full = route(Endpoint("10.77.0.2", 8080))
    table = render_nat_table([empty, full], SUBNET)
    assert "--dport 9000" not in table and "--dport 8080" in table
    assert table == render_nat_table([full, empty], SUBNET)
    assert route(port=1).chain != route(port=2).chain and len(route().chain) <= 28


# -- Prometheus -----------------------------------------------------------------------------
def test_prometheus_targets_carry_linkerd_labels() -> None:
    targets = [
        ScrapeTarget("demo", "web-1", "web", "10.77.0.3"),
        ScrapeTarget("demo", "web-0", "web", "10.77.0.2"),
    ]
    document = json.loads(render_targets(targets))
    assert document[0] == {
        "targets": ["10.77.0.2:4191"],
        "labels": {
            "namespace": "demo",
            "pod": "web-0",
            "deployment": "web",
            "container": "gossamer-proxy",
        },
    }
    assert render_targets(targets) == render_targets(reversed(targets))
    assert json.loads(render_targets([])) == []


def test_prometheus_config_scrapes_file_sd_every_5s(tmp_path: Path) -> None:
    config = yaml.safe_load(render_config(tmp_path / "targets", "127.0.0.1:9090"))
    assert config["global"]["scrape_interval"] == "5s"
    job = config["scrape_configs"][0]
    assert job["job_name"] == PROXY_JOB
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "targets" / "*.json")]
    argv = command_line("prometheus", tmp_path / "p.yml", tmp_path / "data", "127.0.0.1:9090")
    assert "--storage.tsdb.retention.time=6h" in argv
    assert "--web.listen-address=127.0.0.1:9090" in argv


def test_prometheus_accepts_the_config(tmp_path: Path) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool comes with Debian's prometheus: run scripts/setup"
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "pods.json").write_text(
        render_targets([ScrapeTarget("demo", "web-0", "web", "10.77.0.2")])
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(render_config(tmp_path / "targets", "127.0.0.1:9090"))
    done = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- the state directory --------------------------------------------------------------------
def test_node_name_follows_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = StateDir.at(tmp_path / "a"), StateDir.at(tmp_path / "b")
    assert a.node_name != b.node_name and a.node_name == StateDir.at(tmp_path / "a").node_name
    assert a.node_name.startswith("gsl-") and len(a.node_name) == 12
    assert a.pod_netns("demo", "web-0") == f"{a.node_name}.demo.web-0"
    monkeypatch.setenv("GOSSAMER_HOME", str(tmp_path / "home"))
    assert StateDir.at(None).root == tmp_path / "home"
    monkeypatch.delenv("GOSSAMER_HOME")
    assert StateDir.at(None).root == Path.home() / ".gossamer"


def test_runtime_and_status_files_round_trip(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path)
    assert RuntimeInfo.load(state) is None and SupervisorStatus.load(state) is None
    runtime = RuntimeInfo(
        node_netns=state.node_name,
        subnet="10.77.0.0/16",
        gateway="10.77.0.1",
        service_cidr="10.78.0.0/16",
        cluster_domain="cluster.local",
        supervisor_pid=42,
        prometheus_url="http://127.0.0.1:9090",
        host_ports={"prometheus": 9090},
    )
    runtime.save(state)
    assert RuntimeInfo.load(state) == runtime
    status = SupervisorStatus(pid=42, state="ready", prometheus_pid=43)
    status.save(state)
    assert SupervisorStatus.load(state) == status
    assert not list(tmp_path.glob(".*.tmp"))


def test_unreadable_runtime_file_says_how_to_recover(tmp_path: Path) -> None:
    from gossamer.local.errors import LocalModeError

    state = StateDir.at(tmp_path)
    state.runtime_file.write_text("{not json")
    with pytest.raises(LocalModeError, match="gossamer down"):
        RuntimeInfo.load(state)
    state.runtime_file.write_text('{"unexpected": 1}')
    with pytest.raises(LocalModeError, match="unexpected content"):
        RuntimeInfo.load(state)


def test_preflight_names_what_is_missing() -> None:
    from gossamer.local import preflight
    from gossamer.local.errors import PreflightError

    assert preflight.problems() == []  # CI has all of it, as root
    found = preflight.problems("no-such-prometheus-binary")
    assert found == [
        "no-such-prometheus-binary not found: install Debian's 'prometheus' (scripts/setup)"
    ]
    with pytest.raises(PreflightError, match="gossamer up cannot start"):
        preflight.check("no-such-prometheus-binary")
