"""How a demo component stops: SIGTERM or SIGINT asks it to, once, and it drains.

The mesh (and Kubernetes) stop a workload with SIGTERM and expect it to stop accepting, finish
what it accepted, and exit 0 soon after; every component awaits `StopSignal.wait()` and then
runs its own drain, bounded by `DEMO_SHUTDOWN_GRACE`.
"""

from __future__ import annotations

import asyncio
import signal


class StopSignal:
    """Set by the first SIGTERM or SIGINT; later ones are ignored while the drain runs."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.received: str | None = None

    @classmethod
    def install(cls) -> StopSignal:
        stop = cls()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop._receive, sig.name)
        return stop

    def _receive(self, name: str) -> None:
        if self.received is None:
            self.received = name
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> str:
        await self._event.wait()
        assert self.received is not None
        return self.received

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; returns True (early) if the stop signal came meanwhile."""
        try:
            await asyncio.wait_for(self._event.wait(), max(seconds, 0.0))
        except TimeoutError:
            return False
        return True
