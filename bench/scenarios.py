"""What the benchmark measures, as data: one scenario per path and protocol.

A *path* is how a request gets from the load generator to the origin: direct, through one
proxy, or through two chained proxies (the mesh path: the client's sidecar, then the
server's), in plaintext or with mutual TLS between the two. Each path is measured with
HTTP/1.1 and with HTTP/2. A scenario names the pod the load generator runs in, the address
it dials, the proxy instances whose CPU and memory count for it, and (for Gossamer) the
HAProxy scenario its ratios are taken against. `tls_hop` is the server side of a TLS hop,
where the runner counts new connections (handshakes) during each run.

The routed mesh path (`gossamer-routed`) is the plaintext mesh path with the control plane:
the client dials a Service's virtual IP and its proxy routes each request (HTTPRoute rule,
P2C over two endpoints, replay buffer for retries). Its two endpoints are two addresses of
one server pod, so the path has the same processes as the unrouted `gossamer-mesh` (one
client proxy, one server proxy, one origin). Besides its HAProxy ratios it is compared with
the unrouted path of the same protocol (`unrouted_path`): the difference is what routing and
balancing cost per request.

The default mesh path (`gossamer-discovered`) is the same with nothing the Service opts into:
no annotation and no HTTPRoute, so the client's proxy serves every request on the policy's
implicit default route (route and kind `default`), with discovery, the policy watch and P2C
over two addresses of one server pod, and no replay buffer. It is what every meshed service
gets, and it too is compared with `gossamer-mesh`; measured right after it, before
`gossamer-routed`.

The Certify scenario (`kind="certify"`) is not an HTTP path: its load generator drives the
identity service's Certify over gRPC, and its "requests" are certificates issued.

The destination service at scale is not a scenario of this list: `bench/run` runs
`bench.destination_scale` after them, under the name `DESTINATION_SCALE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.testbed import (
    CERTIFY_PORT,
    CONTROL_POD,
    H1,
    PROTOCOLS,
    SERVICE_PORT,
    Endpoint,
    discovered_service,
    mtls_service,
    named,
    origin_port,
    peer_pod,
    peer_tls_hop,
    routed_route,
    routed_service,
)

HTTP = "http"
CERTIFY = "certify"
# The name `--only` matches to run the destination service's scale measurement.
DESTINATION_SCALE = "destination-scale"
# The route (name and kind) the policy service gives a Service without routes, and the proxy
# counts its requests on.
DEFAULT_ROUTE = "default"


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
    # Ratio names end in this: `mesh_mtls_rps_vs_haproxy_tls`.
    ratio_suffix: str = "vs_haproxy"
    # Where the TLS hop's server listens (pod, port): new connections there are counted.
    tls_hop: Endpoint | None = None
    kind: str = HTTP
    # Routed paths: the unrouted path routing's cost is measured against; the route (an
    # HTTPRoute, or `DEFAULT_ROUTE`) the client's proxy (the first of `proxies`) must count
    # every request on; the
    # endpoints (Pods of the store, on the origin's port) its balancer shares the requests
    # between, each of which its outbound metrics must show getting its share; and a header
    # whose rule sends to a backend without endpoints (the preflight expects 503 with it).
    unrouted_path: str | None = None
    route: str | None = None
    balanced: tuple[Endpoint, ...] = ()
    canary: tuple[str, str] | None = None

    @property
    def mtls(self) -> bool:
        return self.tls_hop is not None

    @property
    def name(self) -> str:
        return f"{self.path}/{self.protocol}"

    @property
    def baseline(self) -> str | None:
        path = self.baseline_path
        return None if path is None else f"{path}/{self.protocol}"

    @property
    def unrouted(self) -> str | None:
        path = self.unrouted_path
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

    def peer(path: str, system: str, *instances: str) -> Scenario:
        """HAProxy or nginx as sidecars: the load generator in the meshed `a` pod dials what
        it would dial through Gossamer (the origin pod, or the `b` pod, on the origin's
        port) and the `gossamer init` rules take the connection to the sidecar."""
        kind = path.removeprefix(f"{system}-")
        upstream = "origin" if kind == "single" else peer_pod(system, kind, "b", p)
        return Scenario(
            path,
            system,
            p,
            peer_pod(system, kind, "a", p),
            Endpoint(upstream, origin_port(p)),
            tuple(named(i, p) for i in instances),
            tls_hop=peer_tls_hop(system, p) if kind == "tls" else None,
        )

    return (
        Scenario("direct", "direct", p, "client", Endpoint("origin", origin_port(p))),
        peer("haproxy-single", "haproxy", "haproxy-single"),
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
        peer("nginx-single", "nginx", "nginx-single"),
        peer("haproxy-chain", "haproxy", "haproxy-chain-a", "haproxy-chain-b"),
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
        Scenario(
            "gossamer-discovered",
            "gossamer",
            p,
            named("ds-a", p),
            Endpoint(None, SERVICE_PORT, service=discovered_service(p).name),
            (named("gossamer-discovered-a", p), named("gossamer-discovered-b", p)),
            baseline_path="haproxy-chain",
            ratio_base="discovered_mesh_path",
            unrouted_path="gossamer-mesh",
            route=DEFAULT_ROUTE,
            balanced=tuple(Endpoint(pod, origin_port(p)) for pod in discovered_service(p).pods),
        ),
        Scenario(
            "gossamer-routed",
            "gossamer",
            p,
            named("rt-a", p),
            Endpoint(None, SERVICE_PORT, service=routed_service(p).name),
            (named("gossamer-routed-a", p), named("gossamer-routed-b", p)),
            baseline_path="haproxy-chain",
            ratio_base="routed_mesh_path",
            unrouted_path="gossamer-mesh",
            route=routed_route(p).name,
            balanced=tuple(Endpoint(pod, origin_port(p)) for pod in routed_service(p).pods),
            canary=routed_route(p).canary,
        ),
        peer("nginx-chain", "nginx", "nginx-chain-a", "nginx-chain-b"),
        peer("haproxy-tls", "haproxy", "haproxy-tls-a", "haproxy-tls-b"),
        Scenario(
            "gossamer-mtls",
            "gossamer",
            p,
            named("mt-a", p),
            # The service's virtual IP: discovery and identity come from the control plane.
            Endpoint(None, SERVICE_PORT, service=mtls_service(p).name),
            (named("gossamer-mtls-a", p), named("gossamer-mtls-b", p)),
            baseline_path="haproxy-tls",
            ratio_base="mesh_mtls",
            ratio_suffix="vs_haproxy_tls",
            tls_hop=Endpoint(named("mt-b", p), origin_port(p)),
        ),
        peer("nginx-tls", "nginx", "nginx-tls-a", "nginx-tls-b"),
    )


# Certificates issued per second by `gossamer controller identity` (certify-identity in the
# control pod), driven over gRPC from the same pod.
CERTIFY_SCENARIO = Scenario(
    "certify",
    "identity",
    "grpc",
    CONTROL_POD,
    Endpoint(None, CERTIFY_PORT),
    ("certify-identity",),
    kind=CERTIFY,
)

SCENARIOS: tuple[Scenario, ...] = (
    *(s for p in PROTOCOLS for s in _paths(p)),
    CERTIFY_SCENARIO,
)
