"""Install and remove the `gossamer init` rules in the current network namespace.

The rules themselves come from `gossamer.local.iptables` (pure). This module only reads the
nat table with `iptables-save` and feeds one atomic script to `iptables-restore --noflush`,
so other rules in the namespace are left as they are and a failure changes nothing.
"""

from __future__ import annotations

import shutil
import subprocess

from gossamer.local.iptables import InitConfig, apply_script, remove_script

# Seconds; the nat table of a pod's namespace is tiny, so anything longer is a hang.
_TIMEOUT = 30.0


class IptablesError(RuntimeError):
    """iptables is missing, not permitted, or rejected the rules."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise IptablesError(
            f"{name} not found on PATH: install Debian's 'iptables' package "
            "(`gossamer init` drives iptables-save and iptables-restore)"
        )
    return path


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise IptablesError(f"{argv[0]} did not finish within {_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise IptablesError(f"{' '.join(argv)} failed: {detail}")
    return done.stdout


def read_nat_table() -> str:
    """The current nat table in iptables-save format."""
    return _run([_binary("iptables-save"), "-t", "nat"])


def _restore(script: str) -> None:
    _run([_binary("iptables-restore"), "--noflush"], stdin=script)


def apply_init_rules(config: InitConfig) -> str:
    """Install (or reinstall) the rules; returns the script that was applied."""
    script = apply_script(config, read_nat_table())
    _restore(script)
    return script


def remove_init_rules() -> str | None:
    """Delete the jump rules and our chains; returns the script, or None if nothing was there."""
    script = remove_script(read_nat_table())
    if script is not None:
        _restore(script)
    return script
