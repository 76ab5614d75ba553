"""The destination service over real gRPC, fed by a store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from gossamer.api.gen import destination_pb2 as pb
from gossamer.api.gen import destination_pb2_grpc as pb_grpc
from gossamer.control.destination import DestinationServer, EndpointIndex
from gossamer.control.store import MemoryStore
from gossamer.core.resources import Resource

IDENTITY = "web.demo.serviceaccount.identity.gossamer.cluster.local"


def service(name: str = "web", ns: str = "demo", vip: str = "10.78.0.5") -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "clusterIP": vip,
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        }
    )


def pod(
    name: str, ip: str, *, app: str = "web", phase: str = "Running", meshed: bool = True
) -> Resource:
    status: dict[str, Any] = {"phase": phase, "podIP": ip}
    if meshed:
        status["proxy"] = {"ready": True}
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": app}},
            "spec": {
                "serviceAccountName": "web",
                "containers": [{"name": "app", "command": ["sleep", "1"]}],
            },
            "status": status,
        }
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[MemoryStore, pb_grpc.DestinationStub]]:
    store = MemoryStore()
    server = DestinationServer(store)
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield store, pb_grpc.DestinationStub(channel)
    finally:
        await channel.close()
        await server.stop(0)
        await store.close()


async def next_update(stream: Any) -> pb.Update:
    return await asyncio.wait_for(stream.read(), 5)


def addrs(update: pb.Update) -> set[tuple[str, int]]:
    which = update.WhichOneof("update")
    items = update.add.addrs if which == "add" else update.remove.addrs
    return {(a.addr.ip, a.addr.port) if which == "add" else (a.ip, a.port) for a in items}


async def test_service_by_name_and_by_vip_streams_changes(served: Any) -> None:
    store, stub = served
    await store.apply(service())
    await store.apply(pod("web-0", "10.77.0.2"))
    for path in ("web.demo.svc.cluster.local:80", "10.78.0.5:80"):
        stream = stub.Get(pb.GetDestination(scheme="k8s", path=path))
        first = await next_update(stream)
        assert first.WhichOneof("update") == "add"
        assert addrs(first) == {("10.77.0.2", 8080)}
        endpoint = first.add.addrs[0]
        assert endpoint.tls_identity.dns_like_identity == IDENTITY
        assert endpoint.protocol_hint.WhichOneof("protocol") == "h2"
        assert first.add.metric_labels["service"] == "web"
        assert endpoint.metric_labels["pod"] == "web-0"
        # A second replica appears; the first goes away; then none are left.
        await store.apply(pod("web-1", "10.77.0.3"))
        assert addrs(await next_update(stream)) == {("10.77.0.3", 8080)}
        await store.delete("Pod", "demo", "web-0")
        removed = await next_update(stream)
        assert removed.WhichOneof("update") == "remove"
        assert addrs(removed) == {("10.77.0.2", 8080)}
        await store.delete("Pod", "demo", "web-1")
        empty = await next_update(stream)
        assert empty.WhichOneof("update") == "no_endpoints" and empty.no_endpoints.exists
        # Put them back for the next path.
        await store.apply(pod("web-0", "10.77.0.2"))
        stream.cancel()


async def test_unknown_address_does_not_exist_and_appears_later(served: Any) -> None:
    store, stub = served
    stream = stub.Get(pb.GetDestination(path="api.demo.svc.cluster.local:80"))
    first = await next_update(stream)
    assert first.WhichOneof("update") == "no_endpoints" and not first.no_endpoints.exists
    await store.apply(service("api", vip="10.78.0.9"))
    later = await next_update(stream)
    assert later.WhichOneof("update") == "no_endpoints" and later.no_endpoints.exists
    await store.apply(pod("api-0", "10.77.0.9", app="api"))
    assert addrs(await next_update(stream)) == {("10.77.0.9", 8080)}
    stream.cancel()


async def test_pod_ip_resolves_to_that_pod_with_its_identity(served: Any) -> None:
    store, stub = served
    await store.apply(pod("web-0", "10.77.0.2"))
    await store.apply(pod("plain-0", "10.77.0.4", meshed=False))
    stream = stub.Get(pb.GetDestination(path="10.77.0.2:9999"))
    first = await next_update(stream)
    assert addrs(first) == {("10.77.0.2", 9999)}
    assert first.add.addrs[0].tls_identity.dns_like_identity == IDENTITY
    plain = stub.Get(pb.GetDestination(path="10.77.0.4:80"))
    unmeshed = await next_update(plain)
    assert unmeshed.add.addrs[0].tls_identity.dns_like_identity == ""
    assert unmeshed.add.addrs[0].protocol_hint.WhichOneof("protocol") is None
    stream.cancel()
    plain.cancel()


async def test_pending_pods_are_not_endpoints(served: Any) -> None:
    store, stub = served
    await store.apply(service())
    await store.apply(pod("web-0", "10.77.0.2", phase="Pending"))
    stream = stub.Get(pb.GetDestination(path="web.demo.svc.cluster.local:80"))
    first = await next_update(stream)
    assert first.WhichOneof("update") == "no_endpoints" and first.no_endpoints.exists
    stream.cancel()


async def test_empty_path_is_invalid_argument(served: Any) -> None:
    _, stub = served
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Get(pb.GetDestination(path="")).read()
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("web.demo.svc.cluster.local:80", True),
        ("web.demo.svc:80", True),
        ("web.demo:80", True),
        ("web.demo.svc.other.domain:80", False),
        ("web.demo.svc.cluster.local:81", False),
        ("web.demo.svc.cluster.local", False),
        ("10.78.0.5:80", True),
        ("10.78.0.6:80", False),
    ],
)
def test_index_resolves_names_and_addresses(path: str, found: bool) -> None:
    index = EndpointIndex()
    index.set_service(service())
    index.set_pod(pod("web-0", "10.77.0.2"))
    assert index.resolve(path).exists is found
