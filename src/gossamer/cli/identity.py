"""`gossamer identity POD -n NS`: the certificate a pod's proxy holds, as Linkerd's command.

The chain comes from the proxy's admin `/identity` (public material only; the key never
leaves the proxy), fetched from inside the node's network namespace like
`diagnostics proxy-metrics`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import click
from cryptography import x509

from gossamer.cli.diagnostics import pods_of
from gossamer.cli.local_common import state_dir_option
from gossamer.cli.viz import cli_errors, open_local_mesh
from gossamer.core.resources import DEFAULT_NAMESPACE
from gossamer.local.nssocket import socket_in_netns
from gossamer.viz.errors import VizError
from gossamer.viz.inventory import StatKind, is_meshed, pod_status
from gossamer.viz.proxyadmin import ADMIN_PORT, ProxyAdminError, fetch_admin


@click.command("identity")
@click.argument("pod")
@click.option("-n", "--namespace", default=DEFAULT_NAMESPACE, show_default=True)
@click.option("--pem", is_flag=True, help="Print the PEM chain instead of a summary.")
@state_dir_option
def identity_command(pod: str, namespace: str, pem: bool, state_dir: Path | None) -> None:
    """Print the certificate of POD's proxy: subject names, issuer, validity."""
    with cli_errors():
        mesh = open_local_mesh(state_dir)
        (resource,) = asyncio.run(pods_of(mesh, StatKind.POD, namespace, pod))
        if not is_meshed(resource):
            raise VizError(f"pod {namespace}/{pod} has no proxy (it runs unmeshed)")
        ip = pod_status(resource).pod_ip
        if ip is None:
            raise VizError(f"pod {namespace}/{pod} has no IP address yet")
        make_socket = partial(socket_in_netns, mesh.runtime.node_netns)
        try:
            chain = fetch_admin(make_socket, ip, "/identity", port=ADMIN_PORT)
        except ProxyAdminError as error:
            raise VizError(f"pod {namespace}/{pod}: no certificate ({error})") from None
    if pem:
        click.echo(chain.decode("ascii"), nl=False)
        return
    now = datetime.now(UTC)
    for index, cert in enumerate(x509.load_pem_x509_certificates(chain)):
        role = "leaf" if index == 0 else "issuer"
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = ", ".join(sans.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = "-"
        left = cert.not_valid_after_utc - now
        click.echo(f"Certificate {index + 1} ({role})")
        click.echo(f"  subject:     {cert.subject.rfc4514_string() or '-'}")
        click.echo(f"  dns names:   {names}")
        click.echo(f"  issuer:      {cert.issuer.rfc4514_string()}")
        click.echo(f"  not before:  {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
        click.echo(
            f"  not after:   {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
            f" ({_human(left.total_seconds())} left)"
        )
        click.echo(f"  serial:      {cert.serial_number:x}")


def _human(seconds: float) -> str:
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
