"""The registry of resource kinds: (apiVersion, kind) -> how to parse and validate one.

A kind is described once, by a `KindInfo`, and registered; nothing else in the code lists
kinds. Kinds added later (HTTPRoute, Server, AuthorizationPolicy, ...) define their spec type
and parser in their own module and are added to `builtin.BUILTIN_KINDS`.

Kind names are unique within a registry, because stores address objects by kind name alone
(`store.get("Service", "demo", "web")`), as `kubectl get service` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gossamer.core.resources.errors import FieldPath, UnknownKindError
from gossamer.core.resources.formats import StringCheck


class ResourcePart(Protocol):
    """A typed spec or status: a frozen value that turns back into its canonical dict."""

    def to_dict(self) -> dict[str, Any]: ...


# parse(value, path, strict) -> typed part; raises FieldError naming the exact field.
PartParser = Callable[[object, FieldPath, bool], ResourcePart]

# check(annotations, path): raises FieldError at path + the key of an invalid annotation.
AnnotationCheck = Callable[[Mapping[str, str], FieldPath], None]


@dataclass(frozen=True, slots=True)
class KindInfo:
    """Everything the model knows about one kind.

    `parse_spec`/`parse_status` are None for kinds without a spec (ServiceAccount) or without
    a status (Service). `plural` and `short_names` let a CLI accept `services` and `svc`.
    `check_annotations` validates the annotations a kind gives meaning to (retries on a
    Service); it runs on strict parses only, so a stored object always stays readable.
    """

    api_version: str
    kind: str
    name_check: StringCheck
    parse_spec: PartParser | None = None
    parse_status: PartParser | None = None
    namespaced: bool = True
    plural: str = ""
    short_names: tuple[str, ...] = field(default=())
    check_annotations: AnnotationCheck | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} ({self.api_version})"


class KindRegistry:
    """Registered kinds, looked up by (apiVersion, kind) when parsing, by name elsewhere."""

    def __init__(self, kinds: Iterable[KindInfo] = ()) -> None:
        self._by_kind: dict[str, KindInfo] = {}
        for info in kinds:
            self.register(info)

    def register(self, info: KindInfo) -> None:
        if info.kind in self._by_kind:
            raise ValueError(f"kind {info.kind} is already registered")
        self._by_kind[info.kind] = info

    def lookup(self, api_version: str, kind: str) -> KindInfo:
        """The kind an object's `apiVersion` and `kind` name, or UnknownKindError."""
        info = self._by_kind.get(kind)
        if info is None or info.api_version != api_version:
            raise UnknownKindError(kind, api_version, [i.label for i in self])
        return info

    def by_kind(self, kind: str) -> KindInfo:
        """The kind called exactly `kind` (as stores are addressed), or UnknownKindError."""
        info = self._by_kind.get(kind)
        if info is None:
            raise UnknownKindError(kind, "any", [i.label for i in self])
        return info

    def resolve(self, word: str) -> KindInfo:
        """A kind by any name a user may type: `Service`, `service`, `services`, `svc`."""
        lowered = word.lower()
        for info in self:
            names = {info.kind.lower(), info.plural.lower(), *info.short_names}
            if lowered in names:
                return info
        raise UnknownKindError(word, "any", [i.label for i in self])

    def __iter__(self) -> Iterator[KindInfo]:
        return iter(sorted(self._by_kind.values(), key=lambda info: info.kind))

    def __contains__(self, kind: object) -> bool:
        return kind in self._by_kind
