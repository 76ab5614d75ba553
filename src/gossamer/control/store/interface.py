"""The store interface controllers are written against, and its watch events.

A store holds resources addressed by (kind, namespace, name). Every change gets a new
resourceVersion: an opaque string to callers (Kubernetes' rule), though the local backends
use a global counter. Writes validate the object (`Invalid` names the field) and follow
Kubernetes' PUT semantics:

- `create` fails with AlreadyExists; the object must not carry a resourceVersion.
- `update` replaces labels, annotations and spec (status is kept: it has its own writer);
  `update_status` replaces only the status. Both check the caller's resourceVersion when it
  is set (`Conflict` if the object changed since), and write unconditionally when it is empty.
- `apply` creates, or replaces labels, annotations and spec of an existing object; it keeps
  the stored status unless the given object has one. A resourceVersion, if given, is checked.
- A write that changes nothing keeps the resourceVersion and produces no watch event, so
  applying the same file twice does not wake controllers.
- uid and creationTimestamp are the store's: set on create, never changed.

Watch grammar. `watch(kind, namespace, since)` yields:

    stream   := snapshot change*          (since=None, or since too old/unknown)
              | change*                   (since = a resourceVersion still in the change log)
    change   := ADDED | MODIFIED | DELETED | snapshot
    snapshot := RESET ADDED* SYNCED

RESET means "forget what you know of this kind (in this namespace)": the ADDED events up to
SYNCED are then the complete current state, and SYNCED carries the resourceVersion it is
consistent at (a later watch can resume from it). The stream starts with a snapshot, and
sends another one whenever the watcher fell so far behind that the bounded change log no
longer holds the changes it missed: a watcher never silently misses a change, but after a
RESET it sees only the latest state, not every intermediate one. Changes arrive in
resourceVersion order. A DELETED event carries the object's last state, stamped with the
resourceVersion of the deletion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, overload

from gossamer.core.resources import Resource


class WatchEventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    RESET = "RESET"
    SYNCED = "SYNCED"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event of a watch; `resource` is None exactly for RESET and SYNCED."""

    type: WatchEventType
    resource: Resource | None
    resource_version: str


@dataclass(frozen=True, slots=True)
class ResourceList(Sequence[Resource]):
    """The result of `list`: the objects, sorted by (namespace, name), and the
    resourceVersion the listing is consistent at."""

    items: tuple[Resource, ...]
    resource_version: str

    @overload
    def __getitem__(self, index: int) -> Resource: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Resource]: ...
    def __getitem__(self, index: int | slice) -> Resource | Sequence[Resource]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.items)


class Store(Protocol):
    """Resources by kind, namespace and name, with optimistic concurrency and watches."""

    async def get(self, kind: str, namespace: str, name: str) -> Resource:
        """The object, or NotFound."""
        ...

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> ResourceList:
        """Objects of a kind, in one namespace or all (None), whose labels match `selector`."""
        ...

    async def create(self, resource: Resource) -> Resource:
        """Store a new object; returns it as stored (uid, resourceVersion, timestamp set)."""
        ...

    async def update(self, resource: Resource) -> Resource:
        """Replace labels, annotations and spec; NotFound, Conflict."""
        ...

    async def apply(self, resource: Resource) -> Resource:
        """Create, or replace labels, annotations, spec (and status if given)."""
        ...

    async def update_status(self, resource: Resource) -> Resource:
        """Replace the status only; NotFound, Conflict."""
        ...

    async def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        missing_ok: bool = False,
    ) -> bool:
        """Delete; True if it existed. NotFound unless `missing_ok`; Conflict if
        `resource_version` is given and the object has changed since."""
        ...

    def watch(
        self, kind: str, namespace: str | None = None, since: str | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Events of a kind (see the grammar in this module's docstring). Ends when the
        store closes; closing the iterator (`aclose`, leaving `async for`) stops it."""
        ...

    async def close(self) -> None: ...
