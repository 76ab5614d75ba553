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
    (and the same three pods for h2)

Every proxy instance serves one scenario (one path, one protocol), so its CPU time and its
memory, which a Python heap does not give back, belong to that scenario alone.
New comparisons (mTLS between hops, other proxies) add pods, instances and routes here.
"""

from __future__ import annotations

from dataclasses import dataclass

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

# Listener ports of the explicit proxies, by instance and protocol.
PORTS = {
    "haproxy-single": {H1: 10080, H2: 10081},
    "haproxy-chain-a": {H1: 10180, H2: 10181},
    "haproxy-chain-b": {H1: 9080, H2: 9081},
    "nginx-single": {H1: 11080, H2: 11081},
    "nginx-chain-a": {H1: 11180, H2: 11181},
    "nginx-chain-b": {H1: 9180, H2: 9181},
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TCP address by pod name; `pod=None` is the loopback of the pod dialling it."""

    pod: str | None
    port: int


@dataclass(frozen=True, slots=True)
class Route:
    """One listener of an explicit proxy (HAProxy, nginx) and the upstream it forwards to."""

    bind: str
    port: int
    protocol: str
    upstream: Endpoint
    upstream_protocol: str


@dataclass(frozen=True, slots=True)
class PodSpec:
    name: str
    meshed: bool = False
    origin: bool = False


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """One proxy process: `kind` is "gossamer", "haproxy" or "nginx"."""

    name: str
    kind: str
    pod: str
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True)
class Testbed:
    pods: tuple[PodSpec, ...]
    proxies: tuple[ProxySpec, ...]

    def proxy(self, name: str) -> ProxySpec:
        for spec in self.proxies:
            if spec.name == name:
                return spec
        raise KeyError(name)


def origin_port(protocol: str) -> int:
    return ORIGIN_H1_PORT if protocol == H1 else ORIGIN_H2_PORT


def named(base: str, protocol: str) -> str:
    """The per-protocol name of a pod or proxy instance: `gs-a` -> `gs-a-h1`."""
    return f"{base}-{protocol}"


def _route(instance: str, p: str, bind: str, upstream: Endpoint, upstream_p: str) -> Route:
    return Route(bind, PORTS[instance][p], p, upstream, upstream_p)


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
    return (
        PodSpec(named("gs-a", p), meshed=True),
        PodSpec(named("gm-a", p), meshed=True),
        PodSpec(named("gm-b", p), meshed=True, origin=True),
    )


def _gossamer(p: str) -> tuple[ProxySpec, ...]:
    return (
        ProxySpec(named("gossamer-single", p), "gossamer", named("gs-a", p)),
        ProxySpec(named("gossamer-mesh-a", p), "gossamer", named("gm-a", p)),
        ProxySpec(named("gossamer-mesh-b", p), "gossamer", named("gm-b", p)),
    )


TESTBED = Testbed(
    pods=(
        PodSpec("client"),
        PodSpec("origin", origin=True),
        *(pod for p in PROTOCOLS for pod in _gossamer_pods(p)),
    ),
    proxies=tuple(spec for p in PROTOCOLS for spec in (*_gossamer(p), *_explicit(p))),
)
