"""The testbed as data: pods, origin servers and proxy instances (no I/O here).

Pods are network namespaces of the `gossamer.local` sandbox. A *meshed* pod gets the
`gossamer init` rules, so its outbound traffic goes to the Gossamer proxy through iptables
REDIRECT (the proxy finds its target from SO_ORIGINAL_DST) and inbound traffic to the
proxy's inbound port. HAProxy and nginx are explicit proxies: the client dials them on
loopback and each listener (`Route`) forwards to a fixed upstream.

    client      wrk, h2load; haproxy-single-*, haproxy-chain-a-*, nginx-single-*, nginx-chain-a-*
    origin      origin nginx; haproxy-chain-b-*, nginx-chain-b-*
    gs-a-h1     meshed: wrk, h2load, gossamer-single-h1 (outbound)       -> origin
    gm-a-h1     meshed: wrk, h2load, gossamer-mesh-a-h1 (outbound)       -> gm-b-h1
    gm-b-h1     meshed: gossamer-mesh-b-h1 (inbound) -> origin nginx on 127.0.0.1
    mt-a-h1     meshed, certified: wrk, h2load, gossamer-mtls-a-h1 (outbound) -> service mt-h1
    mt-b-h1     meshed, certified: gossamer-mtls-b-h1 (inbound) -> origin nginx on 127.0.0.1
    (and the same five pods for h2)
    control     destination and identity services of the certified pods; certify-identity

Mutual TLS: the certified pods (`mt-*`) are Pods of a SQLite store with a service account;
their proxies get a certificate from the identity service (join tokens) and resolve the
service's virtual IP through the destination service, so the hop between them is the mesh's
mTLS with real discovery and identity. `haproxy-tls-*` and `nginx-tls-*` chains do the same
hop with their own TLS (TLS 1.3, client certificates required, ECDSA P-256 leaves from a
CA made the way the mesh makes its own). `certify-identity` is a second identity service,
measured alone by the Certify scenario.

Every proxy instance serves one scenario (one path, one protocol), so its CPU time and its
memory, which a Python heap does not give back, belong to that scenario alone.
New comparisons (destination scale, other proxies) add pods, instances and routes here.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossamer.control.identity.names import identity_name

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
# The identity service the Certify scenario drives (its own store, trust and process).
CERTIFY_PORT = 9443
# Services' virtual IPs: outside the sandbox's pod subnet (10.77.0.0/16).
SERVICE_PORT = 80

# Listener ports of the explicit proxies, by instance and protocol.
PORTS = {
    "haproxy-single": {H1: 10080, H2: 10081},
    "haproxy-chain-a": {H1: 10180, H2: 10181},
    "haproxy-chain-b": {H1: 9080, H2: 9081},
    "nginx-single": {H1: 11080, H2: 11081},
    "nginx-chain-a": {H1: 11180, H2: 11181},
    "nginx-chain-b": {H1: 9180, H2: 9181},
    "haproxy-tls-a": {H1: 10280, H2: 10281},
    "haproxy-tls-b": {H1: 9280, H2: 9281},
    "nginx-tls-a": {H1: 11280, H2: 11281},
    "nginx-tls-b": {H1: 9380, H2: 9381},
}
VIPS = {H1: "10.97.0.10", H2: "10.97.0.11"}


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
    (mutual TLS with every other such pod)."""

    name: str
    meshed: bool = False
    origin: bool = False
    service_account: str | None = None


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
    """A Service of the mesh's store: `vip:port` goes to the one pod `pod` (its label
    `app=<pod>`) on `target_port`."""

    name: str
    vip: str
    port: int
    target_port: int
    pod: str


@dataclass(frozen=True, slots=True)
class Testbed:
    pods: tuple[PodSpec, ...]
    proxies: tuple[ProxySpec, ...]
    services: tuple[ServiceSpec, ...] = ()

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

    def service(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def certified_pods(self) -> tuple[PodSpec, ...]:
        return tuple(pod for pod in self.pods if pod.service_account is not None)


def tls_identity(account: str) -> str:
    """The identity name (certificate DNS SAN) of a service account in the bench namespace;
    HAProxy and nginx TLS instances use their instance name as the account."""
    return identity_name(account, MESH_NAMESPACE)


def origin_port(protocol: str) -> int:
    return ORIGIN_H1_PORT if protocol == H1 else ORIGIN_H2_PORT


def named(base: str, protocol: str) -> str:
    """The per-protocol name of a pod or proxy instance: `gs-a` -> `gs-a-h1`."""
    return f"{base}-{protocol}"


def _route(instance: str, p: str, bind: str, upstream: Endpoint, upstream_p: str) -> Route:
    return Route(bind, PORTS[instance][p], p, upstream, upstream_p)


def _tls_route(
    instance: str,
    p: str,
    bind: str,
    upstream: Endpoint,
    upstream_p: str,
    *,
    listen: bool = False,
    upstream_identity: str | None = None,
) -> Route:
    return Route(bind, PORTS[instance][p], p, upstream, upstream_p, listen, upstream_identity)


def _explicit_tls(p: str) -> tuple[ProxySpec, ...]:
    """Two HAProxy (and two nginx) with mutual TLS between them: A takes plaintext from the
    client on loopback and dials B with TLS; B requires A's client certificate and forwards
    to the origin on 127.0.0.1. As in the plaintext chains, HAProxy speaks the client's
    protocol on every hop (HTTP/2 over TLS with ALPN h2) and nginx HTTP/1.1 upstream."""
    loopback_origin = Endpoint(None, origin_port(p))
    haproxy_b, nginx_b = named("haproxy-tls-b", p), named("nginx-tls-b", p)
    return (
        ProxySpec(
            named("haproxy-tls-a", p),
            "haproxy",
            "client",
            (
                _tls_route(
                    "haproxy-tls-a",
                    p,
                    LOCAL,
                    Endpoint("origin", PORTS["haproxy-tls-b"][p]),
                    p,
                    upstream_identity=tls_identity(haproxy_b),
                ),
            ),
        ),
        ProxySpec(
            haproxy_b,
            "haproxy",
            "origin",
            (_tls_route("haproxy-tls-b", p, ANY, loopback_origin, p, listen=True),),
        ),
        ProxySpec(
            named("nginx-tls-a", p),
            "nginx",
            "client",
            (
                _tls_route(
                    "nginx-tls-a",
                    p,
                    LOCAL,
                    Endpoint("origin", PORTS["nginx-tls-b"][p]),
                    H1,
                    upstream_identity=tls_identity(nginx_b),
                ),
            ),
        ),
        ProxySpec(
            nginx_b,
            "nginx",
            "origin",
            (Route(ANY, PORTS["nginx-tls-b"][p], H1, Endpoint(None, ORIGIN_H1_PORT), H1, True),),
        ),
    )


def _explicit(p: str) -> tuple[ProxySpec, ...]:
    """HAProxy speaks the client's protocol upstream, as Gossamer does; nginx's proxy_pass
    speaks HTTP/1.1 only, so its HTTP/2 instances are HTTP/2 on the first hop alone."""
    origin = Endpoint("origin", origin_port(p))
    loopback_origin = Endpoint(None, origin_port(p))
    haproxy_b = Endpoint("origin", PORTS["haproxy-chain-b"][p])
    nginx_b = Endpoint("origin", PORTS["nginx-chain-b"][p])
    return (
        ProxySpec(
            named("haproxy-single", p),
            "haproxy",
            "client",
            (_route("haproxy-single", p, LOCAL, origin, p),),
        ),
        ProxySpec(
            named("haproxy-chain-a", p),
            "haproxy",
            "client",
            (_route("haproxy-chain-a", p, LOCAL, haproxy_b, p),),
        ),
        ProxySpec(
            named("haproxy-chain-b", p),
            "haproxy",
            "origin",
            (_route("haproxy-chain-b", p, ANY, loopback_origin, p),),
        ),
        ProxySpec(
            named("nginx-single", p),
            "nginx",
            "client",
            (_route("nginx-single", p, LOCAL, Endpoint("origin", ORIGIN_H1_PORT), H1),),
        ),
        ProxySpec(
            named("nginx-chain-a", p),
            "nginx",
            "client",
            (_route("nginx-chain-a", p, LOCAL, nginx_b, H1),),
        ),
        ProxySpec(
            named("nginx-chain-b", p),
            "nginx",
            "origin",
            (Route(ANY, nginx_b.port, H1, Endpoint(None, ORIGIN_H1_PORT), H1),),
        ),
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
    return ServiceSpec(named("mt", p), VIPS[p], SERVICE_PORT, origin_port(p), named("mt-b", p))


TESTBED = Testbed(
    pods=(
        PodSpec("client"),
        PodSpec("origin", origin=True),
        PodSpec(CONTROL_POD),
        *(pod for p in PROTOCOLS for pod in _gossamer_pods(p)),
    ),
    proxies=(
        *(spec for p in PROTOCOLS for spec in (*_gossamer(p), *_explicit(p), *_explicit_tls(p))),
        ProxySpec("certify-identity", "identity", CONTROL_POD),
    ),
    services=tuple(mtls_service(p) for p in PROTOCOLS),
)
