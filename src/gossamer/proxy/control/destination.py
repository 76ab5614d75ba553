"""Discovery: what the destination service says about an outbound address, kept current.

One `DestinationWatch` per original destination (`ip:port`), shared by every connection to
it: a background task streams `Get` updates into it, reconnecting with jittered backoff
when the control plane is unreachable. While disconnected a watch keeps serving what it
last knew (and says so: `stale`, the `destination_watch_stale` gauge, a log line). Watches
nobody used for `idle_timeout` are dropped. The first lookup of an address waits a bounded
time for the first answer; after that lookups are synchronous dictionary reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from gossamer.api.gen import destination_pb2 as pb
from gossamer.proxy.control.grpc import GrpcConnection, GrpcError
from gossamer.proxy.exposition import MetricFamily

log = logging.getLogger("gossamer.proxy.discovery")

GET_PATH = "/gossamer.destination.v1.Destination/Get"
Addr = tuple[str, int]


@dataclass(frozen=True, slots=True)
class EndpointMeta:
    identity: str | None = None
    opaque: bool = False
    h2: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


class DestinationWatch:
    """The live answer for one address. `exists` is None until the first answer."""

    def __init__(self, target: Addr) -> None:
        self.target = target
        self.exists: bool | None = None
        self.endpoints: dict[Addr, EndpointMeta] = {}
        self.labels: dict[str, str] = {}
        self.stale = False
        self.last_used = 0.0
        self.answered = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._ring: list[Addr] = []
        self._next = 0

    def pick(self) -> tuple[Addr, EndpointMeta] | None:
        """Round-robin over the current endpoints (per-request balancing comes later)."""
        ring = self._ring
        if not ring:
            return None
        self._next = (self._next + 1) % len(ring)
        addr = ring[self._next]
        return addr, self.endpoints[addr]

    def apply(self, update: pb.Update, *, replace: bool = False) -> None:
        """Applies one update; `replace` for a stream's first, which is the whole state."""
        if replace:
            self.endpoints.clear()
        which = update.WhichOneof("update")
        if which == "add":
            self.exists = True
            self.labels = dict(update.add.metric_labels)
            for weighted in update.add.addrs:
                hint = weighted.protocol_hint.WhichOneof("protocol")
                self.endpoints[(weighted.addr.ip, weighted.addr.port)] = EndpointMeta(
                    identity=weighted.tls_identity.dns_like_identity or None,
                    opaque=hint == "opaque",
                    h2=hint == "h2",
                    labels=dict(weighted.metric_labels),
                )
        elif which == "remove":
            for addr in update.remove.addrs:
                self.endpoints.pop((addr.ip, addr.port), None)
        elif which == "no_endpoints":
            self.exists = update.no_endpoints.exists
            self.endpoints.clear()
        self._ring = sorted(self.endpoints)
        self.answered.set()


class DestinationClient:
    def __init__(
        self,
        addr: Addr,
        context: Mapping[str, str] | None = None,
        *,
        first_answer_timeout: float = 3.0,
        idle_timeout: float = 60.0,
        connect_timeout: float = 1.0,
        backoff: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        self.addr = addr
        self._context = json.dumps(dict(context or {}), sort_keys=True)
        self._first_answer_timeout = first_answer_timeout
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._watches: dict[Addr, DestinationWatch] = {}
        self._conn: GrpcConnection | None = None
        self._connecting: asyncio.Task[GrpcConnection] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.reconnects = 0

    # -- lookups -------------------------------------------------------------------------
    def lookup_now(self, target: Addr) -> DestinationWatch | None:
        """The watch for `target` if it has answered; starts one otherwise."""
        watch = self._watch_for(target)
        return watch if watch.exists is not None else None

    async def resolve(self, target: Addr) -> DestinationWatch | None:
        """The answered watch for `target`, or None if no answer came in time."""
        watch = self._watch_for(target)
        if watch.exists is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.answered.wait(), self._first_answer_timeout)
        if watch.exists is None:
            log.warning(
                "no answer from the destination service for %s:%s within %gs",
                target[0], target[1], self._first_answer_timeout,
            )  # fmt: skip
            return None
        return watch

    def _watch_for(self, target: Addr) -> DestinationWatch:
        loop = asyncio.get_running_loop()
        watch = self._watches.get(target)
        if watch is None:
            watch = self._watches[target] = DestinationWatch(target)
            watch.task = loop.create_task(self._follow(watch))
            if self._sweeper is None:
                self._sweeper = loop.create_task(self._sweep())
        watch.last_used = loop.time()
        return watch

    # -- background ----------------------------------------------------------------------
    async def _follow(self, watch: DestinationWatch) -> None:
        request = pb.GetDestination(
            scheme="k8s", path=f"{watch.target[0]}:{watch.target[1]}", context_token=self._context
        ).SerializeToString()
        delay = self._backoff[0]
        while True:
            try:
                conn = await self._connection()
                call = conn.call(GET_PATH, request)
                try:
                    first = True
                    while (message := await call.message()) is not None:
                        watch.apply(pb.Update.FromString(message), replace=first)
                        first = False
                        if watch.stale:
                            log.info("destination for %s:%s is current again", *watch.target)
                        watch.stale = False
                        delay = self._backoff[0]
                finally:
                    call.cancel()
                raise GrpcError(14, "the destination stream ended")
            except asyncio.CancelledError:
                raise
            except (GrpcError, OSError, TimeoutError) as error:
                if not watch.stale and watch.exists is not None:
                    log.warning(
                        "destination for %s:%s unavailable (%s); using what was last known",
                        watch.target[0], watch.target[1], error,
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
            for target, watch in list(self._watches.items()):
                if watch.last_used < deadline:
                    del self._watches[target]
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
        watches = MetricFamily(
            "destination_watches", "Addresses the proxy follows in the destination service", "gauge"
        )
        watches.add("destination_watches", (), len(self._watches))
        stale = MetricFamily(
            "destination_watch_stale",
            "Watches serving their last known answer while the control plane is unreachable",
            "gauge",
        )
        stale.add("destination_watch_stale", (), sum(w.stale for w in self._watches.values()))
        connected = MetricFamily(
            "destination_connected", "1 while connected to the destination service", "gauge"
        )
        up = self._conn is not None and not self._conn.closed.done()
        connected.add("destination_connected", (), 1 if up else 0)
        reconnects = MetricFamily(
            "destination_reconnects_total", "Reconnections to the destination service", "counter"
        )
        reconnects.add("destination_reconnects_total", (), self.reconnects)
        yield from (watches, stale, connected, reconnects)
