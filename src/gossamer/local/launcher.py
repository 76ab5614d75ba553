"""`gossamer up` and `gossamer down` on the host side: the node, the supervisor, teardown.

`up` is idempotent. With a live supervisor for the state directory it only reports where
things are. Otherwise it checks the host (`preflight`) and the mesh's trust (the user's
files, or the state directory's own, made once: `gossamer.local.identity`), creates or
adopts the node namespace, binds the host-facing ports here in the host namespace, and
starts the supervisor detached inside the node namespace with those sockets inherited; then
it waits (bounded) until `supervisor.json` says `ready`. A supervisor that crashed is simply
started again: it clears what its predecessor left and brings back what the store says
should run, with the trust and the subnets it ran with.

`down` asks the supervisor to stop (SIGTERM, by its recorded and verified PID), then
removes whatever is left regardless of how the supervisor ended: marked processes, pod
namespaces, the node namespace, `/etc/netns` entries, the proxies' join tokens, `Pod`
objects and the runtime files; `--purge` removes the state directory too, with the trust
made there (never the user's own trust files).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gossamer.control.identity import TrustPaths
from gossamer.control.store import SQLiteStore
from gossamer.core.resources import Resource
from gossamer.local import preflight
from gossamer.local.addresses import DEFAULT_SUBNET
from gossamer.local.errors import LocalModeError, MeshNotRunning, SupervisorFailed
from gossamer.local.hosts import DEFAULT_CLUSTER_DOMAIN
from gossamer.local.identity import (
    DEFAULT_CERT_LIFETIME,
    IDENTITY_PORT,
    TrustFiles,
    prepare_trust,
    remove_run_dir,
)
from gossamer.local.netns import Node
from gossamer.local.ownership import (
    OWNER_ENV,
    is_ours,
    owner_marker,
    process_alive,
    stop_processes,
)
from gossamer.local.pod import PYTHON, base_env
from gossamer.local.state import RuntimeInfo, StateDir, SupervisorState, SupervisorStatus
from gossamer.local.supervisor.main import DESTINATION_PORT, POLICY_PORT
from gossamer.local.teardown import (
    recorded_pids,
    remove_etc_netns,
    remove_node_namespace,
    remove_pod_namespaces,
    stop_mesh_processes,
)
from gossamer.local.vips import DEFAULT_SERVICE_CIDR

DEFAULT_PROMETHEUS_PORT = 9090
UP_TIMEOUT = 60.0
TRUST_FILES = ("trust anchors", "issuer certificate", "issuer key")
SUPERVISOR_STOP_TIMEOUT = 45.0


@dataclass(frozen=True, slots=True)
class UpOptions:
    state: StateDir
    prometheus_port: int | None = None
    subnet: str | None = None
    service_cidr: str | None = None
    timeout: float = UP_TIMEOUT
    prometheus: str = "prometheus"
    trust: TrustFiles = field(default_factory=TrustFiles)
    cert_lifetime: float | None = None  # seconds; None: 24h, or what the mesh ran with


@dataclass(frozen=True, slots=True)
class UpResult:
    runtime: RuntimeInfo
    status: SupervisorStatus
    already_running: bool


def supervisor_marker(state: StateDir) -> str:
    return owner_marker(state.node_name, "supervisor")


def running_mesh(state: StateDir) -> RuntimeInfo:
    """The mesh of this state directory, if its supervisor is alive; else MeshNotRunning."""
    runtime = RuntimeInfo.load(state)
    if runtime is None or not is_ours(runtime.supervisor_pid, supervisor_marker(state)):
        raise MeshNotRunning(
            f"no mesh is running for {state.root}: start one with `gossamer up`"
            + (f" --state-dir {state.root}" if runtime is None else " (its supervisor is gone)")
        )
    return runtime


def up(options: UpOptions) -> UpResult:
    state = options.state
    preflight.check(options.prometheus)
    state.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    previous = RuntimeInfo.load(state)
    if previous is not None:
        for flag, wanted, current in (
            ("--subnet", options.subnet, previous.subnet),
            ("--service-cidr", options.service_cidr, previous.service_cidr),
        ):
            if wanted is not None and wanted != current:
                raise LocalModeError(
                    f"this mesh was made with {flag} {current}; to change it, "
                    f"`gossamer down --state-dir {state.root}` first"
                )
    if previous is not None and is_ours(previous.supervisor_pid, supervisor_marker(state)):
        _check_same_identity(state, options, previous)
        status = _wait_ready(state, previous.supervisor_pid, None, options.timeout)
        return UpResult(previous, status, already_running=True)
    trust_files = options.trust if options.trust.given else _user_trust_of(state, previous)
    trust = prepare_trust(state, trust_files, DEFAULT_CLUSTER_DOMAIN)
    cert_lifetime = options.cert_lifetime or (
        (previous and previous.identity_cert_lifetime) or DEFAULT_CERT_LIFETIME
    )
    subnet = options.subnet or (previous.subnet if previous else DEFAULT_SUBNET)
    service_cidr = options.service_cidr or (
        previous.service_cidr if previous else DEFAULT_SERVICE_CIDR
    )
    port = options.prometheus_port
    if port is None:
        port = previous.host_ports.get("prometheus", DEFAULT_PROMETHEUS_PORT) if previous else None
    # The port first: if it is taken, nothing has been made yet.
    listener = _bind("127.0.0.1", DEFAULT_PROMETHEUS_PORT if port is None else port)
    with listener:
        asyncio.run(_create_store(state))
        node = Node.open_or_create(state.node_name, subnet=subnet, state_dir=state.pods_dir)
        bound_port = listener.getsockname()[1]
        state.supervisor_file.unlink(missing_ok=True)
        process = _start_supervisor(
            state, subnet, service_cidr, options.prometheus, listener, trust, cert_lifetime
        )
    runtime = RuntimeInfo(
        node_netns=node.name,
        subnet=str(node.subnet),
        gateway=str(node.gateway),
        service_cidr=service_cidr,
        cluster_domain=DEFAULT_CLUSTER_DOMAIN,
        supervisor_pid=process.pid,
        prometheus_url=f"http://127.0.0.1:{bound_port}",
        host_ports={"prometheus": bound_port},
        destination_addr=f"{node.gateway}:{DESTINATION_PORT}",
        policy_addr=f"{node.gateway}:{POLICY_PORT}",
        identity_addr=f"{node.gateway}:{IDENTITY_PORT}",
        trust_anchors_file=str(trust.trust_anchors),
        issuer_certificate_file=str(trust.issuer_certificate),
        issuer_key_file=str(trust.issuer_key),
        identity_cert_lifetime=cert_lifetime,
    )
    runtime.save(state)
    try:
        status = _wait_ready(state, process.pid, process, options.timeout)
    except SupervisorFailed:
        stop_processes([process.pid], supervisor_marker(state), timeout=SUPERVISOR_STOP_TIMEOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        raise
    return UpResult(runtime, status, already_running=False)


def _user_trust_of(state: StateDir, previous: RuntimeInfo | None) -> TrustFiles:
    """The user's trust files a crashed mesh ran with: it comes back with them."""
    if previous is None or not previous.trust_anchors_file:
        return TrustFiles()
    anchors = Path(previous.trust_anchors_file)
    if anchors.parent == state.identity_dir:
        return TrustFiles()
    return TrustFiles(
        anchors, Path(previous.issuer_certificate_file), Path(previous.issuer_key_file)
    )


def _check_same_identity(state: StateDir, options: UpOptions, running: RuntimeInfo) -> None:
    """A running mesh keeps its trust and certificate lifetime: asking for others is an
    error, not something silently ignored."""
    wanted = options.trust
    if wanted.given:
        paths = (wanted.trust_anchors, wanted.issuer_certificate, wanted.issuer_key)
        current = (
            running.trust_anchors_file,
            running.issuer_certificate_file,
            running.issuer_key_file,
        )
        for what, path, used in zip(TRUST_FILES, paths, current, strict=True):
            if path is None or str(path.absolute()) != used:
                raise LocalModeError(
                    f"this mesh runs with the {what} {used or '(none)'}, not {path}; to "
                    f"change its trust, `gossamer down --state-dir {state.root}` first"
                )
    lifetime = options.cert_lifetime
    if lifetime is not None and lifetime != running.identity_cert_lifetime:
        raise LocalModeError(
            f"this mesh issues certificates for {running.identity_cert_lifetime:g}s; to "
            f"change it, `gossamer down --state-dir {state.root}` first"
        )


async def _create_store(state: StateDir) -> None:
    store = SQLiteStore(state.store_db)
    await store.close()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise LocalModeError(
            f"cannot listen on {host}:{port} for Prometheus ({error.strerror}); "
            "choose another port with --prometheus-port"
        ) from None
    return sock


def _start_supervisor(
    state: StateDir,
    subnet: str,
    service_cidr: str,
    prometheus: str,
    listener: socket.socket,
    trust: TrustPaths,
    cert_lifetime: float,
) -> subprocess.Popen[bytes]:
    fd = listener.fileno()
    argv = [
        "nsenter",
        f"--net=/run/netns/{state.node_name}",
        "--",
        PYTHON,
        "-m",
        "gossamer.local.supervisor",
        "--state-dir",
        str(state.root),
        "--subnet",
        subnet,
        "--service-cidr",
        service_cidr,
        "--prometheus",
        shutil.which(prometheus) or prometheus,
        "--forward",
        f"prometheus={fd}",
        "--identity-trust-anchors",
        str(trust.trust_anchors),
        "--identity-issuer-certificate",
        str(trust.issuer_certificate),
        "--identity-issuer-key",
        str(trust.issuer_key),
        "--identity-cert-lifetime",
        repr(cert_lifetime),
    ]
    # grpc's fork handlers only warn when the supervisor starts children; it never needs them.
    env = base_env({OWNER_ENV: supervisor_marker(state), "GRPC_ENABLE_FORK_SUPPORT": "false"})
    with state.supervisor_log.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            pass_fds=(fd,),
            start_new_session=True,
        )


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _wait_ready(
    state: StateDir, pid: int, process: subprocess.Popen[bytes] | None, timeout: float
) -> SupervisorStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = SupervisorStatus.load(state)
        if status is not None and status.pid == pid:
            if status.state == SupervisorState.READY:
                return status
            if status.state == SupervisorState.FAILED:
                raise SupervisorFailed(
                    f"the supervisor failed: {status.message}\n"
                    f"{state.supervisor_log}:\n{_log_tail(state.supervisor_log)}"
                )
        exited = process.poll() if process is not None else None
        if exited is not None or (process is None and not process_alive(pid)):
            raise SupervisorFailed(
                f"the supervisor exited{f' with code {exited}' if exited is not None else ''} "
                f"before it was ready; {state.supervisor_log}:\n{_log_tail(state.supervisor_log)}"
            )
        if time.monotonic() > deadline:
            raise SupervisorFailed(
                f"the supervisor was not ready within {timeout:.0f}s; "
                f"{state.supervisor_log}:\n{_log_tail(state.supervisor_log)}"
            )
        time.sleep(0.1)


@dataclass(frozen=True, slots=True)
class DownResult:
    supervisor_stopped: bool
    processes: int
    namespaces: list[str]
    purged: bool


def down(state: StateDir, *, purge: bool = False) -> DownResult:
    preflight.require_root("gossamer down")
    runtime = RuntimeInfo.load(state) if state.root.is_dir() else None
    status = SupervisorStatus.load(state) if state.root.is_dir() else None
    candidates = {pid for pid in (runtime and runtime.supervisor_pid, status and status.pid) if pid}
    supervisor = stop_processes(candidates, supervisor_marker(state), SUPERVISOR_STOP_TIMEOUT)
    pods = asyncio.run(_take_pods(state)) if state.store_db.exists() else []
    stopped = stop_mesh_processes(state, recorded_pids(pods), "supervisor", "pods", "prometheus")
    namespaces = remove_pod_namespaces(state)
    if remove_node_namespace(state):
        namespaces.append(state.node_name)
    remove_etc_netns(state)
    remove_run_dir(state)
    for path in (state.runtime_file, state.supervisor_file, state.supervisor_lock):
        path.unlink(missing_ok=True)
    purged = False
    if purge and state.root.is_dir():
        shutil.rmtree(state.root)
        purged = True
    return DownResult(bool(supervisor), len(stopped), namespaces, purged)


async def _take_pods(state: StateDir) -> list[Resource]:
    """The `Pod` objects of the store, which are deleted: nothing runs after `down`."""
    store = SQLiteStore(state.store_db)
    try:
        pods = list(await store.list("Pod"))
        for pod in pods:
            await store.delete("Pod", pod.namespace, pod.name, missing_ok=True)
        return pods
    finally:
        await store.close()
