"""The store behaviour shared by the backends that keep their own change log.

`ChangeLogStore` implements the whole `Store` interface once, on top of a few storage
primitives (a write transaction, reads, and "changes after resourceVersion N") that
`SQLiteStore` and `MemoryStore` provide. So both backends enforce the same write semantics
(`writes`) and produce the same watch stream; the contract tests check both.

Theory of operation of a watch: every write assigns the next global resourceVersion and
appends (resourceVersion, type, object) to a change log that keeps only the last N entries.
A watcher remembers the resourceVersion it has seen up to and asks for the changes of its
kind after it. If the log no longer reaches back that far (or the position is unknown: a
resourceVersion from before the store was recreated), the watcher re-lists and emits a
snapshot (RESET, ADDED..., SYNCED). When there is nothing new it sleeps until a write of this
process wakes it, or until the poll interval passes and the backend's change token (for
SQLite, `PRAGMA data_version`, which moves when another process commits) says there may be
something new. An idle watcher therefore costs one cheap token check per interval.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, Self

from gossamer.control.store.errors import Invalid, NotFound, StoreError
from gossamer.control.store.interface import ResourceList, WatchEvent, WatchEventType
from gossamer.control.store.writes import (
    applied,
    check_delete,
    created,
    kind_info,
    status_updated,
    updated,
    validated,
)
from gossamer.core.resources import KindRegistry, Resource, selector_matches
from gossamer.core.resources.formats import format_timestamp

DEFAULT_POLL_INTERVAL = 0.1
DEFAULT_CHANGE_LOG_SIZE = 10_000
WATCH_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class LoggedChange:
    resource_version: int
    type: WatchEventType  # ADDED, MODIFIED or DELETED
    resource: Resource


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Changes of one kind after a position, and how far the log was read to find them
    (the next position: past changes of other kinds too)."""

    changes: Sequence[LoggedChange]
    read_through: int


class WriteTransaction(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> Resource | None: ...

    def put(self, resource: Resource, change: WatchEventType) -> Resource:
        """Store the object under the next resourceVersion and log the change; returns the
        object as stored."""
        ...

    def remove(self, resource: Resource) -> Resource:
        """Delete the object, logging DELETED under the next resourceVersion."""
        ...


def _new_uid() -> str:
    return str(uuid.uuid4())


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


class ChangeLogStore(ABC):
    """A `Store` over storage primitives; subclasses provide storage, not behaviour."""

    def __init__(self, *, registry: KindRegistry, poll_interval: float) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._registry = registry
        self._poll_interval = poll_interval
        self._local_writes = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._closed = False

    # Storage primitives, all quick and synchronous (see each backend for why inline).

    @abstractmethod
    def _write(self) -> AbstractContextManager[WriteTransaction]: ...

    @abstractmethod
    def _read(self, kind: str, namespace: str, name: str) -> Resource | None: ...

    @abstractmethod
    def _read_all(self, kind: str, namespace: str | None) -> tuple[Sequence[Resource], int]:
        """Every object of a kind, sorted by (namespace, name), and the resourceVersion
        this listing is consistent at."""

    @abstractmethod
    def _read_changes(
        self, kind: str, namespace: str | None, after: int, limit: int
    ) -> ChangeBatch | None:
        """Up to `limit` changes after `after`; None when the log cannot say what changed
        since `after` (trimmed past it, or `after` is ahead of this store)."""

    @abstractmethod
    def _close_storage(self) -> None: ...

    def _change_token(self) -> object:
        """A value that differs whenever a write may have happened since it was taken."""
        return self._local_writes

    # The Store interface.

    async def get(self, kind: str, namespace: str, name: str) -> Resource:
        self._check_usable(kind)
        found = self._read(kind, namespace, name)
        if found is None:
            raise NotFound(kind, namespace, name)
        return found

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> ResourceList:
        self._check_usable(kind)
        items, version = self._read_all(kind, namespace)
        if selector:
            items = [item for item in items if selector_matches(selector, item.metadata.labels)]
        return ResourceList(tuple(items), str(version))

    async def create(self, resource: Resource) -> Resource:
        def plan(requested: Resource, existing: Resource | None) -> Resource:
            return created(requested, existing, uid=_new_uid(), now=_now())

        return self._write_one(resource, plan)

    async def update(self, resource: Resource) -> Resource:
        return self._write_one(resource, updated)

    async def apply(self, resource: Resource) -> Resource:
        def plan(requested: Resource, existing: Resource | None) -> Resource:
            return applied(requested, existing, uid=_new_uid(), now=_now())

        return self._write_one(resource, plan)

    async def update_status(self, resource: Resource) -> Resource:
        return self._write_one(resource, status_updated)

    async def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        missing_ok: bool = False,
    ) -> bool:
        self._check_usable(kind)
        with self._write() as transaction:
            existing = transaction.get(kind, namespace, name)
            if existing is None and missing_ok:
                return False
            transaction.remove(check_delete(kind, namespace, name, existing, resource_version))
        self._wake_watchers()
        return True

    async def watch(
        self, kind: str, namespace: str | None = None, since: str | None = None
    ) -> AsyncIterator[WatchEvent]:
        self._check_usable(kind)
        position = _parse_position(since)
        while not self._closed:
            if position is None:
                items, position = self._read_all(kind, namespace)
                yield WatchEvent(WatchEventType.RESET, None, "")
                for item in items:
                    yield WatchEvent(WatchEventType.ADDED, item, item.resource_version)
                yield WatchEvent(WatchEventType.SYNCED, None, str(position))
                continue
            token = self._change_token()
            batch = self._read_changes(kind, namespace, position, WATCH_BATCH_SIZE)
            if batch is None:
                position = None
                continue
            for change in batch.changes:
                yield WatchEvent(change.type, change.resource, str(change.resource_version))
            position = batch.read_through
            if not batch.changes:
                await self._wait_for_change(token)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake_watchers()
        self._close_storage()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Helpers.

    def _check_usable(self, kind: str) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        kind_info(self._registry, kind)

    def _write_one(
        self, resource: Resource, plan: Callable[[Resource, Resource | None], Resource]
    ) -> Resource:
        """Validate a request, then in one transaction plan the object to store from it and
        the stored one, and write it unless it changes nothing."""
        # The canonical form first: its identity (a namespace defaulted, say) is the one
        # stored. Candidates are made of canonical parts, so they compare equal to the stored
        # object exactly when nothing changes.
        self._check_usable(resource.kind)
        requested = validated(resource, self._registry)
        with self._write() as transaction:
            existing = transaction.get(requested.kind, requested.namespace, requested.name)
            candidate = plan(requested, existing)
            if candidate == existing:
                assert existing is not None
                return existing
            change = WatchEventType.ADDED if existing is None else WatchEventType.MODIFIED
            stored = transaction.put(candidate, change)
        self._wake_watchers()
        return stored

    def _wake_watchers(self) -> None:
        self._local_writes += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _wait_for_change(self, token: object) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed and self._change_token() == token:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            timer = loop.call_later(self._poll_interval, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiters.discard(waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _parse_position(since: str | None) -> int | None:
    if since is None:
        return None
    if not since.isdigit():
        raise Invalid(f"watch: since must be a resourceVersion of this store (got {since!r})")
    return int(since)
