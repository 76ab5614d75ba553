"""Typed store errors, the same for every backend, so controllers handle them once.

They map onto Kubernetes API statuses: NotFound 404, AlreadyExists 409, Conflict 409 (stale
resourceVersion), Invalid 422; a Kubernetes backend raises these same types.
"""

from __future__ import annotations

from gossamer.core.resources import ResourceError, describe_object


class StoreError(Exception):
    """Any failure of a store operation."""


class NotFound(StoreError):
    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"{describe_object(kind, namespace, name)} not found")
        self.kind = kind
        self.namespace = namespace
        self.name = name


class AlreadyExists(StoreError):
    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"{describe_object(kind, namespace, name)} already exists")
        self.kind = kind
        self.namespace = namespace
        self.name = name


class Conflict(StoreError):
    """The object changed since the caller read it: re-read, re-apply the change, retry."""

    def __init__(self, subject: str, detail: str) -> None:
        super().__init__(f"{subject}: {detail}")
        self.subject = subject


class Invalid(StoreError):
    """The request is not valid: a resource failing validation, an unknown kind, a bad
    resourceVersion. `error` is the underlying ResourceError when there is one."""

    def __init__(self, message: str, error: ResourceError | None = None) -> None:
        super().__init__(message)
        self.error = error

    @classmethod
    def wrap(cls, error: ResourceError) -> Invalid:
        return cls(str(error), error)
