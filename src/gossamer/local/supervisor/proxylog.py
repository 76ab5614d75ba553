"""What the supervisor learns from a proxy's log while it waits for the proxy to be ready.

A proxy that cannot get its certificate keeps asking (with backoff) and logs each refusal:

    ... WARNING gossamer.proxy.identity: certify as NAME failed: WHY; retrying in 1.0s

Its `/ready` answers 503 meanwhile, which says nothing of why. `ProxyLog` reads what the
proxy wrote since it started, so the pod's status can carry WHY; and the last line a proxy
wrote before it exited (a configuration error, say) tells why it exited.
"""

from __future__ import annotations

import re
from pathlib import Path

_CERTIFY_FAILED = re.compile(r"certify as \S+ failed: (?P<why>.*?); retrying in ")
MAX_READ = 64 * 1024  # per call: a proxy logging faster than this is not waiting to certify


def certify_failure(line: str) -> str | None:
    """WHY of a proxy's `certify as NAME failed: WHY; retrying ...` line, else None."""
    match = _CERTIFY_FAILED.search(line)
    return match.group("why") if match is not None else None


class ProxyLog:
    """Follows one proxy's log from where it was when the proxy started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._offset = path.stat().st_size
        except OSError:
            self._offset = 0
        self._partial = b""
        self.last_line = ""
        self.certify_failure: str | None = None

    def read(self) -> bool:
        """Read what was written since the last call; True if a new certify failure (or a
        different one) was seen."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(MAX_READ)
        except OSError:
            return False
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        changed = False
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            self.last_line = line
            why = certify_failure(line)
            if why is not None and why != self.certify_failure:
                self.certify_failure, changed = why, True
        return changed
