"""What the benchmark measures, as data: one scenario per path and protocol.

A *path* is how a request gets from the load generator to the origin: direct, through one
proxy, or through two chained proxies (the mesh path: the client's sidecar, then the
server's). Each path is measured with HTTP/1.1 and with HTTP/2. A scenario names the pod the
load generator runs in, the address it dials, the proxy instances whose CPU and memory count
for it, and (for Gossamer) the HAProxy scenario its ratios are taken against.

Later comparisons (mTLS mesh path vs two HAProxy with TLS, gRPC Certify rate, destination
scale) add entries to PATHS or a new list of their own with the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.testbed import H1, H2, ORIGIN_H1_PORT, ORIGIN_H2_PORT, Endpoint


@dataclass(frozen=True, slots=True)
class PathSpec:
    name: str
    system: str  # "direct", "gossamer", "haproxy", "nginx"
    client_pod: str
    # Where the load generator connects, per protocol.
    h1_target: Endpoint
    h2_target: Endpoint
    proxies: tuple[str, ...] = ()
    # The HAProxy path the ratios compare to, and the label of those ratios.
    baseline: str | None = None
    ratio_label: str | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    path: PathSpec
    protocol: str

    @property
    def target(self) -> Endpoint:
        return self.path.h1_target if self.protocol == H1 else self.path.h2_target

    @property
    def baseline(self) -> str | None:
        base = self.path.baseline
        return None if base is None else f"{base}/{self.protocol}"

    @property
    def ratio_label(self) -> str | None:
        label = self.path.ratio_label
        if label is None:
            return None
        return label if self.protocol == H1 else f"{label}_{self.protocol}"


def _origin(pod: str) -> tuple[Endpoint, Endpoint]:
    return Endpoint(pod, ORIGIN_H1_PORT), Endpoint(pod, ORIGIN_H2_PORT)


def _loopback(port: int) -> tuple[Endpoint, Endpoint]:
    return Endpoint(None, port), Endpoint(None, port + 1)


# The order is the order of a round: systems alternate so that drift in the machine's speed
# during a run falls on all of them alike.
PATHS: tuple[PathSpec, ...] = (
    PathSpec("direct", "direct", "client", *_origin("origin")),
    PathSpec("haproxy-single", "haproxy", "client", *_loopback(10080), ("haproxy-single",)),
    PathSpec(
        "gossamer-single",
        "gossamer",
        "gs-a",
        *_origin("origin"),
        ("gossamer-single",),
        baseline="haproxy-single",
        ratio_label="single_proxy",
    ),
    PathSpec("nginx-single", "nginx", "client", *_loopback(11080), ("nginx-single",)),
    PathSpec(
        "haproxy-chain",
        "haproxy",
        "client",
        *_loopback(10180),
        ("haproxy-chain-a", "haproxy-chain-b"),
    ),
    PathSpec(
        "gossamer-mesh",
        "gossamer",
        "gm-a",
        *_origin("gm-b"),
        ("gossamer-mesh-a", "gossamer-mesh-b"),
        baseline="haproxy-chain",
        ratio_label="mesh_path",
    ),
    PathSpec(
        "nginx-chain",
        "nginx",
        "client",
        *_loopback(11180),
        ("nginx-chain-a", "nginx-chain-b"),
    ),
)

SCENARIOS: tuple[Scenario, ...] = tuple(
    Scenario(f"{path.name}/{protocol}", path, protocol) for protocol in (H1, H2) for path in PATHS
)
