"""What every store-fed gRPC service of the control plane shares: watch, sync, serve, stop.

A subclass names the kinds it follows, registers its servicer on the gRPC server, and
applies each watch event to its own index (`_apply`). This base restarts a failed watch,
tracks when every kind has sent its first snapshot (`wait_synced`: streams answer only
after it), and starts and stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import grpc

from gossamer.control.store import Store, WatchEventType
from gossamer.core.resources import Resource

log = logging.getLogger("gossamer.control")


class StoreFedServer(ABC):
    name = "service"  # for log lines

    def __init__(self, store: Store, kinds: Sequence[str]) -> None:
        self._store = store
        self._kinds = tuple(kinds)
        self._synced = {kind: asyncio.Event() for kind in self._kinds}
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None

    @abstractmethod
    def _register(self, server: grpc.aio.Server) -> None:
        """Adds this service's servicer to `server`."""

    @abstractmethod
    def _apply(self, kind: str, type_: WatchEventType, resource: Resource | None) -> None:
        """Applies one watch event of `kind` to the service's index."""

    async def start(self, host: str, port: int) -> int:
        """Starts watching the store and serving; returns the bound port."""
        self._tasks = [
            asyncio.create_task(self._watch(kind), name=f"{self.name}-watch-{kind.lower()}")
            for kind in self._kinds
        ]
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self._register(server)
        bound = server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"{self.name}: cannot listen on {host}:{port}")
        await server.start()
        self._server = server
        log.info("%s service listening on %s:%s", self.name, host, bound)
        return bound

    async def stop(self, grace: float = 1.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.stop(grace)

    async def wait_synced(self) -> None:
        for event in self._synced.values():
            await event.wait()

    def _mark_synced(self, kind: str) -> None:
        self._synced[kind].set()

    async def _watch(self, kind: str) -> None:
        while True:
            try:
                async for event in self._store.watch(kind):
                    self._apply(kind, event.type, event.resource)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s watch failed; restarting it", self.name, kind)
                await asyncio.sleep(1.0)
