"""Every component as a process: --help, SIGTERM exits 0 promptly, bad settings exit non-zero."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.demo.harness import DemoProcesses, base_env

COMPONENTS = ["web", "emoji", "voting", "vote-bot"]
EPHEMERAL = {
    "web": {"DEMO_WEB_PORT": "0"},
    "emoji": {"DEMO_GRPC_PORT": "0", "DEMO_HTTP_PORT": "0"},
    "voting": {"DEMO_GRPC_PORT": "0", "DEMO_HTTP_PORT": "0"},
    # Nothing listens on port 1: the bot keeps trying, which must not delay its exit.
    "vote-bot": {"DEMO_WEB_ADDR": "127.0.0.1:1", "DEMO_BOT_RPS": "20"},
}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gossamer.demo", *args],
        env=env or base_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_help_lists_components_and_variables() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for component in COMPONENTS:
        assert f"\n  {component}: " in result.stdout
    assert "DEMO_VOTING_FAILURE_RATE" in result.stdout and "DEMO_BOT_RPS" in result.stdout


def test_unknown_component() -> None:
    result = _run("nope")
    assert result.returncode == 2 and "invalid choice: 'nope'" in result.stderr


@pytest.mark.parametrize("component", COMPONENTS)
def test_sigterm_exits_zero_promptly(demo: DemoProcesses, component: str) -> None:
    process = demo.start_ready(component, **EPHEMERAL[component])
    time.sleep(0.3)
    started = time.monotonic()
    assert process.terminate(timeout=5) == 0
    assert time.monotonic() - started < 3.0
    log = process.log()
    assert 'msg="shutting down" signal=SIGTERM' in log and "msg=stopped" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("component", "name", "value"),
    [
        ("web", "DEMO_WEB_PORT", "eighty"),
        ("web", "DEMO_VOTING_ADDR", "voting"),
        ("emoji", "DEMO_GRPC_PORT", "99999"),
        ("voting", "DEMO_VOTING_FAILURE_RATE", "2"),
        ("voting", "DEMO_LOG_FORMAT", "xml"),
        ("vote-bot", "DEMO_BOT_RPS", "0"),
        ("vote-bot", "DEMO_BOT_TIMEOUT", "soon"),
    ],
)
def test_bad_env_exits_non_zero_naming_it(component: str, name: str, value: str) -> None:
    env = base_env()
    env[name] = value
    result = _run(component, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"gossamer.demo {component}: configuration error: {name}=")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port_var", ["DEMO_GRPC_PORT", "DEMO_HTTP_PORT"])
def test_taken_port_exits_one_with_a_message(port_var: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = base_env()
        env.update(EPHEMERAL["voting"])
        env[port_var] = str(taken.getsockname()[1])
        result = _run("voting", env=env)
    assert result.returncode == 1
    assert 'msg="cannot start"' in result.stderr and "Traceback" not in result.stderr
