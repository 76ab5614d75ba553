"""`v1 Pod`: a running instance of a workload, as local mode's pod controller writes it.

The spec keeps Kubernetes' shape (containers with command, args, env as name/value pairs,
named container ports), so the destination controller resolves a Service's named
`targetPort` the same way in both modes. There are no images: locally a container is a
command run inside the pod's network namespace.

The status holds what both modes know (phase, podIP, startTime, restarts, ready) and what only
local mode knows: `proxy.ready` for meshed pods (absent for unmeshed ones) and `pids`, the
process id of each of the pod's processes by role (`app`, `proxy`), which the supervisor uses
to find its processes again after a restart. `Terminating` is not a Kubernetes phase; local
mode shows it while a pod drains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gossamer.core.resources.errors import FieldError, FieldPath
from gossamer.core.resources.fields import MappingReader
from gossamer.core.resources.formats import (
    check_dns1123_label,
    check_dns1123_subdomain,
    check_env_var_name,
    check_iana_service_name,
    check_ip_address,
    check_non_empty,
    check_one_of,
    check_timestamp,
)
from gossamer.core.resources.registry import KindInfo
from gossamer.core.resources.service import PROTOCOLS

DEFAULT_SERVICE_ACCOUNT = "default"


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATING = "Terminating"


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"containerPort": self.container_port, "protocol": self.protocol}
        if self.name is not None:
            data["name"] = self.name
        return data


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str | None = None
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.command:
            data["command"] = list(self.command)
        if self.args:
            data["args"] = list(self.args)
        if self.working_dir is not None:
            data["workingDir"] = self.working_dir
        if self.env:
            data["env"] = [var.to_dict() for var in self.env]
        if self.ports:
            data["ports"] = [port.to_dict() for port in self.ports]
        return data


@dataclass(frozen=True, slots=True)
class PodSpec:
    containers: tuple[Container, ...]
    service_account_name: str = DEFAULT_SERVICE_ACCOUNT

    def port_named(self, name: str) -> ContainerPort | None:
        """The container port a Service's named `targetPort` refers to."""
        for container in self.containers:
            for port in container.ports:
                if port.name == name:
                    return port
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "serviceAccountName": self.service_account_name,
            "containers": [container.to_dict() for container in self.containers],
        }


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    ready: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready}


@dataclass(frozen=True, slots=True)
class PodStatus:
    phase: PodPhase = PodPhase.PENDING
    pod_ip: str | None = None
    start_time: str | None = None
    restarts: int = 0
    ready: bool = False
    reason: str | None = None
    message: str | None = None
    proxy: ProxyStatus | None = None
    pids: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", PodPhase(self.phase))
        object.__setattr__(self, "pids", MappingProxyType(dict(self.pids)))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"phase": str(self.phase)}
        if self.pod_ip is not None:
            data["podIP"] = self.pod_ip
        if self.start_time is not None:
            data["startTime"] = self.start_time
        data["restarts"] = self.restarts
        data["ready"] = self.ready
        if self.reason is not None:
            data["reason"] = self.reason
        if self.message is not None:
            data["message"] = self.message
        if self.proxy is not None:
            data["proxy"] = self.proxy.to_dict()
        if self.pids:
            data["pids"] = dict(self.pids)
        return data


_PORT_FIELDS = ("containerPort", "name", "protocol")
_ENV_FIELDS = ("name", "value")
_CONTAINER_FIELDS = ("name", "command", "args", "workingDir", "env", "ports")
_SPEC_FIELDS = ("containers", "serviceAccountName")
_STATUS_FIELDS = (
    "phase",
    "podIP",
    "startTime",
    "restarts",
    "ready",
    "reason",
    "message",
    "proxy",
    "pids",
)


def _parse_container(
    value: object, path: FieldPath, strict: bool, port_names: dict[str, FieldPath]
) -> Container:
    reader = MappingReader(value, path, _CONTAINER_FIELDS, strict=strict)
    env: list[EnvVar] = []
    env_names: set[str] = set()
    for item_path, item in reader.list_items("env"):
        entry = MappingReader(item, item_path, _ENV_FIELDS, strict=strict)
        var = EnvVar(entry.require_str("name", check_env_var_name), entry.str_or("value", ""))
        if var.name in env_names:
            raise FieldError((*item_path, "name"), f"duplicate environment variable {var.name}")
        env_names.add(var.name)
        env.append(var)
    ports: list[ContainerPort] = []
    for item_path, item in reader.list_items("ports"):
        entry = MappingReader(item, item_path, _PORT_FIELDS, strict=strict)
        port = ContainerPort(
            container_port=entry.require_int("containerPort", 1, 65535),
            name=entry.optional_str("name", check_iana_service_name),
            protocol=entry.str_or("protocol", "TCP", check_one_of(PROTOCOLS)),
        )
        if port.name is not None:
            if port.name in port_names:
                raise FieldError(
                    (*item_path, "name"), f"duplicate port name {port.name!r} in this pod"
                )
            port_names[port.name] = item_path
        ports.append(port)
    return Container(
        name=reader.require_str("name", check_dns1123_label),
        command=reader.str_list("command"),
        args=reader.str_list("args"),
        working_dir=reader.optional_str("workingDir", check_non_empty),
        env=tuple(env),
        ports=tuple(ports),
    )


def parse_pod_spec(value: object, path: FieldPath, strict: bool) -> PodSpec:
    reader = MappingReader(value, path, _SPEC_FIELDS, strict=strict)
    items = reader.list_items("containers")
    if not items:
        raise FieldError(reader.path("containers"), "must list at least one container")
    port_names: dict[str, FieldPath] = {}
    containers: list[Container] = []
    for item_path, item in items:
        container = _parse_container(item, item_path, strict, port_names)
        if any(other.name == container.name for other in containers):
            raise FieldError((*item_path, "name"), f"duplicate container name {container.name}")
        containers.append(container)
    return PodSpec(
        containers=tuple(containers),
        service_account_name=reader.str_or(
            "serviceAccountName", DEFAULT_SERVICE_ACCOUNT, check_dns1123_subdomain
        ),
    )


def parse_pod_status(value: object, path: FieldPath, strict: bool) -> PodStatus:
    reader = MappingReader(value, path, _STATUS_FIELDS, strict=strict)
    proxy_reader = reader.child("proxy", ("ready",))
    phases = tuple(str(phase) for phase in PodPhase)
    return PodStatus(
        phase=PodPhase(reader.str_or("phase", PodPhase.PENDING, check_one_of(phases))),
        pod_ip=reader.optional_str("podIP", check_ip_address),
        start_time=reader.optional_str("startTime", check_timestamp),
        restarts=reader.int_or("restarts", 0, 0, None),
        ready=reader.bool_or("ready", False),
        reason=reader.optional_str("reason"),
        message=reader.optional_str("message"),
        proxy=None if proxy_reader is None else ProxyStatus(proxy_reader.bool_or("ready", False)),
        pids=reader.int_map("pids", check_dns1123_label, low=1),
    )


POD = KindInfo(
    api_version="v1",
    kind="Pod",
    name_check=check_dns1123_subdomain,
    parse_spec=parse_pod_spec,
    parse_status=parse_pod_status,
    plural="pods",
    short_names=("po",),
)
