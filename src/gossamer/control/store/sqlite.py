"""`SQLiteStore`: local mode's store, one SQLite file shared by every process of the node.

The CLI writes while the supervisor watches, so the file is opened by several processes at
once. What makes that safe:

- WAL journal: readers never block the writer, nor the writer readers.
- Every write is one short `BEGIN IMMEDIATE` transaction (the write lock is taken first, so
  two writers queue on the busy timeout instead of failing to upgrade a read lock), which
  reads the current object, checks preconditions, takes the next resourceVersion from the
  one-row `store_state` table and appends to the `changes` log. Commit order is therefore
  resourceVersion order, which is what lets a watcher read "changes after N" safely.
- `synchronous=NORMAL`: a crash of a process loses nothing; a power cut may lose the last
  commits, which local mode can afford (the supervisor reconciles from what is there).

Calls run inline on the event loop rather than in a thread. Each is an indexed lookup or a
small write (on the 2-core dev box: ~20 µs a read, ~0.15 ms a validated write), and the only
wait is the busy timeout while another process holds the write lock, which our own processes
hold for one short transaction. A thread would add a hop to every call and a second owner of
the connection, for no gain at this scale.

The change log keeps the last `change_log_size` changes; `store_state.trimmed_through` is the
newest resourceVersion dropped from it, which tells a watcher that it fell behind.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gossamer.control.store.changelog import (
    DEFAULT_CHANGE_LOG_SIZE,
    DEFAULT_POLL_INTERVAL,
    ChangeBatch,
    ChangeLogStore,
    LoggedChange,
    WriteTransaction,
)
from gossamer.control.store.errors import StoreError
from gossamer.control.store.interface import WatchEventType
from gossamer.control.store.writes import with_version
from gossamer.core.resources import BUILTIN_KINDS, KindRegistry, Resource, ResourceError

SCHEMA_VERSION = 1
DEFAULT_BUSY_TIMEOUT = 5.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS store_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        resource_version INTEGER NOT NULL,
        trimmed_through INTEGER NOT NULL,
        schema_version INTEGER NOT NULL
    )""",
    f"INSERT OR IGNORE INTO store_state VALUES (1, 0, 0, {SCHEMA_VERSION})",
    """CREATE TABLE IF NOT EXISTS objects (
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        resource_version INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, namespace, name)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS changes (
        resource_version INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS changes_by_kind ON changes (kind, resource_version)",
)


class SQLiteStore(ChangeLogStore):
    """A store in the SQLite file at `path` (created 0600, with its directory, if missing)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        registry: KindRegistry = BUILTIN_KINDS,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        change_log_size: int = DEFAULT_CHANGE_LOG_SIZE,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(registry=registry, poll_interval=poll_interval)
        if change_log_size < 1:
            raise ValueError("change_log_size must be at least 1")
        self.path = Path(path)
        self._change_log_size = change_log_size
        self._busy_timeout = busy_timeout
        self._db = _open(self.path, busy_timeout)

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """The one place SQLite's exceptions become StoreErrors."""
        try:
            yield
        except sqlite3.Error as error:
            hint = ""
            if "locked" in str(error):
                hint = f" (another process held the write lock over {self._busy_timeout:g} s)"
            raise StoreError(f"{self.path}: {error}{hint}") from None

    @contextmanager
    def _write(self) -> Iterator[WriteTransaction]:
        with self._sqlite_errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteWrite(self)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """A read transaction: every SELECT inside sees the same committed state."""
        with self._sqlite_errors():
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    def _read(self, kind: str, namespace: str, name: str) -> Resource | None:
        with self._sqlite_errors():
            row = self._db.execute(
                "SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            ).fetchone()
        return None if row is None else self._decode(row[0])

    def _read_all(self, kind: str, namespace: str | None) -> tuple[Sequence[Resource], int]:
        query = "SELECT body FROM objects WHERE kind = ?"
        parameters: tuple[str, ...] = (kind,)
        if namespace is not None:
            query += " AND namespace = ?"
            parameters += (namespace,)
        with self._snapshot():
            rows = self._db.execute(query + " ORDER BY namespace, name", parameters).fetchall()
            version, _ = self._state()
        return [self._decode(body) for (body,) in rows], version

    def _read_changes(
        self, kind: str, namespace: str | None, after: int, limit: int
    ) -> ChangeBatch | None:
        query = "SELECT resource_version, type, body FROM changes WHERE kind = ? AND "
        query += "resource_version > ?"
        parameters: tuple[str | int, ...] = (kind, after)
        if namespace is not None:
            query += " AND namespace = ?"
            parameters += (namespace,)
        with self._snapshot():
            version, trimmed_through = self._state()
            if after < trimmed_through or after > version:
                return None
            rows = self._db.execute(
                query + " ORDER BY resource_version LIMIT ?", (*parameters, limit)
            ).fetchall()
        changes = [
            LoggedChange(row_version, WatchEventType(change), self._decode(body))
            for row_version, change, body in rows
        ]
        # A full batch may stop short of the newest change; otherwise every change up to
        # `version` (of any kind) has been looked at.
        read_through = changes[-1].resource_version if len(changes) == limit else version
        return ChangeBatch(changes, read_through)

    def _change_token(self) -> object:
        # data_version moves when another connection commits; our own commits move the
        # local counter. Reading it touches no table: it is the cheap idle check.
        with self._sqlite_errors():
            (data_version,) = self._db.execute("PRAGMA data_version").fetchone()
        return (data_version, self._local_writes)

    def _close_storage(self) -> None:
        self._db.close()

    def _state(self) -> tuple[int, int]:
        version, trimmed_through = self._db.execute(
            "SELECT resource_version, trimmed_through FROM store_state WHERE id = 1"
        ).fetchone()
        return version, trimmed_through

    def _decode(self, body: str) -> Resource:
        try:
            # Lenient: objects written by a newer Gossamer may carry fields this one lacks.
            return Resource.from_dict(json.loads(body), registry=self._registry, strict=False)
        except (ValueError, ResourceError) as error:
            raise StoreError(f"{self.path}: a stored object cannot be read: {error}") from None

    def _log(self, change: WatchEventType, resource: Resource) -> tuple[Resource, str]:
        """Take the next resourceVersion, log the change under it, trim the log."""
        (version,) = self._db.execute(
            "UPDATE store_state SET resource_version = resource_version + 1 WHERE id = 1 "
            "RETURNING resource_version"
        ).fetchone()
        stamped = with_version(resource, str(version))
        body = json.dumps(stamped.to_dict(), separators=(",", ":"), sort_keys=True)
        self._db.execute(
            "INSERT INTO changes (resource_version, kind, namespace, name, type, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (version, resource.kind, resource.namespace, resource.name, str(change), body),
        )
        oldest_kept = version - self._change_log_size
        if oldest_kept > 0:
            # Cheap when there is nothing to drop: a range on the primary key.
            deleted = self._db.execute(
                "DELETE FROM changes WHERE resource_version <= ?", (oldest_kept,)
            ).rowcount
            if deleted:
                self._db.execute(
                    "UPDATE store_state SET trimmed_through = MAX(trimmed_through, ?) WHERE id = 1",
                    (oldest_kept,),
                )
        return stamped, body


class _SQLiteWrite:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._db = store._db

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self._store._read(kind, namespace, name)

    def put(self, resource: Resource, change: WatchEventType) -> Resource:
        stamped, body = self._store._log(change, resource)
        self._db.execute(
            "INSERT INTO objects (kind, namespace, name, resource_version, body) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, namespace, name) DO UPDATE SET "
            "resource_version = excluded.resource_version, body = excluded.body",
            (
                resource.kind,
                resource.namespace,
                resource.name,
                int(stamped.resource_version),
                body,
            ),
        )
        return stamped

    def remove(self, resource: Resource) -> Resource:
        self._db.execute(
            "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
            (resource.kind, resource.namespace, resource.name),
        )
        stamped, _ = self._store._log(WatchEventType.DELETED, resource)
        return stamped


def _open(path: Path, busy_timeout: float) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 before SQLite does: Workload env may hold secrets. SQLite
        # gives the -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        _retry_while_locked(lambda: db.execute("PRAGMA journal_mode = WAL"), busy_timeout)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            # executescript would COMMIT this transaction first: one statement at a time.
            for statement in _SCHEMA:
                db.execute(statement)
            (schema_version,) = db.execute(
                "SELECT schema_version FROM store_state WHERE id = 1"
            ).fetchone()
        finally:
            db.execute("COMMIT")
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"{path}: cannot open the store: {error}") from None
    if schema_version > SCHEMA_VERSION:
        db.close()
        raise StoreError(
            f"{path}: written by a newer Gossamer (schema {schema_version}, this one reads "
            f"{SCHEMA_VERSION})"
        )
    return db


def _retry_while_locked(operation: Callable[[], object], timeout: float) -> None:
    """Switching to WAL needs a moment alone with the file; another process opening it at
    the same time makes it fail with "locked" instead of waiting on the busy timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            operation()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
