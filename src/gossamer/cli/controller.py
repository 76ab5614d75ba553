"""`gossamer controller <component>`: runs one control-plane component on its own.

Local mode's supervisor hosts these in one process; Kubernetes runs each as a Deployment;
tests run them alone against a store file.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import click

from gossamer.control.store import SQLiteStore

if TYPE_CHECKING:
    from gossamer.control.identity import Issuer


class _Server(Protocol):
    async def start(self, host: str, port: int) -> object: ...

    async def stop(self) -> None: ...


def _listen_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"{addr!r} is not HOST:PORT", param_hint="--addr")
    return host, int(port)


def _log_to_stderr() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


async def _serve_until_signalled(server: _Server, store: SQLiteStore, host: str, port: int) -> None:
    """Serves until SIGTERM or SIGINT, then stops the server and closes the store."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start(host, port)
    await stop.wait()
    await server.stop()
    await store.close()


@click.group("controller")
def controller_command() -> None:
    """Run a control-plane component by itself."""


@controller_command.command("destination")
@click.option("--store", "store_path", required=True, help="The SQLite store file to serve from.")
@click.option("--addr", default="0.0.0.0:8086", show_default=True, help="Listen address.")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
@click.option("--trust-domain", default="cluster.local", show_default=True)
def destination_command(store_path: str, addr: str, cluster_domain: str, trust_domain: str) -> None:
    """Serve the destination API (endpoints for service names and addresses)."""
    host, port = _listen_addr(addr)
    _log_to_stderr()
    asyncio.run(_serve_destination(store_path, host, port, cluster_domain, trust_domain))


async def _serve_destination(
    store_path: str, host: str, port: int, cluster_domain: str, trust_domain: str
) -> None:
    from gossamer.control.destination import DestinationServer

    store = SQLiteStore(store_path)
    server = DestinationServer(store, cluster_domain, trust_domain)
    await _serve_until_signalled(server, store, host, port)


@controller_command.command("policy")
@click.option("--store", "store_path", required=True, help="The SQLite store file to serve from.")
@click.option("--addr", default="0.0.0.0:8090", show_default=True, help="Listen address.")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
def policy_command(store_path: str, addr: str, cluster_domain: str) -> None:
    """Serve the outbound policy API (routes, retries, timeouts for a service address)."""
    host, port = _listen_addr(addr)
    _log_to_stderr()
    asyncio.run(_serve_policy(store_path, host, port, cluster_domain))


async def _serve_policy(store_path: str, host: str, port: int, cluster_domain: str) -> None:
    from gossamer.control.policy import OutboundPolicyServer

    store = SQLiteStore(store_path)
    server = OutboundPolicyServer(store, cluster_domain)
    await _serve_until_signalled(server, store, host, port)


@controller_command.command("identity")
@click.option("--trust-anchors", "anchors_path", required=True, help="PEM bundle of anchors.")
@click.option("--issuer-cert", "issuer_cert_path", required=True, help="Issuer certificate PEM.")
@click.option("--issuer-key", "issuer_key_path", required=True, help="Issuer private key PEM.")
@click.option("--token-key", "token_key_path", required=True, help="Join-token signing key.")
@click.option("--store", "store_path", required=True, help="The SQLite store file (pods).")
@click.option("--addr", default="0.0.0.0:8080", show_default=True, help="Listen address.")
@click.option("--lifetime", default="24h", show_default=True, help="Leaf certificate lifetime.")
@click.option("--trust-domain", default="cluster.local", show_default=True)
def identity_command(
    anchors_path: str,
    issuer_cert_path: str,
    issuer_key_path: str,
    token_key_path: str,
    store_path: str,
    addr: str,
    lifetime: str,
    trust_domain: str,
) -> None:
    """Serve the identity API (Certify: a CSR and a join token for a leaf certificate)."""
    from gossamer.control.identity import (
        IdentityError,
        load_issuer,
        load_token_key,
        load_trust_anchors,
    )
    from gossamer.core.durations import parse_duration

    host, port = _listen_addr(addr)
    try:
        leaf_lifetime = timedelta(seconds=parse_duration(lifetime))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--lifetime") from None
    if leaf_lifetime <= timedelta(0):
        raise click.BadParameter("must be positive", param_hint="--lifetime")
    _log_to_stderr()
    try:
        anchors = load_trust_anchors(anchors_path)
        issuer = load_issuer(issuer_cert_path, issuer_key_path, anchors)
        token_key = load_token_key(token_key_path)
    except IdentityError as error:
        raise click.ClickException(str(error)) from None
    asyncio.run(
        _serve_identity(issuer, token_key, store_path, host, port, leaf_lifetime, trust_domain)
    )


async def _serve_identity(
    issuer: Issuer,
    token_key: bytes,
    store_path: str,
    host: str,
    port: int,
    lifetime: timedelta,
    trust_domain: str,
) -> None:
    from gossamer.control.identity import IdentityServer, LocalTokenValidator

    store = SQLiteStore(store_path)
    validator = LocalTokenValidator(store, token_key, trust_domain=trust_domain)
    server = IdentityServer(issuer, validator, lifetime=lifetime)
    await _serve_until_signalled(server, store, host, port)
