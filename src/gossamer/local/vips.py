"""Service virtual IPs: one address per Service from a CIDR apart from the pod subnet.

A VIP is never configured on any interface. A meshed client's proxy resolves it through the
destination service; for unmeshed clients the node namespace's DNAT rules (`servicerules`)
translate it to a pod address. Pure: the supervisor feeds the addresses Services already
hold (`reserve`) and asks for new ones (`allocate`).
"""

from __future__ import annotations

import ipaddress

DEFAULT_SERVICE_CIDR = "10.78.0.0/16"


class ServiceCIDRExhausted(RuntimeError):
    """Every address of the service CIDR is held by a Service."""


class ServiceIPAllocator:
    """Hands out the lowest free host address of the CIDR; remembers who holds which."""

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        network = ipaddress.ip_network(cidr, strict=True)
        if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen > 30:
            raise ValueError(f"{cidr}: need an IPv4 CIDR of /30 or larger")
        self.network = network
        self._holders: dict[ipaddress.IPv4Address, str] = {}
        self._by_holder: dict[str, ipaddress.IPv4Address] = {}

    def holders(self) -> set[str]:
        return set(self._by_holder)

    def holder(self, address: ipaddress.IPv4Address) -> str | None:
        return self._holders.get(address)

    def address_of(self, holder: str) -> ipaddress.IPv4Address | None:
        return self._by_holder.get(holder)

    def reserve(self, holder: str, address: str) -> bool:
        """Record that `holder` (`namespace/name`) has `address`; False if it cannot:
        outside the CIDR, not a host address, or held by someone else."""
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        if ip not in self.network or ip in (
            self.network.network_address,
            self.network.broadcast_address,
        ):
            return False
        current = self._holders.get(ip)
        if current is not None and current != holder:
            return False
        self.release(holder)
        self._holders[ip] = holder
        self._by_holder[holder] = ip
        return True

    def allocate(self, holder: str) -> ipaddress.IPv4Address:
        """The holder's address: the one it had, else the lowest free one."""
        held = self._by_holder.get(holder)
        if held is not None:
            return held
        for ip in self.network.hosts():
            if ip not in self._holders:
                self._holders[ip] = holder
                self._by_holder[holder] = ip
                return ip
        raise ServiceCIDRExhausted(f"no free service address left in {self.network}")

    def release(self, holder: str) -> None:
        ip = self._by_holder.pop(holder, None)
        if ip is not None:
            del self._holders[ip]
