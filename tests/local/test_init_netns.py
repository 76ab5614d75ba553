"""`gossamer init` in real pod namespaces: the rules it installs and where they send traffic.

The traffic tests run a stand-in proxy (as the proxy uid) that answers each redirected
connection with `outbound|inbound POD ORIG_DST`, and stand-in apps that answer `app POD PORT`,
so every dial says who took the connection and where the client meant to go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gossamer.local.iptables import OUTPUT_CHAIN, REDIRECT_CHAIN, InitConfig, chain_rules
from gossamer.local.pod import PROXY_UID, PYTHON, Pod
from tests.local.pods import STANDIN, dial

pytestmark = pytest.mark.netns

APP_UID = 1000


def saved_rules(pod: Pod) -> list[str]:
    """The rules of the nat table, without iptables-save's comment lines and counters."""
    return [line for line in pod.nat_table().splitlines() if not line.startswith("#")]


def test_apply_installs_one_copy_even_when_run_twice(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    pristine = saved_rules(pod)
    pod.install_init_rules()
    once = saved_rules(pod)
    pod.install_init_rules()
    twice = saved_rules(pod)
    assert once == twice
    assert len([r for r in twice if r.startswith("-A ")]) == len(chain_rules(InitConfig()))
    assert sum(r.startswith("-A PREROUTING") and REDIRECT_CHAIN in r for r in twice) == 1
    assert sum(r.startswith("-A OUTPUT") and OUTPUT_CHAIN in r for r in twice) == 1
    assert once != pristine


def test_reapply_replaces_the_rules(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    pod.install_init_rules(skip_outbound_ports="7000-7001")
    assert any("7000:7001" in rule for rule in saved_rules(pod))
    pod.install_init_rules(skip_outbound_ports=[443], outbound_port=5140)
    rules = saved_rules(pod)
    assert not any("7000:7001" in rule for rule in rules)
    assert any("--dports 443" in rule for rule in rules)
    assert any("--to-ports 5140" in rule for rule in rules)
    assert sum(rule.startswith("-A OUTPUT") for rule in rules) == 1


def test_rules_of_other_tools_are_kept(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    pod.exec(["iptables", "-t", "nat", "-A", "OUTPUT", "-d", "10.9.0.0/16", "-j", "RETURN"])
    pod.install_init_rules()
    pod.install_init_rules()
    pod.remove_init_rules()
    assert "-A OUTPUT -d 10.9.0.0/16 -j RETURN" in saved_rules(pod)


def test_dry_run_changes_nothing(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    pristine = saved_rules(pod)
    done = pod.exec([PYTHON, "-m", "gossamer", "init", "--dry-run"])
    assert done.stdout.startswith("*nat\n") and "--to-ports 4143" in done.stdout
    assert saved_rules(pod) == pristine

    pod.install_init_rules()
    installed = saved_rules(pod)
    removal = pod.exec([PYTHON, "-m", "gossamer", "init", "--remove", "--dry-run"]).stdout
    assert f"-X {OUTPUT_CHAIN}" in removal
    assert saved_rules(pod) == installed


def test_remove_leaves_nothing(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    pristine = saved_rules(pod)
    pod.install_init_rules(skip_subnets="10.96.0.0/12", skip_outbound_ports="443")
    pod.remove_init_rules()
    assert saved_rules(pod) == pristine
    again = pod.remove_init_rules()  # nothing left: still a success
    assert "no rules to remove" in again.stderr


def test_bad_flags_fail_in_the_pod(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    done = pod.exec([PYTHON, "-m", "gossamer", "init", "--skip-subnets", "10.0.0/99"], check=False)
    assert done.returncode == 2 and "not a valid CIDR" in done.stderr
    assert not any(REDIRECT_CHAIN in rule for rule in saved_rules(pod))


@dataclass
class Mesh:
    """Two pods with stand-in proxies and apps; init rules are up to each test."""

    a: Pod
    b: Pod


@pytest.fixture
def mesh(make_pod: Callable[[str], Pod]) -> Iterator[Mesh]:
    a, b = make_pod("a"), make_pod("b")
    for pod in (a, b):
        proxy = pod.spawn([PYTHON, STANDIN, "proxy", pod.name], uid=PROXY_UID, name="standin")
        pod.wait_for_http(4191, "/ready", process=proxy)
    app_a = a.spawn([PYTHON, STANDIN, "app", "a", "9000"], uid=APP_UID, name="app")
    app_b = b.spawn([PYTHON, STANDIN, "app", "b", "8080", "7000", "4190"], uid=APP_UID, name="app")
    a.wait_for_port(9000, process=app_a)
    b.wait_for_port(8080, process=app_b)
    yield Mesh(a, b)


def test_outbound_goes_to_the_local_proxy_with_its_original_destination(mesh: Mesh) -> None:
    mesh.a.install_init_rules()
    assert dial(mesh.a, mesh.b.ip, 8080, uid=APP_UID) == f"outbound a {mesh.b.ip}:8080"
    assert dial(mesh.a, mesh.b.ip, 8080) == f"outbound a {mesh.b.ip}:8080"  # root too
    assert dial(mesh.a, "10.96.0.10", 80, uid=APP_UID) == "outbound a 10.96.0.10:80"


def test_inbound_goes_to_the_proxy_except_tap_and_admin(mesh: Mesh) -> None:
    mesh.b.install_init_rules()
    assert dial(mesh.a, mesh.b.ip, 8080) == f"inbound b {mesh.b.ip}:8080"
    assert dial(mesh.a, mesh.b.ip, 4190) == "app b 4190"  # skipped by default, as 4191
    ready = dial(mesh.a, mesh.b.ip, 4191, send="GET /ready HTTP/1.1\r\n\r\n")
    assert ready == "HTTP/1.1 200 OK"  # the (stand-in) admin server itself


def test_the_proxy_uid_is_not_redirected_outbound(mesh: Mesh) -> None:
    for pod in (mesh.a, mesh.b):
        pod.install_init_rules()
    # a's proxy dials b: not looped into a's own outbound port, but caught by b's inbound.
    assert dial(mesh.a, mesh.b.ip, 8080, uid=PROXY_UID) == f"inbound b {mesh.b.ip}:8080"


def test_loopback_is_not_redirected(mesh: Mesh) -> None:
    mesh.a.install_init_rules()
    assert dial(mesh.a, "127.0.0.1", 9000, uid=APP_UID) == "app a 9000"
    assert dial(mesh.a, mesh.a.ip, 9000, uid=APP_UID) == "app a 9000"  # own address, via lo
    assert dial(mesh.a, "127.0.0.1", 9000, uid=PROXY_UID) == "app a 9000"


def test_the_proxy_dialling_its_own_pod_address_goes_inbound(mesh: Mesh) -> None:
    mesh.a.install_init_rules()
    # app -> outbound proxy -> (own pod address) -> inbound proxy -> app, as linkerd-init.
    assert dial(mesh.a, mesh.a.ip, 9000, uid=PROXY_UID) == f"inbound a {mesh.a.ip}:9000"


def test_skip_ports(mesh: Mesh) -> None:
    mesh.a.install_init_rules(skip_outbound_ports="7000-7001")
    mesh.b.install_init_rules(skip_inbound_ports="4190,4191,7000")
    assert dial(mesh.a, mesh.b.ip, 7000, uid=APP_UID) == "app b 7000"
    assert dial(mesh.a, mesh.b.ip, 8080, uid=APP_UID) == f"outbound a {mesh.b.ip}:8080"
    assert dial(mesh.a, mesh.b.ip, 8080, uid=PROXY_UID) == f"inbound b {mesh.b.ip}:8080"


def test_skip_subnets(mesh: Mesh) -> None:
    mesh.a.install_init_rules(skip_subnets=f"{mesh.b.ip}/32")
    assert dial(mesh.a, mesh.b.ip, 8080, uid=APP_UID) == "app b 8080"  # b has no rules yet
    mesh.b.install_init_rules(skip_subnets=f"{mesh.a.ip}/32")
    assert dial(mesh.a, mesh.b.ip, 8080, uid=APP_UID) == "app b 8080"  # nor does b catch it
    mesh.b.install_init_rules()
    assert dial(mesh.a, mesh.b.ip, 8080, uid=APP_UID) == f"inbound b {mesh.b.ip}:8080"


def test_a_stopped_proxy_means_refused_connections(mesh: Mesh) -> None:
    mesh.a.install_init_rules()
    for process in mesh.a.processes:
        if process.name == "standin":
            process.terminate()
    assert dial(mesh.a, mesh.b.ip, 8080, uid=APP_UID) == "ConnectionRefusedError"
    mesh.a.remove_init_rules()
    assert dial(mesh.a, mesh.b.ip, 8080, uid=APP_UID) == "app b 8080"


def test_real_proxies_carry_a_request_between_pods(make_pod: Callable[[str], Pod]) -> None:
    a, b = make_pod("a"), make_pod("b")
    site = b.state_dir / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello from b\n")
    site.chmod(0o755)
    server = b.spawn([PYTHON, "-m", "http.server", "--directory", str(site), "8080"], name="web")
    b.wait_for_port(8080, process=server)
    proxies = {}
    for pod in (a, b):
        pod.install_init_rules()
        proxies[pod.name] = pod.start_proxy({"GOSSAMER_PROXY_SHUTDOWN_GRACE_PERIOD": "1s"})
    status = Path(f"/proc/{proxies['a'].pid}/status").read_text()
    assert "Uid:\t2102\t2102\t2102\t2102" in status

    url = f"http://{b.ip}:8080/hello.txt"
    assert a.exec(["curl", "-sS", "--max-time", "10", url], uid=APP_UID).stdout == "hello from b\n"
    proxies["a"].terminate()
    refused = a.exec(["curl", "-sS", "--max-time", "10", url], uid=APP_UID, check=False)
    assert refused.returncode == 7  # couldn't connect: a stopped proxy refuses, nothing leaks
