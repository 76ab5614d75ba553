"""Host-facing ports: listening sockets made in the host namespace, served from the node's.

`gossamer up` binds each host port (Prometheus on 127.0.0.1:9090 by default) in the host
namespace and hands the socket to the supervisor, which runs in the node namespace: a socket
keeps the namespace it was created in, so the supervisor accepts host connections on it and
dials the target (127.0.0.1:9090 of the node namespace) from where it is. Bytes are copied
both ways with bounded reads; a half-close is passed on; either side's error ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class ForwardSpec:
    name: str
    fd: int
    target_host: str
    target_port: int


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


class PortForwarder:
    """Serves every forwarded port until `close`."""

    def __init__(self, specs: list[ForwardSpec]) -> None:
        self._specs = specs
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        for spec in self._specs:
            sock = socket.socket(fileno=spec.fd)
            sock.setblocking(False)
            server = await asyncio.start_server(functools.partial(self._serve, spec), sock=sock)
            self._servers.append(server)

    async def _serve(
        self, spec: ForwardSpec, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                target_r, target_w = await asyncio.open_connection(
                    spec.target_host, spec.target_port
                )
        except (OSError, TimeoutError) as error:
            log.info(
                "%s: cannot reach %s:%d: %s", spec.name, spec.target_host, spec.target_port, error
            )
            client_w.transport.abort()
            return
        try:
            await asyncio.gather(_pipe(client_r, target_w), _pipe(target_r, client_w))
        finally:
            for writer in (client_w, target_w):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
