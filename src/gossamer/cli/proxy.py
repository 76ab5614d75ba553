"""`gossamer proxy`: runs the sidecar proxy, configured by GOSSAMER_PROXY_* variables."""

from __future__ import annotations

import click

from gossamer.proxy.config import ConfigError, ProxyConfig


@click.command("proxy")
def proxy_command() -> None:
    """Run the sidecar proxy (settings from GOSSAMER_PROXY_* environment variables)."""
    try:
        config = ProxyConfig.from_env()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    from gossamer.proxy.main import run

    run(config)
