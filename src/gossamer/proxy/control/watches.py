"""Following control-plane streams: one watch per key, shared, kept current, dropped when idle.

A `WatchClient` keeps one `Watch` per key (an address, a target) that connections ask
about. A background task per watch opens a server-streaming call, applies each message,
and reconnects with jittered backoff when the control plane is unreachable. While
disconnected a watch keeps what it last knew and says so (`stale`, a gauge, a log line).
The first message of every new stream is the whole state (the services promise that), so a
watch replaces what it held. Watches nobody used for `idle_timeout` are dropped. The first
lookup of a key waits a bounded time for an answer; later lookups are dictionary reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from gossamer.proxy.control.grpc import GrpcConnection, GrpcError
from gossamer.proxy.exposition import MetricFamily

log = logging.getLogger("gossamer.proxy.discovery")

Addr = tuple[str, int]


class Watch(ABC):
    """What the control plane says about one key. `exists` is None until the first answer."""

    def __init__(self, key: Addr) -> None:
        self.key = key
        self.exists: bool | None = None
        self.stale = False
        self.last_used = 0.0
        self.answered = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @abstractmethod
    def apply(self, message: bytes, *, replace: bool) -> None:
        """Decodes and applies one message; `replace` for a stream's first (the whole state)."""

    def describe(self) -> str:
        return f"{self.key[0]}:{self.key[1]}"


W = TypeVar("W", bound=Watch)


class WatchClient(ABC, Generic[W]):
    """Watches of one kind against one control-plane service."""

    kind = "watch"  # names the metrics: {kind}_watches, {kind}_watch_stale, ...
    path = ""

    def __init__(
        self,
        addr: Addr,
        *,
        first_answer_timeout: float = 3.0,
        idle_timeout: float = 60.0,
        connect_timeout: float = 1.0,
        backoff: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        self.addr = addr
        self._first_answer_timeout = first_answer_timeout
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._watches: dict[Hashable, W] = {}
        self._conn: GrpcConnection | None = None
        self._connecting: asyncio.Task[GrpcConnection] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.reconnects = 0

    @abstractmethod
    def new_watch(self, key: Addr) -> W:
        """A fresh, unanswered watch for `key`."""

    @abstractmethod
    def request(self, watch: W) -> bytes:
        """The serialized request that starts `watch`'s stream."""

    # -- lookups -------------------------------------------------------------------------
    def lookup_now(self, key: Addr) -> W | None:
        """The watch for `key` if it has answered; starts one otherwise."""
        watch = self._watch_for(key)
        return watch if watch.exists is not None else None

    async def resolve(self, key: Addr) -> W | None:
        """The answered watch for `key`, or None if no answer came in time."""
        watch = self._watch_for(key)
        if watch.exists is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.answered.wait(), self._first_answer_timeout)
        if watch.exists is None:
            log.warning(
                "no answer from the %s service for %s within %gs",
                self.kind, watch.describe(), self._first_answer_timeout,
            )  # fmt: skip
            return None
        return watch

    def watch(self, key: Addr) -> W:
        """The watch for `key`, answered or not (started if new)."""
        return self._watch_for(key)

    def _watch_for(self, key: Addr) -> W:
        loop = asyncio.get_running_loop()
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = self.new_watch(key)
            watch.task = loop.create_task(self._follow(watch))
            if self._sweeper is None:
                self._sweeper = loop.create_task(self._sweep())
        watch.last_used = loop.time()
        return watch

    # -- background ----------------------------------------------------------------------
    async def _follow(self, watch: W) -> None:
        request = self.request(watch)
        delay = self._backoff[0]
        while True:
            try:
                conn = await self._connection()
                call = conn.call(self.path, request)
                try:
                    first = True
                    while (message := await call.message()) is not None:
                        watch.apply(message, replace=first)
                        watch.answered.set()
                        first = False
                        if watch.stale:
                            log.info("%s for %s is current again", self.kind, watch.describe())
                        watch.stale = False
                        delay = self._backoff[0]
                finally:
                    call.cancel()
                raise GrpcError(14, f"the {self.kind} stream ended")
            except asyncio.CancelledError:
                raise
            except (GrpcError, OSError, TimeoutError) as error:
                if not watch.stale and watch.exists is not None:
                    log.warning(
                        "%s for %s unavailable (%s); using what was last known",
                        self.kind, watch.describe(), error,
                    )  # fmt: skip
                watch.stale = watch.exists is not None
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._backoff[1])

    async def _connection(self) -> GrpcConnection:
        conn = self._conn
        if conn is not None and not conn.closed.done():
            return conn
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(
                GrpcConnection.connect(self.addr[0], self.addr[1], self._connect_timeout)
            )
        conn = await asyncio.shield(self._connecting)
        if self._conn is not conn:
            if self._conn is not None:
                self.reconnects += 1
            self._conn = conn
        return conn

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._watches:
            await asyncio.sleep(min(self._idle_timeout / 2, 10.0))
            deadline = loop.time() - self._idle_timeout
            for key, watch in list(self._watches.items()):
                if watch.last_used < deadline:
                    del self._watches[key]
                    if watch.task is not None:
                        watch.task.cancel()
        self._sweeper = None

    def close(self) -> None:
        for watch in self._watches.values():
            if watch.task is not None:
                watch.task.cancel()
        self._watches.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._conn is not None:
            self._conn.close()

    # -- metrics -------------------------------------------------------------------------
    def collect(self) -> Iterator[MetricFamily]:
        kind = self.kind
        watches = MetricFamily(
            f"{kind}_watches", f"Keys the proxy follows in the {kind} service", "gauge"
        )
        watches.add(f"{kind}_watches", (), len(self._watches))
        stale = MetricFamily(
            f"{kind}_watch_stale",
            "Watches serving their last known answer while the control plane is unreachable",
            "gauge",
        )
        stale.add(f"{kind}_watch_stale", (), sum(w.stale for w in self._watches.values()))
        connected = MetricFamily(
            f"{kind}_connected", f"1 while connected to the {kind} service", "gauge"
        )
        up = self._conn is not None and not self._conn.closed.done()
        connected.add(f"{kind}_connected", (), 1 if up else 0)
        reconnects = MetricFamily(
            f"{kind}_reconnects_total", f"Reconnections to the {kind} service", "counter"
        )
        reconnects.add(f"{kind}_reconnects_total", (), self.reconnects)
        yield from (watches, stale, connected, reconnects)
