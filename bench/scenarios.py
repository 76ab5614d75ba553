"""What the benchmark measures, as data: one scenario per path and protocol.

A *path* is how a request gets from the load generator to the origin: direct, through one
proxy, or through two chained proxies (the mesh path: the client's sidecar, then the
server's). Each path is measured with HTTP/1.1 and with HTTP/2. A scenario names the pod the
load generator runs in, the address it dials, the proxy instances whose CPU and memory count
for it, and (for Gossamer) the HAProxy scenario its ratios are taken against.

Later comparisons (mTLS mesh path vs two HAProxy with TLS, gRPC Certify rate, destination
scale) add entries to `_paths` or a list of their own with the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.testbed import H1, PORTS, PROTOCOLS, Endpoint, named, origin_port


@dataclass(frozen=True, slots=True)
class Scenario:
    path: str  # "gossamer-mesh"
    system: str  # "direct", "gossamer", "haproxy", "nginx"
    protocol: str
    client_pod: str
    target: Endpoint
    proxies: tuple[str, ...] = ()
    # The HAProxy path the ratios compare to, and the label of those ratios.
    baseline_path: str | None = None
    ratio_base: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}/{self.protocol}"

    @property
    def baseline(self) -> str | None:
        path = self.baseline_path
        return None if path is None else f"{path}/{self.protocol}"

    @property
    def ratio_label(self) -> str | None:
        """`single_proxy` for HTTP/1.1, `single_proxy_h2` for HTTP/2."""
        base = self.ratio_base
        if base is None:
            return None
        return base if self.protocol == H1 else f"{base}_{self.protocol}"


def _paths(p: str) -> tuple[Scenario, ...]:
    """One round's order: systems alternate so that drift in the machine's speed during a
    run falls on all of them alike."""

    def explicit(path: str, system: str, *instances: str) -> Scenario:
        target = Endpoint(None, PORTS[instances[0]][p])
        return Scenario(path, system, p, "client", target, tuple(named(i, p) for i in instances))

    return (
        Scenario("direct", "direct", p, "client", Endpoint("origin", origin_port(p))),
        explicit("haproxy-single", "haproxy", "haproxy-single"),
        Scenario(
            "gossamer-single",
            "gossamer",
            p,
            named("gs-a", p),
            Endpoint("origin", origin_port(p)),
            (named("gossamer-single", p),),
            baseline_path="haproxy-single",
            ratio_base="single_proxy",
        ),
        explicit("nginx-single", "nginx", "nginx-single"),
        explicit("haproxy-chain", "haproxy", "haproxy-chain-a", "haproxy-chain-b"),
        Scenario(
            "gossamer-mesh",
            "gossamer",
            p,
            named("gm-a", p),
            Endpoint(named("gm-b", p), origin_port(p)),
            (named("gossamer-mesh-a", p), named("gossamer-mesh-b", p)),
            baseline_path="haproxy-chain",
            ratio_base="mesh_path",
        ),
        explicit("nginx-chain", "nginx", "nginx-chain-a", "nginx-chain-b"),
    )


SCENARIOS: tuple[Scenario, ...] = tuple(s for p in PROTOCOLS for s in _paths(p))
