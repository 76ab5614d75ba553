"""What local mode's checks read: the state directory's files, the store, Prometheus, and
sockets inside the node's network namespace. Each read is afresh, so a retried check sees
the current state; the store is opened once and closed by `close`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource
from gossamer.healthcheck.framework import CheckFailure
from gossamer.local.nssocket import socket_in_netns
from gossamer.local.state import RuntimeInfo, StateDir, SupervisorStatus
from gossamer.viz.prometheus import PrometheusClient

UP_HINT = "run `gossamer up` (as root) to start the local mesh"
CONNECT_TIMEOUT_S = 2.0


@dataclass
class LocalCheckContext:
    """What the local checks read; the store is opened once and closed by `close`."""

    state: StateDir
    prometheus_url: str | None = None  # overrides runtime.json's
    _store: SQLiteStore | None = field(default=None, repr=False)

    def runtime(self) -> RuntimeInfo:
        runtime = RuntimeInfo.load(self.state)
        if runtime is None:
            raise CheckFailure(f"{self.state.runtime_file} does not exist", UP_HINT)
        return runtime

    def supervisor(self) -> SupervisorStatus | None:
        return SupervisorStatus.load(self.state)

    def store(self) -> SQLiteStore:
        if self._store is None:
            if not self.state.store_db.is_file():
                raise CheckFailure(f"{self.state.store_db} does not exist", UP_HINT)
            self._store = SQLiteStore(self.state.store_db)
        return self._store

    def prometheus(self) -> PrometheusClient:
        return PrometheusClient(self.prometheus_url or self.runtime().prometheus_url)

    async def pods(self) -> list[Resource]:
        return list(await self.store().list("Pod"))

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None


def pod_names(pods: list[Resource], limit: int = 5) -> str:
    names = [f"{pod.namespace}/{pod.name}" for pod in pods]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


async def connect_in_netns(netns: str, host: str, port: int) -> None:
    try:
        sock = await asyncio.to_thread(socket_in_netns, netns)
    except OSError as error:
        raise CheckFailure(f"cannot enter network namespace {netns}: {error}") from None
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise CheckFailure(f"{host}:{port}: no answer within {CONNECT_TIMEOUT_S:g}s") from None
    except OSError as error:
        raise CheckFailure(f"{host}:{port}: {error.strerror or error}") from None
    finally:
        sock.close()


def split_address(addr: str, what: str) -> tuple[str, int]:
    """`host:port` of runtime.json, or a CheckFailure naming what is missing."""
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise CheckFailure(f"runtime.json has no {what} address ({addr!r})")
    return host.strip("[]"), int(port)
