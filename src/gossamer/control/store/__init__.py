"""The store of resources: one interface, several backends.

- `interface`: the `Store` protocol, `WatchEvent` and the watch grammar (read it first).
- `errors`: NotFound, AlreadyExists, Conflict, Invalid, all `StoreError`s.
- `writes`: the write semantics (preconditions, what an update keeps), as pure functions.
- `changelog`: `ChangeLogStore`, the interface implemented once over storage primitives.
- `sqlite`: `SQLiteStore`, local mode's backend. `memory`: `MemoryStore`, for tests.

A Kubernetes backend (API server list/watch) implements `Store` directly and runs the same
contract tests (tests/control/test_store_contract.py).

May import `gossamer.core`; nothing else from gossamer.
"""

from typing import TYPE_CHECKING

from gossamer.control.store.errors import AlreadyExists, Conflict, Invalid, NotFound, StoreError
from gossamer.control.store.interface import ResourceList, Store, WatchEvent, WatchEventType
from gossamer.control.store.memory import MemoryStore
from gossamer.control.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    # mypy checks here that every backend implements the Store protocol.
    def _backends(memory: MemoryStore, sqlite: SQLiteStore) -> tuple[Store, Store]:
        return memory, sqlite


__all__ = [
    "AlreadyExists",
    "Conflict",
    "Invalid",
    "MemoryStore",
    "NotFound",
    "ResourceList",
    "SQLiteStore",
    "Store",
    "StoreError",
    "WatchEvent",
    "WatchEventType",
]
