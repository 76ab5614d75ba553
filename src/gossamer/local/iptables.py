"""The nat-table rules `gossamer init` installs in a pod's network namespace, built without I/O.

The rule set carries the facts of linkerd2-proxy-init under Gossamer's own chain names:

- `PREROUTING -j GOSSAMER_PROXY_INIT_REDIRECT`: inbound TCP goes to the proxy's inbound port
  (4143) unless its destination port is a skip-inbound port (4190, 4191 by default: the tap and
  admin ports must stay reachable without the proxy in the way) or it comes from a skip subnet.
- `OUTPUT -j GOSSAMER_PROXY_INIT_OUTPUT`: outbound TCP goes to the proxy's outbound port
  (4140), except traffic of the proxy's own uid (else the proxy would loop into itself),
  loopback traffic, skip-outbound ports and skip subnets. One exception to the uid rule comes
  first: the proxy dialling its own pod's non-loopback address (app -> outbound proxy ->
  inbound proxy -> app, when a pod calls a service it backs) leaves through `lo` without ever
  crossing PREROUTING, so it is sent through the inbound chain explicitly.

Skip subnets bypass the proxy in both directions: inbound from them (`-s`, as linkerd-init)
and outbound to them (`-d`).

Idempotence comes from how the script is built: declaring our chains in an
`iptables-restore --noflush` script creates or flushes them, and every existing rule that
jumps to them is deleted (`-D` with the spec `iptables-save` printed) before the jump rules
are appended again, all in one atomic commit. IPv4 only: pods have no IPv6 addresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

REDIRECT_CHAIN = "GOSSAMER_PROXY_INIT_REDIRECT"
OUTPUT_CHAIN = "GOSSAMER_PROXY_INIT_OUTPUT"
OUR_CHAINS = (REDIRECT_CHAIN, OUTPUT_CHAIN)

DEFAULT_PROXY_UID = 2102
DEFAULT_INBOUND_PORT = 4143
DEFAULT_OUTBOUND_PORT = 4140
# linkerd's injector always skips the proxy's tap (4190) and admin (4191) ports inbound.
DEFAULT_SKIP_INBOUND_PORTS = "4190,4191"

# The multiport match takes at most 15 port references per rule; a range counts as two.
MULTIPORT_LIMIT = 15
_MAX_UID = 2**32 - 2  # (uid_t)-1 means "no uid"

# A rule in iptables-save output that jumps (or goes) to one of our chains.
_REFERENCE = re.compile(r"(?:^|\s)-[jg]\s+(" + "|".join(OUR_CHAINS) + r")(?:\s|$)")


class InitRulesError(ValueError):
    """A port, port range, subnet or uid that cannot go into the rules."""


@dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive range of TCP ports; a single port has `low == high`."""

    low: int
    high: int

    def __post_init__(self) -> None:
        for port in (self.low, self.high):
            if not 1 <= port <= 65535:
                raise InitRulesError(f"port {port} is outside 1-65535")
        if self.low > self.high:
            raise InitRulesError(f"port range {self.low}-{self.high} is reversed")

    @property
    def references(self) -> int:
        """How many of multiport's 15 port references this range uses."""
        return 1 if self.low == self.high else 2

    def iptables(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}:{self.high}"

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def parse_port_list(text: str) -> tuple[PortRange, ...]:
    """Parse `4190,4191,8000-8010` (spaces allowed; empty text is an empty list)."""
    ranges = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        low_text, sep, high_text = item.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if sep else low
        except ValueError:
            raise InitRulesError(f"{item!r} is not a port or a port range like 8000-8010") from None
        ranges.append(PortRange(low, high))
    return tuple(ranges)


def parse_subnets(text: str) -> tuple[ipaddress.IPv4Network, ...]:
    """Parse `10.0.0.0/8,192.168.1.7/32`; host bits are cleared as iptables would."""
    subnets = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "/" not in item:
            raise InitRulesError(f"{item!r} is not a CIDR (expected ADDRESS/PREFIX)")
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise InitRulesError(f"{item!r} is not a valid CIDR") from None
        if not isinstance(network, ipaddress.IPv4Network):
            raise InitRulesError(f"{item!r}: only IPv4 subnets are supported")
        subnets.append(network)
    return tuple(subnets)


@dataclass(frozen=True, slots=True)
class InitConfig:
    """What `gossamer init` redirects and what it leaves alone."""

    proxy_uid: int = DEFAULT_PROXY_UID
    inbound_port: int = DEFAULT_INBOUND_PORT
    outbound_port: int = DEFAULT_OUTBOUND_PORT
    skip_inbound_ports: tuple[PortRange, ...] = field(
        default_factory=lambda: parse_port_list(DEFAULT_SKIP_INBOUND_PORTS)
    )
    skip_outbound_ports: tuple[PortRange, ...] = ()
    skip_subnets: tuple[ipaddress.IPv4Network, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.proxy_uid <= _MAX_UID:
            raise InitRulesError(f"proxy uid {self.proxy_uid} must be between 1 and {_MAX_UID}")
        for name, port in (("inbound", self.inbound_port), ("outbound", self.outbound_port)):
            if not 1 <= port <= 65535:
                raise InitRulesError(f"{name} port {port} is outside 1-65535")


def _comment(text: str) -> str:
    # No timestamp in the comment (linkerd-init adds one): the same config must give the
    # same rules, so re-applying is a no-op a reader can verify with iptables-save.
    return f'-m comment --comment "gossamer-init/{text}"'


def _multiport_groups(ranges: Sequence[PortRange]) -> list[list[PortRange]]:
    groups: list[list[PortRange]] = []
    used = MULTIPORT_LIMIT  # forces a new group for the first range
    for port_range in ranges:
        if used + port_range.references > MULTIPORT_LIMIT:
            groups.append([])
            used = 0
        groups[-1].append(port_range)
        used += port_range.references
    return groups


def _skip_port_rules(chain: str, ranges: Sequence[PortRange]) -> list[str]:
    rules = []
    for group in _multiport_groups(ranges):
        ports = ",".join(r.iptables() for r in group)
        rules.append(
            f"-A {chain} -p tcp -m multiport --dports {ports} "
            f"{_comment('ignore-port-' + ports.replace(':', '-'))} -j RETURN"
        )
    return rules


def chain_rules(config: InitConfig) -> list[str]:
    """The `-A` lines of our two chains and the two jump rules, in order."""
    uid = config.proxy_uid
    inbound = [
        *_skip_port_rules(REDIRECT_CHAIN, config.skip_inbound_ports),
        *(
            f"-A {REDIRECT_CHAIN} -s {net} {_comment('ignore-subnet-' + str(net))} -j RETURN"
            for net in config.skip_subnets
        ),
        f"-A {REDIRECT_CHAIN} -p tcp {_comment('redirect-all-incoming-to-proxy-port')} "
        f"-j REDIRECT --to-ports {config.inbound_port}",
    ]
    outbound = [
        f"-A {OUTPUT_CHAIN} -o lo ! -d 127.0.0.1/32 -m owner --uid-owner {uid} "
        f"{_comment('redirect-non-loopback-local-traffic')} -j {REDIRECT_CHAIN}",
        f"-A {OUTPUT_CHAIN} -m owner --uid-owner {uid} {_comment('ignore-proxy-user-id')} "
        "-j RETURN",
        f"-A {OUTPUT_CHAIN} -o lo {_comment('ignore-loopback')} -j RETURN",
        *_skip_port_rules(OUTPUT_CHAIN, config.skip_outbound_ports),
        *(
            f"-A {OUTPUT_CHAIN} -d {net} {_comment('ignore-subnet-' + str(net))} -j RETURN"
            for net in config.skip_subnets
        ),
        f"-A {OUTPUT_CHAIN} -p tcp {_comment('redirect-all-outgoing-to-proxy-port')} "
        f"-j REDIRECT --to-ports {config.outbound_port}",
    ]
    jumps = [
        f"-A PREROUTING {_comment('install-prerouting')} -j {REDIRECT_CHAIN}",
        f"-A OUTPUT {_comment('install-output')} -j {OUTPUT_CHAIN}",
    ]
    return [*inbound, *outbound, *jumps]


def references_to_our_chains(nat_table: str) -> list[str]:
    """Rules (as `-A CHAIN ...` lines of iptables-save) in other chains that jump to ours."""
    found = []
    for line in nat_table.splitlines():
        line = line.strip()
        if not line.startswith("-A "):
            continue
        chain = line.split(maxsplit=2)[1]
        if chain not in OUR_CHAINS and _REFERENCE.search(line):
            found.append(line)
    return found


def existing_chains(nat_table: str) -> list[str]:
    """Which of our chains the iptables-save output of the nat table declares."""
    declared = {line[1:].split()[0] for line in nat_table.splitlines() if line.startswith(":")}
    return [chain for chain in OUR_CHAINS if chain in declared]


def installed_rules(nat_table: str) -> list[str]:
    """Every saved rule that belongs to `gossamer init`: in our chains or jumping to them."""
    ours = [
        line.strip()
        for line in nat_table.splitlines()
        if line.strip().split(maxsplit=2)[:2] in (["-A", REDIRECT_CHAIN], ["-A", OUTPUT_CHAIN])
    ]
    return references_to_our_chains(nat_table) + ours


def _script(lines: Iterable[str]) -> str:
    return "\n".join(["*nat", *lines, "COMMIT", ""])


def apply_script(config: InitConfig, nat_table: str = "") -> str:
    """The `iptables-restore --noflush` input that installs the rules over `nat_table`.

    `nat_table` is the current `iptables-save -t nat` output; any jump to our chains in it is
    deleted so that exactly one copy remains after the commit.
    """
    declare = [f":{chain} - [0:0]" for chain in OUR_CHAINS]
    delete = ["-D" + line[2:] for line in references_to_our_chains(nat_table)]
    return _script([*declare, *delete, *chain_rules(config)])


def remove_script(nat_table: str) -> str | None:
    """The `iptables-restore --noflush` input that removes everything `gossamer init` made.

    None when there is nothing to remove. The jumps go first, then both chains are flushed
    (the output chain refers to the redirect chain) before either is deleted.
    """
    delete = ["-D" + line[2:] for line in references_to_our_chains(nat_table)]
    chains = existing_chains(nat_table)
    if not delete and not chains:
        return None
    flush = [f"-F {chain}" for chain in chains]
    drop = [f"-X {chain}" for chain in chains]
    return _script([*delete, *flush, *drop])
