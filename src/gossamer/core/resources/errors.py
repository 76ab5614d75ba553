"""Errors of the resource model, each naming exactly what is wrong and where.

A `FieldError` names a field by its path inside one object (`spec.ports[1].port`); a
`ValidationError` adds which object (`Service demo/web`); a `ManifestError` adds where in a
YAML text (`app.yaml:12:9 (document 2)`). All are `ResourceError`s, so callers at a boundary
(the CLI, the store) catch one type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

# A field path: mapping keys and list indexes from the top of one object.
FieldPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(path: FieldPath) -> str:
    """`("spec", "ports", 1, "port")` -> `spec.ports[1].port`; odd keys are quoted.

    Label keys such as `app.kubernetes.io/name` are quoted so the path stays unambiguous:
    `metadata.labels["app.kubernetes.io/name"]`.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or "(top level)"


def describe_value(value: object) -> str:
    """How a wrong value is shown in a message: `70000`, `string "80"`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 80 else value[:77] + "..."
        return f"string {json.dumps(shown)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


class ResourceError(ValueError):
    """Any problem with a resource or a manifest; the message is meant for a user."""


class FieldError(ResourceError):
    """One field of an object is wrong: missing, of the wrong type, out of range, unknown."""

    def __init__(self, path: FieldPath, problem: str) -> None:
        super().__init__(f"{format_path(path)}: {problem}")
        self.path = path
        self.problem = problem


class ValidationError(ResourceError):
    """A field of a named object is wrong: `Service demo/web: spec.ports[1].port: ...`."""

    def __init__(self, subject: str, error: FieldError) -> None:
        super().__init__(f"{subject}: {error}")
        self.subject = subject
        self.path = error.path
        self.problem = error.problem


class UnknownKindError(ResourceError):
    """The apiVersion and kind name no registered kind."""

    def __init__(self, kind: str, api_version: str, known: Sequence[str]) -> None:
        super().__init__(
            f"unknown kind {kind} (apiVersion {api_version}); known kinds: {', '.join(known)}"
        )
        self.kind = kind
        self.api_version = api_version


class ManifestError(ResourceError):
    """A YAML manifest cannot be read: malformed YAML or an invalid document in it.

    `location` is `source:line:column` (1-based) when known, else `source`; `document` is the
    1-based index of the document in a multi-document text, when the problem is inside one.
    """

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        line: int | None = None,
        column: int | None = None,
        document: int | None = None,
    ) -> None:
        location = source
        if line is not None:
            location += f":{line}"
            if column is not None:
                location += f":{column}"
        prefix = f"{location} (document {document})" if document is not None else location
        super().__init__(f"{prefix}: {problem}")
        self.source = source
        self.line = line
        self.column = column
        self.document = document
        self.problem = problem
