"""Removing what a local mesh left running: its processes, pod namespaces and /etc/netns files.

Used in two places: a starting supervisor clears what a crashed one left (the store says
which PIDs its pods had; those still alive and still carrying the mesh's marker are
stopped, then any other process with the marker), and `gossamer down` does the same after
the supervisor is gone, then also removes the node namespace. Everything is found by the
node's name (`<node>` and `<node>.<ns>.<pod>`), which only this state directory uses.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable

from gossamer.core.resources import PodStatus, Resource
from gossamer.local.hosts import ETC_NETNS
from gossamer.local.netns import delete_namespace, list_namespaces
from gossamer.local.ownership import marked_processes, owner_marker, stop_processes
from gossamer.local.state import StateDir


def recorded_pids(pods: Iterable[Resource]) -> list[int]:
    """Every PID the store's `Pod` objects recorded (`status.pids`)."""
    pids: list[int] = []
    for pod in pods:
        status = pod.status_as(PodStatus)
        if status is not None:
            pids.extend(status.pids.values())
    return pids


def stop_mesh_processes(state: StateDir, recorded: Iterable[int], *roles: str) -> list[int]:
    """Stop the recorded PIDs, then every process still marked with one of `roles`
    (`pods`, `prometheus`, `supervisor`) of this node. Returns the PIDs stopped."""
    markers = [owner_marker(state.node_name, role) for role in roles]
    stopped: list[int] = []
    for marker in markers:
        stopped += stop_processes(recorded, marker)
        stopped += stop_processes(list(marked_processes(marker)), marker)
    return stopped


def pod_namespaces(state: StateDir) -> list[str]:
    prefix = state.node_name + "."
    return [name for name in list_namespaces() if name.startswith(prefix)]


def remove_pod_namespaces(state: StateDir) -> list[str]:
    """Delete every pod namespace of this node and every `/etc/netns` entry of the node."""
    removed = []
    for name in pod_namespaces(state):
        delete_namespace(name)
        removed.append(name)
    remove_etc_netns(state)
    return removed


def remove_etc_netns(state: StateDir) -> None:
    if not ETC_NETNS.is_dir():
        return
    for entry in ETC_NETNS.iterdir():
        if entry.name == state.node_name or entry.name.startswith(state.node_name + "."):
            shutil.rmtree(entry, ignore_errors=True)


def remove_node_namespace(state: StateDir) -> bool:
    if state.node_name in list_namespaces():
        delete_namespace(state.node_name)
        return True
    return False
