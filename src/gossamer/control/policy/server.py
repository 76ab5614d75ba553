"""The outbound policy gRPC service: watcher → index → per-stream translation.

Store watches (Services, HTTPRoutes, GRPCRoutes) keep a `PolicyIndex` current. Each `Watch`
stream resolves its target to a Service port, sends the whole policy, then sleeps until a
change may affect it: its Service, a route naming that Service as a parent (before or after
the change), or, for a target that names no Service yet, any Service. It then computes the
policy again and sends it whole, unless it came out the same. Wake-ups are coalesced per
stream (a flag, not a queue), so a slow reader costs one pending answer, never a backlog.
Policies are cached per Service (by port and client namespace) until a change touches that
Service, so the many proxies watching one Service cost one translation per change.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable

import grpc

from gossamer.api.gen import policy_pb2 as pb
from gossamer.api.gen import policy_pb2_grpc as pb_grpc
from gossamer.control.policy.index import ROUTE_KINDS, Key, PolicyIndex
from gossamer.control.policy.translate import NOT_FOUND, outbound_policy
from gossamer.control.store import Store, WatchEventType
from gossamer.control.storefed import StoreFedServer
from gossamer.core.resources import Resource

log = logging.getLogger("gossamer.control.policy")

WATCHED_KINDS = ("Service", *ROUTE_KINDS)


class _Stream:
    __slots__ = ("client_namespace", "service", "target", "wake")

    def __init__(self, target: str, client_namespace: str | None) -> None:
        self.target = target
        self.client_namespace = client_namespace
        self.service: Key | None = None
        self.wake = asyncio.Event()


class OutboundPolicyServer(StoreFedServer, pb_grpc.OutboundPoliciesServicer):
    name = "policy"

    def __init__(self, store: Store, cluster_domain: str = "cluster.local") -> None:
        super().__init__(store, WATCHED_KINDS)
        self.index = PolicyIndex(cluster_domain)
        # Streams by the Service they follow; None: their target names no Service (yet).
        self._streams: dict[Key | None, set[_Stream]] = {}
        self._policies: dict[Key, dict[tuple[int, str | None], pb.OutboundPolicy]] = {}

    def _register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_OutboundPoliciesServicer_to_server(self, server)

    def _apply(self, kind: str, type_: WatchEventType, resource: Resource | None) -> None:
        index = self.index
        if type_ is WatchEventType.RESET:
            # The ADDED events up to SYNCED are the whole state; wake streams at SYNCED.
            index.clear_services() if kind == "Service" else index.clear_routes(kind)
            self._policies.clear()
            return
        if type_ is WatchEventType.SYNCED:
            self._mark_synced(kind)
            self._wake_all()
            return
        assert resource is not None
        if kind == "Service":
            key = (resource.namespace, resource.name)
            if type_ is WatchEventType.DELETED:
                index.remove_service(key)
            else:
                index.set_service(resource)
            self._wake((key, None))
            return
        route_key = (kind, resource.namespace, resource.name)
        if type_ is WatchEventType.DELETED:
            touched = index.remove_route(route_key)
        else:
            touched = index.set_route(resource)
        self._wake(touched)

    def _wake(self, keys: Iterable[Key | None]) -> None:
        for key in keys:
            if key is not None:
                self._policies.pop(key, None)
            for stream in self._streams.get(key, ()):
                stream.wake.set()

    def _wake_all(self) -> None:
        for streams in self._streams.values():
            for stream in streams:
                stream.wake.set()

    def _follow(self, stream: _Stream, key: Key | None) -> None:
        if stream.service == key and stream in self._streams.get(key, ()):
            return
        self._unfollow(stream)
        stream.service = key
        self._streams.setdefault(key, set()).add(stream)

    def _unfollow(self, stream: _Stream) -> None:
        followers = self._streams.get(stream.service)
        if followers is not None:
            followers.discard(stream)
            if not followers:
                del self._streams[stream.service]

    # -- the RPC -------------------------------------------------------------------------
    def policy_for(
        self, target: str, client_namespace: str | None
    ) -> tuple[Key | None, pb.OutboundPolicy]:
        """The Service a target follows and its policy now (`exists: false` if none)."""
        resolved = self.index.resolve(target)
        if resolved is None or resolved.service is None:
            return None, NOT_FOUND
        service = self.index.service(resolved.service)
        if service is None:
            return resolved.service, NOT_FOUND
        port = next((p for p in service.spec.ports if p.port == resolved.port), None)
        if port is None:
            return resolved.service, NOT_FOUND
        cached = self._policies.setdefault(resolved.service, {})
        policy = cached.get((port.port, client_namespace))
        if policy is None:
            policy = cached[(port.port, client_namespace)] = outbound_policy(
                service,
                port,
                self.index.routes_for(resolved.service),
                client_namespace=client_namespace,
                cluster_domain=self.index.cluster_domain,
            )
        return resolved.service, policy

    async def Watch(  # the generated servicer names it
        self, request: pb.OutboundPolicyRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.OutboundPolicy]:
        target = request.target
        if self.index.resolve(target) is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"target must be host:port with a port from 1 to 65535 (got {target!r})",
            )
        await self.wait_synced()
        stream = _Stream(target, client_namespace(request.context_token))
        self._follow(stream, None)
        try:
            sent: pb.OutboundPolicy | None = None
            while True:
                stream.wake.clear()
                key, policy = self.policy_for(target, stream.client_namespace)
                self._follow(stream, key)
                if policy != sent:
                    yield policy
                    sent = policy
                await stream.wake.wait()
        finally:
            self._unfollow(stream)


def client_namespace(context_token: str) -> str | None:
    """The client's namespace from a context token (`{"ns": "demo", ...}`), if it says."""
    if not context_token:
        return None
    try:
        token = json.loads(context_token)
    except ValueError:
        return None
    namespace = token.get("ns") if isinstance(token, dict) else None
    return namespace if isinstance(namespace, str) and namespace else None
