"""Run liveness locks: held while the owner lives, free (and claimable) once it is gone."""

from __future__ import annotations

import secrets
import subprocess
import sys

from gossamer.local.runlock import LOCK_DIR, RunLock


def test_a_held_lock_marks_the_run_alive() -> None:
    run = f"gsmt-lock{secrets.token_hex(3)}"
    lock = RunLock.acquire(run)
    try:
        assert lock.path == LOCK_DIR / f"{run}.lock" and lock.path.exists()
        assert RunLock.try_acquire(run) is None  # another open file: the flock conflicts
    finally:
        lock.release()
        lock.release()
    assert not lock.path.exists()
    again = RunLock.try_acquire(run)
    assert again is not None
    again.release()


def test_a_dead_owners_lock_is_free() -> None:
    run = f"gsmt-lock{secrets.token_hex(3)}"
    code = f"import os; from gossamer.local.runlock import RunLock; RunLock.acquire({run!r}); "
    code += "os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert (LOCK_DIR / f"{run}.lock").exists()  # left behind by the crash...
    claimed = RunLock.try_acquire(run)  # ...but nobody holds it
    assert claimed is not None
    claimed.release()
    assert not (LOCK_DIR / f"{run}.lock").exists()
