"""Reaching into a running pod from the host: which namespace, which logs, which command.

`gossamer exec` runs a command with `ip netns exec <pod netns>`, so it gets the pod's
network and the pod's hosts file; it runs as root, not as the proxy's uid, so its outbound
connections go through the pod's proxy like the app's. `gossamer logs` reads the files the
supervisor appends each process's output to.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gossamer.control.store import NotFound, Store
from gossamer.core.resources import PodSpec, Resource
from gossamer.local.errors import LocalModeError, UnknownPod
from gossamer.local.netns import list_namespaces
from gossamer.local.pod import base_env
from gossamer.local.state import StateDir


async def find_pod(store: Store, namespace: str, name: str) -> Resource:
    """The `Pod` object, or UnknownPod listing the pods the namespace does have."""
    try:
        return await store.get("Pod", namespace, name)
    except NotFound:
        names = [pod.name for pod in await store.list("Pod", namespace)]
        known = f"pods in {namespace}: {', '.join(names)}" if names else f"no pods in {namespace}"
        raise UnknownPod(f"pod {name} not found in namespace {namespace} ({known})") from None


def exec_argv(state: StateDir, pod: Resource, command: Sequence[str]) -> list[str]:
    netns = state.pod_netns(pod.namespace, pod.name)
    if netns not in list_namespaces():
        raise LocalModeError(
            f"pod {pod.namespace}/{pod.name} has no network namespace yet (is it starting? "
            "see `gossamer get pods`)"
        )
    return ["ip", "netns", "exec", netns, *command]


def exec_env(pod: Resource) -> dict[str, str]:
    """The app's environment (the workload's `--env` on the pod's base environment)."""
    env = {var.name: var.value for var in pod.spec_as(PodSpec).containers[0].env}
    return base_env(env)


def log_file(state: StateDir, namespace: str, pod: str, *, proxy: bool) -> Path:
    path = state.pod_dir(namespace, pod) / ("proxy.log" if proxy else "app.log")
    if not path.exists():
        which = "proxy" if proxy else "app"
        raise LocalModeError(f"no {which} log for pod {namespace}/{pod} yet ({path})")
    return path


def tail(path: Path, lines: int | None) -> str:
    """The last `lines` lines of the file (all of it when None)."""
    text = path.read_text(errors="replace")
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)
    return "".join(kept[-lines:] if lines > 0 else [])
