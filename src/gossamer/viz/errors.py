"""The errors of the viz package; the CLI turns each into one message and a non-zero exit."""

from __future__ import annotations


class VizError(Exception):
    """Something viz cannot answer; the message is meant for the user."""


class InvalidRequest(VizError):
    """The question itself is wrong (a bad `--from`, window or resource type)."""


class ResourceNotFound(VizError):
    """A resource named in the request is not in the store."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"{kind}/{name} not found in namespace {namespace}")
        self.kind = kind
        self.namespace = namespace
        self.name = name
