"""The destination's endpoint index keeps membership incrementally and caches resolutions:
after any sequence of events it must answer exactly as an index built from scratch; and the
server wakes the streams a change concerns."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.api.gen import destination_pb2 as pb
from gossamer.api.gen import destination_pb2_grpc as pb_grpc
from gossamer.control.destination import DestinationServer, EndpointIndex, Resolution
from gossamer.control.store import MemoryStore
from gossamer.core.resources import Resource

NAMESPACES = ("a", "b")
NAMES = ("s0", "s1", "s2")
PODS = ("p0", "p1", "p2", "p3")
LABELS = ({"app": "x"}, {"app": "y"}, {"app": "x", "tier": "t"}, {"tier": "t"}, {})
SELECTORS = ({"app": "x"}, {"app": "y"}, {"tier": "t"}, {"app": "x", "tier": "t"}, {})
IPS = ("10.0.0.1", "10.0.0.2", "10.0.0.3", None)


def service(ns: str, name: str, selector: dict[str, str], target: int | str) -> Resource:
    # Virtual IPs are unique (an allocator hands them out): one per Service name.
    vip = NAMESPACES.index(ns) * len(NAMES) + NAMES.index(name) + 1
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "clusterIP": f"10.1.0.{vip}",
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": target}],
            },
        }
    )


def pod(ns: str, name: str, labels: dict[str, str], ip: str | None, running: bool) -> Resource:
    status: dict[str, Any] = {"phase": "Running" if running else "Pending", "proxy": {}}
    if ip is not None:
        status["podIP"] = ip
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "containers": [{"name": "app", "ports": [{"name": "web", "containerPort": 9000}]}]
            },
            "status": status,
        }
    )


services = st.builds(
    service,
    st.sampled_from(NAMESPACES),
    st.sampled_from(NAMES),
    st.sampled_from(SELECTORS),
    st.sampled_from([8080, "web", "missing"]),
)
pods = st.builds(
    pod,
    st.sampled_from(NAMESPACES),
    st.sampled_from(PODS),
    st.sampled_from(LABELS),
    st.sampled_from(IPS),
    st.booleans(),
)
events = st.one_of(
    st.tuples(st.just("set"), services),
    st.tuples(st.just("set"), pods),
    st.tuples(st.just("remove-service"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES)),
    st.tuples(st.just("remove-pod"), st.sampled_from(NAMESPACES), st.sampled_from(PODS)),
    st.tuples(st.just("clear-pods")),
    st.tuples(st.just("clear-services")),
)


def paths() -> list[str]:
    names = [f"{name}.{ns}.svc.cluster.local:80" for ns in NAMESPACES for name in NAMES]
    vips = [f"10.1.0.{vip}:80" for vip in range(1, len(NAMESPACES) * len(NAMES) + 1)]
    ips = [f"{ip}:9000" for ip in IPS if ip is not None]
    return [*names, *vips, *ips, f"{NAMES[0]}.{NAMESPACES[0]}:81"]


def answers(index: EndpointIndex) -> dict[str, tuple[bool, dict[Any, Any]]]:
    out = {}
    for path in paths():
        resolution: Resolution = index.resolve(path)
        out[path] = (resolution.exists, dict(resolution.endpoints))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=40))
def test_incremental_index_answers_as_one_built_from_scratch(script: list[tuple[Any, ...]]) -> None:
    index = EndpointIndex()
    state: dict[tuple[str, str, str], Resource] = {}
    for event in script:
        before = answers(index)
        if event[0] == "set":
            resource = event[1]
            key = (resource.kind, resource.namespace, resource.name)
            state[key] = resource
            if resource.kind == "Service":
                index.set_service(resource)
                touched = None
            else:
                touched = index.set_pod(resource)
        elif event[0] == "remove-service":
            state.pop(("Service", event[1], event[2]), None)
            index.remove_service((event[1], event[2]))
            touched = None
        elif event[0] == "remove-pod":
            state.pop(("Pod", event[1], event[2]), None)
            touched = index.remove_pod((event[1], event[2]))
        elif event[0] == "clear-pods":
            state = {k: v for k, v in state.items() if k[0] != "Pod"}
            index.clear_pods()
            touched = None
        else:
            state = {k: v for k, v in state.items() if k[0] != "Service"}
            index.clear_services()
            touched = None
        fresh = EndpointIndex()
        for resource in state.values():
            if resource.kind == "Pod":
                fresh.set_pod(resource)
        for resource in state.values():
            if resource.kind == "Service":
                fresh.set_service(resource)
        after = answers(index)
        assert after == answers(fresh)
        if touched is not None:
            # A pod event names every Service whose endpoints it changed.
            for ns in NAMESPACES:
                for name in NAMES:
                    path = f"{name}.{ns}.svc.cluster.local:80"
                    if before[path] != after[path]:
                        assert (ns, name) in touched, (path, touched)


# -- which streams a change wakes ----------------------------------------------------------


async def _read(stream: Any) -> Any:
    return await asyncio.wait_for(stream.read(), 5)


async def test_address_streams_wake_when_a_pod_or_a_service_takes_the_address() -> None:
    store = MemoryStore()
    server = DestinationServer(store)
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DestinationStub(channel)
            # A finished pod still holds 10.0.0.1; a new one is starting with it.
            await store.apply(pod("a", "p0", {"app": "x"}, "10.0.0.1", False))
            await store.apply(pod("a", "p1", {"app": "x"}, "10.0.0.1", False))
            by_pod_ip = stub.Get(pb.GetDestination(path="10.0.0.1:9000"))
            assert not (await _read(by_pod_ip)).no_endpoints.exists
            await store.apply(pod("a", "p1", {"app": "x"}, "10.0.0.1", True))
            update = await _read(by_pod_ip)
            assert update.add.addrs[0].metric_labels["pod"] == "p1"
            # An address nobody holds, until a Service takes it as its virtual IP.
            by_vip = stub.Get(pb.GetDestination(path="10.1.0.1:80"))
            assert not (await _read(by_vip)).no_endpoints.exists
            await store.apply(service("a", "s0", {"app": "x"}, "web"))
            update = await _read(by_vip)
            assert [(a.addr.ip, a.addr.port) for a in update.add.addrs] == [("10.0.0.1", 9000)]
            by_pod_ip.cancel()
            by_vip.cancel()
    finally:
        await server.stop(0)
        await store.close()
