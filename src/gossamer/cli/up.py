"""`gossamer up` and `gossamer down`: start and remove a whole local mesh on this host."""

from __future__ import annotations

from pathlib import Path

import click

from gossamer.cli.local_common import reports_errors, state_dir_option, state_of
from gossamer.core.durations import parse_duration
from gossamer.local.identity import TrustFiles, check_cert_lifetime
from gossamer.local.launcher import UpOptions, down, up
from gossamer.local.state import StateDir

_trust_file = click.Path(dir_okay=False, path_type=Path)


def _cert_lifetime(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return check_cert_lifetime(parse_duration(value))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("up")
@state_dir_option
@click.option(
    "--prometheus-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Host port (127.0.0.1) for Prometheus [default: 9090, or the last one used; 0: any].",
)
@click.option("--subnet", default=None, help="Pod subnet [default: 10.77.0.0/16].")
@click.option("--service-cidr", default=None, help="Service VIP range [default: 10.78.0.0/16].")
@click.option(
    "--timeout",
    type=click.FloatRange(1, 600),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the control plane.",
)
@click.option(
    "--identity-trust-anchors-file",
    type=_trust_file,
    default=None,
    help="Your own trust anchors (PEM) [default: a new anchor in STATE/identity/].",
)
@click.option(
    "--identity-issuer-certificate-file",
    type=_trust_file,
    default=None,
    help="Your own issuer certificate (PEM), signed by one of the anchors.",
)
@click.option(
    "--identity-issuer-key-file",
    type=_trust_file,
    default=None,
    help="The issuer's private key (PEM, unencrypted, EC P-256 or P-384).",
)
@click.option(
    "--identity-cert-lifetime",
    default=None,
    callback=_cert_lifetime,
    help="Lifetime of the proxies' certificates, renewed at 70% [default: 24h].",
)
@reports_errors
def up_command(
    state_dir: Path | None,
    prometheus_port: int | None,
    subnet: str | None,
    service_cidr: str | None,
    timeout: float,
    identity_trust_anchors_file: Path | None,
    identity_issuer_certificate_file: Path | None,
    identity_issuer_key_file: Path | None,
    identity_cert_lifetime: float | None,
) -> None:
    """Start a local mesh: node namespace, control plane, Prometheus; state in SQLite.

    Every meshed pod's proxy gets a certificate for its service account from the mesh's
    identity service, and meshed pods talk mutual TLS. The trust anchor and issuer are made
    once in the state directory, unless you give your own (all three --identity-*-file).

    Idempotent: with the mesh already up it only says where things are; after a crash it
    brings back what the store says should run.
    """
    state = state_of(state_dir)
    result = up(
        UpOptions(
            state=state,
            prometheus_port=prometheus_port,
            subnet=subnet,
            service_cidr=service_cidr,
            timeout=timeout,
            trust=TrustFiles(
                identity_trust_anchors_file,
                identity_issuer_certificate_file,
                identity_issuer_key_file,
            ),
            cert_lifetime=identity_cert_lifetime,
        )
    )
    runtime, status = result.runtime, result.status
    verb = "is already up" if result.already_running else "is up"
    click.echo(f"Gossamer local mesh {verb} (node {runtime.node_netns}).")
    click.echo(f"  state:        {state.root}")
    click.echo(f"  pods:         {runtime.subnet} (gateway {runtime.gateway})")
    click.echo(
        f"  services:     {runtime.service_cidr}, names NAME.NS.svc.{runtime.cluster_domain}"
    )
    click.echo(f"  destination:  {runtime.destination_addr} (gRPC, inside the node)")
    click.echo(f"  policy:       {runtime.policy_addr} (gRPC, inside the node)")
    click.echo(
        f"  identity:     {runtime.identity_addr} (gRPC, inside the node; certificates for "
        f"{_hours(runtime.identity_cert_lifetime)})"
    )
    click.echo(f"  trust:        {runtime.trust_anchors_file}")
    ready = "" if status.prometheus_ready else "  (starting; see prometheus/prometheus.log)"
    click.echo(f"  prometheus:   {runtime.prometheus_url}{ready}")
    if status.message:
        click.echo(f"  note:         {status.message}")
    click.echo("")
    click.echo("Next:")
    flag = "" if state == StateDir.at(None) else f" --state-dir {state.root}"
    click.echo(
        f"  gossamer run web{flag} -n demo --port 8080 --replicas 2 -- python3 -m http.server 8080"
    )
    click.echo(f"  gossamer get pods{flag} -n demo")
    click.echo(f"  gossamer down{flag}")


def _hours(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"


@click.command("down")
@state_dir_option
@click.option(
    "--purge",
    is_flag=True,
    help="Also delete the state directory: the store, and the trust made there.",
)
@reports_errors
def down_command(state_dir: Path | None, purge: bool) -> None:
    """Stop the local mesh: every process, namespace, rule, /etc/netns entry and join token
    it made.

    Workloads and Services stay in the store (`gossamer up` runs them again) unless --purge.
    """
    state = state_of(state_dir)
    result = down(state, purge=purge)
    supervisor = "stopped the supervisor" if result.supervisor_stopped else "no supervisor ran"
    click.echo(
        f"Gossamer local mesh is down: {supervisor}, {result.processes} leftover processes "
        f"stopped, {len(result.namespaces)} namespaces removed."
    )
    if result.purged:
        click.echo(f"Removed {state.root}.")
