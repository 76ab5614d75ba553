"""Readiness checks the supervisor runs from the node namespace, without child processes.

The node reaches every pod directly, so a proxy's `GET /ready` on `<podIP>:4191` is a plain
connection (4191 is exempt from the pod's inbound redirect). Whether an app listens on
`127.0.0.1:PORT` inside its pod is asked with a socket made in that pod's namespace
(`gossamer.local.nssocket`); as it is root's socket, the pod's rules leave loopback alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from gossamer.local.nssocket import NetnsSocketError, socket_in_netns


async def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status code of `GET http://host:port/path`, or None if there was no answer."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            line = await reader.readline()
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


async def tcp_open_in_netns(netns: str, host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a TCP connect to host:port from inside `netns` succeeds."""
    try:
        sock = socket_in_netns(netns)
    except NetnsSocketError:
        return False
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        sock.close()


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, interval: float, timeout: float
) -> bool:
    """Call `check()` every `interval` until it is true (True) or `timeout` passes (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await check():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
