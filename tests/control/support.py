"""Helpers for store tests: example resources and reading watch streams with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

from gossamer.control.store import WatchEvent, WatchEventType
from gossamer.core.resources import PodStatus, Resource

ADDED = WatchEventType.ADDED
MODIFIED = WatchEventType.MODIFIED
DELETED = WatchEventType.DELETED
RESET = WatchEventType.RESET
SYNCED = WatchEventType.SYNCED


def service(
    name: str,
    namespace: str = "demo",
    *,
    port: int = 80,
    labels: Mapping[str, str] | None = None,
) -> Resource:
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": {"selector": {"app": name}, "ports": [{"port": port}]},
        }
    )


def pod(name: str, namespace: str = "demo", *, status: PodStatus | None = None) -> Resource:
    resource = Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "command": ["sleep", "60"]}]},
        }
    )
    return replace(resource, status=status)


def with_labels(resource: Resource, **labels: str) -> Resource:
    return replace(resource, metadata=replace(resource.metadata, labels=labels))


def with_port(resource: Resource, port: int) -> Resource:
    data = resource.to_dict()
    data["spec"]["ports"][0]["port"] = port
    data["spec"]["ports"][0]["targetPort"] = port
    return Resource.from_dict(data)


class WatchRecorder:
    """Consumes a watch in a task, so a test can wait for events with deadlines (cancelling
    a pending `anext` would end the watch itself)."""

    def __init__(self, events: AsyncIterator[WatchEvent]) -> None:
        self._events = events
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())
        self.ended = False

    async def _run(self) -> None:
        async for event in self._events:
            await self._queue.put(event)
        await self._queue.put(None)

    async def take(self, count: int, timeout: float = 5.0) -> list[WatchEvent]:
        """The next `count` events; fails after `timeout` seconds or if the watch ends."""
        events = []
        for _ in range(count):
            event = await asyncio.wait_for(self._queue.get(), timeout)
            assert event is not None, f"the watch ended after {summary(events)}"
            events.append(event)
        return events

    async def take_snapshot(self, timeout: float = 5.0) -> list[WatchEvent]:
        """RESET, the ADDED events, SYNCED: checked to be exactly that shape."""
        first = await self.take(1, timeout)
        assert first[0].type is RESET, summary(first)
        events = first
        while events[-1].type is not SYNCED:
            events += await self.take(1, timeout)
            assert events[-1].type in (ADDED, SYNCED), summary(events)
        return events

    async def nothing_more(self, wait: float = 0.3) -> None:
        try:
            event = await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {event}")

    async def end(self, timeout: float = 5.0) -> list[WatchEvent]:
        """Wait for the watch to end by itself (the store closed); the events before that."""
        rest = []
        while (event := await asyncio.wait_for(self._queue.get(), timeout)) is not None:
            rest.append(event)
        await self._task
        return rest

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def summary(events: list[WatchEvent]) -> list[tuple[str, str]]:
    """(type, namespace/name) of each event; RESET and SYNCED have an empty name."""
    return [
        (
            str(event.type),
            "" if event.resource is None else f"{event.resource.namespace}/{event.resource.name}",
        )
        for event in events
    ]
