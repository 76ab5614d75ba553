"""The testbed as data: pods, origin servers and proxy instances (no I/O here).

Pods are network namespaces of the `gossamer.local` sandbox. Every pod that runs a proxy
under test is *meshed*: it gets the `gossamer init` rules, so its outbound traffic goes to
its sidecar on 127.0.0.1:4140 through iptables REDIRECT and inbound traffic to its sidecar
on 0.0.0.0:4143. The Gossamer proxy finds its target from SO_ORIGINAL_DST; HAProxy and nginx
are sidecars behind the same interception (run as the proxy uid too, so their upstream
connections skip it) and each listener (`Route`) forwards to a fixed upstream.

    client      wrk, h2load for the direct path (not meshed)
    origin      origin nginx (direct and single paths' upstream; not meshed)
    gs-a-h1     meshed: wrk, h2load, gossamer-single-h1 (outbound)       -> origin
    gm-a-h1     meshed: wrk, h2load, gossamer-mesh-a-h1 (outbound)       -> gm-b-h1
    gm-b-h1     meshed: gossamer-mesh-b-h1 (inbound) -> origin nginx on 127.0.0.1
    mt-a-h1     meshed, certified: wrk, h2load, gossamer-mtls-a-h1 (outbound) -> service mt-h1
    mt-b-h1     meshed, certified: gossamer-mtls-b-h1 (inbound) -> origin nginx on 127.0.0.1
    rt-a-h1     meshed, routed: wrk, h2load, gossamer-routed-a-h1 (outbound) -> service rt-h1
    rt-b-h1     meshed, two addresses (Pods rt-b-h1 and rt-b2-h1 of the store):
                gossamer-routed-b-h1 (inbound) -> origin nginx on 127.0.0.1
    ds-a-h1     meshed, routed: wrk, h2load, gossamer-discovered-a-h1 (outbound) -> service ds-h1
    ds-b-h1     meshed, two addresses (Pods ds-b-h1 and ds-b2-h1 of the store):
                gossamer-discovered-b-h1 (inbound) -> origin nginx on 127.0.0.1
    hs-a-h1     meshed: wrk, h2load, haproxy-single-h1 (127.0.0.1:4140)  -> origin
    hc-a-h1     meshed: wrk, h2load, haproxy-chain-a-h1 (127.0.0.1:4140) -> hc-b-h1
    hc-b-h1     meshed: haproxy-chain-b-h1 (0.0.0.0:4143) -> origin nginx on 127.0.0.1
    ht-a-h1     meshed: wrk, h2load, haproxy-tls-a-h1 (4140)  -> TLS -> ht-b-h1
    ht-b-h1     meshed: haproxy-tls-b-h1 (TLS on 4143) -> origin nginx on 127.0.0.1
    ns-a-h1, nc-a-h1, nc-b-h1, nt-a-h1, nt-b-h1: the same for nginx
    (and the same pods for h2)
    control     destination, identity and policy services of the certified and routed
                pods; certify-identity; the destination-scale run

Mutual TLS: the certified pods (`mt-*`) are Pods of a SQLite store with a service account;
their proxies get a certificate from the identity service (join tokens) and resolve the
service's virtual IP through the destination service, so the hop between them is the mesh's
mTLS with real discovery and identity. `haproxy-tls-*` and `nginx-tls-*` chains do the same
hop with their own TLS (TLS 1.3, client certificates required, ECDSA P-256 leaves from a
CA made the way the mesh makes its own). `certify-identity` is a second identity service,
measured alone by the Certify scenario.

Routing: the routed client pods (`rt-a-*`) are plaintext like the `gm-*` mesh path, but their
proxy resolves the service `rt-<p>` through the destination service and follows the policy
service's routes: an HTTPRoute whose first rule (a header match the load never sends) goes to
a canary service without endpoints and whose second rule takes every other request to
`rt-<p>`, a Service with a retry annotation over two endpoints. So each request is matched
against a rule, balanced (P2C) over two endpoints and kept for replay, as traffic to a Service
in the mesh is. The server side is the `gm-b-*` one, a single pod (`rt-b-*`: one inbound
proxy, one origin) with a second address on its eth0 (`aliases`): the store has a Pod for
each address (`rt-b-*`, `rt-b2-*`), so discovery gives two endpoints while the path keeps the
unrouted one's processes, and the difference between the two paths is the client proxy's
routing and balancing (and its second upstream connection pool), not more proxy processes
sharing the proxy core.

The default mesh path (`ds-a-*`, `ds-b-*`) is the routed one without anything a Service opts
into: its Service `ds-<p>` has no annotations and no HTTPRoute, so the policy service gives
the client's proxy only the implicit default route (every request to the Service) and the
proxy still resolves the service, watches its policy and balances by P2C over the two
addresses of its own server pod, built like `rt-b-*`. This is the path every meshed service
takes; the routed path adds route rules and retries on top of it.

Every proxy instance serves one scenario (one path, one protocol), so its CPU time and its
memory, which a Python heap does not give back, belong to that scenario alone.
New comparisons (other proxies) add pods, instances and routes here.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossamer.control.identity.names import identity_name
from gossamer.local.iptables import DEFAULT_INBOUND_PORT, DEFAULT_OUTBOUND_PORT

# Every origin serves a tiny fixed response: HTTP/1.1 on one port, h2c (prior knowledge)
# on the other.
ORIGIN_H1_PORT = 8080
ORIGIN_H2_PORT = 8081
ORIGIN_BODY = "ok\n"
GOSSAMER_ADMIN_PORT = 4191

H1 = "h1"
H2 = "h2"
PROTOCOLS = (H1, H2)

LOCAL = "127.0.0.1"
ANY = "0.0.0.0"

# The mesh's control plane for the certified pods, and the store namespace of their Pods.
CONTROL_POD = "control"
MESH_NAMESPACE = "bench"
DESTINATION_PORT = 8086
IDENTITY_PORT = 8090
POLICY_PORT = 8092
# The identity service the Certify scenario drives (its own store, trust and process).
CERTIFY_PORT = 9443
# Services' virtual IPs: outside the sandbox's pod subnet (10.77.0.0/16).
SERVICE_PORT = 80

# Where every sidecar listens (the `gossamer init` defaults): HAProxy and nginx sidecars too.
OUTBOUND_PORT = DEFAULT_OUTBOUND_PORT  # 127.0.0.1
INBOUND_PORT = DEFAULT_INBOUND_PORT  # 0.0.0.0
VIPS = {H1: "10.97.0.10", H2: "10.97.0.11"}
ROUTED_VIPS = {H1: "10.97.0.20", H2: "10.97.0.21"}
CANARY_VIPS = {H1: "10.97.0.30", H2: "10.97.0.31"}
DISCOVERED_VIPS = {H1: "10.97.0.40", H2: "10.97.0.41"}
# The routed path's first rule: requests with this header go to the canary service.
CANARY_HEADER = ("x-bench-canary", "true")
# Makes the proxy keep every request for replay (and retry 5xx answers once).
RETRY_ANNOTATIONS = (("retry.gossamer.dev/http", "5xx"),)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TCP address by pod name; `pod=None` is the loopback of the pod dialling it, and
    `service` a Service's virtual IP (which only a meshed pod's proxy can reach)."""

    pod: str | None
    port: int
    service: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One listener of an explicit proxy (HAProxy, nginx) and the upstream it forwards to."""

    bind: str
    port: int
    protocol: str
    upstream: Endpoint
    upstream_protocol: str
    # Mutual TLS (the proxy's certificate is that of `tls_identity(proxy name)`): the
    # listener requires a client certificate from the mesh's CA (`tls_listen`); the
    # upstream hop presents the proxy's and requires the upstream to prove this identity.
    tls_listen: bool = False
    upstream_identity: str | None = None

    @property
    def tls(self) -> bool:
        return self.tls_listen or self.upstream_identity is not None


@dataclass(frozen=True, slots=True)
class PodSpec:
    """`service_account`: the pod is a Pod of the mesh's store, and its Gossamer proxy is
    certified by the identity service and resolves services through the destination service
    (mutual TLS with every other such pod). `routed`: its Gossamer proxy resolves services
    through the destination service and follows the policy service's routes, without
    identity (plaintext)."""

    name: str
    meshed: bool = False
    origin: bool = False
    service_account: str | None = None
    routed: bool = False
    # More addresses of the pod's eth0 (from the pod subnet), each the IP of a Pod of the
    # store by that name: one pod (its processes, its interception) that discovery sees as
    # several endpoints.
    aliases: tuple[str, ...] = ()

    @property
    def control_plane(self) -> bool:
        """Whether its proxy talks to the mesh's control plane."""
        return self.service_account is not None or self.routed


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """One measured process: `kind` is "gossamer", "haproxy" or "nginx" (proxies), or
    "identity" (the identity service the Certify scenario drives)."""

    name: str
    kind: str
    pod: str
    routes: tuple[Route, ...] = ()

    @property
    def tls(self) -> bool:
        return any(route.tls for route in self.routes)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A Service of the mesh's store: `vip:port` goes to the pods `pods` (Pods of the store,
    pods or aliases, labelled `app=<service name>`) on `target_port`; no pods, no
    endpoints."""

    name: str
    vip: str
    port: int
    target_port: int
    pods: tuple[str, ...]
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HttpRouteSpec:
    """An HTTPRoute on `service`'s port: requests with the header `canary` go to the service
    `canary_backend`, every other request to `service` itself (a catch-all rule)."""

    name: str
    service: str
    canary: tuple[str, str]
    canary_backend: str


@dataclass(frozen=True, slots=True)
class Testbed:
    pods: tuple[PodSpec, ...]
    proxies: tuple[ProxySpec, ...]
    services: tuple[ServiceSpec, ...] = ()
    routes: tuple[HttpRouteSpec, ...] = ()

    def proxy(self, name: str) -> ProxySpec:
        for spec in self.proxies:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def pod(self, name: str) -> PodSpec:
        for spec in self.pods:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def address_owner(self, name: str) -> PodSpec:
        """The pod whose address `name` is: its own, or one of its aliases."""
        for spec in self.pods:
            if spec.name == name or name in spec.aliases:
                return spec
        raise KeyError(name)

    def service(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def certified_pods(self) -> tuple[PodSpec, ...]:
        return tuple(pod for pod in self.pods if pod.service_account is not None)

    @property
    def routed_pods(self) -> tuple[PodSpec, ...]:
        return tuple(pod for pod in self.pods if pod.routed)

    def store_pods(self) -> dict[str, str]:
        """The Pods of the mesh's store (pods or aliases), with their `app` label: certified
        pods and the pods of a service (labelled with its name; else with their own)."""
        labels = {pod.name: pod.name for pod in self.certified_pods}
        for service in self.services:
            for name in service.pods:
                labels[name] = service.name
        return labels


def tls_identity(account: str) -> str:
    """The identity name (certificate DNS SAN) of a service account in the bench namespace;
    HAProxy and nginx TLS instances use their instance name as the account."""
    return identity_name(account, MESH_NAMESPACE)


def origin_port(protocol: str) -> int:
    return ORIGIN_H1_PORT if protocol == H1 else ORIGIN_H2_PORT


def named(base: str, protocol: str) -> str:
    """The per-protocol name of a pod or proxy instance: `gs-a` -> `gs-a-h1`."""
    return f"{base}-{protocol}"


# The peers' pods, by system: `hs-a-h1` is HAProxy's single path, `hc-a`/`hc-b` its chain,
# `ht-a`/`ht-b` its TLS chain; `n*` the same for nginx.
PEER_POD_PREFIX = {"haproxy": "h", "nginx": "n"}
PEER_PATHS = {"single": "s", "chain": "c", "tls": "t"}


def peer_pod(system: str, path: str, side: str, p: str) -> str:
    """`peer_pod("haproxy", "chain", "b", "h1")` -> `hc-b-h1`."""
    return named(f"{PEER_POD_PREFIX[system]}{PEER_PATHS[path]}-{side}", p)


def _peer_pods(p: str) -> tuple[PodSpec, ...]:
    """Meshed pods (the `gossamer init` rules) for the HAProxy and nginx sidecars: an `a` pod
    per path (load generator and outbound sidecar), a `b` pod per chain (origin and inbound
    sidecar). The single paths' upstream is the shared, un-meshed `origin` pod, as for
    gossamer-single."""
    pods = []
    for system in PEER_POD_PREFIX:
        for path in PEER_PATHS:
            pods.append(PodSpec(peer_pod(system, path, "a", p), meshed=True))
            if path != "single":
                pods.append(PodSpec(peer_pod(system, path, "b", p), meshed=True, origin=True))
    return tuple(pods)


def peer_upstream_port(system: str, p: str) -> int:
    """The port a peer's outbound sidecar dials at the next hop (the origin's port, as an
    application would; the next pod's inbound REDIRECT takes it to its sidecar on 4143):
    HAProxy speaks the client's protocol upstream, nginx HTTP/1.1 only."""
    return origin_port(p) if system == "haproxy" else ORIGIN_H1_PORT


def peer_tls_hop(system: str, p: str) -> Endpoint:
    """Where the TLS chain's A dials B: SYNs to it are counted (before B's REDIRECT)."""
    return Endpoint(peer_pod(system, "tls", "b", p), peer_upstream_port(system, p))


def _peers(system: str, p: str) -> tuple[ProxySpec, ...]:
    """HAProxy or nginx as sidecars behind the same interception as Gossamer: the outbound
    instance listens on 127.0.0.1:4140 in the `a` pod and forwards to a fixed upstream (the
    origin pod, or the `b` pod's IP, where the REDIRECT hands the connection to the inbound
    instance on 0.0.0.0:4143, which forwards to the origin on 127.0.0.1). The TLS chain's A
    dials B with TLS and B terminates it on 4143, requiring A's client certificate."""
    up_p = p if system == "haproxy" else H1
    up_port = peer_upstream_port(system, p)
    inbound_upstream = Endpoint(None, up_port)

    def name(path: str, side: str) -> str:
        return named(f"{system}-{path}" + (f"-{side}" if side else ""), p)

    def a(path: str, upstream: Endpoint, identity: str | None = None) -> ProxySpec:
        side = "" if path == "single" else "a"
        route = Route(LOCAL, OUTBOUND_PORT, p, upstream, up_p, upstream_identity=identity)
        return ProxySpec(name(path, side), system, peer_pod(system, path, "a", p), (route,))

    def b(path: str, tls: bool = False) -> ProxySpec:
        route = Route(ANY, INBOUND_PORT, up_p, inbound_upstream, up_p, tls_listen=tls)
        return ProxySpec(name(path, "b"), system, peer_pod(system, path, "b", p), (route,))

    def next_hop(path: str) -> Endpoint:
        return Endpoint(peer_pod(system, path, "b", p), up_port)

    return (
        a("single", Endpoint("origin", up_port)),
        a("chain", next_hop("chain")),
        b("chain"),
        a("tls", next_hop("tls"), tls_identity(name("tls", "b"))),
        b("tls", tls=True),
    )


def _gossamer_pods(p: str) -> tuple[PodSpec, ...]:
    mt_a, mt_b = named("mt-a", p), named("mt-b", p)
    return (
        PodSpec(named("gs-a", p), meshed=True),
        PodSpec(named("gm-a", p), meshed=True),
        PodSpec(named("gm-b", p), meshed=True, origin=True),
        PodSpec(mt_a, meshed=True, service_account=mt_a),
        PodSpec(mt_b, meshed=True, origin=True, service_account=mt_b),
    )


def _gossamer(p: str) -> tuple[ProxySpec, ...]:
    return (
        ProxySpec(named("gossamer-single", p), "gossamer", named("gs-a", p)),
        ProxySpec(named("gossamer-mesh-a", p), "gossamer", named("gm-a", p)),
        ProxySpec(named("gossamer-mesh-b", p), "gossamer", named("gm-b", p)),
        ProxySpec(named("gossamer-mtls-a", p), "gossamer", named("mt-a", p)),
        ProxySpec(named("gossamer-mtls-b", p), "gossamer", named("mt-b", p)),
    )


def mtls_service(p: str) -> ServiceSpec:
    """The service the mTLS mesh path's client dials: its VIP goes to `mt-b-<p>`."""
    return ServiceSpec(named("mt", p), VIPS[p], SERVICE_PORT, origin_port(p), (named("mt-b", p),))


def _routed_pods(p: str) -> tuple[PodSpec, ...]:
    """The client, and the server pod as `gm-b-*` with a second address (`rt-b2-*`)."""
    return (
        PodSpec(named("rt-a", p), meshed=True, routed=True),
        PodSpec(named("rt-b", p), meshed=True, origin=True, aliases=(named("rt-b2", p),)),
    )


def _routed(p: str) -> tuple[ProxySpec, ...]:
    return tuple(
        ProxySpec(named(f"gossamer-routed-{side}", p), "gossamer", named(f"rt-{side}", p))
        for side in ("a", "b")
    )


def routed_service(p: str) -> ServiceSpec:
    """The service the routed mesh path's client dials: two endpoints, the two addresses of
    the one server pod `rt-b-<p>`; retries on 5xx."""
    return ServiceSpec(
        named("rt", p),
        ROUTED_VIPS[p],
        SERVICE_PORT,
        origin_port(p),
        (named("rt-b", p), named("rt-b2", p)),
        RETRY_ANNOTATIONS,
    )


def canary_service(p: str) -> ServiceSpec:
    """The backend of the rule the load never matches: no pods, so a request routed there
    would wait for an endpoint and fail with 503."""
    return ServiceSpec(named("rt-canary", p), CANARY_VIPS[p], SERVICE_PORT, origin_port(p), ())


def routed_route(p: str) -> HttpRouteSpec:
    return HttpRouteSpec(
        named("rt", p), routed_service(p).name, CANARY_HEADER, canary_service(p).name
    )


def _discovered_pods(p: str) -> tuple[PodSpec, ...]:
    """The default mesh path's client, and its server pod: as the routed path's, with a
    second address (`ds-b2-*`)."""
    return (
        PodSpec(named("ds-a", p), meshed=True, routed=True),
        PodSpec(named("ds-b", p), meshed=True, origin=True, aliases=(named("ds-b2", p),)),
    )


def _discovered(p: str) -> tuple[ProxySpec, ...]:
    return tuple(
        ProxySpec(named(f"gossamer-discovered-{side}", p), "gossamer", named(f"ds-{side}", p))
        for side in ("a", "b")
    )


def discovered_service(p: str) -> ServiceSpec:
    """The service the default mesh path's client dials: the two addresses of the one server
    pod `ds-b-<p>`, no annotations and no HTTPRoute (the policy's default route only)."""
    return ServiceSpec(
        named("ds", p),
        DISCOVERED_VIPS[p],
        SERVICE_PORT,
        origin_port(p),
        (named("ds-b", p), named("ds-b2", p)),
    )


TESTBED = Testbed(
    pods=(
        PodSpec("client"),
        PodSpec("origin", origin=True),
        PodSpec(CONTROL_POD),
        *(
            pod
            for p in PROTOCOLS
            for pod in (
                *_gossamer_pods(p),
                *_discovered_pods(p),
                *_routed_pods(p),
                *_peer_pods(p),
            )
        ),
    ),
    proxies=(
        *(
            spec
            for p in PROTOCOLS
            for spec in (
                *_gossamer(p),
                *_discovered(p),
                *_routed(p),
                *_peers("haproxy", p),
                *_peers("nginx", p),
            )
        ),
        ProxySpec("certify-identity", "identity", CONTROL_POD),
    ),
    services=tuple(
        s
        for p in PROTOCOLS
        for s in (mtls_service(p), discovered_service(p), routed_service(p), canary_service(p))
    ),
    routes=tuple(routed_route(p) for p in PROTOCOLS),
)

# Only the control pod: where the destination-scale run goes when no HTTP scenario runs.
CONTROL_ONLY = Testbed(pods=(PodSpec(CONTROL_POD),), proxies=())
