"""`MemoryStore`: the store in a dict, for unit tests of controllers.

Same interface and semantics as `SQLiteStore` (both are `ChangeLogStore`s), with a bounded
change log in a deque, so a controller tested against it behaves the same against SQLite.
Single process, single event loop: every operation is synchronous code between awaits, hence
atomic without locks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice

from gossamer.control.store.changelog import (
    DEFAULT_CHANGE_LOG_SIZE,
    ChangeBatch,
    ChangeLogStore,
    LoggedChange,
    WriteTransaction,
)
from gossamer.control.store.interface import WatchEventType
from gossamer.control.store.writes import with_version
from gossamer.core.resources import BUILTIN_KINDS, KindRegistry, Resource

_Key = tuple[str, str, str]  # kind, namespace, name

# Memory watchers are woken by every write directly; the poll only bounds a lost wakeup.
_MEMORY_POLL_INTERVAL = 1.0


class MemoryStore(ChangeLogStore):
    def __init__(
        self,
        *,
        registry: KindRegistry = BUILTIN_KINDS,
        change_log_size: int = DEFAULT_CHANGE_LOG_SIZE,
    ) -> None:
        super().__init__(registry=registry, poll_interval=_MEMORY_POLL_INTERVAL)
        if change_log_size < 1:
            raise ValueError("change_log_size must be at least 1")
        self._objects: dict[_Key, Resource] = {}
        self._changes: deque[LoggedChange] = deque()
        self._change_log_size = change_log_size
        self._resource_version = 0
        self._trimmed_through = 0

    @contextmanager
    def _write(self) -> Iterator[WriteTransaction]:
        yield _MemoryWrite(self)

    def _read(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self._objects.get((kind, namespace, name))

    def _read_all(self, kind: str, namespace: str | None) -> tuple[Sequence[Resource], int]:
        items = [
            resource
            for (item_kind, item_namespace, _), resource in self._objects.items()
            if item_kind == kind and namespace in (None, item_namespace)
        ]
        items.sort(key=lambda resource: (resource.namespace, resource.name))
        return items, self._resource_version

    def _read_changes(
        self, kind: str, namespace: str | None, after: int, limit: int
    ) -> ChangeBatch | None:
        if after < self._trimmed_through or after > self._resource_version:
            return None
        # Every resourceVersion has exactly one change, so the log is indexed by version.
        start = after - self._trimmed_through
        found: list[LoggedChange] = []
        read_through = after
        for change in islice(self._changes, start, None):
            read_through = change.resource_version
            resource = change.resource
            if resource.kind == kind and namespace in (None, resource.namespace):
                found.append(change)
                if len(found) == limit:
                    break
        return ChangeBatch(found, read_through)

    def _close_storage(self) -> None:
        pass

    def _log(self, change: WatchEventType, resource: Resource) -> Resource:
        self._resource_version += 1
        stamped = with_version(resource, str(self._resource_version))
        self._changes.append(LoggedChange(self._resource_version, change, stamped))
        while len(self._changes) > self._change_log_size:
            self._trimmed_through = self._changes.popleft().resource_version
        return stamped


class _MemoryWrite:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self._store._read(kind, namespace, name)

    def put(self, resource: Resource, change: WatchEventType) -> Resource:
        stamped = self._store._log(change, resource)
        self._store._objects[(resource.kind, resource.namespace, resource.name)] = stamped
        return stamped

    def remove(self, resource: Resource) -> Resource:
        del self._store._objects[(resource.kind, resource.namespace, resource.name)]
        return self._store._log(WatchEventType.DELETED, resource)
