"""The outbound policy service over real gRPC, fed by a store; and `gossamer controller policy`
as its own process over a SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from gossamer.api.gen import policy_pb2 as pb
from gossamer.api.gen import policy_pb2_grpc as pb_grpc
from gossamer.control.policy import OutboundPolicyServer, client_namespace
from gossamer.control.store import Invalid, MemoryStore, SQLiteStore
from gossamer.control.store.changelog import ChangeLogStore
from gossamer.core.resources import Resource
from tests.control.test_policy_translate import exact, parent, prefix, route, service, to

Served = tuple[MemoryStore, pb_grpc.OutboundPoliciesStub]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    store = MemoryStore()
    server = OutboundPolicyServer(store)
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield store, pb_grpc.OutboundPoliciesStub(channel)
    finally:
        await channel.close()
        await server.stop(0)
        await store.close()


def watch(stub: pb_grpc.OutboundPoliciesStub, target: str, ns: str | None = None) -> Any:
    token = json.dumps({"ns": ns, "pod": "client-0"}) if ns else ""
    return stub.Watch(pb.OutboundPolicyRequest(target=target, context_token=token))


async def next_policy(stream: Any, timeout: float = 5) -> pb.OutboundPolicy:
    return await asyncio.wait_for(stream.read(), timeout)


async def until(
    stream: Any, done: Callable[[pb.OutboundPolicy], bool], limit: int = 50
) -> tuple[pb.OutboundPolicy, int]:
    """Read policies until one satisfies `done`; returns it and how many were read."""
    for count in range(1, limit + 1):
        policy = await next_policy(stream)
        if done(policy):
            return policy, count
    raise AssertionError(f"no satisfying policy in {limit} messages")


def route_names(policy: pb.OutboundPolicy) -> list[str]:
    return [r.name for r in policy.routes]


async def test_first_answer_then_updates_on_route_changes(served: Served) -> None:
    store, stub = served
    await store.apply(service())
    stream = watch(stub, "web.demo.svc.cluster.local:80")
    first = await next_policy(stream)
    assert (first.exists, first.service, first.namespace, first.port) == (True, "web", "demo", 80)
    assert route_names(first) == ["default"]
    # A route appears...
    await store.apply(
        route("split", [{"matches": [prefix("/api")], "backendRefs": to(("web-v2", 9), "web")}])
    )
    added = await next_policy(stream)
    assert route_names(added) == ["split", "default"]
    assert [(b.authority, b.weight) for b in added.routes[0].rules[0].backends] == [
        ("web-v2.demo.svc.cluster.local:80", 9),
        ("web.demo.svc.cluster.local:80", 1),
    ]
    # ...changes...
    await store.apply(
        route("split", [{"matches": [prefix("/api")], "backendRefs": to(("web-v2", 0), "web")}])
    )
    changed = await next_policy(stream)
    assert changed.routes[0].rules[0].backends[0].weight == 0
    # ...and goes.
    await store.delete("HTTPRoute", "demo", "split")
    assert route_names(await next_policy(stream)) == ["default"]
    stream.cancel()


async def test_a_services_annotations_change_the_policy(served: Served) -> None:
    store, stub = served
    await store.apply(service())
    await store.apply(route("r", [{"matches": [exact("/x")]}]))
    stream = watch(stub, "10.78.0.5:80")
    first = await next_policy(stream)
    assert not first.routes[0].rules[0].HasField("retry")
    await store.apply(
        service(
            annotations={
                "retry.gossamer.dev/http": "gateway-error",
                "timeout.gossamer.dev/request": "3s",
                "balancer.gossamer.dev/failure-accrual": "consecutive",
            }
        )
    )
    updated = await next_policy(stream)
    for translated in updated.routes:
        rule = translated.rules[0]
        assert [(s.start, s.end) for s in rule.retry.http_statuses] == [(502, 504)]
        assert rule.timeouts.request_ms == 3_000
    assert updated.failure_accrual.consecutive_failures == 7
    # A route's own annotations override the Service's for that route only.
    await store.apply(
        route("r", [{"matches": [exact("/x")]}], annotations={"retry.gossamer.dev/http": "503"})
    )
    overridden = await next_policy(stream)
    assert [(s.start, s.end) for s in overridden.routes[0].rules[0].retry.http_statuses] == [
        (503, 503)
    ]
    assert [(s.start, s.end) for s in overridden.routes[1].rules[0].retry.http_statuses] == [
        (502, 504)
    ]
    stream.cancel()


async def test_parent_ports_over_grpc(served: Served) -> None:
    store, stub = served
    ports = ({"name": "http", "port": 80}, {"name": "admin", "port": 9990})
    await store.apply(service(ports=ports))
    await store.apply(
        route("admin-only", [{"matches": [prefix("/a")]}], parents=[parent(port=9990)])
    )
    on_80 = watch(stub, "web.demo:80")
    on_admin = watch(stub, "web.demo:9990")
    assert route_names(await next_policy(on_80)) == ["default"]
    assert route_names(await next_policy(on_admin)) == ["admin-only", "default"]
    # Moving the route to port 80 updates both streams.
    await store.apply(route("admin-only", [{"matches": [prefix("/a")]}], parents=[parent(port=80)]))
    assert route_names(await next_policy(on_80)) == ["admin-only", "default"]
    assert route_names(await next_policy(on_admin)) == ["default"]
    on_80.cancel()
    on_admin.cancel()


async def test_route_precedence_and_header_modifiers_over_grpc(served: Served) -> None:
    store, stub = served
    await store.apply(service())
    await store.apply(route("catch-all", [{"matches": [prefix("/")], "backendRefs": to("v1")}]))
    await store.apply(
        route(
            "canary",
            [
                {
                    "matches": [prefix("/", headers=[{"name": "x-canary", "value": "1"}])],
                    "filters": [
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {"set": [{"name": "x-canary", "value": "y"}]},
                        }
                    ],
                    "backendRefs": to("v2"),
                }
            ],
        )
    )
    policy = await next_policy(watch(stub, "web.demo:80"))
    # Same path, more headers: the canary route first, though it is not older.
    assert route_names(policy) == ["canary", "catch-all", "default"]
    modifier = policy.routes[0].rules[0].response_header_modifiers[0]
    assert [(h.name, h.value) for h in modifier.set] == [("x-canary", "y")]


async def test_unknown_targets_do_not_exist_until_their_service_appears(served: Served) -> None:
    store, stub = served
    by_name = watch(stub, "api.demo.svc.cluster.local:80")
    by_ip = watch(stub, "10.78.0.9:80")
    assert (await next_policy(by_name)).exists is False
    assert (await next_policy(by_ip)).exists is False
    await store.apply(service("api", vip="10.78.0.9"))
    assert (await next_policy(by_name)).service == "api"
    assert (await next_policy(by_ip)).service == "api"
    # A port the Service lacks names nothing.
    wrong_port = watch(stub, "api.demo:81")
    assert (await next_policy(wrong_port)).exists is False
    await store.delete("Service", "demo", "api")
    assert (await next_policy(by_name)).exists is False
    for stream in (by_name, by_ip, wrong_port):
        stream.cancel()


async def test_consumer_routes_follow_the_context_token(served: Served) -> None:
    store, stub = served
    await store.apply(service())
    await store.apply(route("producer", [{"matches": [prefix("/p")]}]))
    await store.apply(
        route(
            "shop-view",
            [{"matches": [prefix("/s")]}],
            ns="shop",
            parents=[parent(namespace="demo")],
        )
    )
    shop = await next_policy(watch(stub, "web.demo:80", ns="shop"))
    anyone = await next_policy(watch(stub, "web.demo:80", ns="blog"))
    unnamed = await next_policy(watch(stub, "web.demo:80"))
    assert route_names(shop) == ["shop-view", "default"]
    assert route_names(anyone) == ["producer", "default"] == route_names(unnamed)


async def test_unrelated_changes_send_nothing_and_bursts_are_coalesced(served: Served) -> None:
    store, stub = served
    await store.apply(service())
    await store.apply(service("api", vip="10.78.0.9"))
    stream = watch(stub, "web.demo:80")
    await next_policy(stream)
    # Routes of another Service, and that Service itself, do not concern this stream.
    await store.apply(route("other", [{"matches": [prefix("/o")]}], parents=[parent("api")]))
    await store.apply(
        service("api", vip="10.78.0.9", annotations={"retry.gossamer.dev/limit": "2"})
    )
    # Then a burst of changes that do: 30 writes, fewer answers, the last one current.
    for weight in range(30):
        await store.apply(
            route("burst", [{"matches": [prefix("/b")], "backendRefs": to(("v2", weight))}])
        )
    last, count = await until(stream, lambda p: p.routes[0].rules[0].backends[0].weight == 29)
    assert route_names(last) == ["burst", "default"]
    assert count < 30
    stream.cancel()


async def test_a_target_that_is_not_host_port_is_invalid(served: Served) -> None:
    _, stub = served
    for target in ("", "web.demo", "web.demo:http"):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await next_policy(watch(stub, target))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_first_answer_waits_for_the_store_to_sync() -> None:
    store = MemoryStore()
    await store.apply(service())
    await store.apply(route("r", [{"matches": [prefix("/x")]}]))
    server = OutboundPolicyServer(store)
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            started = time.monotonic()
            policy = await next_policy(watch(pb_grpc.OutboundPoliciesStub(channel), "web.demo:80"))
            assert route_names(policy) == ["r", "default"]  # complete, not a partial index
            assert time.monotonic() - started < 1.0
    finally:
        await server.stop(0)
        await store.close()


def test_context_tokens() -> None:
    assert client_namespace('{"ns": "shop", "pod": "a"}') == "shop"
    for token in ("", "{", "[]", '{"ns": 3}', '{"ns": ""}', '{"pod": "a"}'):
        assert client_namespace(token) is None


def _annotated(resource: Resource, annotations: dict[str, str]) -> Resource:
    """The resource with other annotations, built in code (not validated yet)."""
    return replace(resource, metadata=replace(resource.metadata, annotations=annotations))


async def test_a_bad_annotation_is_refused_by_the_store(store: ChangeLogStore) -> None:
    with pytest.raises(Invalid) as raised:
        await store.apply(_annotated(service(), {"retry.gossamer.dev/grpc": "flaky"}))
    assert str(raised.value).startswith(
        "Service demo/web: metadata.annotations[\"retry.gossamer.dev/grpc\"]: 'flaky' is not "
        "a gRPC status name"
    )
    bad_route = _annotated(route("r", [{}]), {"retry.gossamer.dev/grpc": "unavailable"})
    with pytest.raises(Invalid, match="not valid on kind HTTPRoute"):
        await store.apply(bad_route)
    assert len(await store.list("Service")) == len(await store.list("HTTPRoute")) == 0
    fine = _annotated(service(), {"retry.gossamer.dev/grpc": "unavailable"})
    assert (await store.apply(fine)).name == "web"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_controller_policy_command_serves_a_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    await store.apply(service())
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gossamer",
            "controller",
            "policy",
            "--store",
            str(path),
            "--addr",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 15)
            stream = watch(pb_grpc.OutboundPoliciesStub(channel), "web.demo.svc.cluster.local:80")
            assert route_names(await next_policy(stream, 15)) == ["default"]
            # A write by another process reaches the stream.
            await store.apply(route("r", [{"matches": [prefix("/x")]}]))
            assert route_names(await next_policy(stream)) == ["r", "default"]
            stream.cancel()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await store.close()
    assert process.stderr is not None
    assert b"policy service listening on 127.0.0.1" in process.stderr.read()


async def test_resources_parse_from_their_yaml_names() -> None:
    # `gossamer get httproutes` and friends find the kinds by their plural names.
    from gossamer.core.resources import BUILTIN_KINDS

    assert BUILTIN_KINDS.resolve("httproutes").kind == "HTTPRoute"
    assert BUILTIN_KINDS.resolve("GRPCRoute").kind == "GRPCRoute"
    assert Resource.from_dict(route("r", [{}]).to_dict()).kind == "HTTPRoute"
