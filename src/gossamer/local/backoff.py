"""Restart delays for crashing processes: exponential, capped, forgiven after a calm run.

A process that exits is started again after 1 s, then 2 s, 4 s, ... up to 1 min, as a
kubelet's CrashLoopBackOff does. A process that ran longer than `reset_after` before it
exited is considered to have been healthy, so its next restart is quick again. Pure: the
caller measures how long the process ran and sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_DELAY = 1.0
MAX_DELAY = 60.0
RESET_AFTER = 60.0


@dataclass(slots=True)
class RestartBackoff:
    """The delay before each restart of one process."""

    initial: float = INITIAL_DELAY
    maximum: float = MAX_DELAY
    factor: float = 2.0
    reset_after: float = RESET_AFTER
    _next: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self._next = self.initial

    def delay_after_exit(self, ran_for: float) -> float:
        """Seconds to wait before starting again a process that ran `ran_for` seconds."""
        if ran_for >= self.reset_after:
            self._next = self.initial
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay
