"""What only the SQLite backend must do: persist, share the file between processes, stay
cheap when idle. Other processes are real: `python -m tests.control.store_worker`."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gossamer.control.store import SQLiteStore, StoreError, WatchEvent
from gossamer.core.resources import PodPhase, PodStatus
from tests.control.support import ADDED, MODIFIED, WatchRecorder, pod, service, summary

Record = Callable[[AsyncIterator[WatchEvent]], WatchRecorder]
REPOSITORY = Path(__file__).resolve().parents[2]


async def run_worker(path: Path, *arguments: str, go: bool = True) -> str:
    """Run a worker on the store at `path`; `go=False` leaves it waiting for `PATH.go`."""
    if go:
        Path(f"{path}.go").touch()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.control.store_worker",
        str(path),
        *arguments,
        cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "state" / "store.db") as opened:
        yield opened


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as first:
        web = await first.create(service("web"))
        running = await first.update_status(
            replace(await first.create(pod("web-1")), status=PodStatus(phase=PodPhase.RUNNING))
        )
        await first.create(service("gone"))
        await first.delete("Service", "demo", "gone")
        last_version = (await first.list("Service")).resource_version
    async with SQLiteStore(path) as second:
        assert await second.get("Service", "demo", "web") == web
        assert await second.get("Pod", "demo", "web-1") == running
        assert [r.name for r in await second.list("Service")] == ["web"]
        api = await second.create(service("api"))
        assert int(api.resource_version) > int(last_version)
        events = second.watch("Service", since=last_version)
        assert summary([await anext(events)]) == [("ADDED", "demo/api")]
        await events.aclose()


async def test_the_file_is_private_and_in_wal_mode(store: SQLiteStore) -> None:
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_store_from_a_newer_gossamer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    await SQLiteStore(path).close()
    with sqlite3.connect(path) as other:
        other.execute("UPDATE store_state SET schema_version = 99")
    with pytest.raises(StoreError, match=r"written by a newer Gossamer \(schema 99"):
        SQLiteStore(path)


async def test_an_unreadable_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        SQLiteStore(tmp_path)  # a directory
    with pytest.raises(StoreError, match="not a database"):
        (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
        SQLiteStore(tmp_path / "junk.db")


async def test_an_unreadable_object_is_a_store_error(store: SQLiteStore) -> None:
    await store.create(service("web"))
    with sqlite3.connect(store.path) as other:
        other.execute("UPDATE objects SET body = '{\"kind\": 1}'")
    with pytest.raises(StoreError, match="a stored object cannot be read"):
        await store.get("Service", "demo", "web")


async def test_an_idle_watch_does_not_query(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store._poll_interval = 0.01
    reads = 0
    read_changes = store._read_changes

    def counting(*arguments: object) -> object:
        nonlocal reads
        reads += 1
        return read_changes(*arguments)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_read_changes", counting)
    events = store.watch("Service")
    await anext(events), await anext(events)
    waiting = asyncio.create_task(anext(events))
    await asyncio.sleep(0.5)  # about fifty polls of data_version
    assert reads == 1, "only the first look, nothing while idle"
    await store.create(service("web"))
    assert (await waiting).type is ADDED
    await events.aclose()


async def test_a_watcher_sees_writes_of_another_process(tmp_path: Path, record: Record) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as store:  # the default poll interval
        watch = record(store.watch("Service"))
        await watch.take_snapshot()
        started = time.monotonic()
        await run_worker(path, "create", "remote", "3")
        events = await watch.take(3, timeout=2.0)
        assert summary(events) == [("ADDED", f"demo/remote{i}") for i in range(3)]
        assert time.monotonic() - started < 5.0
        # The write itself was seen within a poll interval or so of the worker finishing.
        await watch.nothing_more()


async def test_another_process_trimming_the_log_resets_a_lagging_watcher(
    tmp_path: Path, record: Record
) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path, change_log_size=5, poll_interval=5.0) as store:
        await store.create(service("old"))
        watch = record(store.watch("Service"))
        await watch.take_snapshot()
        # The watcher polls every 5 s: the other process writes 20 changes meanwhile.
        await run_worker(path, "create", "remote", "20", "5")
        await store.delete("Service", "demo", "old")  # a local write wakes the watcher
        snapshot = await watch.take_snapshot()
        assert summary(snapshot)[1:-1] == sorted(("ADDED", f"demo/remote{i}") for i in range(20))
        await watch.nothing_more()


async def test_concurrent_writers_in_two_processes_lose_nothing(
    tmp_path: Path, record: Record
) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as store:
        counter = await store.create(service("counter"))
        watch = record(store.watch("Service"))
        await watch.take_snapshot()
        workers = asyncio.gather(
            run_worker(path, "create", "a", "100", go=False),
            run_worker(path, "create", "b", "100", go=False),
            run_worker(path, "increment", "100", go=False),
            run_worker(path, "increment", "100", go=False),
        )
        await asyncio.sleep(1.0)  # let the four start and wait for the signal
        Path(f"{path}.go").touch()
        results = await workers
        conflicts = sum(int(result) for result in results[2:])
        final = await store.get("Service", "demo", "counter")
        assert final.metadata.annotations["test.gossamer.dev/count"] == "200"
        assert int(final.resource_version) > int(counter.resource_version)
        names = {r.name for r in await store.list("Service")}
        assert names == {"counter"} | {f"a{i}" for i in range(100)} | {f"b{i}" for i in range(100)}
        events = await watch.take(400, timeout=10.0)
        assert sorted(str(e.type) for e in events) == ["ADDED"] * 200 + ["MODIFIED"] * 200
        versions = [int(event.resource_version) for event in events]
        assert versions == sorted(versions) and len(set(versions)) == 400
        assert [
            int(e.resource.metadata.annotations["test.gossamer.dev/count"])
            for e in events
            if e.type is MODIFIED and e.resource
        ] == list(range(1, 201))
        await watch.nothing_more()
    with sqlite3.connect(path) as other:
        count, first, last = other.execute(
            "SELECT COUNT(*), MIN(resource_version), MAX(resource_version) FROM changes"
        ).fetchone()
    assert (count, first, last) == (401, 1, 401), "one change per resourceVersion, no gaps"
    print(f"{conflicts} conflicts retried")


async def test_a_held_write_lock_delays_writes_not_reads(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path, busy_timeout=0.2) as store:
        web = await store.create(service("web"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        try:
            assert await store.get("Service", "demo", "web") == web
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"database is locked \(another process held"):
                await store.create(service("api"))
            assert time.monotonic() - started >= 0.2
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.create(service("api"))
