"""Helpers for tests that drive pods: the stand-in script's path and a one-line TCP client."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from gossamer.local.pod import Pod

STANDIN = str(Path(__file__).with_name("standin.py"))
PYTHON = sys.executable


def dial(
    pod: Pod,
    host: object,
    port: int,
    *,
    uid: int | None = None,
    timeout: float = 3.0,
    send: str = "",
) -> str:
    """Connect from inside `pod`, send `send`, and return the first line of the answer.

    A failed connect returns the exception's class name (`ConnectionRefusedError`, ...).
    """
    script = textwrap.dedent(
        """
        import socket, sys
        host, port, timeout, send = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.sendall(send.encode())
                print(s.makefile().readline().strip())
        except OSError as error:
            print(type(error).__name__)
        """
    )
    argv = [PYTHON, "-I", "-c", script, str(host), str(port), str(timeout), send]
    return pod.exec(argv, uid=uid).stdout.strip()
