"""Sockets that live in another network namespace, made without leaving this one.

A socket keeps the network namespace it was created in. Python 3.11 has no `os.setns`, so a
short-lived thread calls libc's `setns(2)` (which changes only the calling thread), creates
the socket, and ends; the socket is then used from the event loop like any other. The
supervisor uses it to look inside a pod (is the app listening on 127.0.0.1:PORT?) without
starting a process there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NetnsSocketError(OSError):
    """The namespace does not exist or could not be entered."""


def socket_in_netns(
    netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A new non-blocking socket in the named network namespace (`ip netns` name)."""
    result: list[socket.socket | BaseException] = []

    def create() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            result.append(NetnsSocketError(error.errno, f"netns {netns}: {error.strerror}"))
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                result.append(NetnsSocketError(errno, f"setns {netns}: {os.strerror(errno)}"))
                return
            sock = socket.socket(family, kind)
            sock.setblocking(False)
            result.append(sock)
        except BaseException as error:  # handed to the caller's thread
            result.append(error)
        finally:
            os.close(fd)

    # The thread ends right after, taking its changed namespace with it.
    thread = threading.Thread(target=create, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join(timeout=5.0)
    if not result:
        raise NetnsSocketError(0, f"netns {netns}: socket creation hung")
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
