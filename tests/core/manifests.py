"""Valid example objects of every kind, as dicts, and a helper to break them at one path."""

from __future__ import annotations

import copy
from typing import Any

DELETE = object()

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
    "spec": {
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "appProtocol": "http"},
            {"name": "grpc", "port": 9090, "targetPort": "grpc", "appProtocol": "grpc"},
        ],
    },
}

SERVICE_ACCOUNT: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ServiceAccount",
    "metadata": {"name": "web", "namespace": "demo"},
}

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-7c9f4",
        "namespace": "demo",
        "labels": {"app": "web", "gossamer.dev/workload": "web"},
    },
    "spec": {
        "serviceAccountName": "web",
        "containers": [
            {
                "name": "app",
                "command": ["python3", "-m", "http.server"],
                "env": [{"name": "PORT", "value": "8080"}],
                "ports": [{"name": "http", "containerPort": 8080}],
            }
        ],
    },
    "status": {
        "phase": "Running",
        "podIP": "10.77.0.5",
        "startTime": "2024-05-01T12:00:00Z",
        "restarts": 1,
        "ready": True,
        "proxy": {"ready": True},
        "pids": {"app": 4242, "proxy": 4241},
    },
}

WORKLOAD: dict[str, Any] = {
    "apiVersion": "local.gossamer.dev/v1alpha1",
    "kind": "Workload",
    "metadata": {"name": "web", "namespace": "demo"},
    "spec": {
        "replicas": 2,
        "command": ["python3", "-m", "http.server", "8080"],
        "env": {"GREETING": "hello"},
        "ports": [8080, 9090],
        "serviceAccountName": "web",
        "mesh": True,
    },
}


def mutated(
    document: dict[str, Any], path: str | tuple[str | int, ...], value: object
) -> dict[str, Any]:
    """A deep copy of `document` with the field at `path` set (or deleted if `value` is
    DELETE). A dotted path writes list indexes as numbers (`spec.ports.1.port`); keys with
    dots in them need the tuple form (`("metadata", "labels", "example.com/x")`)."""
    parts = (
        path
        if isinstance(path, tuple)
        else tuple(int(part) if part.isdigit() else part for part in path.split("."))
    )
    result = copy.deepcopy(document)
    *parents, last = parts
    node: Any = result
    for part in parents:
        if isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node[part]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return result
