"""What `gossamer demo` deploys: the demo's workloads, as data.

One `DemoWorkload` per component. Each serving workload is reached through a Service of the
same name exposing all of its `ports` (`web:8080`; `emoji` and `voting`: gRPC 9090 and HTTP
8080); vote-bot serves nothing. Every process is `python -m gossamer.demo <component>`,
configured only by `env`, whose addresses are the Services' cluster DNS names.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from gossamer.demo import config

DEMO_NAMESPACE = "demo"
CLUSTER_DOMAIN = "cluster.local"
GRPC_PORT = 9090
HTTP_PORT = 8080


@dataclass(frozen=True)
class DemoWorkload:
    name: str
    ports: list[int]
    command: list[str]
    env: dict[str, str]
    replicas: int = 1
    namespace: str = DEMO_NAMESPACE
    # Each serving component gets its own identity, as emojivoto's do; the bot uses default.
    service_account: str = "default"
    labels: dict[str, str] = field(default_factory=dict)


def service_address(name: str, port: int, namespace: str = DEMO_NAMESPACE) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}:{port}"


def workloads(namespace: str = DEMO_NAMESPACE, python: str = sys.executable) -> list[DemoWorkload]:
    """The demo's workloads in start order: backends first, the bot last."""

    def command(component: str) -> list[str]:
        return [python, "-m", "gossamer.demo", component]

    def labels(component: str) -> dict[str, str]:
        return {"app": component, "app.kubernetes.io/part-of": "gossamer-demo"}

    backend_env = {config.GRPC_PORT.name: str(GRPC_PORT), config.HTTP_PORT.name: str(HTTP_PORT)}
    return [
        DemoWorkload(
            name="emoji",
            ports=[GRPC_PORT, HTTP_PORT],
            command=command("emoji"),
            env=dict(backend_env),
            namespace=namespace,
            service_account="emoji",
            labels=labels("emoji"),
        ),
        DemoWorkload(
            name="voting",
            ports=[GRPC_PORT, HTTP_PORT],
            command=command("voting"),
            env={**backend_env, config.VOTING_FAILURE_RATE.name: "0"},
            namespace=namespace,
            service_account="voting",
            labels=labels("voting"),
        ),
        DemoWorkload(
            name="web",
            ports=[HTTP_PORT],
            command=command("web"),
            env={
                config.WEB_PORT.name: str(HTTP_PORT),
                config.EMOJI_ADDR.name: service_address("emoji", GRPC_PORT, namespace),
                config.VOTING_ADDR.name: service_address("voting", GRPC_PORT, namespace),
            },
            namespace=namespace,
            service_account="web",
            labels=labels("web"),
        ),
        DemoWorkload(
            name="vote-bot",
            ports=[],
            command=command("vote-bot"),
            env={
                config.WEB_ADDR.name: service_address("web", HTTP_PORT, namespace),
                config.BOT_RPS.name: "5",
            },
            namespace=namespace,
            labels=labels("vote-bot"),
        ),
    ]
