"""Reading untrusted mappings (parsed YAML or JSON) into typed values, field by field.

A `MappingReader` wraps one mapping with its path from the top of the object. It is told up
front which fields exist, so in strict mode a misspelt field is reported before the
"required" error its absence would cause (`spec.ports[0].prot: unknown field (did you mean
"port"?)`), as `kubectl --validate=strict` does. Lenient mode ignores unknown fields: it reads
objects written by a newer version or by a Kubernetes API server, which adds fields of its own.

Null counts as absent, as in Kubernetes' JSON. Booleans are never integers (YAML's `yes` is a
boolean, and is refused where a number or a string is expected, with a hint to quote it).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from types import MappingProxyType

from gossamer.core.resources.errors import FieldError, FieldPath, describe_value
from gossamer.core.resources.formats import StringCheck


def _got(value: object) -> str:
    shown = describe_value(value)
    if isinstance(value, bool | int | float):
        return f"got {shown}; quote it to make it a string"
    return f"got {shown}"


def frozen_map(items: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """A read-only copy, so frozen resources stay frozen all the way down."""
    return MappingProxyType(dict(items or {}))


def require_mapping(value: object, path: FieldPath) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise FieldError(path, f"must be a mapping (got {describe_value(value)})")
    for key in value:
        if not isinstance(key, str):
            raise FieldError(path, f"keys must be strings (got {describe_value(key)})")
    return value


def read_str(value: object, path: FieldPath, check: StringCheck | None = None) -> str:
    if not isinstance(value, str):
        raise FieldError(path, f"must be a string ({_got(value)})")
    if check is not None:
        problem = check(value)
        if problem is not None:
            raise FieldError(path, f"{problem} (got {describe_value(value)})")
    return value


def read_int(value: object, path: FieldPath, low: int | None, high: int | None) -> int:
    if low is not None and high is not None:
        expected = f"an integer from {low} to {high}"
    elif low is not None:
        expected = f"an integer of at least {low}"
    else:
        expected = "an integer"
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(path, f"must be {expected} (got {describe_value(value)})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise FieldError(path, f"must be {expected} (got {value})")
    return value


def read_bool(value: object, path: FieldPath) -> bool:
    if not isinstance(value, bool):
        raise FieldError(path, f"must be true or false (got {describe_value(value)})")
    return value


def _check_key(key: str, path: FieldPath, check: StringCheck | None) -> None:
    problem = None if check is None else check(key)
    if problem is not None:
        raise FieldError(path, f"key {problem} (got {describe_value(key)})")


class MappingReader:
    """One mapping of an object being parsed; each read names its field's path on failure."""

    def __init__(
        self, value: object, path: FieldPath, fields: Collection[str], *, strict: bool
    ) -> None:
        self._data = require_mapping(value, path)
        self._path = path
        self._fields = fields
        self.strict = strict
        if strict:
            self._reject_unknown()

    def _reject_unknown(self) -> None:
        for key in self._data:
            if key not in self._fields:
                close = difflib.get_close_matches(key, list(self._fields), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                known = ", ".join(sorted(self._fields)) or "none"
                raise FieldError(
                    (*self._path, key), f"unknown field{hint}; known fields here: {known}"
                )

    def path(self, key: str) -> FieldPath:
        return (*self._path, key)

    def get(self, key: str) -> object:
        """The raw value of a declared field; None when absent or null."""
        assert key in self._fields, f"{key} is not a declared field"
        return self._data.get(key)

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def require_str(self, key: str, check: StringCheck | None = None) -> str:
        value = self.get(key)
        if value is None:
            raise FieldError(self.path(key), "required")
        return read_str(value, self.path(key), check)

    def optional_str(self, key: str, check: StringCheck | None = None) -> str | None:
        value = self.get(key)
        return None if value is None else read_str(value, self.path(key), check)

    def str_or(self, key: str, default: str, check: StringCheck | None = None) -> str:
        value = self.optional_str(key, check)
        return default if value is None else value

    def require_int(self, key: str, low: int | None = None, high: int | None = None) -> int:
        value = self.get(key)
        if value is None:
            raise FieldError(self.path(key), "required")
        return read_int(value, self.path(key), low, high)

    def optional_int(self, key: str, low: int | None = None, high: int | None = None) -> int | None:
        value = self.get(key)
        return None if value is None else read_int(value, self.path(key), low, high)

    def int_or(
        self, key: str, default: int, low: int | None = None, high: int | None = None
    ) -> int:
        value = self.optional_int(key, low, high)
        return default if value is None else value

    def bool_or(self, key: str, default: bool) -> bool:
        value = self.get(key)
        return default if value is None else read_bool(value, self.path(key))

    def list_items(self, key: str) -> list[tuple[FieldPath, object]]:
        """The elements of a list field with their paths; an absent list is empty."""
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise FieldError(self.path(key), f"must be a list (got {describe_value(value)})")
        return [((*self.path(key), index), item) for index, item in enumerate(value)]

    def str_list(self, key: str, check: StringCheck | None = None) -> tuple[str, ...]:
        return tuple(read_str(item, path, check) for path, item in self.list_items(key))

    def str_map(
        self,
        key: str,
        key_check: StringCheck | None = None,
        value_check: StringCheck | None = None,
    ) -> Mapping[str, str]:
        """A map of strings to strings; an absent map is empty."""
        value = self.get(key)
        if value is None:
            return frozen_map()
        entries = require_mapping(value, self.path(key))
        result: dict[str, str] = {}
        for entry_key, entry_value in entries.items():
            entry_path = (*self.path(key), entry_key)
            _check_key(entry_key, entry_path, key_check)
            result[entry_key] = read_str(entry_value, entry_path, value_check)
        return frozen_map(result)

    def int_map(
        self, key: str, key_check: StringCheck | None = None, low: int | None = None
    ) -> Mapping[str, int]:
        """A map of strings to integers (at least `low`); an absent map is empty."""
        value = self.get(key)
        if value is None:
            return MappingProxyType({})
        result: dict[str, int] = {}
        for entry_key, entry_value in require_mapping(value, self.path(key)).items():
            entry_path = (*self.path(key), entry_key)
            _check_key(entry_key, entry_path, key_check)
            result[entry_key] = read_int(entry_value, entry_path, low, None)
        return MappingProxyType(result)

    def child(self, key: str, fields: Collection[str]) -> MappingReader | None:
        """A nested mapping field, or None when absent."""
        value = self.get(key)
        if value is None:
            return None
        return MappingReader(value, self.path(key), fields, strict=self.strict)
