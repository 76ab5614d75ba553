"""What the outbound policy is made of: a pure index of Services and routes.

The server's store watches feed it; each entry keeps what translation needs, parsed once:
a Service's spec and traffic annotations, a route's parents and traffic annotations.
Annotations that fail to parse (only possible for objects read leniently, from a Kubernetes
API server: the local store refuses them on write) are logged and ignored, so one bad
object never stops the others' policies.

`resolve(target)` turns `host:port` into the Service it names: by virtual IP, or by DNS name
(`web.demo.svc.cluster.local`, `web.demo.svc`, `web.demo`). A name gives a Service key even
when no such Service exists yet, so a stream can follow it and learn when it appears.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from gossamer.core.resources import Resource, ResourceError, ServiceSpec
from gossamer.core.resources.grpcroute import GRPCRouteSpec
from gossamer.core.resources.httproute import HTTPRouteSpec
from gossamer.core.resources.routes import ParentRef
from gossamer.core.resources.traffic_annotations import (
    NO_ANNOTATIONS,
    TrafficAnnotations,
    parse_traffic_annotations,
)

log = logging.getLogger("gossamer.control.policy")

Key = tuple[str, str]  # (namespace, name) of a Service
RouteKey = tuple[str, str, str]  # (kind, namespace, name) of a route

ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    resource: Resource
    spec: ServiceSpec
    traffic: TrafficAnnotations


@dataclass(frozen=True, slots=True)
class RouteEntry:
    resource: Resource
    spec: HTTPRouteSpec | GRPCRouteSpec
    traffic: TrafficAnnotations

    @property
    def kind(self) -> str:
        return self.resource.kind

    def parent_key(self, ref: ParentRef) -> Key:
        return (ref.namespace or self.resource.namespace, ref.name)

    @property
    def parents(self) -> frozenset[Key]:
        return frozenset(self.parent_key(ref) for ref in self.spec.parent_refs)


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed `host:port`: the Service it names (None: an address of no Service)."""

    service: Key | None
    port: int


class PolicyIndex:
    def __init__(self, cluster_domain: str = "cluster.local") -> None:
        self.cluster_domain = cluster_domain
        self._services: dict[Key, ServiceEntry] = {}
        self._by_vip: dict[str, Key] = {}
        self._routes: dict[RouteKey, RouteEntry] = {}
        self._routes_by_parent: dict[Key, set[RouteKey]] = {}

    # -- feeding -------------------------------------------------------------------------
    def set_service(self, resource: Resource) -> None:
        key = (resource.namespace, resource.name)
        self.remove_service(key)
        spec = resource.spec_as(ServiceSpec)
        entry = ServiceEntry(resource, spec, _traffic(resource))
        self._services[key] = entry
        if spec.cluster_ip and not spec.headless:
            self._by_vip[spec.cluster_ip] = key

    def remove_service(self, key: Key) -> None:
        old = self._services.pop(key, None)
        if old is not None and old.spec.cluster_ip and self._by_vip.get(old.spec.cluster_ip) == key:
            del self._by_vip[old.spec.cluster_ip]

    def clear_services(self) -> None:
        self._services.clear()
        self._by_vip.clear()

    def set_route(self, resource: Resource) -> set[Key]:
        """Add or replace a route; returns the Services whose policy it may change."""
        key = (resource.kind, resource.namespace, resource.name)
        touched = self.remove_route(key)
        spec: HTTPRouteSpec | GRPCRouteSpec
        if resource.kind == "HTTPRoute":
            spec = resource.spec_as(HTTPRouteSpec)
        else:
            spec = resource.spec_as(GRPCRouteSpec)
        entry = RouteEntry(resource, spec, _traffic(resource))
        self._routes[key] = entry
        for parent in entry.parents:
            self._routes_by_parent.setdefault(parent, set()).add(key)
        return touched | entry.parents

    def remove_route(self, key: RouteKey) -> set[Key]:
        old = self._routes.pop(key, None)
        if old is None:
            return set()
        for parent in old.parents:
            siblings = self._routes_by_parent.get(parent)
            if siblings is not None:
                siblings.discard(key)
                if not siblings:
                    del self._routes_by_parent[parent]
        return set(old.parents)

    def clear_routes(self, kind: str) -> None:
        for key in [key for key in self._routes if key[0] == kind]:
            self.remove_route(key)

    # -- queries -------------------------------------------------------------------------
    def service(self, key: Key) -> ServiceEntry | None:
        return self._services.get(key)

    def routes_for(self, key: Key) -> list[RouteEntry]:
        """Every route with a parentRef naming the Service (any port, any namespace)."""
        return [self._routes[route] for route in sorted(self._routes_by_parent.get(key, ()))]

    def resolve(self, target: str) -> Target | None:
        """The Service and port `host:port` names; None when it is not `host:port`."""
        host, sep, port_text = target.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        host = host.strip("[]")
        port = int(port_text)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return Target(self._service_by_name(host), port)
        return Target(self._by_vip.get(host), port)

    def _service_by_name(self, host: str) -> Key | None:
        parts = host.rstrip(".").lower().split(".")
        if len(parts) < 2 or not all(parts):
            return None
        suffix = parts[2:]
        if suffix in ([], ["svc"], ["svc", *self.cluster_domain.split(".")]):
            return (parts[1], parts[0])
        return None


def _traffic(resource: Resource) -> TrafficAnnotations:
    try:
        return parse_traffic_annotations(resource.metadata.annotations, resource.kind)
    except ResourceError as error:
        log.warning("policy: %s: ignoring its annotations: %s", resource.describe(), error)
        return NO_ANNOTATIONS
