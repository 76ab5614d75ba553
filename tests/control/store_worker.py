"""A second process that writes to a SQLite store, for the multi-process tests.

    python -m tests.control.store_worker DB create PREFIX COUNT [CHANGE_LOG_SIZE]
    python -m tests.control.store_worker DB increment COUNT

`create` makes services PREFIX0..PREFIX{COUNT-1}; `increment` adds one to the `count`
annotation of Service demo/counter COUNT times, each a read-modify-write that retries on
Conflict, and prints how many conflicts it met. Both first wait until the file `DB.go`
exists, so that workers started together write at the same time.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from gossamer.control.store import Conflict, SQLiteStore
from gossamer.core.resources import Resource


def service(name: str) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"ports": [{"port": 80}]},
        }
    )


async def create(store: SQLiteStore, prefix: str, count: int) -> None:
    for index in range(count):
        await store.create(service(f"{prefix}{index}"))
        await asyncio.sleep(0)


async def increment(store: SQLiteStore, count: int) -> int:
    conflicts = 0
    for _ in range(count):
        while True:
            counter = await store.get("Service", "demo", "counter")
            value = int(counter.metadata.annotations.get("test.gossamer.dev/count", "0"))
            annotations = {"test.gossamer.dev/count": str(value + 1)}
            try:
                await store.update(
                    replace(counter, metadata=replace(counter.metadata, annotations=annotations))
                )
                break
            except Conflict:
                conflicts += 1
    return conflicts


async def main(arguments: list[str]) -> None:
    path, command, *rest = arguments
    go = Path(f"{path}.go")
    while not go.exists():
        await asyncio.sleep(0.005)
    if command == "create":
        change_log_size = int(rest[2]) if len(rest) > 2 else 10_000
        async with SQLiteStore(path, change_log_size=change_log_size) as store:
            await create(store, rest[0], int(rest[1]))
    elif command == "increment":
        async with SQLiteStore(path) as store:
            print(await increment(store, int(rest[0])))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
