"""Store fixtures: every contract test runs once per backend.

`make_store(**options)` opens a store of the test's backend (`memory` or `sqlite`); every
store it made is closed after the test. A Kubernetes backend joins by adding a param here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gossamer.control.store import MemoryStore, SQLiteStore, WatchEvent
from gossamer.control.store.changelog import ChangeLogStore
from tests.control.support import WatchRecorder

StoreFactory = Callable[..., ChangeLogStore]


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    made: list[ChangeLogStore] = []

    def make(**options: Any) -> ChangeLogStore:
        store: ChangeLogStore
        if request.param == "memory":
            store = MemoryStore(**options)
        else:
            store = SQLiteStore(tmp_path / "store.db", poll_interval=0.02, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> ChangeLogStore:
    return make_store()


@pytest.fixture
async def record() -> AsyncIterator[Callable[[AsyncIterator[WatchEvent]], WatchRecorder]]:
    """`record(store.watch(...))` consumes a watch in the background until the test ends."""
    recorders: list[WatchRecorder] = []

    def start(events: AsyncIterator[WatchEvent]) -> WatchRecorder:
        recorders.append(WatchRecorder(events))
        return recorders[-1]

    yield start
    for recorder in recorders:
        await recorder.stop()
