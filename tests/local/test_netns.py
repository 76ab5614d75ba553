"""The pod sandbox on real namespaces: layout, isolation, cleanup, processes and probes."""

from __future__ import annotations

import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gossamer.local.netns import LOCK_DIR, Node, cleanup_leftovers, list_namespaces
from gossamer.local.pod import Pod, SandboxError
from tests.conftest import SANDBOX_PREFIX
from tests.local.pods import PYTHON, STANDIN, dial

pytestmark = pytest.mark.netns


def host_network() -> set[str]:
    """The host namespace's links, addresses and routes, one line each."""
    lines: set[str] = set()
    for argv in (
        ["ip", "-o", "link"],
        ["ip", "-o", "addr"],
        ["ip", "route", "show", "table", "all"],
    ):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        lines |= {line.strip() for line in out.splitlines()}
    return lines


def test_pod_layout(node: Node, make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("web")
    assert pod.netns == f"{node.name}-web" and node.name.startswith(f"{SANDBOX_PREFIX}-")
    assert str(pod.ip) == "10.77.0.2" and str(node.gateway) == "10.77.0.1"

    addrs = pod.exec(["ip", "-o", "-4", "addr"]).stdout
    assert "lo    inet 127.0.0.1/8" in addrs
    assert f"eth0    inet {pod.ip}/16" in addrs
    assert "state UP" in pod.exec(["ip", "link", "show", "eth0"]).stdout
    assert "UP" in pod.exec(["ip", "link", "show", "lo"]).stdout
    routes = pod.exec(["ip", "route"]).stdout.splitlines()
    assert f"default via {node.gateway} dev eth0" in [r.strip() for r in routes]
    # IPv6 is off: the init rules are IPv4 only, so nothing may bypass them over v6.
    assert pod.exec(["ip", "-o", "-6", "addr"]).stdout.strip() == ""

    bridge = node.exec(["ip", "-o", "-4", "addr", "show", "br0"]).stdout
    assert f"inet {node.gateway}/16" in bridge
    assert "master br0" in node.exec(["ip", "link", "show", pod.veth]).stdout


def test_pods_reach_each_other(make_pod: Callable[[str], Pod]) -> None:
    a, b = make_pod("a"), make_pod("b")
    server_a = a.spawn([PYTHON, STANDIN, "app", "a", "8080"], name="app")
    server_b = b.spawn([PYTHON, STANDIN, "app", "b", "8080"], name="app")
    a.wait_for_port(8080, process=server_a)
    b.wait_for_port(8080, process=server_b)
    assert dial(a, b.ip, 8080) == "app b 8080"
    assert dial(b, a.ip, 8080) == "app a 8080"
    assert dial(a, a.ip, 8080) == "app a 8080"


def test_host_namespace_gets_no_link_address_or_route(sandbox_host: None, tmp_path: Path) -> None:
    before = host_network()
    with Node.create(prefix=SANDBOX_PREFIX, state_dir=tmp_path) as node:
        pods = [node.add_pod(name) for name in ("a", "b")]
        during = host_network()
    after = host_network()
    ours = ["br0", "10.77.", *(pod.veth for pod in pods), node.name]
    new = (during | after) - before
    # Other tests on this host may change its network meanwhile; none of it may be ours.
    assert [line for line in new if any(mark in line for mark in ours)] == []


def test_node_has_no_way_out(node: Node, make_pod: Callable[[str], Pod]) -> None:
    make_pod("a")
    links = node.exec(["ip", "-o", "link"]).stdout.splitlines()
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in links)
    assert names == ["br0", "lo", "vp1"]
    routes = sorted(r.strip() for r in node.exec(["ip", "route"]).stdout.splitlines())
    assert routes == [
        f"{node.subnet} dev br0 proto kernel scope link src {node.gateway}",
        "unreachable default",
    ]
    # Every address of the host (read, never dialled) is unroutable from the node.
    host_addrs = subprocess.run(
        ["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True
    ).stdout
    for line in host_addrs.splitlines():
        address = line.split()[3].split("/")[0]
        if address.startswith("127."):
            continue
        got = node.exec(["ip", "route", "get", address], check=False)
        assert got.returncode != 0, got.stdout
        assert "unreachable" in got.stderr.lower() or "no route" in got.stderr.lower()


def test_destroy_removes_everything_and_is_idempotent(sandbox_host: None, tmp_path: Path) -> None:
    node = Node.create(prefix=SANDBOX_PREFIX, state_dir=tmp_path)
    pod = node.add_pod("a")
    sleeper = pod.spawn(["sleep", "60"])
    assert {node.name, pod.netns} <= set(list_namespaces())
    assert (LOCK_DIR / f"{node.name}.lock").exists()
    node.destroy()
    node.destroy()
    assert sleeper.poll() is not None
    assert not [n for n in list_namespaces() if n.startswith(node.name)]
    assert not (LOCK_DIR / f"{node.name}.lock").exists()
    assert (tmp_path / node.name / "a" / "sleep.stdout").exists()  # given state dirs are kept
    with pytest.raises(SandboxError, match="destroyed"):
        node.add_pod("b")


def test_own_state_dir_is_removed(sandbox_host: None) -> None:
    with Node.create(prefix=SANDBOX_PREFIX) as node:
        state = node.state_dir
        assert state.is_dir()
    assert not state.exists()


def test_parallel_nodes_are_isolated(node: Node, sandbox_host: None, tmp_path: Path) -> None:
    a = node.add_pod("a")
    with Node.create(prefix=SANDBOX_PREFIX, state_dir=tmp_path / "other") as other:
        assert other.name != node.name
        other.add_pod("a")
        b2 = other.add_pod("b")  # 10.77.0.3, in the other node only
        server = b2.spawn([PYTHON, STANDIN, "app", "b2", "8080"])
        b2.wait_for_port(8080, process=server)
        assert dial(a, b2.ip, 8080, timeout=1.0) in ("TimeoutError", "OSError")


def test_remove_pod_frees_name_and_address(node: Node) -> None:
    a = node.add_pod("a")
    node.add_pod("b")
    node.remove_pod("a")
    assert a.netns not in list_namespaces()
    again = node.add_pod("a")
    assert again.ip == a.ip
    with pytest.raises(SandboxError, match="pod name"):
        node.add_pod("a")
    with pytest.raises(SandboxError, match="pod name"):
        node.add_pod("Bad_Name")


def test_leftovers_of_a_dead_run_are_removed_live_ones_kept(node: Node, sandbox_host: None) -> None:
    prefix = "gsmc"  # the crashed run gets its own prefix: nothing else matches it
    crash = textwrap.dedent(
        f"""
        import os
        from gossamer.local.netns import Node
        node = Node.create(prefix={prefix!r})
        node.add_pod("a")
        print(node.name, flush=True)
        os._exit(0)  # no destroy: a crash
        """
    )
    done = subprocess.run([PYTHON, "-c", crash], capture_output=True, text=True, timeout=60)
    dead = done.stdout.strip()
    assert done.returncode == 0 and dead, done.stderr
    assert {dead, f"{dead}-a"} <= set(list_namespaces())

    assert sorted(cleanup_leftovers(prefix)) == [dead, f"{dead}-a"]
    assert not [n for n in list_namespaces() if n.startswith(dead)]
    # This test's own node is alive (its lock is held), so the suite's cleanup keeps it.
    assert node.name not in cleanup_leftovers(SANDBOX_PREFIX)
    assert node.name in list_namespaces()


def test_spawn_as_another_uid_and_stop_by_pid(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    script = "import os, time; print(os.getuid(), os.getgid(), os.getgroups(), flush=True); "
    script += "time.sleep(60)"
    process = pod.spawn([PYTHON, "-c", script], uid=2102, name="who")
    deadline = time.monotonic() + 10
    while not process.stdout() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.stdout().strip() == "2102 2102 []"
    assert process.stdout_path == pod.state_dir / "who.stdout"
    started = time.monotonic()
    assert process.terminate(timeout=5) == -15
    assert time.monotonic() - started < 5


def test_stop_escalates_to_sigkill(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    script += "print('ready', flush=True); time.sleep(60)"
    process = pod.spawn([PYTHON, "-c", script])
    deadline = time.monotonic() + 10
    while not process.stdout() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.terminate(timeout=0.5) == -9


def test_exec_gets_a_clean_environment(
    make_pod: Callable[[str], Pod], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOSSAMER_PROXY_LOG_LEVEL", "debug")
    pod = make_pod("a")
    env = pod.exec(["env"], env={"GOSSAMER_PROXY_ADMIN_SHUTDOWN": "1"}).stdout
    assert "GOSSAMER_PROXY_ADMIN_SHUTDOWN=1" in env
    assert "GOSSAMER_PROXY_LOG_LEVEL" not in env
    assert pod.exec(["id", "-u"], uid=1000).stdout.strip() == "1000"
    failed = pod.exec(["sh", "-c", "echo oops >&2; exit 3"], check=False)
    assert failed.returncode == 3 and failed.stderr.strip() == "oops"
    with pytest.raises(SandboxError, match="oops"):
        pod.exec(["sh", "-c", "echo oops >&2; exit 3"])


def test_waits_report_timeouts_and_crashes(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    started = time.monotonic()
    with pytest.raises(SandboxError, match=r"not ready after 0\.5s"):
        pod.wait_for_port(8080, timeout=0.5)
    crasher = pod.spawn(["sh", "-c", "echo boom >&2; sleep 0.3; exit 3"], name="crasher")
    with pytest.raises(SandboxError, match=r"exited with 3(.|\n)*boom"):
        pod.wait_for_port(8080, timeout=20, process=crasher)
    assert time.monotonic() - started < 10  # the crash ended the wait, not the timeout


def test_wait_for_http_ready(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    standin = pod.spawn([PYTHON, STANDIN, "proxy", "a"], uid=2102, name="standin")
    pod.wait_for_http(4191, "/ready", timeout=10, process=standin)
    app = pod.spawn([PYTHON, STANDIN, "app", "a", "8080"])
    with pytest.raises(SandboxError, match="answered"):
        pod.wait_for_http(8080, timeout=0.5, process=app)  # not HTTP: never a 200


def test_start_proxy_follows_the_admin_address(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("a")
    assert pod._admin_addr("") == (str(pod.ip), 4191)
    assert pod._admin_addr("0.0.0.0:5191") == (str(pod.ip), 5191)
    assert pod._admin_addr("127.0.0.1:4191") == ("127.0.0.1", 4191)
    assert pod._admin_addr("[::]:4191") == (str(pod.ip), 4191)


def test_leftover_matching_is_exact() -> None:
    from gossamer.local.netns import _runs_in

    names = ["gsm-0a1b2c", "gsm-0a1b2c-web", "gsm-0a1b2cd", "gsmt-0a1b2c", "gsm-zzzzzz", "x"]
    assert _runs_in(names, "gsm") == {"gsm-0a1b2c": ["gsm-0a1b2c", "gsm-0a1b2c-web"]}


def test_without_root_the_sandbox_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="needs root"):
        Node.create(prefix=SANDBOX_PREFIX)
