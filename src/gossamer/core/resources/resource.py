"""The generic resource value: apiVersion, kind, metadata, typed spec and status.

`Resource.from_dict` validates a parsed YAML/JSON object against its registered kind and
fills Kubernetes' defaults (a Service port's `targetPort` is its `port`, a namespace is
`default`); `to_dict` gives the canonical form back. For every valid input `d`,
`from_dict(d)` equals `from_dict(from_dict(d).to_dict())`, and a canonical dict (one produced
by `to_dict`) round-trips exactly. Empty `labels`/`annotations` and absent optional fields are
left out of the canonical form, as the Kubernetes API server does.

A status that is None means "no status reported yet"; stores use that to tell an apply that
carries a status from one that does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from gossamer.core.resources.builtin import BUILTIN_KINDS
from gossamer.core.resources.errors import FieldError, ValidationError
from gossamer.core.resources.fields import MappingReader, require_mapping
from gossamer.core.resources.metadata import (
    ObjectMeta,
    parse_object_meta,
    read_name_for_messages,
)
from gossamer.core.resources.registry import KindInfo, KindRegistry, ResourcePart

PartT = TypeVar("PartT")


@dataclass(frozen=True, slots=True)
class Resource:
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: ResourcePart | None = None
    status: ResourcePart | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def resource_version(self) -> str:
        return self.metadata.resource_version

    def describe(self) -> str:
        """`Service demo/web`, as messages name objects."""
        return describe_object(self.kind, self.namespace, self.name)

    def spec_as(self, spec_type: type[PartT]) -> PartT:
        """The spec as the type its kind parses to: `service.spec_as(ServiceSpec).ports`."""
        if not isinstance(self.spec, spec_type):
            raise TypeError(
                f"{self.describe()} has spec {type(self.spec).__name__}, not {spec_type.__name__}"
            )
        return self.spec

    def status_as(self, status_type: type[PartT]) -> PartT | None:
        """The status as its kind's type, or None when no status has been reported."""
        if self.status is None:
            return None
        if not isinstance(self.status, status_type):
            raise TypeError(
                f"{self.describe()} has status {type(self.status).__name__}, "
                f"not {status_type.__name__}"
            )
        return self.status

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": self.metadata.to_dict(),
        }
        if not self.metadata.namespace:
            del data["metadata"]["namespace"]
        if self.spec is not None:
            data["spec"] = self.spec.to_dict()
        if self.status is not None:
            data["status"] = self.status.to_dict()
        return data

    @classmethod
    def from_dict(
        cls, data: object, *, registry: KindRegistry | None = None, strict: bool = True
    ) -> Resource:
        """Parse and validate one object; raises a ResourceError naming the exact field.

        `strict` rejects unknown fields (user input); lenient parsing ignores them (objects
        written by a newer Gossamer or read from a Kubernetes API server).
        """
        return parse_resource(data, registry or BUILTIN_KINDS, strict=strict)


def describe_object(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")


def parse_resource(data: object, registry: KindRegistry, *, strict: bool) -> Resource:
    top = require_mapping(data, ())
    api_version = _require_top_str(top, "apiVersion")
    kind = _require_top_str(top, "kind")
    info = registry.lookup(api_version, kind)
    namespace, name = read_name_for_messages(top.get("metadata"))
    subject = (
        describe_object(kind, namespace if info.namespaced else "", name)
        if name
        else f"{kind} (unnamed)"
    )
    try:
        return _parse_known(top, info, strict=strict)
    except FieldError as error:
        raise ValidationError(subject, error) from None


def _require_top_str(top: Mapping[str, object], key: str) -> str:
    value = top.get(key)
    if value is None:
        raise FieldError((key,), "required")
    if not isinstance(value, str) or not value:
        raise FieldError((key,), "must be a non-empty string")
    return value


def _parse_known(top: Mapping[str, object], info: KindInfo, *, strict: bool) -> Resource:
    fields = [f for f in _TOP_LEVEL if f != "spec" or info.parse_spec is not None]
    reader = MappingReader(top, (), fields, strict=strict)
    if not reader.has("metadata"):
        raise FieldError(("metadata",), "required")
    metadata = parse_object_meta(
        reader.get("metadata"),
        ("metadata",),
        name_check=info.name_check,
        namespaced=info.namespaced,
        strict=strict,
    )
    if strict and info.check_annotations is not None:
        info.check_annotations(metadata.annotations, ("metadata", "annotations"))
    spec = None
    if info.parse_spec is not None:
        if not reader.has("spec"):
            raise FieldError(("spec",), "required")
        spec = info.parse_spec(reader.get("spec"), ("spec",), strict)
    return Resource(
        api_version=info.api_version,
        kind=info.kind,
        metadata=metadata,
        spec=spec,
        status=_parse_status(reader, info, strict=strict),
    )


def _parse_status(reader: MappingReader, info: KindInfo, *, strict: bool) -> ResourcePart | None:
    raw = reader.get("status")
    if raw is None:
        return None
    if info.parse_status is not None:
        return info.parse_status(raw, ("status",), strict)
    # Kinds without a status tolerate an empty one (`kubectl get -o yaml` prints `status: {}`).
    MappingReader(raw, ("status",), (), strict=strict)
    return None


def validate(resource: Resource, registry: KindRegistry | None = None) -> Resource:
    """Check a resource built in code exactly as one parsed from YAML; returns its canonical
    form (defaults filled). Raises a ResourceError naming the field."""
    return Resource.from_dict(resource.to_dict(), registry=registry)
