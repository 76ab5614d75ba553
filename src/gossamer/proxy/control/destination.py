"""Discovery: what the destination service says about an outbound address, kept current.

One `DestinationWatch` per original destination (`ip:port`), shared by every connection to
it, followed as watches.py describes (reconnects, stale answers, idle eviction).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from gossamer.api.gen import destination_pb2 as pb
from gossamer.proxy.control.watches import Addr, Watch, WatchClient

GET_PATH = "/gossamer.destination.v1.Destination/Get"


@dataclass(frozen=True, slots=True)
class EndpointMeta:
    identity: str | None = None
    opaque: bool = False
    h2: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


class DestinationWatch(Watch):
    """The live endpoints of one address. `exists` is None until the first answer."""

    def __init__(self, target: Addr) -> None:
        super().__init__(target)
        self.target = target
        self.endpoints: dict[Addr, EndpointMeta] = {}
        self.labels: dict[str, str] = {}
        self.version = 0  # bumped on every change, so balancers know to refresh
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

    def apply(self, message: bytes, *, replace: bool) -> None:
        self.apply_update(pb.Update.FromString(message), replace=replace)

    def apply_update(self, update: pb.Update, *, replace: bool = False) -> None:
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
        self.version += 1
        self.answered.set()


class DestinationClient(WatchClient[DestinationWatch]):
    kind = "destination"
    path = GET_PATH

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
        super().__init__(
            addr,
            first_answer_timeout=first_answer_timeout,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
            backoff=backoff,
        )
        self._context = json.dumps(dict(context or {}), sort_keys=True)

    def new_watch(self, key: Addr) -> DestinationWatch:
        return DestinationWatch(key)

    def request(self, watch: DestinationWatch) -> bytes:
        return pb.GetDestination(
            scheme="k8s", path=f"{watch.key[0]}:{watch.key[1]}", context_token=self._context
        ).SerializeToString()
