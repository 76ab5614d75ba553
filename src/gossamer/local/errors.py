"""Errors of local mode, each with a message meant for the person at the terminal.

The CLI turns these (and `SandboxError`, store and resource errors) into messages at one
boundary (`gossamer.cli.local_common`).
"""

from __future__ import annotations


class LocalModeError(RuntimeError):
    """Local mode cannot do what was asked; the message says why and what to do."""


class PreflightError(LocalModeError):
    """The host lacks something `gossamer up` needs (root, `ip netns`, iptables, prometheus)."""


class MeshNotRunning(LocalModeError):
    """No supervisor runs for this state directory: `gossamer up` first."""


class SupervisorFailed(LocalModeError):
    """The supervisor exited or reported a failure while `gossamer up` waited for it."""


class UnknownPod(LocalModeError):
    """No pod of that name in that namespace."""
