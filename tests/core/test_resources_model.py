"""The generic resource value: canonical form, defaults, round trips, typed access, registry."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gossamer.core.resources import (
    BUILTIN_KINDS,
    KindInfo,
    KindRegistry,
    ObjectMeta,
    PodPhase,
    PodSpec,
    PodStatus,
    Resource,
    ServicePort,
    ServiceSpec,
    UnknownKindError,
    ValidationError,
    WorkloadSpec,
    validate,
)
from gossamer.core.resources.formats import check_dns1123_label
from tests.core.manifests import DELETE, POD, SERVICE, SERVICE_ACCOUNT, WORKLOAD, mutated


def test_service_defaults_are_filled_as_the_api_server_does() -> None:
    minimal = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }
    assert Resource.from_dict(minimal).to_dict() == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "ClusterIP",
            "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
        },
    }


def test_pod_and_workload_defaults() -> None:
    pod = Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {},
        }
    )
    assert pod.spec_as(PodSpec).service_account_name == "default"
    assert pod.status_as(PodStatus) == PodStatus(phase=PodPhase.PENDING)
    assert pod.to_dict()["status"] == {"phase": "Pending", "restarts": 0, "ready": False}
    workload = Resource.from_dict(
        mutated(mutated(WORKLOAD, "spec.replicas", DELETE), "spec.mesh", DELETE)
    )
    spec = workload.spec_as(WorkloadSpec)
    assert (spec.replicas, spec.mesh) == (1, True)


@pytest.mark.parametrize(
    "example", [SERVICE, SERVICE_ACCOUNT, POD, WORKLOAD], ids=lambda e: e["kind"]
)
def test_canonical_form_round_trips_exactly(example: dict[str, Any]) -> None:
    canonical = Resource.from_dict(example).to_dict()
    assert Resource.from_dict(canonical).to_dict() == canonical
    assert Resource.from_dict(canonical) == Resource.from_dict(example)


def test_full_pod_round_trips_exactly_including_store_fields() -> None:
    stored = mutated(POD, "metadata.uid", "0f61a19e-3740-4c69-a934-92b6c4f14659")
    stored = mutated(stored, "metadata.resourceVersion", "42")
    stored = mutated(stored, "metadata.creationTimestamp", "2024-05-01T12:00:00Z")
    stored = mutated(stored, "metadata.annotations", {"gossamer.dev/inject": "enabled"})
    stored = mutated(stored, "spec.containers.0.ports.0.protocol", "TCP")
    assert Resource.from_dict(stored).to_dict() == stored


def test_typed_access() -> None:
    service = Resource.from_dict(SERVICE)
    spec = service.spec_as(ServiceSpec)
    assert spec.ports[0] == ServicePort(
        port=80, name="http", target_port=8080, protocol="TCP", app_protocol="http"
    )
    assert spec.port_named("grpc") is spec.ports[1]
    assert spec.ports[1].target_port == "grpc"
    assert service.status_as(PodStatus) is None
    assert (service.name, service.namespace, service.describe()) == (
        "web",
        "demo",
        "Service demo/web",
    )
    with pytest.raises(TypeError, match="Service demo/web has spec ServiceSpec, not PodSpec"):
        service.spec_as(PodSpec)
    pod = Resource.from_dict(POD)
    assert pod.spec_as(PodSpec).port_named("http") is not None
    status = pod.status_as(PodStatus)
    assert status is not None and status.phase is PodPhase.RUNNING and status.pids["app"] == 4242


def test_resources_are_frozen_all_the_way_down() -> None:
    labels = {"app": "web"}
    metadata = ObjectMeta(name="web", labels=labels)
    labels["app"] = "changed"
    assert metadata.labels == {"app": "web"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        metadata.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        metadata.labels["app"] = "x"  # type: ignore[index]
    service = Resource.from_dict(SERVICE)
    with pytest.raises(TypeError):
        service.spec_as(ServiceSpec).selector["app"] = "x"  # type: ignore[index]


def test_target_port_defaults_to_port_when_built_in_code() -> None:
    assert ServicePort(port=80).target_port == 80


def test_validate_checks_objects_built_in_code() -> None:
    built = Resource(
        api_version="v1",
        kind="Service",
        metadata=ObjectMeta(name="web", namespace="demo"),
        spec=ServiceSpec(ports=(ServicePort(port=80), ServicePort(port=8080, name="x"))),
    )
    with pytest.raises(ValidationError) as raised:
        validate(built)
    assert str(raised.value).startswith("Service demo/web: spec.ports[0].name: required when")


def test_workload_pod_labels_and_selector() -> None:
    spec = Resource.from_dict(mutated(WORKLOAD, "spec.labels", {"tier": "front"})).spec_as(
        WorkloadSpec
    )
    assert spec.pod_labels("web") == {
        "app": "web",
        "tier": "front",
        "gossamer.dev/workload": "web",
    }
    assert WorkloadSpec.selector("web") == {"gossamer.dev/workload": "web"}
    overridden = dataclasses.replace(spec, labels={"app": "frontend"})
    assert overridden.pod_labels("web")["app"] == "frontend"


def test_registry_resolves_every_name_a_user_types() -> None:
    for word in ("Service", "service", "services", "svc", "SVC"):
        assert BUILTIN_KINDS.resolve(word).kind == "Service"
    assert BUILTIN_KINDS.resolve("wl").kind == "Workload"
    assert BUILTIN_KINDS.resolve("po").kind == "Pod"
    with pytest.raises(UnknownKindError, match="unknown kind deployments"):
        BUILTIN_KINDS.resolve("deployments")
    assert "Pod" in BUILTIN_KINDS and "Foo" not in BUILTIN_KINDS


def test_registry_refuses_a_kind_twice_and_accepts_new_kinds() -> None:
    registry = KindRegistry(BUILTIN_KINDS)
    with pytest.raises(ValueError, match="kind Service is already registered"):
        registry.register(BUILTIN_KINDS.by_kind("Service"))
    registry.register(
        KindInfo(
            api_version="policy.gossamer.dev/v1alpha1",
            kind="Server",
            name_check=check_dns1123_label,
        )
    )
    server = {
        "apiVersion": "policy.gossamer.dev/v1alpha1",
        "kind": "Server",
        "metadata": {"name": "web-http", "namespace": "demo"},
    }
    assert Resource.from_dict(server, registry=registry).kind == "Server"
    with pytest.raises(UnknownKindError):
        Resource.from_dict(server)


def test_cluster_scoped_kinds_have_no_namespace() -> None:
    registry = KindRegistry(
        [
            KindInfo(
                api_version="v1", kind="Namespace", name_check=check_dns1123_label, namespaced=False
            )
        ]
    )
    namespace = Resource.from_dict(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}, registry=registry
    )
    assert namespace.namespace == ""
    assert namespace.describe() == "Namespace demo"
    assert namespace.to_dict() == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "demo"},
    }
    with pytest.raises(ValidationError, match=r"metadata\.namespace: must not be set"):
        Resource.from_dict(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "namespace": "b"}},
            registry=registry,
        )
