"""Outbound policy for one Service port, as the proxy API's `OutboundPolicy` message. Pure.

Which routes apply (GAMMA):

- a route applies to a port when one of its parentRefs names the Service and either no port
  and no sectionName, or that port's number (`port`) or name (`sectionName`);
- producer routes live in the Service's namespace and apply to every client; a consumer
  route lives in the client's namespace (another one) and applies to that namespace's clients
  only. When a client's namespace has routes for the Service, they replace the producer
  routes for it (as Linkerd does); routes in any other namespace never apply;
- when GRPCRoutes apply, HTTPRoutes are ignored (Gateway API lets a GRPCRoute win a conflict).

What each rule becomes:

- backends: each backendRef as the destination authority `name.ns.svc.<domain>:port` (the
  route's namespace and the parent's port unless given); a rule without backendRefs sends to
  the parent Service itself, as Linkerd does;
- retries and timeouts: the Service's annotations overlaid by the route's (see
  `TrafficAnnotations.overlay`). An HTTPRoute rule's `timeouts.request` and
  `timeouts.backendRequest` (the response timeout, as Linkerd maps it) take the place of the
  Service's timeout annotations; an annotation on the route itself still wins over the field,
  as Linkerd documents.

The policy always ends with the default route (every request, to the Service, with the
Service's retries and timeouts). An opaque port (appProtocol ending in "opaque", or listed in
`config.gossamer.dev/opaque-ports`) is not routed: it gets the default route only. Failure
accrual comes from the Service's annotations and is off unless set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gossamer.api.gen import policy_pb2 as pb
from gossamer.control.policy.index import RouteEntry, ServiceEntry
from gossamer.control.policy.precedence import RouteSlice, in_precedence_order
from gossamer.core.resources import ServicePort
from gossamer.core.resources.grpcroute import GRPCRouteMatch, GRPCRouteRule
from gossamer.core.resources.httproute import (
    PATH_EXACT,
    PATH_REGEX,
    HTTPRouteMatch,
    HTTPRouteRule,
)
from gossamer.core.resources.routes import (
    REQUEST_HEADER_MODIFIER,
    RESPONSE_HEADER_MODIFIER,
    BackendRef,
    HeaderModifier,
    ValueMatch,
    modifier_of,
)
from gossamer.core.resources.traffic_annotations import (
    FailureAccrual,
    RetryPolicy,
    TrafficAnnotations,
)

DEFAULT_ROUTE = "default"

_PATH_KINDS = {PATH_EXACT: pb.PathMatch.EXACT, PATH_REGEX: pb.PathMatch.REGEX}

NOT_FOUND = pb.OutboundPolicy(exists=False)


def is_opaque(service: ServiceEntry, port: ServicePort) -> bool:
    if port.app_protocol is not None and port.app_protocol.endswith("opaque"):
        return True
    return service.traffic.is_opaque(port.port)


def applicable_routes(
    service: ServiceEntry,
    port: ServicePort,
    routes: Iterable[RouteEntry],
    client_namespace: str | None,
) -> list[RouteEntry]:
    """The routes that shape traffic from `client_namespace` to this Service port."""
    key = (service.resource.namespace, service.resource.name)
    attached = [route for route in routes if _attaches(route, key, port)]
    consumer = [
        route
        for route in attached
        if client_namespace is not None and route.resource.namespace == client_namespace != key[0]
    ]
    chosen = consumer or [route for route in attached if route.resource.namespace == key[0]]
    grpc = [route for route in chosen if route.kind == "GRPCRoute"]
    return grpc or chosen


def _attaches(route: RouteEntry, key: tuple[str, str], port: ServicePort) -> bool:
    return any(
        route.parent_key(ref) == key
        and (ref.port is None or ref.port == port.port)
        and (ref.section_name is None or ref.section_name == port.name)
        for ref in route.spec.parent_refs
    )


def outbound_policy(
    service: ServiceEntry,
    port: ServicePort,
    routes: Sequence[RouteEntry],
    *,
    client_namespace: str | None = None,
    cluster_domain: str = "cluster.local",
) -> pb.OutboundPolicy:
    """The whole policy for traffic to `service`'s `port` (routes: any candidates)."""
    namespace, name = service.resource.namespace, service.resource.name
    opaque = is_opaque(service, port)
    policy = pb.OutboundPolicy(
        exists=True, service=name, namespace=namespace, port=port.port, opaque=opaque
    )
    translator = _RuleTranslator(service, port, cluster_domain)
    if not opaque:
        chosen = applicable_routes(service, port, routes, client_namespace)
        for piece in in_precedence_order(chosen):
            policy.routes.append(translator.route(piece))
    policy.routes.append(translator.default_route())
    if service.traffic.failure_accrual is not None:
        policy.failure_accrual.CopyFrom(_failure_accrual(service.traffic.failure_accrual))
    return policy


class _RuleTranslator:
    def __init__(self, service: ServiceEntry, port: ServicePort, cluster_domain: str) -> None:
        self._service = service
        self._port = port
        self._domain = cluster_domain

    def default_route(self) -> pb.Route:
        resource = self._service.resource
        rule = pb.RouteRule(backends=[self._backend(BackendRef(resource.name), resource.namespace)])
        self._set_traffic(rule, self._service.traffic, None)
        return pb.Route(
            name=DEFAULT_ROUTE, namespace=resource.namespace, kind=DEFAULT_ROUTE, rules=[rule]
        )

    def route(self, piece: RouteSlice) -> pb.Route:
        entry = piece.route
        traffic = self._service.traffic.overlay(entry.traffic)
        message = pb.Route(
            name=entry.resource.name,
            namespace=entry.resource.namespace,
            kind=entry.kind,
            hostnames=list(entry.spec.hostnames),
        )
        for rule_slice in piece.rules:
            rule = entry.spec.rules[rule_slice.rule_index]
            message.rules.append(self._rule(entry, rule, rule_slice.matches, traffic))
        return message

    def _rule(
        self,
        entry: RouteEntry,
        rule: HTTPRouteRule | GRPCRouteRule,
        matches: Sequence[HTTPRouteMatch | GRPCRouteMatch],
        traffic: TrafficAnnotations,
    ) -> pb.RouteRule:
        message = pb.RouteRule(matches=[_match(match) for match in matches])
        request = modifier_of(rule.filters, REQUEST_HEADER_MODIFIER)
        if request is not None:
            message.request_header_modifiers.append(_modifier(request))
        response = modifier_of(rule.filters, RESPONSE_HEADER_MODIFIER)
        if response is not None:
            message.response_header_modifiers.append(_modifier(response))
        namespace = entry.resource.namespace
        refs = rule.backend_refs or (
            BackendRef(self._service.resource.name, self._service.resource.namespace),
        )
        message.backends.extend(self._backend(ref, namespace) for ref in refs)
        route_timeouts = entry.traffic.timeouts
        self._set_traffic(
            message,
            traffic,
            rule if isinstance(rule, HTTPRouteRule) else None,
            route_has_timeouts=route_timeouts is not None,
        )
        return message

    def _backend(self, ref: BackendRef, namespace: str) -> pb.Backend:
        ns = ref.namespace or namespace
        port = ref.port or self._port.port
        return pb.Backend(
            authority=f"{ref.name}.{ns}.svc.{self._domain}:{port}",
            service=ref.name,
            namespace=ns,
            port=port,
            weight=ref.weight,
        )

    def _set_traffic(
        self,
        rule: pb.RouteRule,
        traffic: TrafficAnnotations,
        http_rule: HTTPRouteRule | None,
        *,
        route_has_timeouts: bool = False,
    ) -> None:
        if traffic.retry is not None:
            rule.retry.CopyFrom(_retry(traffic.retry))
        request, response = _timeouts(traffic, http_rule, route_has_timeouts)
        if request is not None or response is not None:
            rule.timeouts.CopyFrom(pb.Timeouts(request_ms=request or 0, response_ms=response or 0))


def _timeouts(
    traffic: TrafficAnnotations, rule: HTTPRouteRule | None, route_has_timeouts: bool
) -> tuple[int | None, int | None]:
    """(request, response) in ms, None when unset. `traffic` is already overlaid: its
    timeouts are the route's own when `route_has_timeouts`, else the Service's."""
    annotated = traffic.timeouts
    request = annotated.request_ms if annotated is not None else None
    response = annotated.response_ms if annotated is not None else None
    fields = rule.timeouts if rule is not None else None
    if fields is None:
        return request, response
    field_request, field_response = fields.request_ms, fields.backend_request_ms
    if route_has_timeouts:
        # The route's own annotation wins over its field; the field fills the gaps.
        return (
            request if request is not None else field_request,
            response if response is not None else field_response,
        )
    # The rule's fields are more specific than the Service's annotations.
    return (
        field_request if field_request is not None else request,
        field_response if field_response is not None else response,
    )


def _match(match: HTTPRouteMatch | GRPCRouteMatch) -> pb.RequestMatch:
    if isinstance(match, HTTPRouteMatch):
        return pb.RequestMatch(
            path=pb.PathMatch(
                kind=_PATH_KINDS.get(match.path.type, pb.PathMatch.PREFIX), value=match.path.value
            ),
            headers=[_value(header) for header in match.headers],
            query_params=[_value(param) for param in match.query_params],
            method=match.method or "",
        )
    message = pb.RequestMatch(headers=[_value(header) for header in match.headers])
    if match.method is not None:
        method = match.method
        message.grpc.CopyFrom(
            pb.GrpcMethodMatch(
                service=method.service or "", method=method.method or "", regex=method.regex
            )
        )
    return message


def _value(match: ValueMatch) -> pb.ValueMatch:
    return pb.ValueMatch(name=match.name, value=match.value, regex=match.regex)


def _modifier(modifier: HeaderModifier) -> pb.HeaderModifier:
    return pb.HeaderModifier(
        set=[pb.Header(name=name, value=value) for name, value in modifier.set],
        add=[pb.Header(name=name, value=value) for name, value in modifier.add],
        remove=list(modifier.remove),
    )


def _retry(retry: RetryPolicy) -> pb.RetryPolicy:
    return pb.RetryPolicy(
        http_statuses=[pb.StatusRange(start=r.start, end=r.end) for r in retry.http_statuses],
        grpc_codes=list(retry.grpc_codes),
        limit=retry.limit,
        timeout_ms=retry.timeout_ms or 0,
    )


def _failure_accrual(accrual: FailureAccrual) -> pb.FailureAccrual:
    return pb.FailureAccrual(
        consecutive_failures=accrual.max_failures,
        min_backoff_ms=accrual.min_penalty_ms,
        max_backoff_ms=accrual.max_penalty_ms,
        jitter_ratio=accrual.jitter_ratio,
    )
