"""Whether a sandbox run is alive: its owner holds an flock on `/run/gossamer/sandbox/<run>.lock`.

The kernel drops an flock when its holder dies, however it dies, so a lock that can be taken
marks a run whose namespaces are leftovers. A lock file is only unlinked by whoever holds its
lock, and a new holder checks that the file it locked is still the one at the path: without
that, a cleanup could unlink a file that its owner is about to lock, and a later cleanup
would take that live run for a dead one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_DIR = Path("/run/gossamer/sandbox")
_ATTEMPTS = 5


class RunLock:
    """A held lock on one run's lock file."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self._handle: IO[bytes] | None = handle

    @classmethod
    def try_acquire(cls, run: str) -> RunLock | None:
        """The run's lock if nobody holds it (its owner is dead or never was), else None."""
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        path = LOCK_DIR / f"{run}.lock"
        for _ in range(_ATTEMPTS):
            handle = path.open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return None
            try:
                if os.fstat(handle.fileno()).st_ino == path.stat().st_ino:
                    return cls(path, handle)
            except FileNotFoundError:
                pass
            handle.close()  # unlinked by its previous holder meanwhile: lock the new file
        raise RuntimeError(f"{path}: the lock file keeps being replaced")

    @classmethod
    def acquire(cls, run: str) -> RunLock:
        """The lock of a new run; raises if someone holds it (run names are random)."""
        lock = cls.try_acquire(run)
        if lock is None:
            raise RuntimeError(f"run {run} is already locked by another process")
        return lock

    def release(self) -> None:
        """Unlink the lock file, then let go of it. Safe to call twice."""
        if self._handle is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._handle.close()
            self._handle = None
