"""`local.gossamer.dev/v1alpha1 Workload`: what `gossamer run` asks local mode to keep running.

`gossamer run NAME -n NS --port P... --replicas N --service-account SA --env K=V... [--no-mesh]
-- CMD...` stores one Workload; local mode's pod controller keeps `replicas` pods of it. Its
pods are labelled `app: NAME` (so a Service selecting `app: NAME` finds them; `spec.labels`
may override it and add more) and always `gossamer.dev/workload: NAME`, which is the
workload's selector and cannot be overridden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gossamer.core.resources.errors import FieldError, FieldPath
from gossamer.core.resources.fields import MappingReader, frozen_map, read_int
from gossamer.core.resources.formats import (
    check_dns1123_label,
    check_dns1123_subdomain,
    check_env_var_name,
    check_label_value,
    check_qualified_name,
)
from gossamer.core.resources.pod import DEFAULT_SERVICE_ACCOUNT
from gossamer.core.resources.registry import KindInfo

WORKLOAD_LABEL = "gossamer.dev/workload"
APP_LABEL = "app"

_SPEC_FIELDS = ("replicas", "command", "env", "ports", "serviceAccountName", "mesh", "labels")
_STATUS_FIELDS = ("replicas", "readyReplicas")


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    command: tuple[str, ...]
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=frozen_map)
    ports: tuple[int, ...] = ()
    service_account_name: str = DEFAULT_SERVICE_ACCOUNT
    mesh: bool = True
    labels: Mapping[str, str] = field(default_factory=frozen_map)

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", frozen_map(self.env))
        object.__setattr__(self, "labels", frozen_map(self.labels))

    def pod_labels(self, workload_name: str) -> Mapping[str, str]:
        """The labels of this workload's pods."""
        return frozen_map({APP_LABEL: workload_name, **self.labels, WORKLOAD_LABEL: workload_name})

    @staticmethod
    def selector(workload_name: str) -> Mapping[str, str]:
        """The label selector that finds exactly this workload's pods."""
        return frozen_map({WORKLOAD_LABEL: workload_name})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "replicas": self.replicas,
            "command": list(self.command),
            "serviceAccountName": self.service_account_name,
            "mesh": self.mesh,
        }
        if self.ports:
            data["ports"] = list(self.ports)
        if self.env:
            data["env"] = dict(self.env)
        if self.labels:
            data["labels"] = dict(self.labels)
        return data


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    """How many pods exist and how many of them are ready, as the pod controller last saw."""

    replicas: int = 0
    ready_replicas: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"replicas": self.replicas, "readyReplicas": self.ready_replicas}


def parse_workload_spec(value: object, path: FieldPath, strict: bool) -> WorkloadSpec:
    reader = MappingReader(value, path, _SPEC_FIELDS, strict=strict)
    command = reader.str_list("command")
    if not command:
        raise FieldError(reader.path("command"), "required: a non-empty list of strings")
    ports: list[int] = []
    for item_path, item in reader.list_items("ports"):
        port = read_int(item, item_path, 1, 65535)
        if port in ports:
            raise FieldError(item_path, f"duplicate port {port}")
        ports.append(port)
    labels = reader.str_map("labels", check_qualified_name, check_label_value)
    if WORKLOAD_LABEL in labels:
        raise FieldError(
            (*reader.path("labels"), WORKLOAD_LABEL),
            "is set by Gossamer to the workload's name and cannot be given",
        )
    return WorkloadSpec(
        command=command,
        replicas=reader.int_or("replicas", 1, 0, None),
        env=reader.str_map("env", check_env_var_name),
        ports=tuple(ports),
        service_account_name=reader.str_or(
            "serviceAccountName", DEFAULT_SERVICE_ACCOUNT, check_dns1123_subdomain
        ),
        mesh=reader.bool_or("mesh", True),
        labels=labels,
    )


def parse_workload_status(value: object, path: FieldPath, strict: bool) -> WorkloadStatus:
    reader = MappingReader(value, path, _STATUS_FIELDS, strict=strict)
    return WorkloadStatus(
        replicas=reader.int_or("replicas", 0, 0, None),
        ready_replicas=reader.int_or("readyReplicas", 0, 0, None),
    )


WORKLOAD = KindInfo(
    api_version="local.gossamer.dev/v1alpha1",
    kind="Workload",
    name_check=check_dns1123_label,
    parse_spec=parse_workload_spec,
    parse_status=parse_workload_status,
    plural="workloads",
    short_names=("wl",),
)
