"""The state directory of one local mesh, and the two small JSON files in it.

Layout (`--state-dir`, else `$GOSSAMER_HOME`, else `~/.gossamer`):

    store.db             the SQLite store (resources: Services, Workloads, Pods, ...)
    runtime.json         what `gossamer up` made: node namespace, subnet, ports, URLs, pids
    supervisor.json      the supervisor's own report: starting, ready, failed (and why)
    supervisor.log       the supervisor's log
    supervisor.lock      flock held by the running supervisor: at most one per directory
    pods/<ns>/<pod>/     a pod's logs: app.log, proxy.log
    prometheus/          prometheus.yml, targets/ (file-based discovery), data/, log
    identity/            the mesh's trust (0700): anchors, issuer, join-token key (see
                         `gossamer.local.identity`)

What the proxies (uid 2102) must read lives outside it, in `run_dir`
(`/run/gossamer/<node>/`): the state directory is often under `/root`, which that uid
cannot enter.

The node namespace's name derives from the directory's absolute path, so two state
directories are two independent meshes, and the same directory always finds its node again.
JSON files are replaced atomically (write, then rename): readers see the old or the new.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gossamer.local.errors import LocalModeError

NODE_PREFIX = "gsl"
HOME_ENV = "GOSSAMER_HOME"
RUN_ROOT = Path("/run/gossamer")


def default_state_dir() -> Path:
    home = os.environ.get(HOME_ENV, "").strip()
    return Path(home) if home else Path.home() / ".gossamer"


@dataclass(frozen=True, slots=True)
class StateDir:
    root: Path

    @classmethod
    def at(cls, path: Path | str | None) -> StateDir:
        return cls(Path(path if path is not None else default_state_dir()).expanduser().absolute())

    @property
    def node_name(self) -> str:
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()
        return f"{NODE_PREFIX}-{digest[:8]}"

    def pod_netns(self, namespace: str, pod: str) -> str:
        # Dots cannot occur in namespace or pod names, so `<node>.<ns>.<pod>` is unambiguous.
        return f"{self.node_name}.{namespace}.{pod}"

    @property
    def store_db(self) -> Path:
        return self.root / "store.db"

    @property
    def runtime_file(self) -> Path:
        return self.root / "runtime.json"

    @property
    def supervisor_file(self) -> Path:
        return self.root / "supervisor.json"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def supervisor_lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def pods_dir(self) -> Path:
        return self.root / "pods"

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self.pods_dir / namespace / pod

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def identity_dir(self) -> Path:
        return self.root / "identity"

    @property
    def token_key(self) -> Path:
        return self.identity_dir / "token.key"

    @property
    def run_dir(self) -> Path:
        """Files the proxies read (trust anchors, join tokens): outside the state directory,
        reachable by the proxy uid, on tmpfs."""
        return RUN_ROOT / self.node_name


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise LocalModeError(f"{path} is unreadable ({error}); `gossamer down` clears it") from None
    if not isinstance(data, dict):
        raise LocalModeError(f"{path} is not a JSON object; `gossamer down` clears it")
    return data


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    """What `gossamer up` made and where things are; `runtime.json`."""

    node_netns: str
    subnet: str
    gateway: str
    service_cidr: str
    cluster_domain: str
    supervisor_pid: int
    prometheus_url: str
    host_ports: dict[str, int] = field(default_factory=dict)
    destination_addr: str = ""
    policy_addr: str = ""
    identity_addr: str = ""
    # The trust the identity service runs with (the user's files, or identity/'s).
    trust_anchors_file: str = ""
    issuer_certificate_file: str = ""
    issuer_key_file: str = ""
    identity_cert_lifetime: float = 0.0

    def save(self, state: StateDir) -> None:
        write_json(state.runtime_file, asdict(self))

    @classmethod
    def load(cls, state: StateDir) -> RuntimeInfo | None:
        data = read_json(state.runtime_file)
        if data is None:
            return None
        try:
            return cls(**data)
        except TypeError as error:
            raise LocalModeError(
                f"{state.runtime_file}: unexpected content ({error}); `gossamer down` clears it"
            ) from None


class SupervisorState:
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SupervisorStatus:
    """The supervisor's report on itself; `supervisor.json`."""

    pid: int
    state: str
    message: str = ""
    prometheus_pid: int = 0
    prometheus_ready: bool = False
    destination: str = ""

    def save(self, state: StateDir) -> None:
        write_json(state.supervisor_file, asdict(self))

    @classmethod
    def load(cls, state: StateDir) -> SupervisorStatus | None:
        data = read_json(state.supervisor_file)
        if data is None:
            return None
        with contextlib.suppress(TypeError):
            return cls(**data)
        return None
