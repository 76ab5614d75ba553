"""Giving freed memory back to the system (glibc's `malloc_trim`).

A proxy's connections come and go, TLS ones with tens of KiB of buffers each; what they free
stays in the C heap, in holes, and the resident size of a long-running proxy creeps up with
the churn (a test of 32 TLS connections opened and closed six times: +1.6 MiB without
trimming, flat with it). `malloc_trim(0)` returns those free pages; it takes about 0.1 ms on
a proxy's heap, so the runtime calls it at most once per `TRIM_INTERVAL` after connections
close. No library does this for a Python process. ctypes is imported on the first trim (a
proxy with an identity has it loaded for libcrypto already; one without pays ~1 MiB for it
only once connections have come and gone). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

TRIM_INTERVAL = 10.0  # seconds between trims, at most

_trim: Callable[[int], int] | None = None
_looked_up = False


def release_free_memory() -> bool:
    """Returns the C heap's free pages to the system; False where that is not possible."""
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        import ctypes

        try:
            # glibc's soname (ctypes.util.find_library would run ldconfig in a subprocess).
            function = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            pass
        else:
            function.argtypes = [ctypes.c_size_t]
            function.restype = ctypes.c_int
            _trim = function
    if _trim is None:
        return False
    _trim(0)
    return True
