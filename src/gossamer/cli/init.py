"""`gossamer init`: install the pod's traffic-redirect rules, as linkerd-init does.

Runs in the pod's network namespace (as root, or with CAP_NET_ADMIN) before the proxy and the
app start. The rules are built in `gossamer.local.iptables`; this command only parses flags.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from gossamer.local.init_rules import (
    IptablesError,
    apply_init_rules,
    read_nat_table,
    remove_init_rules,
)
from gossamer.local.iptables import (
    DEFAULT_INBOUND_PORT,
    DEFAULT_OUTBOUND_PORT,
    DEFAULT_PROXY_UID,
    DEFAULT_SKIP_INBOUND_PORTS,
    InitConfig,
    InitRulesError,
    PortRange,
    apply_script,
    parse_port_list,
    parse_subnets,
    remove_script,
)


class _PortList(click.ParamType):
    name = "PORTS"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[PortRange, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_port_list(str(value))
        except InitRulesError as error:
            self.fail(str(error), param, ctx)


class _SubnetList(click.ParamType):
    name = "CIDRS"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[ipaddress.IPv4Network, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_subnets(str(value))
        except InitRulesError as error:
            self.fail(str(error), param, ctx)


_PORT = click.IntRange(1, 65535)


@click.command("init")
@click.option(
    "--proxy-uid",
    type=click.IntRange(1, 2**32 - 2),
    default=DEFAULT_PROXY_UID,
    show_default=True,
    help="uid the proxy runs as; its own traffic is not redirected.",
)
@click.option("--inbound-port", type=_PORT, default=DEFAULT_INBOUND_PORT, show_default=True)
@click.option("--outbound-port", type=_PORT, default=DEFAULT_OUTBOUND_PORT, show_default=True)
@click.option(
    "--skip-inbound-ports",
    type=_PortList(),
    default=DEFAULT_SKIP_INBOUND_PORTS,
    show_default=True,
    help="Ports and ranges (8000-8010) reached without the proxy; replaces the default.",
)
@click.option(
    "--skip-outbound-ports",
    type=_PortList(),
    default="",
    help="Destination ports and ranges that bypass the outbound proxy.",
)
@click.option(
    "--skip-subnets",
    type=_SubnetList(),
    default="",
    help="IPv4 CIDRs whose traffic bypasses the proxy (inbound from, outbound to).",
)
@click.option("--dry-run", is_flag=True, help="Print the iptables-restore input; change nothing.")
@click.option("--remove", is_flag=True, help="Delete the rules and chains this command installs.")
def init_command(
    proxy_uid: int,
    inbound_port: int,
    outbound_port: int,
    skip_inbound_ports: tuple[PortRange, ...],
    skip_outbound_ports: tuple[PortRange, ...],
    skip_subnets: tuple[ipaddress.IPv4Network, ...],
    dry_run: bool,
    remove: bool,
) -> None:
    """Redirect the pod's TCP traffic through the proxy (nat table, current namespace).

    Inbound TCP goes to the inbound port, outbound TCP to the outbound port, except the
    proxy's own traffic, loopback, skipped ports and skipped subnets. Running it again
    replaces the rules (one copy, never two). --dry-run prints the rules for a fresh
    namespace without touching iptables; --remove --dry-run prints what would be deleted.
    """
    try:
        if remove:
            _remove(dry_run)
            return
        config = InitConfig(
            proxy_uid=proxy_uid,
            inbound_port=inbound_port,
            outbound_port=outbound_port,
            skip_inbound_ports=skip_inbound_ports,
            skip_outbound_ports=skip_outbound_ports,
            skip_subnets=skip_subnets,
        )
        if dry_run:
            click.echo(apply_script(config), nl=False)
            return
        apply_init_rules(config)
    except (IptablesError, InitRulesError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"gossamer init: inbound TCP -> :{inbound_port}, outbound TCP -> :{outbound_port} "
        f"(proxy uid {proxy_uid} not redirected)",
        err=True,
    )


def _remove(dry_run: bool) -> None:
    if dry_run:
        click.echo(remove_script(read_nat_table()) or "# nothing to remove\n", nl=False)
        return
    script = remove_init_rules()
    click.echo(
        "gossamer init: rules removed" if script else "gossamer init: no rules to remove",
        err=True,
    )


if __name__ == "__main__":
    init_command()
