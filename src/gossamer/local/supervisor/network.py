"""The node's network, driven from the event loop: pod namespaces, init rules, service rules.

`Node` (the sandbox) is synchronous and runs `ip` and `iptables-restore`; here its calls go
to one worker thread, so the event loop (and the gRPC servers on it) never waits on them,
and changes to the node happen one at a time. The pod's DNS files are written before its
first process starts (`ClusterDNS`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from gossamer.local.iptables import InitConfig, apply_script
from gossamer.local.netns import Node
from gossamer.local.pod import Pod
from gossamer.local.servicerules import apply_nat_table
from gossamer.local.state import StateDir

T = TypeVar("T")


class NodeNetwork:
    """Serialised access to the node: every change runs on one worker thread."""

    def __init__(self, node: Node, state: StateDir) -> None:
        self.node = node
        self.state = state
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="node")

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.node.gateway

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.node.subnet

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    async def add_pod(
        self, namespace: str, name: str, preferred_ip: ipaddress.IPv4Address | None
    ) -> Pod:
        """The pod's namespace on the bridge (a leftover of the same name is replaced)."""
        netns = self.state.pod_netns(namespace, name)

        def add() -> Pod:
            return self.node.add_pod(
                netns,
                netns=netns,
                address=preferred_ip,
                veth=_veth_name(netns),
                state_dir=self.state.pod_dir(namespace, name),
            )

        return await self._call(add)

    async def remove_pod(self, pod: Pod) -> None:
        await self._call(self.node.remove_pod, pod.name)

    async def install_init_rules(self, pod: Pod, config: InitConfig) -> None:
        """`gossamer init`'s rules, fed straight to iptables-restore in the fresh namespace
        (the same rules as the command, without starting a Python process per pod)."""

        def install() -> None:
            pod.exec(["iptables-restore", "--noflush"], input=apply_script(config, ""))

        await self._call(install)

    async def apply_service_rules(self, script: str) -> None:
        await self._call(apply_nat_table, script)

    def close(self) -> None:
        self._worker.shutdown(wait=True)


def _veth_name(netns: str) -> str:
    # Interface names have 15 characters at most: a hash of the pod's namespace name keeps
    # the bridge side unique and the same across restarts.
    return "gv" + hashlib.sha256(netns.encode()).hexdigest()[:12]
