"""Freed memory goes back to the system after connections close (memory.py)."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.proxy import memory
from gossamer.proxy.config import ProxyConfig
from gossamer.proxy.runtime import ProxyRuntime


def resident_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trimming_returns_freed_heap_pages() -> None:
    # Small blocks (below the mmap threshold) in the C heap, every other one freed: the
    # holes stay resident until trimmed.
    blocks = [bytearray(4000) for _ in range(20000)]
    for block in blocks:
        block[0] = 1  # touched: resident
    del blocks[::2]
    blocks.clear()
    before = resident_kib()
    assert memory.release_free_memory() is True  # glibc here (Debian)
    after = resident_kib()
    assert after < before - 10_000, (before, after)


class Closed:
    def drain(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def test_closing_connections_schedules_one_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "TRIM_INTERVAL", 0.05)
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1) or True)
    runtime = ProxyRuntime(ProxyConfig())
    for _ in range(100):
        conn = Closed()
        runtime.track(conn)
        runtime.untrack(conn)
    await asyncio.sleep(0.15)
    assert calls == [1]  # one trim for the burst, not one per connection
    conn = Closed()
    runtime.track(conn)
    runtime.untrack(conn)
    await asyncio.sleep(0.15)
    assert calls == [1, 1]
