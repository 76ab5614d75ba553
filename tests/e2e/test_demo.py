"""The whole local flow, as a user runs it: `gossamer up`, `gossamer demo`, traffic through
the proxies into Prometheus, `viz stat` and `check`, an app killed and restarted, `down`.

Every command runs as a subprocess of the real CLI against a temporary state directory with
Prometheus on a free host port; `gossamer down` runs whatever happens, and the test then
verifies that nothing of the mesh is left: processes, namespaces, /etc/netns entries, ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gossamer.control.store import SQLiteStore
from gossamer.core.resources import PodStatus
from gossamer.local.hosts import ETC_NETNS
from gossamer.local.netns import list_namespaces
from gossamer.local.ownership import marked_processes
from gossamer.local.state import RuntimeInfo, StateDir

pytestmark = [pytest.mark.netns, pytest.mark.timeout(420)]

NS = "demo"
SERVING = ("emoji", "voting", "web")
T = TypeVar("T")


def gossamer(
    state: StateDir, *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # --state-dir goes before a `--` (after it, words belong to a pod's command).
    split = args.index("--") if "--" in args else len(args)
    argv = [*args[:split], "--state-dir", str(state.root), *args[split:]]
    done = subprocess.run(
        [sys.executable, "-m", "gossamer", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"gossamer {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return done


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `probe` until it returns something (bounded); fail saying what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None:
            return last
        time.sleep(1.0)
    raise AssertionError(f"{what} within {timeout:.0f}s")


def stat(state: StateDir, *args: str) -> dict[str, dict[str, Any]]:
    out = gossamer(state, "viz", "stat", "deploy", "-n", NS, "-o", "json", *args).stdout
    return {row["name"]: row for row in json.loads(out)}


def pod_status(state: StateDir, name: str) -> PodStatus:
    async def read() -> PodStatus:
        store = SQLiteStore(state.store_db)
        try:
            pod = await store.get("Pod", NS, name)
        finally:
            await store.close()
        status = pod.status_as(PodStatus)
        assert status is not None
        return status

    return asyncio.run(read())


def port_refuses(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


@pytest.fixture
def mesh(sandbox_host: None, tmp_path: Path) -> Iterator[StateDir]:
    """A local mesh in a temporary state directory, always taken down afterwards."""
    state = StateDir.at(tmp_path / "mesh")
    try:
        gossamer(state, "up", "--prometheus-port", "0", timeout=120)
        yield state
    finally:
        gossamer(state, "down", timeout=120, check=False)


def test_demo_end_to_end(mesh: StateDir) -> None:
    state = mesh
    runtime = RuntimeInfo.load(state)
    assert runtime is not None

    # -- demo: deployed, ready, traffic shown ------------------------------------------------
    shown = gossamer(state, "demo", timeout=300).stdout
    assert "LATENCY_P99" in shown and "Where to look next:" in shown
    assert f"Prometheus: {runtime.prometheus_url}" in shown
    checked = gossamer(state, "check", "--wait", "30s", timeout=90)
    assert checked.stdout.rstrip().endswith("Status check results are \u221a"), checked.stdout

    # -- golden metrics: everything meshed, the serving workloads busy -----------------------
    def serving_busy() -> dict[str, dict[str, Any]] | None:
        rows = stat(state)
        busy = all((rows[name]["rps"] or 0) > 0 for name in SERVING)
        return rows if busy else None

    rows = eventually(serving_busy, 60, "web, emoji and voting never all showed requests")
    assert set(rows) == {"emoji", "voting", "web", "vote-bot"}
    assert all(row["meshed"] == "1/1" for row in rows.values()), rows
    assert rows["emoji"]["success"] == 1.0
    # vote-bot serves nothing: no inbound requests of its own...
    assert rows["vote-bot"]["rps"] is None
    # ...but its outbound side shows what it sends to web.
    sent = stat(state, "--from", "deploy/vote-bot")
    assert list(sent) == ["web"] and sent["web"]["rps"] > 0
    assert sent["web"]["tcp_open_connections"] is not None

    # The demo's failing path (a vote for the failing item fails in voting and is a 500 at
    # web) shows as a success rate below 100% once a failed vote falls in the window.
    def failing() -> dict[str, dict[str, Any]] | None:
        rows = stat(state)
        web, voting = rows["web"]["success"], rows["voting"]["success"]
        return rows if web is not None and web < 1 and voting is not None and voting < 1 else None

    rows = eventually(failing, 90, "web and voting never showed failures")
    assert 0.5 < rows["web"]["success"] < 1

    # -- an app killed comes back, and traffic with it ---------------------------------------
    before = pod_status(state, "web-0")
    app_pid = before.pids["app"]
    os.kill(app_pid, signal.SIGKILL)

    def restarted() -> PodStatus | None:
        now = pod_status(state, "web-0")
        back = now.restarts > before.restarts and now.ready and now.pids.get("app") != app_pid
        return now if back else None

    after = eventually(restarted, 90, "web-0's app was not restarted and ready")
    assert after.pod_ip == before.pod_ip  # the same pod, its app started again

    def web_busy_again() -> dict[str, Any] | None:
        web = stat(state)["web"]
        return web if (web["rps"] or 0) > 0 else None

    eventually(web_busy_again, 60, "web showed no requests after its app restarted")
    url = f"http://web.{NS}.svc.{runtime.cluster_domain}:8080/api/list"
    listed = gossamer(state, "exec", "vote-bot-0", "-n", NS, "--", "curl", "-sf", url)
    assert json.loads(listed.stdout), "web answered an empty list through the mesh"

    # -- every meshed hop is mutual TLS, each side naming the other's service account ---------
    admin = "http://127.0.0.1:4191/metrics"
    metrics = gossamer(state, "exec", "web-0", "-n", NS, "--", "curl", "-sf", admin).stdout
    requests = [line for line in metrics.splitlines() if line.startswith("request_total{")]

    def identity(account: str) -> str:
        return f"{account}.{NS}.serviceaccount.identity.gossamer.{runtime.cluster_domain}"

    inbound = [line for line in requests if 'direction="inbound"' in line]
    assert inbound and all('tls="true"' in line for line in inbound), inbound
    assert any(f'client_id="{identity("default")}"' in line for line in inbound), inbound
    to_emoji = [line for line in requests if 'authority="emoji.' in line]
    assert to_emoji and all(f'server_id="{identity("emoji")}"' in line for line in to_emoji)

    # -- down leaves nothing ------------------------------------------------------------------
    node = state.node_name
    down = gossamer(state, "down", timeout=120)
    assert "is down" in down.stdout
    assert not [n for n in list_namespaces() if n == node or n.startswith(node + ".")]
    assert not list(marked_processes(node))
    if ETC_NETNS.is_dir():
        assert not [e for e in ETC_NETNS.iterdir() if e.name.startswith(node)]
    assert port_refuses(runtime.prometheus_url)
    assert not state.runtime_file.exists()
    after_down = gossamer(state, "check", check=False)
    assert after_down.returncode == 1
