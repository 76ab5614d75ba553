"""A fake local mesh for viz and CLI tests: store objects and a state directory.

`demo_resources()` is a small mesh in namespace `demo` (workloads web, emoji, vote-bot, idle
and an unmeshed legacy; Services web and emoji with cluster IPs; one pod each, plus a failed
web pod that must not count). `fake_pods()` are the proxies' canned metrics for it: vote-bot
sends 10 rps to web of which 1 fails, web sends 4 rps to emoji, idle's counters stand still.
`fill_store` writes them (with their status) into a real SQLiteStore.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource
from tests.viz.support import FakePod, Series, http_series, tcp_series

NS = "demo"
WEB_VIP, EMOJI_VIP = "10.96.0.10", "10.96.0.11"
POD_IPS = {"web-0": "10.1.0.5", "emoji-0": "10.1.0.6", "vote-bot-0": "10.1.0.7"}
WEB_AUTHORITY = "web.demo.svc.cluster.local:8080"
EMOJI_AUTHORITY = "emoji.demo.svc.cluster.local:9090"


def workload(name: str, *, mesh: bool = True, namespace: str = NS) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "local.gossamer.dev/v1alpha1",
            "kind": "Workload",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"command": ["true"], "mesh": mesh},
        }
    )


def service(
    name: str, port: int, cluster_ip: str, namespace: str = NS, *, selector: bool = True
) -> Resource:
    spec: dict[str, Any] = {"clusterIP": cluster_ip, "ports": [{"port": port}]}
    if selector:
        spec["selector"] = {"app": name}
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def pod(
    name: str,
    workload_name: str,
    *,
    ip: str | None,
    meshed: bool = True,
    phase: str = "Running",
    ready: bool = True,
    namespace: str = NS,
) -> Resource:
    status: dict[str, Any] = {"phase": phase, "ready": ready}
    if ip is not None:
        status["podIP"] = ip
    if meshed:
        status["proxy"] = {"ready": ready}
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app": workload_name, "gossamer.dev/workload": workload_name},
            },
            "spec": {"containers": [{"name": "app", "command": ["true"]}]},
            "status": status,
        }
    )


def demo_resources() -> list[Resource]:
    return [
        workload("web"),
        workload("emoji"),
        workload("vote-bot"),
        workload("idle"),
        workload("legacy", mesh=False),
        service("web", 8080, WEB_VIP),
        service("emoji", 9090, EMOJI_VIP),
        pod("web-0", "web", ip=POD_IPS["web-0"]),
        pod("web-old", "web", ip=None, phase="Failed", ready=False),
        pod("emoji-0", "emoji", ip=POD_IPS["emoji-0"]),
        pod("vote-bot-0", "vote-bot", ip=POD_IPS["vote-bot-0"]),
        pod("idle-0", "idle", ip="10.1.0.8"),
        pod("legacy-0", "legacy", ip="10.1.0.9", meshed=False),
    ]


def fake_pods() -> list[FakePod]:
    web_in = http_series(
        "inbound", WEB_AUTHORITY, rps=10, failures=1, latency_ms=7, target_addr="10.1.0.5:8080"
    )
    web_out = http_series(
        "outbound", EMOJI_AUTHORITY, rps=4, latency_ms=3, target_addr=f"{EMOJI_VIP}:9090"
    )
    emoji_in = http_series(
        "inbound", EMOJI_AUTHORITY, rps=4, latency_ms=3, target_addr="10.1.0.6:9090"
    )
    bot_out = http_series(
        "outbound", WEB_AUTHORITY, rps=10, failures=1, latency_ms=7, target_addr=f"{WEB_VIP}:8080"
    )
    idle = [Series("request_total", {"direction": "inbound", "authority": "idle"}, 0)]
    return [
        FakePod(
            NS,
            "web-0",
            "web",
            [
                *web_in,
                *web_out,
                tcp_series("inbound", "src", 3, "10.1.0.5"),
                tcp_series("outbound", "dst", 1, EMOJI_VIP),
            ],
        ),
        FakePod(NS, "emoji-0", "emoji", [*emoji_in, tcp_series("inbound", "src", 1, "10.1.0.6")]),
        FakePod(
            NS, "vote-bot-0", "vote-bot", [*bot_out, tcp_series("outbound", "dst", 2, WEB_VIP)]
        ),
        FakePod(NS, "idle-0", "idle", idle),
    ]


async def fill_store(path: Path, resources: Iterable[Resource]) -> None:
    store = SQLiteStore(path)
    try:
        for resource in resources:
            created = await store.create(resource)
            if resource.status is not None:
                await store.update_status(
                    Resource(
                        api_version=created.api_version,
                        kind=created.kind,
                        metadata=created.metadata,
                        spec=created.spec,
                        status=resource.status,
                    )
                )
    finally:
        await store.close()
