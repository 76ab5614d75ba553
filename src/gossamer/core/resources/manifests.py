"""Multi-document YAML manifests to resources and back, with errors that point at a line.

`load_documents` reads `kubectl apply -f`-style text: documents separated by `---`, empty
documents skipped. Every problem is a `ManifestError` located as `file:line:column`: malformed
YAML (PyYAML's own mark), a document that is not a mapping, a missing apiVersion/kind/name, and
also a field that fails validation, whose line is looked up from the YAML nodes.

The loader differs from PyYAML's SafeLoader where Kubernetes' YAML does: timestamps stay
strings (`creationTimestamp` must survive a round trip), duplicate keys are an error (not
"last one wins"), and aliases are capped so a small text cannot expand into a huge object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gossamer.core.resources.errors import (
    FieldError,
    FieldPath,
    ManifestError,
    UnknownKindError,
    ValidationError,
)
from gossamer.core.resources.registry import KindRegistry
from gossamer.core.resources.resource import Resource

MAX_ALIASES = 100
MAX_DEPTH = 64
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"

# Where each constructed list or mapping came from: id(container) -> key/index -> (line, col).
_Positions = dict[int, dict[str | int, tuple[int, int]]]


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader that records positions, refuses duplicate keys and caps aliases."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.positions: _Positions = {}
        self.alias_count = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # PyYAML composes and constructs recursively: bound the depth before Python's stack.
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases", self.peek_event().start_mark
                )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mark(node: Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _construct_mapping(loader: _ManifestLoader, node: MappingNode) -> Iterator[dict[Any, Any]]:
    data: dict[Any, Any] = {}
    yield data
    loader.flatten_mapping(node)
    positions: dict[str | int, tuple[int, int]] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in data
        except TypeError:
            raise ConstructorError(
                "while reading a mapping", node.start_mark, "unhashable key", key_node.start_mark
            ) from None
        if duplicate:
            raise ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {key!r}",
                key_node.start_mark,
            )
        data[key] = loader.construct_object(value_node, deep=True)
        if isinstance(key, str | int):
            positions[key] = _mark(key_node)
    loader.positions[id(data)] = positions


def _construct_sequence(loader: _ManifestLoader, node: SequenceNode) -> Iterator[list[Any]]:
    data: list[Any] = []
    yield data
    data.extend(loader.construct_object(child, deep=True) for child in node.value)
    loader.positions[id(data)] = {index: _mark(child) for index, child in enumerate(node.value)}


_ManifestLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_ManifestLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_documents(
    text: str,
    source: str = "<input>",
    *,
    registry: KindRegistry | None = None,
    strict: bool = True,
) -> list[Resource]:
    """Parse and validate every document of a YAML text; the first problem raises."""
    resources = []
    for number, line, data, positions in _documents(text, source):
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
            raise ManifestError(
                source,
                f"must be a mapping with apiVersion and kind (got {kind})",
                line=line,
                document=number,
            )
        try:
            resources.append(Resource.from_dict(data, registry=registry, strict=strict))
        except (FieldError, ValidationError) as error:
            at_line, at_column = _locate(data, error.path, positions) or (line, None)
            raise ManifestError(
                source, str(error), line=at_line, column=at_column, document=number
            ) from None
        except UnknownKindError as error:
            at_line, at_column = _locate(data, ("kind",), positions) or (line, None)
            raise ManifestError(
                source, str(error), line=at_line, column=at_column, document=number
            ) from None
    return resources


def _documents(text: str, source: str) -> Iterator[tuple[int, int, object, _Positions]]:
    """(1-based document number, first line, data, positions) for each non-empty document."""
    loader = None
    try:
        loader = _ManifestLoader(text)
        number = 0
        while loader.check_node():
            number += 1
            node = loader.get_node()
            if node is None or (isinstance(node, ScalarNode) and node.tag.endswith(":null")):
                continue
            line = node.start_mark.line + 1
            try:
                data = loader.construct_document(node)
            except ValueError as error:  # an explicit !!float that is no float, a huge int
                raise ManifestError(source, f"invalid YAML: {error}", line=line) from None
            yield number, line, data, loader.positions
            loader.positions = {}
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = ": ".join(part for part in (error.context, error.problem) if part)
        raise ManifestError(
            source,
            f"invalid YAML: {problem}",
            line=None if mark is None else mark.line + 1,
            column=None if mark is None else mark.column + 1,
        ) from None
    except yaml.YAMLError as error:
        raise ManifestError(source, "invalid YAML: " + " ".join(str(error).split())) from None
    finally:
        if loader is not None:
            loader.dispose()


def _locate(data: object, path: FieldPath, positions: _Positions) -> tuple[int, int] | None:
    """The line and column of the deepest part of `path` that exists in the document."""
    found = None
    node = data
    for part in path:
        where = positions.get(id(node), {}).get(part)
        if where is None:
            break
        found = where
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part]
    return found


class _ManifestDumper(yaml.SafeDumper):
    """SafeDumper that writes NEL (U+0085) escaped: PyYAML emits it raw in a single-quoted
    scalar, where its own loader reads it back as a line break."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if "\x85" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def dump_documents(resources: Iterable[Resource]) -> str:
    """Canonical YAML of resources, separated by `---`, that `load_documents` reads back."""
    return yaml.dump_all(
        [resource.to_dict() for resource in resources],
        Dumper=_ManifestDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
