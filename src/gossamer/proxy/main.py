"""Assembles and runs one proxy process: listeners, admin server, signals, drain.

Only wiring lives here. Shutdown (SIGTERM, SIGINT or the admin `/shutdown`) stops accepting
on every data listener at once, asks each live connection to drain, waits up to the grace
period, then closes what is left and exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time

import uvloop

from gossamer.proxy.admin import AdminState, start_admin
from gossamer.proxy.config import ProxyConfig
from gossamer.proxy.http1 import Http1ServerProtocol
from gossamer.proxy.runtime import INBOUND, OUTBOUND, ConnectionContext, ProxyRuntime
from gossamer.proxy.server import Handlers, listen
from gossamer.proxy.tcp import TcpForwardProtocol

log = logging.getLogger("gossamer.proxy")


def _http2_handler(runtime: ProxyRuntime, ctx: ConnectionContext) -> asyncio.Protocol:
    # Imported on first use: a proxy that never sees HTTP/2 never loads its modules.
    from gossamer.proxy.http2 import Http2ServerProtocol

    return Http2ServerProtocol(runtime, ctx)


class Proxy:
    """A running proxy: its runtime, its listeners, and how it stops."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.runtime = ProxyRuntime(config)
        self.handlers = Handlers(Http1ServerProtocol, _http2_handler, TcpForwardProtocol)
        self.listeners: list[asyncio.Server] = []
        self.admin: asyncio.Server | None = None
        self.ready = False
        self._stop: asyncio.Event | None = None

    async def start(self) -> None:
        config = self.config
        self._stop = asyncio.Event()
        if config.destination_addr is not None:
            from gossamer.proxy.control.destination import DestinationClient

            context = json.loads(config.destination_context) if config.destination_context else {}
            discovery = DestinationClient(
                (config.destination_addr.host, config.destination_addr.port), context
            )
            self.runtime.discovery = discovery
            self.runtime.metrics.register(discovery)
            from gossamer.proxy.control.policy import PolicyClient
            from gossamer.proxy.outbound.service import OutboundServices

            policies = None
            if config.policy_addr is not None:
                policies = PolicyClient((config.policy_addr.host, config.policy_addr.port), context)
                self.runtime.metrics.register(policies)
            self.runtime.policies = policies
            self.runtime.outbound = OutboundServices(
                discovery, policies, mesh_tls=config.identity is not None
            )
        if config.identity is not None:
            from gossamer.proxy.control.identity import IdentityManager

            identity = IdentityManager(config.identity)
            self.runtime.identity = identity
            self.runtime.metrics.register(identity)
            identity.start()
        state = AdminState(
            self.runtime.metrics,
            ready=self._ready,
            shutdown=self.stop,
            shutdown_enabled=config.admin_shutdown_enabled,
            identity=self._identity_chain,
        )
        self.admin = await start_admin(state, config.admin_listen.host, config.admin_listen.port)
        for direction, addr in (
            (OUTBOUND, config.outbound_listen),
            (INBOUND, config.inbound_listen),
        ):
            self.listeners.append(
                await listen(self.runtime, direction, addr.host, addr.port, self.handlers)
            )
        self.ready = True
        log.info(
            "proxy ready: outbound %s, inbound %s, admin %s",
            config.outbound_listen, config.inbound_listen, config.admin_listen,
        )  # fmt: skip

    def _identity_chain(self) -> bytes | None:
        identity = self.runtime.identity
        material = identity.material if identity is not None else None
        return material.chain_pem if material is not None else None

    def _ready(self) -> bool:
        # Not ready until it holds a certificate: before that, meshed peers would be refused.
        identity = self.runtime.identity
        return self.ready and not self.runtime.draining and (identity is None or identity.ready())

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def wait_and_drain(self) -> None:
        assert self._stop is not None
        await self._stop.wait()
        log.info("shutting down: draining for up to %gs", self.config.shutdown_grace_period)
        for server in self.listeners:
            server.close()
        clean = await self.runtime.drain(self.config.shutdown_grace_period)
        for pool in self.runtime.pools.values():
            close_all = getattr(pool, "close_all", None)
            if close_all is not None:
                close_all()
        if self.runtime.discovery is not None:
            self.runtime.discovery.close()
        if self.runtime.policies is not None:
            self.runtime.policies.close()
        if self.runtime.identity is not None:
            self.runtime.identity.stop()
        if self.admin is not None:
            self.admin.close()
        log.info("shutdown %s", "complete" if clean else "forced after the grace period")


async def serve(config: ProxyConfig) -> None:
    proxy = Proxy(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, proxy.stop)
    await proxy.start()
    await proxy.wait_and_drain()


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("gossamer")
    root.handlers[:] = [handler]
    root.setLevel({"trace": "DEBUG", "warn": "WARNING"}.get(level, level.upper()))
    root.propagate = False


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "target": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def run(config: ProxyConfig) -> None:
    configure_logging(config.log_level, config.log_format)
    uvloop.run(serve(config))
