"""kube-proxy's job in the node namespace: DNAT from a Service's VIP:port to its pods.

A meshed client's proxy resolves a VIP through the destination service and dials a pod
directly; these rules serve everything else: unmeshed (`--no-mesh`) clients, and any
connection that still reaches the node with a VIP as its destination. A pod's packets to a
VIP leave through its default route to the node, whose PREROUTING chain picks one endpoint
at random (iptables' `statistic` match, as kube-proxy does) and rewrites the destination.

The answer of the chosen pod would go straight back over the bridge to the client, which
expects it from the VIP; so DNAT-ed connections are masqueraded to the node's bridge address
and return through the node, where conntrack reverses both translations. A VIP:port with no
ready endpoint has no rule and meets the node's `unreachable` default route: the client
gets an immediate error, never a packet elsewhere.

The node namespace belongs to the mesh alone, so the whole nat table is rendered here and
replaced in one `iptables-restore` commit: no stale rule can survive a change.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from gossamer.local.pod import run_checked

SERVICES_CHAIN = "GOSSAMER_SERVICES"
_SERVICE_CHAIN_PREFIX = "GOSSAMER_SVC_"


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class ServiceRoute:
    """One TCP port of one Service and the pods that serve it."""

    namespace: str
    name: str
    cluster_ip: str
    port: int
    endpoints: tuple[Endpoint, ...]

    @property
    def chain(self) -> str:
        key = f"{self.namespace}/{self.name}:{self.port}".encode()
        return _SERVICE_CHAIN_PREFIX + hashlib.sha256(key).hexdigest()[:12].upper()


def _comment(text: str) -> str:
    return f'-m comment --comment "gossamer-local/{text}"'


def _probability(index: int, count: int) -> str:
    # Rule i of n matches with 1/(n-i) of what reaches it: each endpoint gets 1/n overall.
    return f"{1.0 / (count - index):.10f}"


def render_nat_table(routes: Iterable[ServiceRoute], pod_subnet: ipaddress.IPv4Network) -> str:
    """The complete nat table of the node namespace, as `iptables-restore` input."""
    ordered = sorted(
        (route for route in routes if route.endpoints),
        key=lambda r: (r.namespace, r.name, r.port),
    )
    chains = [f":{name} ACCEPT [0:0]" for name in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    chains.append(f":{SERVICES_CHAIN} - [0:0]")
    rules = [
        f"-A PREROUTING {_comment('services')} -j {SERVICES_CHAIN}",
        f"-A OUTPUT {_comment('services')} -j {SERVICES_CHAIN}",
        f"-A POSTROUTING -s {pod_subnet} -m conntrack --ctstate DNAT "
        f"{_comment('return-through-node')} -j MASQUERADE",
    ]
    for route in ordered:
        chains.append(f":{route.chain} - [0:0]")
        rules.append(
            f"-A {SERVICES_CHAIN} -d {route.cluster_ip}/32 -p tcp -m tcp --dport {route.port} "
            f"{_comment(f'{route.namespace}/{route.name}:{route.port}')} -j {route.chain}"
        )
        endpoints = sorted(route.endpoints)
        for index, endpoint in enumerate(endpoints):
            pick = ""
            if index < len(endpoints) - 1:
                chance = _probability(index, len(endpoints))
                pick = f"-m statistic --mode random --probability {chance} "
            rules.append(
                f"-A {route.chain} -p tcp {pick}"
                f"-j DNAT --to-destination {endpoint.ip}:{endpoint.port}"
            )
    return "\n".join(["*nat", *chains, *rules, "COMMIT", ""])


def apply_nat_table(script: str) -> None:
    """Replace the nat table of the current namespace (the node's) with `script`."""
    run_checked(["iptables-restore"], input=script)
