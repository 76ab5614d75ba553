"""The `Pod` object a local pod is reported as: Kubernetes' shape, local mode's facts.

The app is the first container; a meshed pod has the proxy as a second one (with its
inbound and admin ports named as Linkerd names them) and the control-plane label, so the
destination service and `viz` see it as meshed. The pod's network namespace is an
annotation, for `gossamer get pods -o wide`.
"""

from __future__ import annotations

from gossamer.core.resources import (
    Container,
    ContainerPort,
    EnvVar,
    ObjectMeta,
    PodSpec,
    PodStatus,
    Resource,
    WorkloadSpec,
)
from gossamer.local.pod import ADMIN_PORT

PROXY_CONTAINER = "gossamer-proxy"
CONTROL_PLANE_LABEL = "gossamer.dev/control-plane-ns"
NETNS_ANNOTATION = "local.gossamer.dev/netns"


def pod_object(
    namespace: str,
    name: str,
    workload: str,
    spec: WorkloadSpec,
    status: PodStatus,
    *,
    proxy_python: str | None,
    netns: str | None,
) -> Resource:
    """`proxy_python`: the interpreter the proxy runs with, for a meshed pod; else None."""
    containers = [
        Container(
            name=workload,
            command=spec.command,
            env=tuple(EnvVar(key, value) for key, value in sorted(spec.env.items())),
            ports=tuple(ContainerPort(port) for port in spec.ports),
        )
    ]
    labels = dict(spec.pod_labels(workload))
    if proxy_python is not None:
        containers.append(
            Container(
                name=PROXY_CONTAINER,
                command=(proxy_python, "-m", "gossamer.proxy"),
                ports=(
                    ContainerPort(4143, name="gossamer-proxy"),
                    ContainerPort(ADMIN_PORT, name="gossamer-admin"),
                ),
            )
        )
        labels[CONTROL_PLANE_LABEL] = "gossamer"
    annotations = {NETNS_ANNOTATION: netns} if netns is not None else {}
    return Resource(
        api_version="v1",
        kind="Pod",
        metadata=ObjectMeta(name=name, namespace=namespace, labels=labels, annotations=annotations),
        spec=PodSpec(containers=tuple(containers), service_account_name=spec.service_account_name),
        status=status,
    )
