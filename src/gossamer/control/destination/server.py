"""The destination gRPC service: watcher → index → per-stream translator.

Store watches (Services, Pods) keep an `EndpointIndex` current. Each `Get` stream resolves
its path against the index, sends the first answer, then sleeps until a change may affect
it and sends only the difference. Wake-ups are coalesced per stream (a flag, not a queue),
so a slow reader costs memory for one pending answer, never a backlog.

Streams are filed by what they follow: a Service (named, or by virtual IP), or an IP that
is no Service's (a pod's, or nobody's yet). An event wakes only the streams it may concern:
a Service event the Service's followers and those of its virtual IP; a pod event the
followers of the Services it was or is an endpoint of and of its old and new IP. With the
index's cached resolutions, a change costs one resolution per Service and one diff per woken
stream. (A path that is not host:port follows nothing and is never woken.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping

import grpc

from gossamer.api.gen import destination_pb2 as pb
from gossamer.api.gen import destination_pb2_grpc as pb_grpc
from gossamer.control.destination.endpoints import Endpoint, EndpointIndex, Key, Resolution, diff
from gossamer.control.store import Store, WatchEventType
from gossamer.control.storefed import StoreFedServer
from gossamer.core.resources import Resource, ServiceSpec

log = logging.getLogger("gossamer.control.destination")


# What a stream follows: ("service", (namespace, name)), ("ip", address), or None.
_Follow = tuple[str, Key | str] | None


class _Stream:
    __slots__ = ("follows", "path", "wake")

    def __init__(self, path: str) -> None:
        self.path = path
        self.follows: _Follow = None
        self.wake = asyncio.Event()


def _follows(resolution: Resolution) -> _Follow:
    if resolution.service is not None:
        return ("service", resolution.service)
    if resolution.address is not None:
        return ("ip", resolution.address)
    return None


class DestinationServer(StoreFedServer, pb_grpc.DestinationServicer):
    name = "destination"

    def __init__(
        self,
        store: Store,
        cluster_domain: str = "cluster.local",
        trust_domain: str = "cluster.local",
    ) -> None:
        super().__init__(store, ("Service", "Pod"))
        self.index = EndpointIndex(cluster_domain, trust_domain)
        self._streams: dict[_Follow, set[_Stream]] = {}

    def _register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_DestinationServicer_to_server(self, server)

    def _apply(self, kind: str, type_: WatchEventType, resource: Resource | None) -> None:
        index = self.index
        if type_ is WatchEventType.RESET:
            # The ADDED events up to SYNCED are the whole state; wake streams at SYNCED.
            index.clear_services() if kind == "Service" else index.clear_pods()
            return
        if type_ is WatchEventType.SYNCED:
            self._mark_synced(kind)
            self._wake_all()
            return
        assert resource is not None
        key = (resource.namespace, resource.name)
        if kind == "Service":
            if type_ is WatchEventType.DELETED:
                index.remove_service(key)
            else:
                index.set_service(resource)
            vip = resource.spec_as(ServiceSpec).cluster_ip
            self._wake([("service", key), ("ip", vip or "")])
            return
        old_ip = index.pod_ip(key)
        if type_ is WatchEventType.DELETED:
            touched = index.remove_pod(key)
        else:
            touched = index.set_pod(resource)
        new_ip = index.pod_ip(key)
        services = [("service", service) for service in touched]
        self._wake([*services, ("ip", old_ip or ""), ("ip", new_ip or "")])

    def _wake(self, follows: Iterable[_Follow]) -> None:
        for follow in follows:
            for stream in self._streams.get(follow, ()):
                stream.wake.set()

    def _wake_all(self) -> None:
        for streams in self._streams.values():
            for stream in streams:
                stream.wake.set()

    def _file(self, stream: _Stream, follows: _Follow) -> None:
        """File the stream under what it follows now (its target may move: a VIP reused)."""
        if follows == stream.follows and stream in self._streams.get(follows, ()):
            return
        self._unfile(stream)
        stream.follows = follows
        self._streams.setdefault(follows, set()).add(stream)

    def _unfile(self, stream: _Stream) -> None:
        filed = self._streams.get(stream.follows)
        if filed is not None:
            filed.discard(stream)
            if not filed:
                del self._streams[stream.follows]

    # -- the RPC -------------------------------------------------------------------------
    async def Get(  # the generated servicer names it
        self, request: pb.GetDestination, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Update]:
        path = request.path
        if not path:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "path is required (host:port)")
        await self.wait_synced()
        stream = _Stream(path)
        try:
            known: Mapping[tuple[str, int], Endpoint] = {}
            exists: bool | None = None
            while True:
                stream.wake.clear()
                resolution = self.index.resolve(path)
                self._file(stream, _follows(resolution))
                for update in translate(known, exists, resolution):
                    yield update
                known, exists = resolution.endpoints, resolution.exists
                await stream.wake.wait()
        finally:
            self._unfile(stream)


def translate(
    known: Mapping[tuple[str, int], Endpoint], exists: bool | None, now: Resolution
) -> list[pb.Update]:
    """The updates that take a proxy from what it knows to `now` (all of it the first time)."""
    if not now.exists:
        return [] if exists is False else [pb.Update(no_endpoints=pb.NoEndpoints(exists=False))]
    if not now.endpoints:
        if exists and not known:
            return []
        return [pb.Update(no_endpoints=pb.NoEndpoints(exists=True))]
    if exists is not True:
        known = {}
    added, removed = diff(known, now.endpoints)
    updates: list[pb.Update] = []
    if removed:
        addrs = [pb.TcpAddress(ip=ip, port=port) for ip, port in removed]
        updates.append(pb.Update(remove=pb.AddrSet(addrs=addrs)))
    if added:
        updates.append(
            pb.Update(
                add=pb.WeightedAddrSet(
                    addrs=[_weighted(ep) for ep in added], metric_labels=dict(now.labels)
                )
            )
        )
    return updates


def _weighted(endpoint: Endpoint) -> pb.WeightedAddr:
    addr = pb.WeightedAddr(
        addr=pb.TcpAddress(ip=endpoint.ip, port=endpoint.port),
        weight=endpoint.weight,
        metric_labels=dict(endpoint.labels),
    )
    if endpoint.identity is not None:
        addr.tls_identity.dns_like_identity = endpoint.identity
    if endpoint.opaque:
        addr.protocol_hint.opaque.SetInParent()
    elif endpoint.identity is not None:
        addr.protocol_hint.h2.SetInParent()
    return addr
