"""`gossamer controller <component>`: runs one control-plane component on its own.

Local mode's supervisor hosts these in one process; Kubernetes runs each as a Deployment;
tests run them alone against a store file.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from gossamer.control.store import SQLiteStore


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
    host, _, port = addr.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"{addr!r} is not HOST:PORT", param_hint="--addr")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve_destination(store_path, host, int(port), cluster_domain, trust_domain))


async def _serve_destination(
    store_path: str, host: str, port: int, cluster_domain: str, trust_domain: str
) -> None:
    from gossamer.control.destination import DestinationServer

    store = SQLiteStore(store_path)
    server = DestinationServer(store, cluster_domain, trust_domain)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start(host, port)
    await stop.wait()
    await server.stop()
    await store.close()
