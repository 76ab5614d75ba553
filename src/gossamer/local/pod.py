"""A pod of the sandbox: one network namespace, and the processes the sandbox runs in it.

Commands enter the namespace with `ip netns exec` and change uid with `setpriv`; both exec
the next program instead of forking, so the PID the sandbox records is the program's own.
Processes get a small fixed environment plus what the caller passes, never the caller's
environment: a stray `GOSSAMER_PROXY_*` variable must not leak into a pod.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from gossamer.local.probe import ProbeFailed, run_probe
from gossamer.local.process import PodProcess

PROXY_UID = 2102
ADMIN_PORT = 4191
# The interpreter running the sandbox (the project's virtualenv): pods use the same one.
PYTHON = sys.executable
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(RuntimeError):
    """A namespace, link or process of the sandbox could not be made, reached or removed."""


def run_checked(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run to completion with captured text output; SandboxError if it fails and `check`."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{' '.join(argv)}: no exit within {timeout}s") from None
    if check and done.returncode != 0:
        raise SandboxError(
            f"{' '.join(argv)} exited with {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()}"
        )
    return done


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of pod processes: PATH (with the venv first) and unbuffered Python."""
    env = {
        "PATH": f"{Path(PYTHON).parent}:{_SYSTEM_PATH}",
        "LANG": "C.UTF-8",
        "HOME": "/",
        "PYTHONUNBUFFERED": "1",
        # A process running as the proxy uid cannot write __pycache__ in the tree anyway.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra or {})
    return env


def _option_args(options: Mapping[str, object]) -> list[str]:
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        elif isinstance(value, str | int):
            args += [flag, str(value)]
        elif isinstance(value, Iterable):
            args += [flag, ",".join(str(item) for item in value)]
        else:
            raise TypeError(f"{key}={value!r}: expected a string, an int or a list")
    return args


class Pod:
    """One pod of a `Node`: made by `Node.add_pod`, removed with its node."""

    def __init__(
        self,
        name: str,
        netns: str,
        ip: ipaddress.IPv4Address,
        gateway: ipaddress.IPv4Address,
        veth: str,
        state_dir: Path,
    ) -> None:
        self.name = name
        self.netns = netns
        self.ip = ip
        self.gateway = gateway
        self.veth = veth  # the bridge-side end, in the node namespace
        self.state_dir = state_dir
        self.processes: list[PodProcess] = []

    def netns_argv(self, uid: int | None = None, gid: int | None = None) -> list[str]:
        """The argv prefix that runs a command in this pod (as `uid`:`gid` if given)."""
        argv = ["ip", "netns", "exec", self.netns]
        if uid is not None:
            group = uid if gid is None else gid
            argv += ["setpriv", f"--reuid={uid}", f"--regid={group}", "--clear-groups", "--"]
        return argv

    def exec(
        self,
        cmd: Sequence[str],
        *,
        uid: int | None = None,
        gid: int | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in the pod to completion; output is captured as text."""
        return run_checked(
            [*self.netns_argv(uid, gid), *cmd],
            input=input,
            check=check,
            timeout=timeout,
            env=base_env(env),
            cwd="/",
        )

    def spawn(
        self,
        cmd: Sequence[str],
        *,
        uid: int | None = None,
        gid: int | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> PodProcess:
        """Start `cmd` in the pod; stdout/stderr go to `<state_dir>/<name>.{stdout,stderr}`."""
        base = name or Path(cmd[0]).name
        label, n = base, 1
        while (self.state_dir / f"{label}.stdout").exists():
            n += 1
            label = f"{base}-{n}"
        stdout, stderr = self.state_dir / f"{label}.stdout", self.state_dir / f"{label}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            popen = subprocess.Popen(
                [*self.netns_argv(uid, gid), *cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=base_env(env),
                cwd="/",
                start_new_session=True,
            )
        process = PodProcess(label, popen, stdout, stderr)
        self.processes.append(process)
        return process

    def install_init_rules(self, **options: object) -> subprocess.CompletedProcess[str]:
        """Run `gossamer init` in the pod; options are its flags (`skip_outbound_ports=[443]`)."""
        return self.exec([PYTHON, "-m", "gossamer", "init", *_option_args(options)])

    def remove_init_rules(self) -> subprocess.CompletedProcess[str]:
        return self.exec([PYTHON, "-m", "gossamer", "init", "--remove"])

    def nat_table(self) -> str:
        """`iptables-save -t nat` of the pod."""
        return self.exec(["iptables-save", "-t", "nat"]).stdout

    def start_proxy(
        self,
        env: Mapping[str, str] | None = None,
        *,
        uid: int = PROXY_UID,
        ready_timeout: float = 30.0,
        name: str = "proxy",
    ) -> PodProcess:
        """Start `gossamer proxy` as `uid` and wait until its admin `/ready` answers 200.

        `env` holds the `GOSSAMER_PROXY_*` settings; the readiness check follows
        `GOSSAMER_PROXY_ADMIN_LISTEN_ADDR` when it moves the admin server.
        """
        env = dict(env or {})
        host, port = self._admin_addr(env.get("GOSSAMER_PROXY_ADMIN_LISTEN_ADDR", ""))
        proxy = self.spawn([PYTHON, "-m", "gossamer.proxy"], uid=uid, env=env, name=name)
        try:
            self.wait_for_http(port, "/ready", host=host, timeout=ready_timeout, process=proxy)
        except SandboxError:
            proxy.terminate()
            raise
        return proxy

    def _admin_addr(self, listen: str) -> tuple[str, int]:
        host, _, port = listen.strip().rpartition(":")
        host = host.strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = str(self.ip)
        return host, int(port) if port.isdigit() else ADMIN_PORT

    def wait_for_port(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        process: PodProcess | None = None,
    ) -> None:
        """Wait until a TCP connect from inside the pod to host:port succeeds.

        The probe runs as root, so with init rules installed a remote `host` is reached
        through the outbound proxy; local addresses (loopback, the pod's own) are direct.
        """
        self._probe("tcp", host, port, "/", timeout, process)

    def wait_for_http(
        self,
        port: int,
        path: str = "/",
        *,
        host: str | None = None,
        timeout: float = 10.0,
        process: PodProcess | None = None,
    ) -> None:
        """Wait until `GET http://host:port/path` from inside the pod answers 200."""
        self._probe("http", host or str(self.ip), port, path, timeout, process)

    def _probe(
        self, mode: str, host: str, port: int, path: str, timeout: float, process: PodProcess | None
    ) -> None:
        try:
            run_probe(
                self.netns_argv(),
                PYTHON,
                mode=mode,
                host=host,
                port=port,
                path=path,
                timeout=timeout,
                watch=process,
            )
        except ProbeFailed as error:
            raise SandboxError(f"pod {self.name}: {error}") from None

    def signal_processes(self) -> None:
        """Ask every live process to stop (SIGTERM) without waiting."""
        for process in self.processes:
            if process.poll() is None:
                process.send_sigterm()

    def stop_processes(self, timeout: float = 5.0) -> None:
        """Stop every process this pod started: SIGTERM, SIGKILL after `timeout`."""
        for process in self.processes:
            process.terminate(timeout=timeout)

    def __repr__(self) -> str:
        return f"Pod({self.name!r}, ip={self.ip}, netns={self.netns!r})"
