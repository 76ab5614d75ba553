"""Object metadata: the Kubernetes `metadata` block every resource carries.

`name` and `namespace` identify an object within its kind; `labels` select it; `annotations`
carry free-form settings (`retry.gossamer.dev/http: 5xx`). `uid`, `resourceVersion` and
`creationTimestamp` are set by a store, never by a user: a store ignores what a client sends
for `uid` and `creationTimestamp`, and treats `resourceVersion` as a precondition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gossamer.core.resources.errors import FieldError, FieldPath
from gossamer.core.resources.fields import MappingReader, frozen_map
from gossamer.core.resources.formats import (
    StringCheck,
    check_dns1123_label,
    check_label_value,
    check_qualified_name,
    check_timestamp,
)

DEFAULT_NAMESPACE = "default"

_FIELDS = (
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "creationTimestamp",
)


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str
    namespace: str = DEFAULT_NAMESPACE
    labels: Mapping[str, str] = field(default_factory=frozen_map)
    annotations: Mapping[str, str] = field(default_factory=frozen_map)
    uid: str = ""
    resource_version: str = ""
    creation_timestamp: str = ""

    def __post_init__(self) -> None:
        # Copy caller-owned dicts into read-only maps: a frozen resource must not change
        # because someone mutated the dict it was built from.
        object.__setattr__(self, "labels", frozen_map(self.labels))
        object.__setattr__(self, "annotations", frozen_map(self.annotations))

    def to_dict(self, *, namespaced: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if namespaced:
            data["namespace"] = self.namespace
        if self.uid:
            data["uid"] = self.uid
        if self.resource_version:
            data["resourceVersion"] = self.resource_version
        if self.creation_timestamp:
            data["creationTimestamp"] = self.creation_timestamp
        if self.labels:
            data["labels"] = dict(self.labels)
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


def parse_object_meta(
    value: object, path: FieldPath, *, name_check: StringCheck, namespaced: bool, strict: bool
) -> ObjectMeta:
    reader = MappingReader(value, path, _FIELDS, strict=strict)
    name = reader.require_str("name", name_check)
    if namespaced:
        namespace = reader.str_or("namespace", DEFAULT_NAMESPACE, check_dns1123_label)
    else:
        namespace = ""
        if strict and reader.has("namespace"):
            raise FieldError(
                reader.path("namespace"), "must not be set: the kind is not namespaced"
            )
    return ObjectMeta(
        name=name,
        namespace=namespace,
        labels=reader.str_map("labels", check_qualified_name, check_label_value),
        annotations=reader.str_map("annotations", check_qualified_name),
        uid=reader.str_or("uid", ""),
        resource_version=reader.str_or("resourceVersion", ""),
        creation_timestamp=reader.str_or("creationTimestamp", "", check_timestamp),
    )


def read_name_for_messages(value: object) -> tuple[str, str]:
    """Best-effort (namespace, name) of a raw object, to say which object an error is in."""
    if isinstance(value, Mapping):
        name = value.get("name")
        namespace = value.get("namespace", DEFAULT_NAMESPACE)
        return (
            namespace if isinstance(namespace, str) else "?",
            name if isinstance(name, str) else "",
        )
    return (DEFAULT_NAMESPACE, "")
