"""Local mode's mechanisms on real namespaces: node DNAT for service VIPs, sockets made in a
pod's namespace, hosts files rewritten under a running pod, adopting a fixed-name node, and
stopping marked processes by PID."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gossamer.local.hosts import install_pod_files, remove_pod_files, write_in_place
from gossamer.local.netns import Node, list_namespaces, pod_mac
from gossamer.local.nssocket import NetnsSocketError, socket_in_netns
from gossamer.local.ownership import (
    OWNER_ENV,
    is_ours,
    marked_processes,
    owner_of,
    process_alive,
    stop_processes,
)
from gossamer.local.pod import Pod, run_checked
from gossamer.local.servicerules import Endpoint, ServiceRoute, render_nat_table
from tests.local.pods import PYTHON, STANDIN, dial

pytestmark = pytest.mark.netns


def test_node_dnat_sends_a_vip_to_every_endpoint_and_back(
    node: Node, make_pod: Callable[[str], Pod]
) -> None:
    a, b, client = make_pod("a"), make_pod("b"), make_pod("client")
    for pod in (a, b):
        pod.spawn([PYTHON, STANDIN, "app", pod.name, "8080"], name="app")
        pod.wait_for_port(8080)
    routes = [
        ServiceRoute(
            "demo", "web", "10.78.0.1", 80, (Endpoint(str(a.ip), 8080), Endpoint(str(b.ip), 8080))
        ),
        ServiceRoute("demo", "empty", "10.78.0.2", 80, ()),
    ]
    run_checked(
        ["ip", "netns", "exec", node.netns, "iptables-restore"],
        input=render_nat_table(routes, node.subnet),
    )
    answers = {dial(client, "10.78.0.1", 80) for _ in range(30)}
    assert answers == {"app a 8080", "app b 8080"}
    # A pod may reach itself through its own service (the node routes the hairpin).
    assert dial(a, "10.78.0.1", 80) in {"app a 8080", "app b 8080"}
    # No endpoint, no rule: the node's unreachable route answers at once.
    started = time.monotonic()
    assert dial(client, "10.78.0.2", 80) == "OSError"
    assert time.monotonic() - started < 2.5
    # Replacing the table is atomic and complete: the VIP is gone afterwards.
    run_checked(
        ["ip", "netns", "exec", node.netns, "iptables-restore"],
        input=render_nat_table([], node.subnet),
    )
    assert dial(client, "10.78.0.1", 80) == "OSError"


def test_socket_made_in_a_pods_namespace(make_pod: Callable[[str], Pod]) -> None:
    pod = make_pod("web")
    pod.spawn([PYTHON, STANDIN, "app", "web", "8080"], name="app")
    pod.wait_for_port(8080)
    sock = socket_in_netns(pod.netns)
    try:
        sock.setblocking(True)
        sock.settimeout(3)
        sock.connect(("127.0.0.1", 8080))  # the pod's loopback, not ours
        assert sock.makefile().readline().strip() == "app web 8080"
    finally:
        sock.close()
    with pytest.raises(NetnsSocketError):
        socket_in_netns("gsl-no-such-namespace")


@pytest.fixture
def pod_files(make_pod: Callable[[str], Pod]) -> Iterator[Pod]:
    pod = make_pod("dns")
    yield pod
    remove_pod_files(pod.netns)


def test_hosts_rewritten_in_place_reach_a_running_pod(pod_files: Pod) -> None:
    pod = pod_files
    directory = install_pod_files(pod.netns, "127.0.0.1\tlocalhost\n")
    watcher = textwrap.dedent(
        """
        import socket, sys, time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                print(socket.gethostbyname("web.demo.svc.cluster.local"), flush=True)
                sys.exit(0)
            except OSError:
                time.sleep(0.05)
        sys.exit("never resolved")
        """
    )
    process = pod.spawn([PYTHON, "-I", "-c", watcher], name="watcher")
    time.sleep(0.3)  # it has mounted the old file and failed at least once
    write_in_place(
        directory / "hosts", "127.0.0.1\tlocalhost\n10.78.0.1\tweb.demo.svc.cluster.local\n"
    )
    assert process.wait(timeout=15) == 0, process.describe()
    assert process.stdout().strip() == "10.78.0.1"
    # Unknown names fail inside the pod without asking the host's resolver.
    done = pod.exec(
        [PYTHON, "-I", "-c", "import socket; socket.gethostbyname('example.com')"], check=False
    )
    assert done.returncode != 0 and "gaierror" in done.stderr
    assert "nameserver 127.0.0.1" in (directory / "resolv.conf").read_text()


def test_fixed_node_is_adopted_and_pods_replace_leftovers(tmp_path: Path) -> None:
    name = f"gslt-{os.getpid() % 100000}"
    node = Node.open_or_create(name, subnet="10.77.0.0/16", state_dir=tmp_path)
    try:
        again = Node.open_or_create(name, subnet="10.77.0.0/16", state_dir=tmp_path)
        assert again.gateway == node.gateway and name in list_namespaces()
        # A node that lost its bridge gets it back.
        run_checked(["ip", "-n", name, "link", "del", "br0"])
        Node.open_or_create(name, subnet="10.77.0.0/16", state_dir=tmp_path)
        assert "10.77.0.1/16" in run_checked(["ip", "-n", name, "-4", "addr", "show", "br0"]).stdout
        wanted = ipaddress.IPv4Address("10.77.0.9")
        pod = again.add_pod(f"{name}.x.p", netns=f"{name}.x.p", address=wanted, veth="gvtest1")
        assert pod.ip == wanted
        # A second supervisor's view: the namespace exists already and is replaced.
        fresh = Node.open_or_create(name, subnet="10.77.0.0/16", state_dir=tmp_path)
        replaced = fresh.add_pod(f"{name}.x.p", netns=f"{name}.x.p", address=wanted, veth="gvtest1")
        assert replaced.ip == wanted
        assert replaced.exec(["ip", "-o", "-4", "addr", "show", "eth0"]).stdout.count("inet ") == 1
        # The address is taken now: another pod gets the next free one.
        other = fresh.add_pod("o", address=wanted)
        assert other.ip != wanted
    finally:
        for netns in list_namespaces():
            if netns == name or netns.startswith(name + ".") or netns.startswith(name + "-"):
                subprocess.run(["ip", "netns", "delete", netns], check=False)


def test_an_address_reused_by_a_new_pod_is_reachable_at_once(
    node: Node, make_pod: Callable[[str], Pod]
) -> None:
    client = make_pod("client")
    first = make_pod("first")
    first.spawn([PYTHON, STANDIN, "app", "first", "8080"], name="app")
    first.wait_for_port(8080)
    assert dial(client, first.ip, 8080) == "app first 8080"  # ARP caches now know its MAC
    address = first.ip
    node.remove_pod("first")
    second = node.add_pod("second", address=address)
    assert second.ip == address
    assert pod_mac(address) in second.exec(["ip", "-o", "link", "show", "eth0"]).stdout
    second.spawn([PYTHON, STANDIN, "app", "second", "8080"], name="app")
    second.wait_for_port(8080)
    # Same address, same MAC: no cache points at a vanished interface.
    assert dial(client, address, 8080, timeout=2) == "app second 8080"


def spawn_marked(marker: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, OWNER_ENV: marker},
        start_new_session=True,
    )


def test_marked_processes_are_found_and_stopped_by_pid() -> None:
    marker = f"gsl-test{os.getpid()}"
    ours = spawn_marked(f"{marker}/pods/demo/web-0/app")
    stranger = spawn_marked("gsl-someoneelse/pods/demo/web-0/app")
    try:
        deadline = time.monotonic() + 10
        while owner_of(ours.pid) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert is_ours(ours.pid, f"{marker}/pods")
        assert not is_ours(ours.pid, f"{marker}/prometheus")
        assert not is_ours(stranger.pid, marker)
        assert list(marked_processes(marker)) == [ours.pid]
        # A PID that is not ours is never signalled, even when asked.
        assert stop_processes([stranger.pid, ours.pid], f"{marker}/pods", timeout=5) == [ours.pid]
        assert ours.wait(timeout=5) != 0 and stranger.poll() is None
        # Not reaped yet by its parent? Then it is a zombie, and counts as gone.
        assert not process_alive(ours.pid)
    finally:
        for process in (ours, stranger):
            process.kill()
            process.wait()


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while process_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_alive(child.pid)
    assert os.path.exists(f"/proc/{child.pid}")  # still there, unreaped
    child.wait()
