"""Writing key and certificate files: private ones 0600, public ones 0644, atomically.

A file is written under a temporary name created with its final mode (so a key is never
readable by others, not even for a moment), flushed to disk, then renamed over the target:
a reader sees the old content or the new, never half of it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def write_private(path: Path | str, data: bytes) -> None:
    """Writes a secret (a private key, a token, a signing key) readable by its owner only."""
    _write(Path(path), data, PRIVATE_MODE)


def write_public(path: Path | str, data: bytes) -> None:
    """Writes a certificate or another non-secret file, readable by everyone."""
    _write(Path(path), data, PUBLIC_MODE)


def _write(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away from a public file
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    os.close(fd)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
