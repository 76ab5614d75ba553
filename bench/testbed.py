"""The testbed as data: pods, origin servers and proxy instances (no I/O here).

Pods are network namespaces of the `gossamer.local` sandbox. A *meshed* pod gets the
`gossamer init` rules, so its outbound traffic goes to the Gossamer proxy through iptables
REDIRECT (the proxy finds its target from SO_ORIGINAL_DST) and inbound traffic to the
proxy's inbound port. HAProxy and nginx are explicit proxies: the client dials them on
loopback and each listener (`Route`) forwards to a fixed upstream.

    client  (wrk, h2load; haproxy-single, haproxy-chain-a, nginx-single, nginx-chain-a)
    origin  (origin nginx; haproxy-chain-b, nginx-chain-b)
    gs-a    meshed: wrk, h2load, gossamer-single (outbound)            -> origin
    gm-a    meshed: wrk, h2load, gossamer-mesh-a (outbound)            -> gm-b
    gm-b    meshed: gossamer-mesh-b (inbound) -> origin nginx on 127.0.0.1

Each proxy instance serves one path only, so its CPU time and RSS belong to that path.
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


def _pair(
    bind: str, port: int, upstream_pod: str | None, h1: int, h2: int, h2_up: str
) -> tuple[Route, Route]:
    """An HTTP/1.1 listener on `port` and an HTTP/2 one on `port + 1`."""
    return (
        Route(bind, port, H1, Endpoint(upstream_pod, h1), H1),
        Route(bind, port + 1, H2, Endpoint(upstream_pod, h2), h2_up),
    )


LOCAL = "127.0.0.1"
ANY = "0.0.0.0"

TESTBED = Testbed(
    pods=(
        PodSpec("client"),
        PodSpec("origin", origin=True),
        PodSpec("gs-a", meshed=True),
        PodSpec("gm-a", meshed=True),
        PodSpec("gm-b", meshed=True, origin=True),
    ),
    proxies=(
        ProxySpec("gossamer-single", "gossamer", "gs-a"),
        ProxySpec("gossamer-mesh-a", "gossamer", "gm-a"),
        ProxySpec("gossamer-mesh-b", "gossamer", "gm-b"),
        # HAProxy speaks HTTP/2 to its upstream too, like Gossamer.
        ProxySpec(
            "haproxy-single",
            "haproxy",
            "client",
            _pair(LOCAL, 10080, "origin", ORIGIN_H1_PORT, ORIGIN_H2_PORT, H2),
        ),
        ProxySpec(
            "haproxy-chain-a", "haproxy", "client", _pair(LOCAL, 10180, "origin", 9080, 9081, H2)
        ),
        ProxySpec(
            "haproxy-chain-b",
            "haproxy",
            "origin",
            _pair(ANY, 9080, None, ORIGIN_H1_PORT, ORIGIN_H2_PORT, H2),
        ),
        # nginx proxies HTTP/2 only downstream: proxy_pass speaks HTTP/1.1 to upstreams.
        ProxySpec(
            "nginx-single",
            "nginx",
            "client",
            _pair(LOCAL, 11080, "origin", ORIGIN_H1_PORT, ORIGIN_H1_PORT, H1),
        ),
        ProxySpec(
            "nginx-chain-a", "nginx", "client", _pair(LOCAL, 11180, "origin", 9180, 9180, H1)
        ),
        ProxySpec(
            "nginx-chain-b",
            "nginx",
            "origin",
            (Route(ANY, 9180, H1, Endpoint(None, ORIGIN_H1_PORT), H1),),
        ),
    ),
)
