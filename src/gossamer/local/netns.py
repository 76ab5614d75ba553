"""The pod sandbox: isolated hosts made of network namespaces, for tests, benchmarks, local mode.

A *node* is a namespace holding a bridge (`br0`) with the subnet's first address. Each *pod*
is a namespace whose `eth0` is one end of a veth pair; the other end sits on the bridge inside
the node namespace. Both ends are created from within the node namespace, so the host
namespace never gets a link, an address or a route (the safety rule of DESIGN.md): pod
addresses exist only here. The node has no way out: its only route beyond the subnet is
`unreachable`, so a pod dialling anything else fails at once instead of leaking or hanging.

Names are `<prefix>-<6 hex>` for a node and `<node>-<pod>` for its pods, so parallel and
leftover runs never clash. A node holds an flock on `/run/gossamer/sandbox/<node>.lock` while
it lives; `cleanup_leftovers` removes the namespaces of runs whose lock is free (their owner
died). Processes run in a pod through `ip netns exec` (Python 3.11 has no `os.setns`), as
another uid through `setpriv`, and are stopped by PID.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from gossamer.local.addresses import DEFAULT_SUBNET, PodAddressPool
from gossamer.local.pod import Pod, SandboxError, run_checked
from gossamer.local.runlock import LOCK_DIR, RunLock

BRIDGE = "br0"
DEFAULT_PREFIX = "gsm"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_RUN_SUFFIX = 6  # hex digits after "<prefix>-"


def require_root() -> None:
    """Raise SandboxError unless this process may create namespaces and links."""
    if os.geteuid() != 0:
        raise SandboxError(
            "the pod sandbox needs root (network namespaces, veth links, iptables); "
            "run the tests as root, as CI does"
        )
    for binary in ("ip", "setpriv", "iptables-restore"):
        if shutil.which(binary) is None:
            raise SandboxError(f"{binary} not found on PATH: run scripts/setup")


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    out = run_checked(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def delete_namespace(name: str) -> None:
    """Delete a named network namespace; SandboxError if it is still there afterwards."""
    done = subprocess.run(
        ["ip", "netns", "delete", name], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0 and name in list_namespaces():
        raise SandboxError(f"ip netns delete {name}: {done.stderr.strip()}")


class Node:
    """A bridge in its own namespace, and the pods attached to it. Use `Node.create`."""

    def __init__(
        self, name: str, pool: PodAddressPool, state_dir: Path, owns_state_dir: bool
    ) -> None:
        self.name = name
        self.netns = name
        self.pool = pool
        self.state_dir = state_dir
        self._owns_state_dir = owns_state_dir
        self.pods: dict[str, Pod] = {}
        self._lock: RunLock | None = None
        self._next_veth = 1
        self._destroyed = False

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.pool.gateway

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.pool.network

    @classmethod
    def create(
        cls,
        *,
        prefix: str = DEFAULT_PREFIX,
        subnet: str = DEFAULT_SUBNET,
        state_dir: Path | None = None,
    ) -> Node:
        """Make the node namespace and its bridge; logs go to `state_dir` (kept if given)."""
        require_root()
        if not _NAME.match(prefix) or len(prefix) > 16:
            raise SandboxError(f"prefix {prefix!r}: use 1-16 of [a-z0-9-]")
        name = f"{prefix}-{secrets.token_hex(_RUN_SUFFIX // 2)}"
        pool = PodAddressPool(subnet)
        if state_dir is None:
            node = cls(name, pool, Path(tempfile.mkdtemp(prefix=f"{name}-")), True)
        else:
            (state_dir / name).mkdir(parents=True, exist_ok=False)
            node = cls(name, pool, state_dir / name, False)
        try:
            node._lock = RunLock.acquire(name)
            run_checked(["ip", "netns", "add", name])
            _configure_node(name, pool)
        except BaseException:
            node.destroy()
            raise
        return node

    @classmethod
    def open_or_create(cls, name: str, *, subnet: str = DEFAULT_SUBNET, state_dir: Path) -> Node:
        """The node namespace called `name`: adopted if it exists, else created.

        For local mode, whose node outlives every process (its name is fixed by the state
        directory). No run lock is taken: the caller guarantees a single owner. `destroy`
        deletes the namespace as for a created node; `state_dir` is never removed.
        """
        require_root()
        if not _NAME.match(name):
            raise SandboxError(f"node name {name!r}: use 1-32 of [a-z0-9-]")
        pool = PodAddressPool(subnet)
        node = cls(name, pool, state_dir, False)
        if name not in list_namespaces():
            run_checked(["ip", "netns", "add", name])
            try:
                _configure_node(name, pool)
            except BaseException:
                delete_namespace(name)
                raise
        elif not _has_bridge(name, pool):
            _configure_node(name, pool)
        else:
            _bridge_frames_skip_iptables(name)
        return node

    def add_pod(
        self,
        name: str,
        *,
        netns: str | None = None,
        address: ipaddress.IPv4Address | None = None,
        veth: str | None = None,
        state_dir: Path | None = None,
    ) -> Pod:
        """A new pod: namespace, `lo` up, `eth0` on the bridge, an address, a default route.

        By default the namespace is `<node>-<name>`, the address the next free one and the
        logs go under the node's state directory. Local mode chooses all four itself (stable
        names and addresses across supervisor restarts); a leftover namespace of the same
        name is then deleted first, and `address` is kept if it is still free.
        """
        if self._destroyed:
            raise SandboxError(f"node {self.name} is destroyed")
        if name in self.pods or (netns is None and not _NAME.match(name)):
            raise SandboxError(f"pod name {name!r}: use a new name of [a-z0-9-], up to 32 chars")
        if netns is None:
            netns = f"{self.name}-{name}"
        elif netns in list_namespaces():
            delete_namespace(netns)
        if address is None or not self.pool.reserve(address):
            address = self.pool.allocate()
        if veth is None:
            veth = f"vp{self._next_veth}"
            self._next_veth += 1
        else:
            # A deleted namespace is destroyed asynchronously: its veth peer on the bridge
            # can outlive the name for a moment. Removing it (and so its pair) is immediate.
            run_checked(["ip", "-n", self.netns, "link", "del", veth], check=False)
        state_dir = state_dir or self.state_dir / name
        state_dir.mkdir(parents=True, exist_ok=True)
        pod = Pod(name, netns, address, self.gateway, veth, state_dir)
        self.pods[name] = pod
        try:
            run_checked(["ip", "netns", "add", netns])
            _disable_ipv6(netns)
            # Created from inside the node namespace, with the peer sent straight to the pod:
            # the pair never exists in the host namespace, not even for a moment.
            run_checked(
                ["ip", "-n", self.netns, "-batch", "-"],
                input=f"link add {veth} type veth peer name eth0 "
                f"address {pod_mac(address)} netns {netns}\n"
                f"link set {veth} master {BRIDGE} up\n",
            )
            run_checked(
                ["ip", "-n", netns, "-batch", "-"],
                input="link set lo up\n"
                f"addr add {address}/{self.pool.prefixlen} dev eth0\n"
                "link set eth0 up\n"
                f"route add default via {self.gateway} dev eth0\n",
            )
        except BaseException:
            self.remove_pod(name)
            raise
        return pod

    def remove_pod(self, name: str) -> None:
        """Stop the pod's processes and delete its namespace (its veth goes with it)."""
        pod = self.pods.pop(name, None)
        if pod is None:
            return
        pod.stop_processes()
        delete_namespace(pod.netns)
        self.pool.release(pod.ip)

    def exec(
        self, cmd: Sequence[str], *, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as root in the node namespace (to inspect the bridge, for example)."""
        return run_checked(["ip", "netns", "exec", self.netns, *cmd], check=check, timeout=timeout)

    def destroy(self) -> None:
        """Stop every process, delete every namespace this node made. Safe to call twice."""
        if self._destroyed:
            return
        self._destroyed = True
        deadline = time.monotonic() + 10.0
        for pod in self.pods.values():
            pod.signal_processes()
        for pod in list(self.pods.values()):
            pod.stop_processes(timeout=max(0.1, deadline - time.monotonic()))
        errors = []
        for netns in [pod.netns for pod in self.pods.values()] + [self.netns]:
            try:
                delete_namespace(netns)
            except SandboxError as error:
                errors.append(str(error))
        self.pods.clear()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if errors:
            raise SandboxError("; ".join(errors))

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return f"Node({self.name!r}, subnet={self.subnet}, pods={sorted(self.pods)})"


def pod_mac(address: ipaddress.IPv4Address) -> str:
    """A pod's `eth0` MAC, derived from its address (locally administered, `02:47:` + the
    four address bytes). An address that moves to a new pod (a restart, a reused address)
    keeps its MAC, so the ARP caches of the node and of other pods stay right."""
    return "02:47:" + ":".join(f"{byte:02x}" for byte in address.packed)


def _configure_node(name: str, pool: PodAddressPool) -> None:
    _disable_ipv6(name)
    run_checked(
        ["ip", "-n", name, "-batch", "-"],
        input="\n".join(
            [
                "link set lo up",
                f"link add {BRIDGE} type bridge",
                f"addr add {pool.gateway}/{pool.prefixlen} dev {BRIDGE}",
                f"link set {BRIDGE} up",
                # Anything not on the bridge is unreachable: an ICMP error at once.
                "route replace unreachable default",
            ]
        ),
    )
    # Forwarding lets the node answer "unreachable" for what it will not route; it has no
    # link but the bridge, so nothing can be forwarded out of the sandbox.
    _write_sysctl(name, "net/ipv4/ip_forward", "1")
    # Those "unreachable" answers go to our own pods only: never rate-limit them, or a pod
    # that dials a dead address a few times in a row waits for a timeout instead.
    _write_sysctl(name, "net/ipv4/icmp_ratelimit", "0")
    _bridge_frames_skip_iptables(name)


def _bridge_frames_skip_iptables(name: str) -> None:
    # Where br_netfilter is present, frames between two ports of the bridge go through the
    # node's iptables too. Off: pod-to-pod frames stay at layer 2 (cheaper), and only what
    # the node routes (service VIPs) meets its nat table, the same on every host. Otherwise
    # a pod whose own service VIP is DNAT-ed back to it would need hairpin mode on its port.
    script = 'f=/proc/sys/net/bridge/bridge-nf-call-iptables; [ -w "$f" ] && echo 0 > "$f"; true'
    run_checked(["ip", "netns", "exec", name, "sh", "-c", script])


def _has_bridge(name: str, pool: PodAddressPool) -> bool:
    """True if the node namespace already has its bridge with the gateway address."""
    done = run_checked(["ip", "-n", name, "-o", "-4", "addr", "show", "dev", BRIDGE], check=False)
    return done.returncode == 0 and f" {pool.gateway}/{pool.prefixlen} " in done.stdout


def _write_sysctl(netns: str, key: str, value: str) -> None:
    run_checked(["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > /proc/sys/{key}"])


def _disable_ipv6(netns: str) -> None:
    # The init rules are IPv4 only; without IPv6 no link-local path can bypass the proxy.
    script = (
        "for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 "
        "/proc/sys/net/ipv6/conf/default/disable_ipv6; do "
        '[ -w "$f" ] && echo 1 > "$f"; done; true'
    )
    run_checked(["ip", "netns", "exec", netns, "sh", "-c", script])


def _runs_in(names: Sequence[str], prefix: str) -> dict[str, list[str]]:
    """Group namespace names of `prefix` by their run (node) name."""
    pattern = re.compile(rf"^({re.escape(prefix)}-[0-9a-f]{{{_RUN_SUFFIX}}})(?:-|$)")
    runs: dict[str, list[str]] = {}
    for name in names:
        match = pattern.match(name)
        if match:
            runs.setdefault(match.group(1), []).append(name)
    return runs


def cleanup_leftovers(prefix: str = DEFAULT_PREFIX, *, force: bool = False) -> list[str]:
    """Delete namespaces of runs with `prefix` whose owner died (all of them if `force`).

    Processes still inside a leftover namespace are not signalled: they lose their network
    name but keep running until whoever started them ends them. Returns the deleted names.
    """
    removed = []
    for run, names in _runs_in(list_namespaces(), prefix).items():
        lock = RunLock.try_acquire(run)
        if lock is None and not force:
            continue  # its owner is alive
        try:
            for name in sorted(names, key=lambda n: n == run):  # pods first, the node last
                delete_namespace(name)
                removed.append(name)
        finally:
            if lock is not None:
                lock.release()
    return removed


@contextlib.contextmanager
def sandbox(
    *, prefix: str = DEFAULT_PREFIX, subnet: str = DEFAULT_SUBNET, state_dir: Path | None = None
) -> Iterator[Node]:
    """`with sandbox() as node:` a node that is destroyed on exit, even on error."""
    node = Node.create(prefix=prefix, subnet=subnet, state_dir=state_dir)
    try:
        yield node
    finally:
        node.destroy()


__all__ = [
    "LOCK_DIR",
    "Node",
    "Pod",
    "SandboxError",
    "cleanup_leftovers",
    "delete_namespace",
    "list_namespaces",
    "require_root",
    "sandbox",
]
