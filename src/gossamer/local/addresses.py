"""Address plan of a sandbox node: the bridge takes the subnet's first host, pods the rest.

The addresses exist only inside the node's namespaces, so every node may use the same subnet
without clashing with another node or with the host.
"""

from __future__ import annotations

import ipaddress

DEFAULT_SUBNET = "10.77.0.0/16"


class AddressPoolExhausted(RuntimeError):
    """Every host address of the subnet is taken."""


class PodAddressPool:
    """Hands out pod addresses in order and takes back those of removed pods."""

    def __init__(self, subnet: str = DEFAULT_SUBNET) -> None:
        network = ipaddress.ip_network(subnet, strict=True)
        if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen > 29:
            raise ValueError(f"{subnet}: need an IPv4 subnet of /29 or larger")
        self.network = network
        hosts = network.hosts()
        self.gateway = next(hosts)
        self._hosts = hosts
        self._released: list[ipaddress.IPv4Address] = []
        self._taken: set[ipaddress.IPv4Address] = set()

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def allocate(self) -> ipaddress.IPv4Address:
        while self._released:
            address = self._released.pop(0)
            if address not in self._taken:
                self._taken.add(address)
                return address
        for address in self._hosts:
            if address not in self._taken:
                self._taken.add(address)
                return address
        raise AddressPoolExhausted(f"no free address left in {self.network}")

    def reserve(self, address: ipaddress.IPv4Address) -> bool:
        """Take this particular address (a pod keeping its address across a restart of local
        mode's supervisor); False if it is taken, the gateway, or outside the subnet."""
        if address not in self.network or address == self.gateway or address in self._taken:
            return False
        if address in (self.network.network_address, self.network.broadcast_address):
            return False
        self._taken.add(address)
        return True

    def release(self, address: ipaddress.IPv4Address) -> None:
        if address in self._taken:
            self._taken.discard(address)
            self._released.append(address)
            self._released.sort()
