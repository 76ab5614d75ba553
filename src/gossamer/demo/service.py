"""The process shape shared by emoji and voting: a gRPC server plus a small HTTP side door.

gRPC carries the real traffic; the HTTP/1.1 port answers `GET /` so that `curl` from any pod
shows something useful. Both listen on `DEMO_LISTEN_HOST`; one `ready` log line reports the
bound ports; SIGTERM drains both for up to the grace period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import grpc

from gossamer.demo.config import HostPort, ServiceConfig
from gossamer.demo.httpserver import Handler, HttpServer
from gossamer.demo.lifecycle import StopSignal
from gossamer.demo.logs import fields

log = logging.getLogger("gossamer.demo.service")

# Bounds what the service holds at once; beyond it grpcio answers RESOURCE_EXHAUSTED.
MAX_CONCURRENT_RPCS = 256


async def serve_grpc_and_http(
    name: str,
    config: ServiceConfig,
    add_servicers: Callable[[grpc.aio.Server], None],
    http_routes: Callable[[int], Mapping[str, Handler]],
) -> None:
    """Serve until SIGTERM; `http_routes(grpc_port)` builds the side door's routes."""
    stop = StopSignal.install()
    grpc_server = grpc.aio.server(
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        # grpcio sets SO_REUSEPORT by default, so a second server on a taken port would quietly
        # share it; a port collision must be an error instead.
        options=[("grpc.so_reuseport", 0)],
    )
    add_servicers(grpc_server)
    grpc_addr = HostPort(config.listen_host, config.grpc_port)
    try:
        grpc_port = grpc_server.add_insecure_port(str(grpc_addr))
    except RuntimeError:
        # grpcio reports a failed bind as a bare RuntimeError; make it the OSError it is.
        raise OSError(f"cannot listen for gRPC on {grpc_addr}: in use or unavailable") from None
    await grpc_server.start()
    http_server = HttpServer(name, http_routes(grpc_port))
    try:
        http_port = await http_server.start(config.listen_host, config.http_port)
    except BaseException:
        await grpc_server.stop(None)
        raise
    log.info("ready", extra=fields(grpc_port=grpc_port, http_port=http_port))
    received = await stop.wait()
    log.info("shutting down", extra=fields(signal=received, grace_s=config.shutdown_grace))
    # grpcio's stop(grace) refuses new RPCs at once and cancels what is left after `grace`.
    await asyncio.gather(
        grpc_server.stop(config.shutdown_grace), http_server.shutdown(config.shutdown_grace)
    )
    log.info("stopped")
