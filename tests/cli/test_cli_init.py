"""`gossamer init` flags and errors, without touching iptables (dry runs, a PATH without it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gossamer.cli.init import init_command
from gossamer.local.iptables import InitConfig, apply_script, parse_port_list, parse_subnets


def test_dry_run_prints_the_restore_script() -> None:
    result = CliRunner().invoke(init_command, ["--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout == apply_script(InitConfig())


def test_dry_run_with_every_flag() -> None:
    args = [
        "--dry-run",
        "--proxy-uid=999",
        "--inbound-port=5143",
        "--outbound-port=5140",
        "--skip-inbound-ports=22,8000-8010",
        "--skip-outbound-ports=443",
        "--skip-subnets=10.96.0.0/12",
    ]
    result = CliRunner().invoke(init_command, args)
    assert result.exit_code == 0, result.output
    expected = InitConfig(
        proxy_uid=999,
        inbound_port=5143,
        outbound_port=5140,
        skip_inbound_ports=parse_port_list("22,8000-8010"),
        skip_outbound_ports=parse_port_list("443"),
        skip_subnets=parse_subnets("10.96.0.0/12"),
    )
    assert result.stdout == apply_script(expected)


def test_empty_skip_inbound_ports_clears_the_default() -> None:
    result = CliRunner().invoke(init_command, ["--dry-run", "--skip-inbound-ports="])
    assert result.exit_code == 0
    assert "multiport" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--skip-inbound-ports=0"], "port 0 is outside 1-65535"),
        (["--skip-outbound-ports=9000-8000"], "reversed"),
        (["--skip-outbound-ports=http"], "not a port"),
        (["--skip-subnets=10.0.0.0/40"], "not a valid CIDR"),
        (["--skip-subnets=10.0.0.1"], "not a CIDR"),
        (["--inbound-port=70000"], "--inbound-port"),
        (["--proxy-uid=0"], "--proxy-uid"),
    ],
)
def test_bad_input_is_a_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(init_command, ["--dry-run", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_iptables_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no iptables-save
    result = CliRunner().invoke(init_command, [])
    assert result.exit_code == 1
    assert "iptables-save not found" in result.output
    result = CliRunner().invoke(init_command, ["--remove"])
    assert result.exit_code == 1
    assert "iptables-save not found" in result.output
