"""The proxy's destination client against the real destination service, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gossamer.control.destination import DestinationServer
from gossamer.control.store import MemoryStore
from gossamer.core.resources import Resource
from gossamer.proxy.control.destination import DestinationClient, DestinationWatch

VIP = ("10.78.0.5", 80)


def service() -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "clusterIP": VIP[0],
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        }
    )


def pod(name: str, ip: str) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": "web"}},
            "spec": {
                "serviceAccountName": "web",
                "containers": [{"name": "app", "command": ["x"]}],
            },
            "status": {"phase": "Running", "podIP": ip, "proxy": {"ready": True}},
        }
    )


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def control_plane() -> AsyncIterator[tuple[MemoryStore, DestinationServer, int]]:
    store = MemoryStore()
    await store.apply(service())
    await store.apply(pod("web-0", "10.77.0.2"))
    server = DestinationServer(store)
    port = await server.start("127.0.0.1", 0)
    yield store, server, port
    await server.stop(0)
    await store.close()


async def test_resolves_a_virtual_ip_and_follows_changes(control_plane: Any) -> None:
    store, _, port = control_plane
    client = DestinationClient(("127.0.0.1", port))
    try:
        watch = await client.resolve(VIP)
        assert watch is not None and watch.exists
        assert set(watch.endpoints) == {("10.77.0.2", 8080)}
        meta = watch.endpoints[("10.77.0.2", 8080)]
        assert meta.identity == "web.demo.serviceaccount.identity.gossamer.cluster.local"
        assert meta.h2 and not meta.opaque
        await store.apply(pod("web-1", "10.77.0.3"))
        await eventually(lambda: len(watch.endpoints) == 2)
        picks = {watch.pick()[0] for _ in range(4)}  # type: ignore[index]
        assert picks == {("10.77.0.2", 8080), ("10.77.0.3", 8080)}
        # The second lookup is answered synchronously from the watch.
        assert client.lookup_now(VIP) is watch
    finally:
        client.close()


async def test_unknown_address_is_answered_as_not_a_service(control_plane: Any) -> None:
    _, _, port = control_plane
    client = DestinationClient(("127.0.0.1", port))
    try:
        watch = await client.resolve(("192.0.2.1", 443))
        assert watch is not None and watch.exists is False and watch.pick() is None
    finally:
        client.close()


async def test_no_control_plane_gives_up_in_bounded_time() -> None:
    client = DestinationClient(("127.0.0.1", 1), first_answer_timeout=0.3)
    try:
        started = asyncio.get_running_loop().time()
        assert await client.resolve(VIP) is None
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        client.close()


async def test_keeps_last_known_endpoints_while_the_control_plane_is_down(
    control_plane: Any,
) -> None:
    store, server, port = control_plane
    client = DestinationClient(("127.0.0.1", port), backoff=(0.05, 0.2))
    try:
        watch: DestinationWatch | None = await client.resolve(VIP)
        assert watch is not None
        await server.stop(0)
        await eventually(lambda: watch.stale)
        assert set(watch.endpoints) == {("10.77.0.2", 8080)}
        assert b"destination_watch_stale 1" in _render(client)
        # A new control plane on the same port, with web-0 replaced by web-1 meanwhile: the
        # watch recovers, and the new stream's first answer replaces what it knew.
        await store.apply(pod("web-1", "10.77.0.3"))
        await store.delete("Pod", "demo", "web-0")
        again = DestinationServer(store)
        await again.start("127.0.0.1", port)
        try:
            await eventually(
                lambda: not watch.stale and set(watch.endpoints) == {("10.77.0.3", 8080)}
            )
            assert client.reconnects >= 1
        finally:
            await again.stop(0)
    finally:
        client.close()


def _render(client: DestinationClient) -> bytes:
    from gossamer.proxy.exposition import render

    return render([client])
