"""One service as outbound traffic sees it: its policy, its backends, their balancers.

Theory of operation: an `OutboundService` exists per original destination that names a
service (a virtual IP and port). Its policy (routes, retries, timeouts, failure accrual)
comes from a policy watch when the proxy has a policy service, else it is the implicit
default: every request to the service itself. Each backend is a `BackendTarget`: a
destination watch (the endpoints) and an `EndpointBalancer` (P2C over peak-EWMA), refreshed
lazily when the watch's version moves. Requests pick a route, a backend by weight, then an
endpoint; when no endpoint is available they wait in a bounded queue for at most the
fail-fast timeout, then fail with 503.
"""

from __future__ import annotations

import asyncio
import random

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.balance import (
    AccrualSettings,
    EndpointBalancer,
    EndpointHandle,
    ProbeHandle,
)
from gossamer.proxy.control.destination import DestinationClient, DestinationWatch, EndpointMeta
from gossamer.proxy.control.policy import PolicyClient, PolicyWatch
from gossamer.proxy.errors import NoRoute, Overloaded, ProxyError
from gossamer.proxy.metrics import OUTBOUND_PLAINTEXT, ProxyMetrics, TlsLabels
from gossamer.proxy.outbound.plan import RequestPlan
from gossamer.proxy.retry import RetryBudget
from gossamer.proxy.routing import CompiledRoutes, request_info

Addr = tuple[str, int]

# Linkerd's defaults: how long a request may wait for an endpoint, and how many may wait.
FAILFAST_TIMEOUT = 3.0
MAX_WAITING = 100


class NoEndpoints(ProxyError):
    status = 503
    reason = "no endpoints available"


class BackendTarget:
    """The endpoints of one backend and the balancer that chooses among them."""

    def __init__(
        self,
        authority: str,
        watch: DestinationWatch,
        rng: random.Random,
        accrual: AccrualSettings | None,
    ) -> None:
        self.authority = authority
        self.watch = watch
        self._rng = rng
        self.accrual = accrual
        self.balancer = EndpointBalancer(rng, accrual=accrual)
        self._version = -1
        self.waiting = 0  # requests waiting for an endpoint (bounded by MAX_WAITING)

    def pick(self, now: float, avoid: object = None) -> tuple[EndpointHandle, EndpointMeta] | None:
        """An endpoint for one request; a retry passes the one that just failed as `avoid`,
        and gets another when the balancer has one to give."""
        watch = self.watch
        if watch.version != self._version:
            self._version = watch.version
            self.balancer.update(watch.endpoints)
        balancer = self.balancer
        handle = balancer.pick(now)
        if handle is None:
            return None
        if avoid is not None and handle.addr == avoid and len(balancer) > 1:
            # A retry: P2C among the others (plain P2C between two endpoints would keep
            # choosing a failing one that answers fast: failures give it no latency samples).
            other = balancer.pick_other(now, avoid)
            if other is not None:
                if isinstance(handle, ProbeHandle):
                    handle.cancel()  # a probe picked and not used gives its turn back
                handle = other
        return handle, watch.endpoints[handle.addr]  # type: ignore[index]  # (an Addr)

    def set_accrual(self, accrual: AccrualSettings | None) -> None:
        """New failure-accrual settings: a fresh balancer (latency estimates restart)."""
        if accrual != self.accrual:
            self.accrual = accrual
            self.balancer = EndpointBalancer(self._rng, accrual=accrual)
            self._version = -1

    async def pick_waiting(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[EndpointHandle, EndpointMeta]:
        """Waits (bounded) for an endpoint when none is available now."""
        picked = self.pick(loop.time())
        if picked is not None:
            return picked
        if self.waiting >= MAX_WAITING:
            raise Overloaded(f"too many requests waiting for endpoints of {self.authority}")
        deadline = loop.time() + FAILFAST_TIMEOUT
        self.waiting += 1
        try:
            # Polled: endpoints come back through the watch (or out of a failure-accrual
            # penalty) without an event to wait on, and waiting is the rare path.
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise NoEndpoints(f"no endpoints of {self.authority} became available")
                await asyncio.sleep(min(0.05, remaining))
                picked = self.pick(loop.time())
                if picked is not None:
                    return picked
        finally:
            self.waiting -= 1


class OutboundService:
    def __init__(
        self,
        orig_dst: Addr,
        destinations: DestinationClient,
        policy: PolicyWatch | None,
        rng: random.Random,
        mesh_tls: bool,
    ) -> None:
        self.orig_dst = orig_dst
        self._loop = asyncio.get_running_loop()
        self._mesh_tls = mesh_tls
        self._tls: dict[str | None, TlsLabels] = {}
        self._destinations = destinations
        self._policy = policy
        self._rng = rng
        self._policy_version = -1
        self._routes: CompiledRoutes | None = None
        self._accrual: AccrualSettings | None = None
        self._backends: dict[str, BackendTarget] = {}
        self.budget = RetryBudget()
        self.name = f"{orig_dst[0]}:{orig_dst[1]}"
        self.namespace = ""
        self.port = orig_dst[1]

    # -- policy --------------------------------------------------------------------------
    def routes(self) -> CompiledRoutes:
        policy = self._policy
        if policy is not None and policy.version != self._policy_version and policy.policy:
            self._policy_version = policy.version
            compiled = policy.policy
            if compiled.exists:
                self.name = compiled.service or self.name
                self.namespace = compiled.namespace
                self._accrual = AccrualSettings.from_policy(compiled.failure_accrual)
                self._routes = CompiledRoutes(compiled, self._rng)
                for backend in self._backends.values():
                    backend.set_accrual(self._accrual)
            else:
                # No policy for an address that is no service (a pod's IP, say): the
                # implicit default route, to that address, serves it.
                self._routes = None
        if self._routes is None:
            self._routes = CompiledRoutes(self._default_policy(), self._rng)
        return self._routes

    def plan(
        self,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        authority: bytes,
        metrics: ProxyMetrics,
        now: float,
    ) -> RequestPlan:
        """Routes one request: its route rule, a backend by weight, its retry budget
        deposit and route metrics. Raises NoRoute when no rule with a backend matches.
        Applying the rule's request header modifiers is the caller's (they differ by
        protocol)."""
        routes = self._routes
        policy = self._policy
        if routes is None or (policy is not None and policy.version != self._policy_version):
            routes = self.routes()
        selected = routes.always or routes.select(request_info(method, path, headers))
        if selected is None:
            raise NoRoute(f"no route of {self.name} matches the request")
        # Rule objects live as long as their policy, and with it their service's backends:
        # a single backend's target is kept on the rule.
        target: BackendTarget | None = selected.target  # type: ignore[assignment]
        if target is not None:
            target.watch.last_used = now  # (an idle sweep drops backends not in use)
        else:
            backend = selected.backend()
            if backend is None:
                raise NoRoute(f"route {selected.route_name} has no backend with a weight")
            target = self.backend(backend.authority, now)
            if len(selected.backends) == 1:
                selected.target = target
        if routes.retries:
            self.budget.deposit(now)
        route_stats = selected.stats
        if route_stats is None:
            route_stats = selected.stats = metrics.route(
                (self.name, self.namespace, self.port), selected.route_name, selected.route_kind
            )
        route_stats.requests += 1
        return RequestPlan(self, selected, target, route_stats, now, authority)

    def _default_policy(self) -> pb.OutboundPolicy:
        authority = f"{self.orig_dst[0]}:{self.orig_dst[1]}"
        backend = pb.Backend(authority=authority, port=self.orig_dst[1], weight=1)
        route = pb.Route(name="default", kind="default", rules=[pb.RouteRule(backends=[backend])])
        return pb.OutboundPolicy(exists=True, port=self.orig_dst[1], routes=[route])

    # -- backends ------------------------------------------------------------------------
    def backend(self, authority: str, now: float | None = None) -> BackendTarget:
        target = self._backends.get(authority)
        if target is None:
            host, _, port = authority.rpartition(":")
            watch = self._destinations.watch((host, int(port)))
            target = BackendTarget(authority, watch, self._rng, self._accrual)
            self._backends[authority] = target
        else:
            # Touch the watch so an idle sweep does not drop a backend in use.
            target.watch.last_used = self._loop.time() if now is None else now
        return target

    def tls_for(self, meta: EndpointMeta) -> TlsLabels:
        """How a request to an endpoint is secured: mesh TLS when it is meshed and we can."""
        identity = meta.identity
        labels = self._tls.get(identity)
        if labels is None:
            if identity is None:
                labels = OUTBOUND_PLAINTEXT
            elif self._mesh_tls:
                labels = TlsLabels(tls="true", no_tls_reason=None, server_id=identity)
            else:
                labels = TlsLabels(no_tls_reason="no_identity")
            self._tls[identity] = labels
        return labels

    def default_backend(self) -> BackendTarget:
        return self.backend(f"{self.orig_dst[0]}:{self.orig_dst[1]}")


class OutboundServices:
    """The outbound services this proxy knows, by original destination (one each)."""

    def __init__(
        self,
        destinations: DestinationClient,
        policies: PolicyClient | None,
        mesh_tls: bool,
        rng: random.Random | None = None,
    ) -> None:
        self.destinations = destinations
        self.policies = policies
        self._mesh_tls = mesh_tls
        self._rng = rng or random.Random()
        self._services: dict[Addr, OutboundService] = {}

    def get(self, orig_dst: Addr) -> OutboundService:
        service = self._services.get(orig_dst)
        if service is None:
            policy = self.policies.watch(orig_dst) if self.policies is not None else None
            service = OutboundService(
                orig_dst, self.destinations, policy, self._rng, self._mesh_tls
            )
            self._services[orig_dst] = service
        elif service._policy is not None:
            service._policy.last_used = service._loop.time()
        return service
