"""Demo components as real processes on 127.0.0.1, and small sync clients to talk to them.

Every component is started as `python -m gossamer.demo <component>` with ports 0 (unless a
test picks one), its stderr in a file; `wait_ready()` reads the `msg=ready` log line for the
ports it bound, so there is no free-port race. `DemoProcesses.stop_all()` ends only the
processes it started, by PID.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc

from gossamer.demo.gen import emoji_pb2_grpc, voting_pb2_grpc

READY_TIMEOUT = 20.0
_PORT_FIELD = re.compile(r"\b(\w+_port)=(\d+)\b")


def base_env() -> dict[str, str]:
    """The test's environment without anything that could reroute or reconfigure a component."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DEMO_") and "proxy" not in key.lower()
        and not key.startswith("GRPC_")
    }  # fmt: skip
    env["DEMO_LISTEN_HOST"] = "127.0.0.1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for tests that must know it before a server runs)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DemoProcess:
    def __init__(self, component: str, env: dict[str, str], log_path: Path) -> None:
        self.component = component
        self.log_path = log_path
        with open(log_path, "wb") as log_file:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "gossamer.demo", component],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.ports: dict[str, int] = {}

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if " msg=ready " in line:
                    self.ports = {name: int(port) for name, port in _PORT_FIELD.findall(line)}
                    return self.ports
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.component} exited {self.popen.returncode}:\n{self.log()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"{self.component} not ready within {timeout}s:\n{self.log()}")

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not logged within {timeout}s:\n{self.log()}")

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait; returns the exit code (fails the test if it does not exit)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit; returns the exit code (fails the test if it does not)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.component} still running after {timeout}s:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


class DemoProcesses:
    """The components one test (or module) started; all of them end at `stop_all()`."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._started: list[DemoProcess] = []

    def start(self, component: str, **env: str) -> DemoProcess:
        full_env = base_env()
        full_env.update(env)
        log_path = self._log_dir / f"{component}-{len(self._started)}.log"
        process = DemoProcess(component, full_env, log_path)
        self._started.append(process)
        return process

    def start_ready(self, component: str, **env: str) -> DemoProcess:
        process = self.start(component, **env)
        process.wait_ready()
        return process

    def start_backends(self, **voting_env: str) -> tuple[DemoProcess, DemoProcess]:
        zero = {"DEMO_GRPC_PORT": "0", "DEMO_HTTP_PORT": "0"}
        emoji = self.start("emoji", **zero)
        voting = self.start("voting", **zero, **voting_env)
        emoji.wait_ready()
        voting.wait_ready()
        return emoji, voting

    def start_web(self, emoji: DemoProcess, voting: DemoProcess, **env: str) -> DemoProcess:
        settings = {
            "DEMO_WEB_PORT": "0",
            "DEMO_EMOJI_ADDR": f"127.0.0.1:{emoji.ports['grpc_port']}",
            "DEMO_VOTING_ADDR": f"127.0.0.1:{voting.ports['grpc_port']}",
        }
        settings.update(env)
        return self.start_ready("web", **settings)

    def stop_all(self) -> None:
        for process in reversed(self._started):
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in reversed(self._started):
            try:
                process.popen.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


def http_json(port: int, path: str) -> tuple[int, object]:
    status, _, body = http_get(port, path)
    return status, json.loads(body)


def grpc_channel(port: int) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])


def emoji_stub(channel: grpc.Channel) -> emoji_pb2_grpc.EmojiServiceStub:
    return emoji_pb2_grpc.EmojiServiceStub(channel)


def voting_stub(channel: grpc.Channel) -> voting_pb2_grpc.VotingServiceStub:
    return voting_pb2_grpc.VotingServiceStub(channel)
