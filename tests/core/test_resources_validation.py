"""Every validation error of every kind names the object and the exact field path."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.core.resources import Resource, ResourceError, UnknownKindError, ValidationError
from tests.core.manifests import DELETE, POD, SERVICE, SERVICE_ACCOUNT, WORKLOAD, mutated

PORT_RANGE = "must be an integer from 1 to 65535"

# (base document, path to break, value (or DELETE), start of the expected message)
CASES: list[tuple[dict[str, Any], str | tuple[str | int, ...], object, str]] = [
    # Service: ports
    (
        SERVICE,
        "spec.ports.1.port",
        70000,
        "Service demo/web: spec.ports[1].port: must be an integer from 1 to 65535 (got 70000)",
    ),
    (
        SERVICE,
        "spec.ports.0.port",
        0,
        "Service demo/web: spec.ports[0].port: must be an integer from 1 to 65535 (got 0)",
    ),
    (
        SERVICE,
        "spec.ports.0.port",
        "80",
        (
            "Service demo/web: spec.ports[0].port: must be an integer from 1 to 65535 (got string "
            '"80")'
        ),
    ),
    (
        SERVICE,
        "spec.ports.0.port",
        True,
        "Service demo/web: spec.ports[0].port: must be an integer from 1 to 65535 (got true)",
    ),
    (
        SERVICE,
        "spec.ports.0.port",
        80.5,
        "Service demo/web: spec.ports[0].port: must be an integer from 1 to 65535 (got 80.5)",
    ),
    (
        SERVICE,
        "spec.ports.0.port",
        DELETE,
        "Service demo/web: spec.ports[0].port: required",
    ),
    (
        SERVICE,
        "spec.ports.0.targetPort",
        0,
        (
            "Service demo/web: spec.ports[0].targetPort: must be an integer from 1 to 65535 or a "
            "port name (got 0)"
        ),
    ),
    (
        SERVICE,
        "spec.ports.0.targetPort",
        "Http",
        "Service demo/web: spec.ports[0].targetPort: must be a port name (IANA service name)",
    ),
    (
        SERVICE,
        "spec.ports.0.targetPort",
        "8080",
        "Service demo/web: spec.ports[0].targetPort: must be a port name",
    ),
    (
        SERVICE,
        "spec.ports.0.targetPort",
        "a-very-long-port-name",
        "Service demo/web: spec.ports[0].targetPort: must be a port name",
    ),
    (
        SERVICE,
        "spec.ports.0.targetPort",
        [80],
        (
            "Service demo/web: spec.ports[0].targetPort: must be an integer from 1 to 65535 or a "
            "port name (got a list)"
        ),
    ),
    (
        SERVICE,
        "spec.ports.0.protocol",
        "HTTP",
        (
            "Service demo/web: spec.ports[0].protocol: must be one of TCP, UDP, SCTP (got string "
            '"HTTP")'
        ),
    ),
    (
        SERVICE,
        "spec.ports.0.appProtocol",
        "",
        "Service demo/web: spec.ports[0].appProtocol: must not be empty",
    ),
    (
        SERVICE,
        "spec.ports.0.appProtocol",
        2,
        "Service demo/web: spec.ports[0].appProtocol: must be a string (got 2; quote it",
    ),
    (
        SERVICE,
        "spec.ports.0.name",
        "HTTP",
        "Service demo/web: spec.ports[0].name: must be a DNS-1123 label",
    ),
    (
        SERVICE,
        "spec.ports.1.name",
        "http",
        "Service demo/web: spec.ports[1].name: duplicate port name 'http' (also ports[0])",
    ),
    (
        SERVICE,
        "spec.ports.1.name",
        DELETE,
        "Service demo/web: spec.ports[1].name: required when a Service has several ports",
    ),
    (
        SERVICE,
        "spec.ports.1.port",
        80,
        "Service demo/web: spec.ports[1].port: duplicate port 80/TCP (also ports[0])",
    ),
    (
        SERVICE,
        "spec.ports.0.prot",
        80,
        'Service demo/web: spec.ports[0].prot: unknown field (did you mean "port"?)',
    ),
    (
        SERVICE,
        "spec.ports.0.nodePort",
        30000,
        (
            "Service demo/web: spec.ports[0].nodePort: unknown field; known fields here: "
            "appProtocol, name, port, protocol, targetPort"
        ),
    ),
    (
        SERVICE,
        "spec.ports.0",
        80,
        "Service demo/web: spec.ports[0]: must be a mapping (got 80)",
    ),
    (
        SERVICE,
        "spec.ports",
        [],
        "Service demo/web: spec.ports: must list at least one port",
    ),
    (
        SERVICE,
        "spec.ports",
        {"port": 80},
        "Service demo/web: spec.ports: must be a list (got a mapping)",
    ),
    # Service: the rest of the spec
    (
        SERVICE,
        "spec.selector",
        ["app"],
        "Service demo/web: spec.selector: must be a mapping (got a list)",
    ),
    (
        SERVICE,
        "spec.selector.app",
        "not valid!",
        "Service demo/web: spec.selector.app: must be a label value",
    ),
    (
        SERVICE,
        ("spec", "selector", "bad key!"),
        "x",
        'Service demo/web: spec.selector["bad key!"]: key must be a qualified name',
    ),
    (
        SERVICE,
        "spec.clusterIP",
        "10.0.0.300",
        (
            "Service demo/web: spec.clusterIP: must be an IPv4 or IPv6 address, or None for a "
            "headless Service"
        ),
    ),
    (
        SERVICE,
        "spec.type",
        "Internal",
        (
            "Service demo/web: spec.type: must be one of ClusterIP, NodePort, LoadBalancer, "
            "ExternalName"
        ),
    ),
    (
        SERVICE,
        "spec.portz",
        [],
        'Service demo/web: spec.portz: unknown field (did you mean "ports"?)',
    ),
    (
        SERVICE,
        "spec",
        DELETE,
        "Service demo/web: spec: required",
    ),
    (
        SERVICE,
        "spec",
        "ports",
        'Service demo/web: spec: must be a mapping (got string "ports")',
    ),
    (
        SERVICE,
        "status",
        {"loadBalancer": {}},
        "Service demo/web: status.loadBalancer: unknown field; known fields here: none",
    ),
    # Metadata (shared by every kind)
    (
        SERVICE,
        "metadata.name",
        "Web",
        (
            "Service demo/Web: metadata.name: must be a DNS-1035 label: at most 63 lowercase "
            "letters, digits and '-', starting with a letter and ending with a letter or digit "
            '(got string "Web")'
        ),
    ),
    (
        SERVICE,
        "metadata.name",
        "1web",
        "Service demo/1web: metadata.name: must be a DNS-1035 label",
    ),
    (
        SERVICE,
        "metadata.name",
        "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
        (
            "Service demo/wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww: "
            "metadata.name: must be a DNS-1035 label"
        ),
    ),
    (
        SERVICE,
        "metadata.name",
        DELETE,
        "Service (unnamed): metadata.name: required",
    ),
    (
        SERVICE,
        "metadata.name",
        7,
        "Service (unnamed): metadata.name: must be a string (got 7; quote it",
    ),
    (
        SERVICE,
        "metadata.namespace",
        "Demo",
        "Service Demo/web: metadata.namespace: must be a DNS-1123 label",
    ),
    (
        SERVICE,
        "metadata.namespace",
        "a.b",
        "Service a.b/web: metadata.namespace: must be a DNS-1123 label",
    ),
    (
        SERVICE,
        "metadata.labels.app",
        1,
        (
            "Service demo/web: metadata.labels.app: must be a string (got 1; quote it to make it "
            "a string)"
        ),
    ),
    (
        SERVICE,
        "metadata.labels.app",
        "-web",
        "Service demo/web: metadata.labels.app: must be a label value",
    ),
    (
        SERVICE,
        ("metadata", "labels", "example.com/"),
        "x",
        'Service demo/web: metadata.labels["example.com/"]: key must be a qualified name',
    ),
    (
        SERVICE,
        ("metadata", "labels", "Bad_Prefix/x"),
        "x",
        (
            'Service demo/web: metadata.labels["Bad_Prefix/x"]: key must have a DNS-1123 '
            "subdomain before"
        ),
    ),
    (
        SERVICE,
        ("metadata", "annotations", "retry.gossamer.dev/http"),
        5,
        (
            'Service demo/web: metadata.annotations["retry.gossamer.dev/http"]: must be a string '
            "(got 5"
        ),
    ),
    (
        SERVICE,
        "metadata.creationTimestamp",
        "yesterday",
        "Service demo/web: metadata.creationTimestamp: must be an RFC 3339 time",
    ),
    (
        SERVICE,
        "metadata.creationTimestamp",
        "2024-13-01T00:00:00Z",
        "Service demo/web: metadata.creationTimestamp: must be an RFC 3339 time",
    ),
    (
        SERVICE,
        "metadata.resourceVersion",
        5,
        "Service demo/web: metadata.resourceVersion: must be a string (got 5",
    ),
    (
        SERVICE,
        "metadata.generateName",
        "web-",
        (
            "Service demo/web: metadata.generateName: unknown field; known fields here: "
            "annotations, creationTimestamp, labels, name, namespace, resourceVersion, uid"
        ),
    ),
    (
        SERVICE,
        "metadata",
        "web",
        'Service (unnamed): metadata: must be a mapping (got string "web")',
    ),
    (
        SERVICE,
        "metadata",
        DELETE,
        "Service (unnamed): metadata: required",
    ),
    (
        SERVICE,
        "extra",
        1,
        (
            "Service demo/web: extra: unknown field; known fields here: apiVersion, kind, "
            "metadata, spec, status"
        ),
    ),
    # ServiceAccount
    (
        SERVICE_ACCOUNT,
        "spec",
        {},
        "ServiceAccount demo/web: spec: unknown field",
    ),
    (
        SERVICE_ACCOUNT,
        "metadata.name",
        "web_sa",
        "ServiceAccount demo/web_sa: metadata.name: must be a DNS-1123 subdomain",
    ),
    (
        SERVICE_ACCOUNT,
        "metadata.name",
        "a..b",
        "ServiceAccount demo/a..b: metadata.name: must be a DNS-1123 subdomain",
    ),
    # Pod: spec
    (
        POD,
        "spec.containers",
        [],
        "Pod demo/web-7c9f4: spec.containers: must list at least one container",
    ),
    (
        POD,
        "spec.containers",
        DELETE,
        "Pod demo/web-7c9f4: spec.containers: must list at least one container",
    ),
    (
        POD,
        "spec.containers.0.name",
        DELETE,
        "Pod demo/web-7c9f4: spec.containers[0].name: required",
    ),
    (
        POD,
        "spec.containers.0.name",
        "App",
        "Pod demo/web-7c9f4: spec.containers[0].name: must be a DNS-1123 label",
    ),
    (
        POD,
        "spec.containers.1",
        {"name": "app"},
        "Pod demo/web-7c9f4: spec.containers[1].name: duplicate container name app",
    ),
    (
        POD,
        "spec.containers.0.command",
        "python3",
        'Pod demo/web-7c9f4: spec.containers[0].command: must be a list (got string "python3")',
    ),
    (
        POD,
        "spec.containers.0.command.1",
        5,
        "Pod demo/web-7c9f4: spec.containers[0].command[1]: must be a string (got 5",
    ),
    (
        POD,
        "spec.containers.0.args",
        [True],
        "Pod demo/web-7c9f4: spec.containers[0].args[0]: must be a string (got true",
    ),
    (
        POD,
        "spec.containers.0.workingDir",
        "",
        "Pod demo/web-7c9f4: spec.containers[0].workingDir: must not be empty",
    ),
    (
        POD,
        "spec.containers.0.image",
        "nginx",
        (
            "Pod demo/web-7c9f4: spec.containers[0].image: unknown field; known fields here: "
            "args, command, env, name, ports, workingDir"
        ),
    ),
    (
        POD,
        "spec.containers.0.env.0.name",
        "1PORT",
        "Pod demo/web-7c9f4: spec.containers[0].env[0].name: must be an environment variable name",
    ),
    (
        POD,
        "spec.containers.0.env.0.name",
        DELETE,
        "Pod demo/web-7c9f4: spec.containers[0].env[0].name: required",
    ),
    (
        POD,
        "spec.containers.0.env.1",
        {"name": "PORT"},
        "Pod demo/web-7c9f4: spec.containers[0].env[1].name: duplicate environment variable PORT",
    ),
    (
        POD,
        "spec.containers.0.env.0.valueFrom",
        {},
        "Pod demo/web-7c9f4: spec.containers[0].env[0].valueFrom: unknown field",
    ),
    (
        POD,
        "spec.containers.0.env.0.value",
        8080,
        "Pod demo/web-7c9f4: spec.containers[0].env[0].value: must be a string (got 8080; quote it",
    ),
    (
        POD,
        "spec.containers.0.ports.0.containerPort",
        0,
        (
            "Pod demo/web-7c9f4: spec.containers[0].ports[0].containerPort: must be an integer "
            "from 1 to 65535 (got 0)"
        ),
    ),
    (
        POD,
        "spec.containers.0.ports.0.name",
        "HTTP",
        "Pod demo/web-7c9f4: spec.containers[0].ports[0].name: must be a port name",
    ),
    (
        POD,
        "spec.containers.0.ports.0.protocol",
        "tcp",
        "Pod demo/web-7c9f4: spec.containers[0].ports[0].protocol: must be one of TCP, UDP, SCTP",
    ),
    (
        POD,
        "spec.containers.1",
        {"name": "side", "ports": [{"name": "http", "containerPort": 1}]},
        (
            "Pod demo/web-7c9f4: spec.containers[1].ports[0].name: duplicate port name 'http' in "
            "this pod"
        ),
    ),
    (
        POD,
        "spec.serviceAccountName",
        "Web",
        "Pod demo/web-7c9f4: spec.serviceAccountName: must be a DNS-1123 subdomain",
    ),
    (
        POD,
        "metadata.name",
        "web_1",
        "Pod demo/web_1: metadata.name: must be a DNS-1123 subdomain",
    ),
    # Pod: status
    (
        POD,
        "status.phase",
        "Crashed",
        (
            "Pod demo/web-7c9f4: status.phase: must be one of Pending, Running, Succeeded, "
            "Failed, Terminating"
        ),
    ),
    (
        POD,
        "status.podIP",
        "10.77.0",
        "Pod demo/web-7c9f4: status.podIP: must be an IPv4 or IPv6 address",
    ),
    (
        POD,
        "status.startTime",
        "2024-05-01 12:00",
        "Pod demo/web-7c9f4: status.startTime: must be an RFC 3339 time",
    ),
    (
        POD,
        "status.restarts",
        -1,
        "Pod demo/web-7c9f4: status.restarts: must be an integer of at least 0 (got -1)",
    ),
    (
        POD,
        "status.ready",
        "yes",
        'Pod demo/web-7c9f4: status.ready: must be true or false (got string "yes")',
    ),
    (
        POD,
        "status.proxy.ready",
        1,
        "Pod demo/web-7c9f4: status.proxy.ready: must be true or false (got 1)",
    ),
    (
        POD,
        "status.proxy.pid",
        1,
        "Pod demo/web-7c9f4: status.proxy.pid: unknown field; known fields here: ready",
    ),
    (
        POD,
        "status.proxy",
        True,
        "Pod demo/web-7c9f4: status.proxy: must be a mapping (got true)",
    ),
    (
        POD,
        "status.pids.app",
        0,
        "Pod demo/web-7c9f4: status.pids.app: must be an integer of at least 1 (got 0)",
    ),
    (
        POD,
        "status.pids.App",
        5,
        "Pod demo/web-7c9f4: status.pids.App: key must be a DNS-1123 label",
    ),
    (
        POD,
        "status.pids",
        [1],
        "Pod demo/web-7c9f4: status.pids: must be a mapping (got a list)",
    ),
    (
        POD,
        "status.reason",
        3,
        "Pod demo/web-7c9f4: status.reason: must be a string (got 3",
    ),
    (
        POD,
        "status.hostIP",
        "1.2.3.4",
        "Pod demo/web-7c9f4: status.hostIP: unknown field; known fields here: message",
    ),
    # Workload
    (
        WORKLOAD,
        "spec.command",
        DELETE,
        "Workload demo/web: spec.command: required: a non-empty list of strings",
    ),
    (
        WORKLOAD,
        "spec.command",
        [],
        "Workload demo/web: spec.command: required: a non-empty list of strings",
    ),
    (
        WORKLOAD,
        "spec.command",
        "python3 -m http.server",
        'Workload demo/web: spec.command: must be a list (got string "python3 -m http.server")',
    ),
    (
        WORKLOAD,
        "spec.command.0",
        None,
        "Workload demo/web: spec.command[0]: must be a string (got null)",
    ),
    (
        WORKLOAD,
        "spec.replicas",
        -1,
        "Workload demo/web: spec.replicas: must be an integer of at least 0 (got -1)",
    ),
    (
        WORKLOAD,
        "spec.replicas",
        "2",
        'Workload demo/web: spec.replicas: must be an integer of at least 0 (got string "2")',
    ),
    (
        WORKLOAD,
        "spec.ports.1",
        70000,
        "Workload demo/web: spec.ports[1]: must be an integer from 1 to 65535 (got 70000)",
    ),
    (
        WORKLOAD,
        "spec.ports.1",
        8080,
        "Workload demo/web: spec.ports[1]: duplicate port 8080",
    ),
    (
        WORKLOAD,
        "spec.ports",
        "8080",
        'Workload demo/web: spec.ports: must be a list (got string "8080")',
    ),
    (
        WORKLOAD,
        "spec.env",
        ["A=B"],
        "Workload demo/web: spec.env: must be a mapping (got a list)",
    ),
    (
        WORKLOAD,
        "spec.env.1A",
        "x",
        'Workload demo/web: spec.env["1A"]: key must be an environment variable name',
    ),
    (
        WORKLOAD,
        "spec.env.DEBUG",
        True,
        (
            "Workload demo/web: spec.env.DEBUG: must be a string (got true; quote it to make it a "
            "string)"
        ),
    ),
    (
        WORKLOAD,
        "spec.mesh",
        "no",
        'Workload demo/web: spec.mesh: must be true or false (got string "no")',
    ),
    (
        WORKLOAD,
        "spec.serviceAccountName",
        "Web",
        "Workload demo/web: spec.serviceAccountName: must be a DNS-1123 subdomain",
    ),
    (
        WORKLOAD,
        ("spec", "labels", "gossamer.dev/workload"),
        "x",
        'Workload demo/web: spec.labels["gossamer.dev/workload"]: is set by Gossamer',
    ),
    (
        WORKLOAD,
        "spec.labels.tier",
        "front end",
        "Workload demo/web: spec.labels.tier: must be a label value",
    ),
    (
        WORKLOAD,
        "spec.image",
        "x",
        "Workload demo/web: spec.image: unknown field",
    ),
    (
        WORKLOAD,
        "status.readyReplicas",
        -1,
        "Workload demo/web: status.readyReplicas: must be an integer of at least 0 (got -1)",
    ),
    (
        WORKLOAD,
        "status.available",
        1,
        "Workload demo/web: status.available: unknown field",
    ),
    (
        WORKLOAD,
        "metadata.name",
        "web.v2",
        "Workload demo/web.v2: metadata.name: must be a DNS-1123 label",
    ),
]


@pytest.mark.parametrize(
    ("base", "path", "value", "expected"),
    CASES,
    ids=[f"{case[0]['kind']}:{case[1]}={case[2]!r}"[:80] for case in CASES],
)
def test_validation_error_names_the_field(
    base: dict[str, Any], path: str | tuple[str | int, ...], value: object, expected: str
) -> None:
    with pytest.raises(ResourceError) as raised:
        Resource.from_dict(mutated(base, path, value))
    assert str(raised.value).startswith(expected), str(raised.value)


@pytest.mark.parametrize("base", [SERVICE, SERVICE_ACCOUNT, POD, WORKLOAD], ids=lambda b: b["kind"])
def test_examples_are_valid(base: dict[str, Any]) -> None:
    assert Resource.from_dict(base).kind == base["kind"]


def test_validation_error_carries_subject_path_and_problem() -> None:
    with pytest.raises(ValidationError) as raised:
        Resource.from_dict(mutated(SERVICE, "spec.ports.1.port", 70000))
    assert raised.value.subject == "Service demo/web"
    assert raised.value.path == ("spec", "ports", 1, "port")
    assert raised.value.problem == "must be an integer from 1 to 65535 (got 70000)"


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(UnknownKindError) as raised:
        Resource.from_dict({"apiVersion": "x/v1", "kind": "Foo", "metadata": {"name": "a"}})
    assert str(raised.value) == (
        "unknown kind Foo (apiVersion x/v1); known kinds: "
        "GRPCRoute (gateway.networking.k8s.io/v1), HTTPRoute (gateway.networking.k8s.io/v1), "
        "Pod (v1), Service (v1), ServiceAccount (v1), Workload (local.gossamer.dev/v1alpha1)"
    )


def test_known_kind_under_another_api_version_is_unknown() -> None:
    with pytest.raises(UnknownKindError, match=r"unknown kind Service \(apiVersion apps/v1\)"):
        Resource.from_dict(mutated(SERVICE, "apiVersion", "apps/v1"))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([SERVICE], "(top level): must be a mapping (got a list)"),
        ({"kind": "Service"}, "apiVersion: required"),
        ({"apiVersion": "v1"}, "kind: required"),
        ({"apiVersion": "v1", "kind": ""}, "kind: must be a non-empty string"),
        ({"apiVersion": 1, "kind": "Service"}, "apiVersion: must be a non-empty string"),
        ({1: "x"}, "(top level): keys must be strings (got 1)"),
    ],
)
def test_malformed_objects(document: object, expected: str) -> None:
    with pytest.raises(ResourceError) as raised:
        Resource.from_dict(document)
    assert str(raised.value) == expected


def test_lenient_parsing_ignores_fields_it_does_not_know() -> None:
    """What a Kubernetes API server adds (managedFields, nodePort, status.loadBalancer...)."""
    from_server = mutated(SERVICE, "metadata.managedFields", [{"manager": "kubectl"}])
    from_server = mutated(from_server, "spec.ports.0.nodePort", 30080)
    from_server = mutated(from_server, "spec.sessionAffinity", "None")
    from_server = mutated(from_server, "status", {"loadBalancer": {}})
    parsed = Resource.from_dict(from_server, strict=False)
    assert parsed == Resource.from_dict(SERVICE)
    with pytest.raises(ValidationError, match=r"metadata\.managedFields: unknown field"):
        Resource.from_dict(from_server)


def test_lenient_parsing_still_validates_known_fields() -> None:
    with pytest.raises(ValidationError, match=r"spec.ports\[1\].port: must be an integer"):
        Resource.from_dict(mutated(SERVICE, "spec.ports.1.port", 70000), strict=False)
