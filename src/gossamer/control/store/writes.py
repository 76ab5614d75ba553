"""What each write makes of the stored object: the store semantics, without storage.

Given the validated request and the object currently stored (or None), each function returns
the candidate object to store (its resourceVersion still the old one), or raises NotFound,
AlreadyExists, Conflict or Invalid. The backend skips the write if the candidate equals what
is stored, and otherwise stamps a new resourceVersion. Backends call these inside their write
transaction, so every backend behaves the same.
"""

from __future__ import annotations

from dataclasses import replace

from gossamer.control.store.errors import AlreadyExists, Conflict, Invalid, NotFound
from gossamer.core.resources import KindInfo, KindRegistry, Resource, ResourceError, validate


def kind_info(registry: KindRegistry, kind: str) -> KindInfo:
    try:
        return registry.by_kind(kind)
    except ResourceError as error:
        raise Invalid.wrap(error) from None


def validated(resource: Resource, registry: KindRegistry) -> Resource:
    """The canonical form of a resource (defaults filled), or Invalid naming the field."""
    try:
        return validate(resource, registry)
    except ResourceError as error:
        raise Invalid.wrap(error) from None


def with_version(resource: Resource, resource_version: str) -> Resource:
    return replace(resource, metadata=replace(resource.metadata, resource_version=resource_version))


def _check_preconditions(requested: Resource, existing: Resource) -> None:
    if requested.resource_version and requested.resource_version != existing.resource_version:
        raise Conflict(
            existing.describe(),
            f"the object has been modified (resourceVersion {existing.resource_version}, "
            f"not {requested.resource_version}); read it again and retry",
        )
    if requested.metadata.uid and requested.metadata.uid != existing.metadata.uid:
        raise Conflict(
            existing.describe(),
            f"uid {requested.metadata.uid} is of an object that has since been replaced",
        )


def created(requested: Resource, existing: Resource | None, *, uid: str, now: str) -> Resource:
    if existing is not None:
        raise AlreadyExists(requested.kind, requested.namespace, requested.name)
    if requested.resource_version:
        raise Invalid(
            f"{requested.describe()}: metadata.resourceVersion: must not be set when creating"
        )
    metadata = replace(requested.metadata, uid=uid, creation_timestamp=now)
    return replace(requested, metadata=metadata)


def _with_user_fields(requested: Resource, existing: Resource) -> Resource:
    """`existing` with the fields a user owns (labels, annotations, spec) taken from the
    request; identity, timestamps and status stay the store's."""
    metadata = replace(
        existing.metadata,
        labels=requested.metadata.labels,
        annotations=requested.metadata.annotations,
    )
    return replace(existing, metadata=metadata, spec=requested.spec)


def updated(requested: Resource, existing: Resource | None) -> Resource:
    if existing is None:
        raise NotFound(requested.kind, requested.namespace, requested.name)
    _check_preconditions(requested, existing)
    return _with_user_fields(requested, existing)


def status_updated(requested: Resource, existing: Resource | None) -> Resource:
    if existing is None:
        raise NotFound(requested.kind, requested.namespace, requested.name)
    _check_preconditions(requested, existing)
    return replace(existing, status=requested.status)


def applied(requested: Resource, existing: Resource | None, *, uid: str, now: str) -> Resource:
    if existing is None:
        if requested.resource_version:
            raise NotFound(requested.kind, requested.namespace, requested.name)
        return created(requested, None, uid=uid, now=now)
    _check_preconditions(replace(requested, metadata=replace(requested.metadata, uid="")), existing)
    candidate = _with_user_fields(requested, existing)
    if requested.status is not None:
        candidate = replace(candidate, status=requested.status)
    return candidate


def check_delete(
    kind: str, namespace: str, name: str, existing: Resource | None, resource_version: str | None
) -> Resource:
    if existing is None:
        raise NotFound(kind, namespace, name)
    if resource_version and resource_version != existing.resource_version:
        raise Conflict(
            existing.describe(),
            f"not deleted: resourceVersion is {existing.resource_version}, not {resource_version}",
        )
    return existing
