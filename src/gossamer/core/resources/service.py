"""`v1 Service` and `v1 ServiceAccount`, as Kubernetes defines the parts a mesh uses.

A Service names a set of pods (`selector`) and the ports it serves. `appProtocol` is a free
string that tells the mesh the protocol up front (`http`, `kubernetes.io/h2c`, `grpc`, an
opaque marker); `clusterIP` is allocated by local mode or by Kubernetes. Annotations are free:
they carry settings such as `retry.gossamer.dev/http`.

A ServiceAccount is only metadata: it is the identity of the workloads that run as it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gossamer.core.resources.errors import FieldError, FieldPath, describe_value
from gossamer.core.resources.fields import MappingReader, frozen_map
from gossamer.core.resources.formats import (
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_iana_service_name,
    check_ip_address,
    check_label_value,
    check_non_empty,
    check_one_of,
    check_qualified_name,
)
from gossamer.core.resources.registry import KindInfo

PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
HEADLESS = "None"

_PORT_FIELDS = ("name", "port", "targetPort", "protocol", "appProtocol")
_SPEC_FIELDS = ("ports", "selector", "clusterIP", "type")


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a Service. `target_port` (a number, or a pod's port name) defaults to
    `port`; protocols other than TCP are accepted, as Kubernetes does, and left unmeshed."""

    port: int
    name: str | None = None
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None

    def __post_init__(self) -> None:
        if self.target_port is None:
            object.__setattr__(self, "target_port", self.port)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.name is not None:
            data["name"] = self.name
        data["port"] = self.port
        data["targetPort"] = self.target_port
        data["protocol"] = self.protocol
        if self.app_protocol is not None:
            data["appProtocol"] = self.app_protocol
        return data


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str] = field(default_factory=frozen_map)
    cluster_ip: str | None = None
    type: str = "ClusterIP"

    def __post_init__(self) -> None:
        object.__setattr__(self, "selector", frozen_map(self.selector))

    @property
    def headless(self) -> bool:
        return self.cluster_ip == HEADLESS

    def port_named(self, name: str) -> ServicePort | None:
        return next((port for port in self.ports if port.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "ports": [p.to_dict() for p in self.ports]}
        if self.selector:
            data["selector"] = dict(self.selector)
        if self.cluster_ip is not None:
            data["clusterIP"] = self.cluster_ip
        return data


def _check_cluster_ip(value: str) -> str | None:
    if value == HEADLESS:
        return None
    problem = check_ip_address(value)
    return None if problem is None else f"{problem}, or None for a headless Service"


def _parse_target_port(reader: MappingReader, port: int) -> int | str:
    raw = reader.get("targetPort")
    if raw is None:
        return port
    path = reader.path("targetPort")
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= 65535:
            raise FieldError(path, f"must be an integer from 1 to 65535 or a port name (got {raw})")
        return raw
    if isinstance(raw, str):
        problem = check_iana_service_name(raw)
        if problem is not None:
            hint = "; write port numbers without quotes" if raw.isdigit() else ""
            raise FieldError(path, f"{problem} (got {describe_value(raw)}){hint}")
        return raw
    raise FieldError(
        path, f"must be an integer from 1 to 65535 or a port name (got {describe_value(raw)})"
    )


def parse_service_port(value: object, path: FieldPath, strict: bool) -> ServicePort:
    reader = MappingReader(value, path, _PORT_FIELDS, strict=strict)
    port = reader.require_int("port", 1, 65535)
    return ServicePort(
        name=reader.optional_str("name", check_dns1123_label),
        port=port,
        target_port=_parse_target_port(reader, port),
        protocol=reader.str_or("protocol", "TCP", check_one_of(PROTOCOLS)),
        app_protocol=reader.optional_str("appProtocol", check_non_empty),
    )


def parse_service_spec(value: object, path: FieldPath, strict: bool) -> ServiceSpec:
    reader = MappingReader(value, path, _SPEC_FIELDS, strict=strict)
    items = reader.list_items("ports")
    if not items:
        raise FieldError(reader.path("ports"), "must list at least one port")
    ports = tuple(parse_service_port(item, item_path, strict) for item_path, item in items)
    _check_ports_distinct(ports, items)
    return ServiceSpec(
        ports=ports,
        selector=reader.str_map("selector", check_qualified_name, check_label_value),
        cluster_ip=reader.optional_str("clusterIP", _check_cluster_ip),
        type=reader.str_or("type", "ClusterIP", check_one_of(SERVICE_TYPES)),
    )


def _check_ports_distinct(
    ports: tuple[ServicePort, ...], items: list[tuple[FieldPath, object]]
) -> None:
    names: dict[str, int] = {}
    numbers: dict[tuple[int, str], int] = {}
    for index, (port, (item_path, _)) in enumerate(zip(ports, items, strict=True)):
        if port.name is None and len(ports) > 1:
            raise FieldError((*item_path, "name"), "required when a Service has several ports")
        if port.name is not None:
            if port.name in names:
                raise FieldError(
                    (*item_path, "name"),
                    f"duplicate port name {port.name!r} (also ports[{names[port.name]}])",
                )
            names[port.name] = index
        key = (port.port, port.protocol)
        if key in numbers:
            raise FieldError(
                (*item_path, "port"),
                f"duplicate port {port.port}/{port.protocol} (also ports[{numbers[key]}])",
            )
        numbers[key] = index


SERVICE = KindInfo(
    api_version="v1",
    kind="Service",
    name_check=check_dns1035_label,
    parse_spec=parse_service_spec,
    plural="services",
    short_names=("svc",),
)

SERVICE_ACCOUNT = KindInfo(
    api_version="v1",
    kind="ServiceAccount",
    name_check=check_dns1123_subdomain,
    plural="serviceaccounts",
    short_names=("sa",),
)
