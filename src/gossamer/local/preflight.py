"""What `gossamer up` checks before it changes anything, so a missing piece fails at once.

Every problem found is reported together, each with what to do about it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from gossamer.local.errors import PreflightError

REQUIRED_BINARIES = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "setpriv": "util-linux",
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
}


def problems(prometheus: str = "prometheus") -> list[str]:
    """Everything missing on this host; empty when `gossamer up` can proceed."""
    found = []
    if os.geteuid() != 0:
        found.append(
            "not running as root: local mode creates network namespaces, links and iptables "
            "rules (run with sudo)"
        )
    for binary, package in REQUIRED_BINARIES.items():
        if shutil.which(binary) is None:
            found.append(f"{binary} not found: install Debian's {package!r} (scripts/setup)")
    if shutil.which(prometheus) is None:
        found.append(f"{prometheus} not found: install Debian's 'prometheus' (scripts/setup)")
    if shutil.which("ip") is not None and os.geteuid() == 0:
        done = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
        )
        if done.returncode != 0:
            found.append(f"`ip netns` is not usable here: {done.stderr.strip()}")
    return found


def check(prometheus: str = "prometheus") -> None:
    """Raise PreflightError naming everything that is missing."""
    found = problems(prometheus)
    if found:
        raise PreflightError("gossamer up cannot start:\n  - " + "\n  - ".join(found))


def require_root(command: str) -> None:
    """PreflightError unless root: every local-mode command reads root's 0600 store and
    enters namespaces."""
    if os.geteuid() != 0:
        raise PreflightError(
            f"{command} needs root (the mesh's namespaces, iptables rules and 0600 store "
            "belong to root): run it with sudo"
        )
