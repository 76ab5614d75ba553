"""The sandbox address plan: gateway first, pods in order, released addresses reused."""

from __future__ import annotations

import ipaddress

import pytest

from gossamer.local.addresses import AddressPoolExhausted, PodAddressPool


def test_gateway_then_pods_in_order() -> None:
    pool = PodAddressPool("10.77.0.0/16")
    assert pool.gateway == ipaddress.IPv4Address("10.77.0.1")
    assert pool.prefixlen == 16
    assert [str(pool.allocate()) for _ in range(3)] == ["10.77.0.2", "10.77.0.3", "10.77.0.4"]


def test_released_addresses_come_back_lowest_first() -> None:
    pool = PodAddressPool("10.1.0.0/29")
    got = [pool.allocate() for _ in range(5)]  # .2 to .6: the /29 has six hosts
    with pytest.raises(AddressPoolExhausted):
        pool.allocate()
    pool.release(got[3])
    pool.release(got[1])
    pool.release(pool.gateway)  # never handed out, never taken back
    assert [pool.allocate(), pool.allocate()] == [got[1], got[3]]


@pytest.mark.parametrize("subnet", ["10.0.0.0/30", "fd00::/64", "10.0.0.1/16", "nonsense"])
def test_rejects_unusable_subnets(subnet: str) -> None:
    with pytest.raises(ValueError):
        PodAddressPool(subnet)
