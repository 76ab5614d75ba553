"""The parts HTTPRoute and GRPCRoute share, in Gateway API's GAMMA (mesh) shape.

A route attaches to Services through `parentRefs` (kind Service, group `core` or ""), may
narrow itself to `hostnames`, and sends matching requests to weighted `backendRefs` (Services),
after header filters. Validation follows the API server's (the CRDs' OpenAPI and CEL rules)
for what Gossamer supports, and refuses what it does not support with a field error saying so,
rather than accepting a route that would silently do nothing:

- a parentRef must name a Service: Gateway API defaults `kind` to Gateway and `group` to
  gateway.networking.k8s.io, which would attach the route to no Service in a mesh;
- filters other than RequestHeaderModifier / ResponseHeaderModifier, and filters on a single
  backendRef, are refused as not supported.

One deliberate leniency: a backendRef without `port` is accepted and uses the port of the
parent the route serves (the API server requires the port for Service backends).

Limits are Gateway API's: 32 parentRefs, 16 hostnames, 16 rules, 16 filters, 16 backendRefs,
16 header or query matches, 16 set/add/remove entries per header modifier.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gossamer.core.resources.errors import FieldError, FieldPath
from gossamer.core.resources.fields import MappingReader
from gossamer.core.resources.formats import (
    check_dns1035_label,
    check_dns1123_label,
    check_one_of,
)

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
CORE_GROUPS = ("", "core")

MAX_PARENT_REFS = 32
MAX_HOSTNAMES = 16
MAX_RULES = 16
MAX_MATCHES = 16
MAX_FILTERS = 16
MAX_BACKEND_REFS = 16
MAX_VALUE_MATCHES = 16
MAX_MODIFIER_ENTRIES = 16
MAX_WEIGHT = 1_000_000

EXACT = "Exact"
REGULAR_EXPRESSION = "RegularExpression"
MATCH_TYPES = (EXACT, REGULAR_EXPRESSION)

REQUEST_HEADER_MODIFIER = "RequestHeaderModifier"
RESPONSE_HEADER_MODIFIER = "ResponseHeaderModifier"
SUPPORTED_FILTERS = (REQUEST_HEADER_MODIFIER, RESPONSE_HEADER_MODIFIER)
# Filter type -> the field that carries its configuration.
_FILTER_FIELDS = {
    REQUEST_HEADER_MODIFIER: "requestHeaderModifier",
    RESPONSE_HEADER_MODIFIER: "responseHeaderModifier",
    "RequestMirror": "requestMirror",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "CORS": "cors",
    "ExtensionRef": "extensionRef",
}

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_IPV4ISH = re.compile(r"^[0-9.]+$")

ItemT = TypeVar("ItemT")


# -- string checks -----------------------------------------------------------------------


def check_header_name(value: str) -> str | None:
    """An HTTP header name (an RFC 7230 token), at most 256 characters."""
    if not value or len(value) > 256 or not _HEADER_NAME.match(value):
        return "must be an HTTP header name: 1 to 256 letters, digits and !#$%&'*+-.^_`|~"
    return None


def check_hostname(value: str) -> str | None:
    """A Gateway API hostname: a DNS name, optionally `*.` first; never an IP address."""
    if len(value) > 253 or not _HOSTNAME.match(value) or _IPV4ISH.match(value):
        return (
            "must be a hostname: lowercase DNS labels separated by '.', optionally starting "
            "with '*.', at most 253 characters, not an IP address"
        )
    return None


def check_regex(value: str) -> str | None:
    """A regular expression that compiles (matching uses Python's `re`)."""
    try:
        re.compile(value)
    except re.error as error:
        return f"must be a valid regular expression ({error})"
    return None


def check_max_length(limit: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return f"must be at most {limit} characters" if len(value) > limit else None

    return check


# -- list helpers ------------------------------------------------------------------------


def read_items(
    reader: MappingReader,
    key: str,
    limit: int,
    parse: Callable[[object, FieldPath, bool], ItemT],
) -> tuple[ItemT, ...]:
    """A list field of at most `limit` entries, each parsed with its own path."""
    items = reader.list_items(key)
    if len(items) > limit:
        raise FieldError(reader.path(key), f"must have at most {limit} entries (got {len(items)})")
    return tuple(parse(item, path, reader.strict) for path, item in items)


def check_unique(names: list[tuple[FieldPath, str]], what: str, *, fold_case: bool) -> None:
    """Refuse a repeated name in a list (Gateway API's list-map keys). Each entry is the
    path of the name (its list index second to last, or last for a list of names)."""
    seen: dict[str, int] = {}
    for path, name in names:
        key = name.lower() if fold_case else name
        index = next(part for part in reversed(path) if isinstance(part, int))
        if key in seen:
            raise FieldError(path, f"duplicate {what} {name!r} (also entry [{seen[key]}])")
        seen[key] = index


# -- value matches (headers, query parameters) ------------------------------------------


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """A header or query parameter match: `name` equals `value`, or matches it as a regex."""

    name: str
    value: str
    type: str = EXACT

    @property
    def regex(self) -> bool:
        return self.type == REGULAR_EXPRESSION

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "value": self.value}


_VALUE_MATCH_FIELDS = ("type", "name", "value")


def _parse_value_match(
    value: object, path: FieldPath, strict: bool, *, value_limit: int
) -> ValueMatch:
    reader = MappingReader(value, path, _VALUE_MATCH_FIELDS, strict=strict)
    kind = reader.str_or("type", EXACT, check_one_of(MATCH_TYPES))
    name = reader.require_str("name", check_header_name)
    text = reader.require_str("value", _value_check(value_limit, regex=kind == REGULAR_EXPRESSION))
    return ValueMatch(name=name, value=text, type=kind)


def _value_check(limit: int, *, regex: bool) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not value:
            return "must not be empty"
        if len(value) > limit:
            return f"must be at most {limit} characters"
        return check_regex(value) if regex else None

    return check


def parse_header_match(value: object, path: FieldPath, strict: bool) -> ValueMatch:
    return _parse_value_match(value, path, strict, value_limit=4096)


def parse_query_match(value: object, path: FieldPath, strict: bool) -> ValueMatch:
    return _parse_value_match(value, path, strict, value_limit=1024)


def read_value_matches(
    reader: MappingReader,
    key: str,
    parse: Callable[[object, FieldPath, bool], ValueMatch],
    *,
    fold_case: bool,
) -> tuple[ValueMatch, ...]:
    matches = read_items(reader, key, MAX_VALUE_MATCHES, parse)
    paths = [path for path, _ in reader.list_items(key)]
    check_unique(
        [((*path, "name"), match.name) for path, match in zip(paths, matches, strict=True)],
        "name",
        fold_case=fold_case,
    )
    return matches


# -- parent and backend references -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParentRef:
    """A Service the route attaches to. `namespace` None means the route's own; `port` and
    `section_name` (a port's name) None mean every port of the Service."""

    name: str
    namespace: str | None = None
    port: int | None = None
    section_name: str | None = None
    group: str = ""
    kind: str = "Service"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"group": self.group, "kind": self.kind, "name": self.name}
        if self.namespace is not None:
            data["namespace"] = self.namespace
        if self.section_name is not None:
            data["sectionName"] = self.section_name
        if self.port is not None:
            data["port"] = self.port
        return data


_PARENT_FIELDS = ("group", "kind", "namespace", "name", "sectionName", "port")


def parse_parent_ref(value: object, path: FieldPath, strict: bool) -> ParentRef:
    reader = MappingReader(value, path, _PARENT_FIELDS, strict=strict)
    kind = reader.optional_str("kind")
    if kind is None:
        raise FieldError(
            reader.path("kind"),
            "required: Gossamer routes attach to Services (kind: Service, group: core); "
            "Gateway API would default it to Gateway, which Gossamer does not serve",
        )
    if kind != "Service":
        raise FieldError(
            reader.path("kind"),
            f"kind {kind} is not supported: Gossamer routes attach to Services "
            "(kind: Service, group: core)",
        )
    group = reader.optional_str("group")
    if group is None:
        raise FieldError(
            reader.path("group"),
            'required for kind Service: write group: core (or ""); Gateway API would default '
            f"it to {GATEWAY_GROUP}, where there is no Service",
        )
    if group not in CORE_GROUPS:
        raise FieldError(
            reader.path("group"),
            f'must be "core" or "" for kind Service (got {group!r})',
        )
    return ParentRef(
        name=reader.require_str("name", check_dns1035_label),
        namespace=reader.optional_str("namespace", check_dns1123_label),
        port=reader.optional_int("port", 1, 65535),
        section_name=reader.optional_str("sectionName", check_dns1123_label),
        group=group,
        kind=kind,
    )


def read_parent_refs(reader: MappingReader) -> tuple[ParentRef, ...]:
    refs = read_items(reader, "parentRefs", MAX_PARENT_REFS, parse_parent_ref)
    # Gateway API: several references to one parent must each name a distinct port/section.
    seen: dict[tuple[str | None, str], list[tuple[int, ParentRef]]] = {}
    for index, ref in enumerate(refs):
        same = seen.setdefault((ref.namespace, ref.name), [])
        for other_index, other in same:
            whole = (ref.port, ref.section_name) == (None, None) or (
                other.port,
                other.section_name,
            ) == (None, None)
            if whole or (ref.port, ref.section_name) == (other.port, other.section_name):
                raise FieldError(
                    (*reader.path("parentRefs"), index),
                    f"refers to the same Service as parentRefs[{other_index}]; several "
                    "references to one Service must each set a different port or sectionName",
                )
        same.append((index, ref))
    return refs


@dataclass(frozen=True, slots=True)
class BackendRef:
    """A Service requests go to. `namespace` None: the route's; `port` None: the parent's
    port; `weight` is relative to the rule's other backends (0: never chosen)."""

    name: str
    namespace: str | None = None
    port: int | None = None
    weight: int = 1
    group: str = ""
    kind: str = "Service"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "group": self.group,
            "kind": self.kind,
            "name": self.name,
            "weight": self.weight,
        }
        if self.namespace is not None:
            data["namespace"] = self.namespace
        if self.port is not None:
            data["port"] = self.port
        return data


_BACKEND_FIELDS = ("group", "kind", "name", "namespace", "port", "weight", "filters")


def parse_backend_ref(value: object, path: FieldPath, strict: bool) -> BackendRef:
    reader = MappingReader(value, path, _BACKEND_FIELDS, strict=strict)
    kind = reader.str_or("kind", "Service")
    if kind != "Service":
        raise FieldError(
            reader.path("kind"), f"kind {kind} is not supported: backends are Services"
        )
    group = reader.str_or("group", "")
    if group not in CORE_GROUPS:
        raise FieldError(
            reader.path("group"), f'must be "core" or "" for kind Service (got {group!r})'
        )
    if reader.list_items("filters"):
        raise FieldError(
            reader.path("filters"),
            "filters on a single backendRef are not supported; put them on the rule",
        )
    return BackendRef(
        name=reader.require_str("name", check_dns1035_label),
        namespace=reader.optional_str("namespace", check_dns1123_label),
        port=reader.optional_int("port", 1, 65535),
        weight=reader.int_or("weight", 1, 0, MAX_WEIGHT),
        group=group,
        kind=kind,
    )


# -- filters -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    """Headers to set (replace), add (append) and remove, in that order of application."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.set:
            data["set"] = [{"name": name, "value": value} for name, value in self.set]
        if self.add:
            data["add"] = [{"name": name, "value": value} for name, value in self.add]
        if self.remove:
            data["remove"] = list(self.remove)
        return data


def _parse_header(value: object, path: FieldPath, strict: bool) -> tuple[str, str]:
    reader = MappingReader(value, path, ("name", "value"), strict=strict)
    return (
        reader.require_str("name", check_header_name),
        reader.require_str("value", check_max_length(4096)),
    )


def parse_header_modifier(value: object, path: FieldPath, strict: bool) -> HeaderModifier:
    reader = MappingReader(value, path, ("set", "add", "remove"), strict=strict)
    entries: dict[str, tuple[tuple[str, str], ...]] = {}
    for key in ("set", "add"):
        entries[key] = read_items(reader, key, MAX_MODIFIER_ENTRIES, _parse_header)
        check_unique(
            [
                ((*item_path, "name"), name)
                for (item_path, _), (name, _) in zip(
                    reader.list_items(key), entries[key], strict=True
                )
            ],
            "header",
            fold_case=True,
        )
    removed = reader.str_list("remove", check_header_name)
    if len(removed) > MAX_MODIFIER_ENTRIES:
        raise FieldError(
            reader.path("remove"),
            f"must have at most {MAX_MODIFIER_ENTRIES} entries (got {len(removed)})",
        )
    check_unique(
        [((*reader.path("remove"), index), name) for index, name in enumerate(removed)],
        "header",
        fold_case=True,
    )
    modifier = HeaderModifier(set=entries["set"], add=entries["add"], remove=removed)
    if not (modifier.set or modifier.add or modifier.remove):
        raise FieldError(path, "must set, add or remove at least one header")
    return modifier


@dataclass(frozen=True, slots=True)
class RouteFilter:
    """A supported filter: a request or a response header modifier."""

    type: str
    header_modifier: HeaderModifier

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, _FILTER_FIELDS[self.type]: self.header_modifier.to_dict()}


def filter_parser(allowed: tuple[str, ...]) -> Callable[[object, FieldPath, bool], RouteFilter]:
    """A parser for the filters a route kind defines (`allowed`); only header modifiers
    among them are supported."""
    fields = ("type", *(_FILTER_FIELDS[name] for name in allowed))

    def parse(value: object, path: FieldPath, strict: bool) -> RouteFilter:
        reader = MappingReader(value, path, fields, strict=strict)
        kind = reader.require_str("type", check_one_of(allowed))
        if kind not in SUPPORTED_FILTERS:
            raise FieldError(
                reader.path("type"),
                f"filter {kind} is not supported; supported: {', '.join(SUPPORTED_FILTERS)}",
            )
        config_field = _FILTER_FIELDS[kind]
        for other in fields[1:]:
            if other != config_field and reader.has(other):
                raise FieldError(reader.path(other), f"must not be set when type is {kind}")
        raw = reader.get(config_field)
        if raw is None:
            raise FieldError(reader.path(config_field), f"required when type is {kind}")
        return RouteFilter(kind, parse_header_modifier(raw, reader.path(config_field), strict))

    return parse


def read_filters(
    reader: MappingReader, parse: Callable[[object, FieldPath, bool], RouteFilter]
) -> tuple[RouteFilter, ...]:
    filters = read_items(reader, "filters", MAX_FILTERS, parse)
    seen: dict[str, int] = {}
    for index, route_filter in enumerate(filters):
        if route_filter.type in seen:
            raise FieldError(
                (*reader.path("filters"), index),
                f"{route_filter.type} cannot be repeated (also filters[{seen[route_filter.type]}])",
            )
        seen[route_filter.type] = index
    return filters


def read_hostnames(reader: MappingReader) -> tuple[str, ...]:
    hostnames = reader.str_list("hostnames", check_hostname)
    if len(hostnames) > MAX_HOSTNAMES:
        raise FieldError(
            reader.path("hostnames"),
            f"must have at most {MAX_HOSTNAMES} entries (got {len(hostnames)})",
        )
    return hostnames


def modifier_of(filters: tuple[RouteFilter, ...], kind: str) -> HeaderModifier | None:
    """The rule's request or response header modifier, if it has one."""
    return next((f.header_modifier for f in filters if f.type == kind), None)
