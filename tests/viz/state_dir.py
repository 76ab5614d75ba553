"""A local mesh's state directory as `gossamer up` leaves it, for CLI tests: store.db with
the given objects, runtime.json pointing at a Prometheus, optionally supervisor.json."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from gossamer.core.resources import Resource
from gossamer.local.state import RuntimeInfo, StateDir, SupervisorStatus
from tests.viz.mesh import fill_store


def write_state_dir(
    root: Path,
    *,
    prometheus_url: str = "http://127.0.0.1:9",
    resources: Iterable[Resource] = (),
    supervisor_pid: int = 0,
    destination_addr: str = "",
    supervisor: SupervisorStatus | None = None,
) -> StateDir:
    state = StateDir.at(root)
    state.root.mkdir(parents=True, exist_ok=True)
    asyncio.run(fill_store(state.store_db, resources))
    RuntimeInfo(
        node_netns=state.node_name,
        subnet="10.1.0.0/16",
        gateway="10.1.0.1",
        service_cidr="10.96.0.0/16",
        cluster_domain="cluster.local",
        supervisor_pid=supervisor_pid,
        prometheus_url=prometheus_url,
        destination_addr=destination_addr,
    ).save(state)
    if supervisor is not None:
        supervisor.save(state)
    return state
