"""Starts the testbed in the `gossamer.local` pod sandbox and answers questions about it.

Every process is started through `Pod.spawn` (so the sandbox records its PID and stops it
by PID when the node is destroyed) with a `taskset` prefix: origins on the load core,
proxies on the proxy core. The Gossamer proxies run as the proxy uid (2102) in meshed pods,
exactly as `gossamer run` will start them; HAProxy and nginx in meshed pods are sidecars
behind the same rules, run as that uid too (`setpriv`), their files under /run owned by it.

Certified pods (mutual TLS) get the mesh's control plane, as `tests/e2e/test_mtls.py` sets
it up: trust from `ensure_trust`, Pods and Services in a SQLite store, the destination and
identity services in the control pod (on the load core: they are idle once the proxies are
certified and have resolved their service), and a join token per pod in a directory under
/run that the proxy's uid can reach (the work directory is root's 0700). The HAProxy and
nginx TLS instances get leaves from the same issuer. The Certify scenario's identity service
has its own store and trust (`bench.certify.prepare`).

Routed pods (the routed and the default mesh paths' clients) get the destination and policy
services, as `tests/e2e/test_traffic.py` sets them up (the same store holds their Services,
Pods and HTTPRoutes; see `bench.meshstore`).

A pod's aliases are more addresses on its eth0, taken from the node's address pool with the
pod subnet's prefix, like its own (and never given back, so no later pod gets one while a
neighbour still has it on this pod's MAC). Other pods reach them on the bridge as they reach
its own: the pod answers ARP for any of its addresses with eth0's MAC, the one
`gossamer.local` derives from its own address (nothing in the sandbox pins a neighbour entry,
so an alias needs no MAC of its own). Its `gossamer init` rules REDIRECT every inbound TCP
connection, whatever its destination address, to its sidecar, which reads the alias from
SO_ORIGINAL_DST and forwards to the origin on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import certify, configs, meshstore
from bench.configs import TlsFiles
from bench.procstat import OtherWork
from bench.scenarios import CERTIFY, Scenario
from bench.settings import CpuPlan
from bench.testbed import (
    CERTIFY_PORT,
    CONTROL_POD,
    DESTINATION_PORT,
    GOSSAMER_ADMIN_PORT,
    H2,
    IDENTITY_PORT,
    MESH_NAMESPACE,
    ORIGIN_BODY,
    ORIGIN_H1_PORT,
    ORIGIN_H2_PORT,
    POLICY_PORT,
    Endpoint,
    ProxySpec,
    Testbed,
    tls_identity,
)
from gossamer.control.identity import (
    Issuer,
    TrustPaths,
    ensure_token_key,
    ensure_trust,
    mint_join_token,
)
from gossamer.local.netns import Node
from gossamer.local.pod import PROXY_UID, PYTHON, Pod, SandboxError
from gossamer.local.process import PodProcess

GOSSAMER_ENV = {"GOSSAMER_PROXY_LOG_LEVEL": "warn"}
# What /proc/<pid>/comm must say, so that we measure the proxy and not a wrapper.
_COMM = {"gossamer": "python", "haproxy": "haproxy", "nginx": "nginx", "identity": "python"}
_READY_TIMEOUT_S = 30.0
_TOKEN_LIFETIME_S = 24 * 3600
_LEAF_LIFETIME = timedelta(days=1)
# This package run inside a pod (whose processes start in /): the Certify driver and the
# destination-scale run.
BENCH_PACKAGE_ENV = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


class BringupError(RuntimeError):
    """A part of the testbed did not start or does not answer."""


class LiveTestbed:
    """The running testbed: its pods, and the process of every proxy instance."""

    def __init__(self, node: Node, spec: Testbed, cpus: CpuPlan) -> None:
        self.node = node
        self.spec = spec
        self.cpus = cpus
        self.pods: dict[str, Pod] = {}
        self.alias_ips: dict[str, ipaddress.IPv4Address] = {}  # alias -> its address
        self.proxies: dict[str, PodProcess] = {}
        # Proxies that did not start, with the reason: their scenarios fail, the rest run.
        self.broken: dict[str, str] = {}
        self._trust_paths: TrustPaths | None = None
        self._tokens: Path | None = None
        self._mesh_env: dict[str, dict[str, str]] = {}  # certified or routed pod -> proxy env
        self._control_error: str | None = None
        self.certify_requests: Path | None = None
        self._syn_rules: set[tuple[str, int]] = set()
        # HAProxy and nginx sidecars' files (config, TLS, nginx prefix): under /run, owned by
        # the proxy uid they run as (the sandbox's state directories are root's 0700).
        self._sidecars: Path | None = None

    def other_work(self) -> OtherWork:
        """Measures CPU used outside this testbed's namespaces (and this process)."""
        names = [self.node.netns, *(pod.netns for pod in self.pods.values())]
        inodes = frozenset(os.stat(f"/run/netns/{name}").st_ino for name in names)
        return OtherWork(inodes, frozenset({os.getpid()}))

    # Addresses ----------------------------------------------------------------------------

    def ip(self, name: str) -> ipaddress.IPv4Address:
        """The address of a pod, or of a pod's alias."""
        pod = self.pods.get(name)
        return pod.ip if pod is not None else self.alias_ips[name]

    def address(self, endpoint: Endpoint) -> str:
        if endpoint.service is not None:
            host = self.spec.service(endpoint.service).vip
        else:
            host = "127.0.0.1" if endpoint.pod is None else str(self.ip(endpoint.pod))
        return f"{host}:{endpoint.port}"

    def url(self, endpoint: Endpoint) -> str:
        return f"http://{self.address(endpoint)}/"

    # Start-up -----------------------------------------------------------------------------

    def start(self) -> None:
        for pod_spec in self.spec.pods:
            pod = self.pods[pod_spec.name] = self.node.add_pod(pod_spec.name)
            for alias in pod_spec.aliases:
                self._add_alias(pod, alias)
            if pod_spec.meshed:
                pod.install_init_rules()
        for pod_spec in self.spec.pods:
            if pod_spec.origin:
                self._start_origin(self.pods[pod_spec.name])
        if self.spec.certified_pods or self.spec.routed_pods:
            try:
                self._start_control_plane()
            except (BringupError, SandboxError, OSError) as error:
                self._control_error = f"mesh control plane: {error}"
        for proxy in self.spec.proxies:
            try:
                self.proxies[proxy.name] = self._start_proxy(proxy)
            except (BringupError, SandboxError, OSError) as error:
                self.broken[proxy.name] = str(error)

    def _add_alias(self, pod: Pod, alias: str) -> None:
        """A second address on the pod's eth0, in the pod subnet (see the module docstring)."""
        address = self.alias_ips[alias] = self.node.pool.allocate()
        pod.exec(["ip", "addr", "add", f"{address}/{self.node.pool.prefixlen}", "dev", "eth0"])

    def close(self) -> None:
        """Removes what lives outside the sandbox's state directory (the join tokens)."""
        if self._tokens is not None:
            shutil.rmtree(self._tokens, ignore_errors=True)
            self._tokens = None
        if self._sidecars is not None:
            shutil.rmtree(self._sidecars, ignore_errors=True)
            self._sidecars = None

    # Mutual TLS ---------------------------------------------------------------------------

    def _trust(self) -> TrustPaths:
        if self._trust_paths is None:
            self._trust_paths = ensure_trust(self.pods[CONTROL_POD].state_dir / "identity")
        return self._trust_paths

    def _start_control_plane(self) -> None:
        """The mesh's store, its destination service, and the identity service (certified
        pods) and policy service (routed pods) when the testbed has such pods."""
        control = self.pods[CONTROL_POD]
        store = control.state_dir / "mesh.db"
        ips = {name: str(self.ip(name)) for name in self.spec.store_pods()}
        uids = asyncio.run(meshstore.apply(store, meshstore.resources(self.spec, ips)))
        token_key_path = control.state_dir / "token.key"
        controllers: list[tuple[str, int, list[str]]] = [("destination", DESTINATION_PORT, [])]
        token_key = b""
        if self.spec.certified_pods:
            trust = self._trust()
            token_key = ensure_token_key(token_key_path)
            controllers.append(
                (
                    "identity",
                    IDENTITY_PORT,
                    ["--trust-anchors", str(trust.trust_anchors),
                     "--issuer-cert", str(trust.issuer_certificate),
                     "--issuer-key", str(trust.issuer_key),
                     "--token-key", str(token_key_path)],
                )
            )  # fmt: skip
        if self.spec.routed_pods:
            controllers.append(("policy", POLICY_PORT, []))
        for name, port, extra in controllers:
            argv = [PYTHON, "-m", "gossamer", "controller", name, "--store", str(store)]
            argv += ["--addr", f"0.0.0.0:{port}", *extra]
            process = self._spawn(control, argv, "load", name)
            self._wait_port(control, port, process)
        destination = {"GOSSAMER_PROXY_DESTINATION_SVC_ADDR": f"{control.ip}:{DESTINATION_PORT}"}
        for pod in self.spec.routed_pods:
            self._mesh_env[pod.name] = {
                **destination,
                "GOSSAMER_PROXY_POLICY_SVC_ADDR": f"{control.ip}:{POLICY_PORT}",
            }
        if self.spec.certified_pods:
            self._issue_join_tokens(token_key, uids, destination)

    def _issue_join_tokens(
        self, token_key: bytes, uids: dict[tuple[str, str], str], destination: dict[str, str]
    ) -> None:
        """A join token per certified pod, and its proxy's environment."""
        control, trust = self.pods[CONTROL_POD], self._trust()
        # The proxy's uid must reach its token: a 0711 directory under /run, one 0700
        # directory per pod owned by that uid.
        self._tokens = tokens = Path(tempfile.mkdtemp(prefix="gossamer-bench-tokens-", dir="/run"))
        tokens.chmod(0o711)
        anchors = trust.trust_anchors.read_text()
        for pod in self.spec.certified_pods:
            assert pod.service_account is not None
            own = tokens / pod.name
            own.mkdir(mode=0o700)
            os.chown(own, PROXY_UID, PROXY_UID)
            token = own / "join-token"
            token.write_bytes(
                mint_join_token(
                    token_key, MESH_NAMESPACE, pod.name, uids[("Pod", pod.name)],
                    pod.service_account, _TOKEN_LIFETIME_S,
                )
            )  # fmt: skip
            os.chown(token, PROXY_UID, PROXY_UID)
            token.chmod(0o600)
            self._mesh_env[pod.name] = {
                **destination,
                "GOSSAMER_PROXY_IDENTITY_SVC_ADDR": f"{control.ip}:{IDENTITY_PORT}",
                "GOSSAMER_PROXY_IDENTITY_LOCAL_NAME": tls_identity(pod.service_account),
                "GOSSAMER_PROXY_IDENTITY_TRUST_ANCHORS": anchors,
                "GOSSAMER_PROXY_IDENTITY_TOKEN_FILE": str(token),
            }

    def _tls_files(self, spec: ProxySpec, directory: Path) -> TlsFiles:
        """An ECDSA P-256 leaf for the instance's identity, from the mesh's issuer, and a copy
        of the trust anchors, in `directory`."""
        trust = self._trust()
        issuer_cert = x509.load_pem_x509_certificate(trust.issuer_certificate.read_bytes())
        issuer_key = serialization.load_pem_private_key(trust.issuer_key.read_bytes(), None)
        assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = Issuer(issuer_cert, issuer_key).issue(
            key.public_key(),
            tls_identity(spec.name),
            now=datetime.now(UTC),
            lifetime=_LEAF_LIFETIME,
        )
        chain = leaf.certificate.public_bytes(serialization.Encoding.PEM) + (
            issuer_cert.public_bytes(serialization.Encoding.PEM)
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files = TlsFiles(
            ca=directory / "trust-anchors.pem",
            chain=directory / f"{spec.name}.crt",
            key=directory / f"{spec.name}.key",
            bundle=directory / f"{spec.name}.pem",
        )
        files.ca.write_bytes(trust.trust_anchors.read_bytes())
        files.chain.write_bytes(chain)
        files.key.write_bytes(key_pem)
        files.key.chmod(0o600)
        files.bundle.write_bytes(chain + key_pem)
        files.bundle.chmod(0o600)
        return files

    def _start_certify_service(self, spec: ProxySpec) -> PodProcess:
        pod = self.pods[spec.pod]
        directory = pod.state_dir / "certify"
        directory.mkdir(exist_ok=True)
        args, requests = asyncio.run(certify.prepare(directory, f"127.0.0.1:{CERTIFY_PORT}"))
        self.certify_requests = directory / "requests.bin"
        certify.write_requests(self.certify_requests, requests)
        argv = [PYTHON, "-m", "gossamer", "controller", "identity", *args]
        process = self._spawn(pod, argv, "proxy", spec.name)
        try:
            self._wait_port(pod, CERTIFY_PORT, process)
        except BringupError:
            process.terminate()
            raise
        return process

    def syn_count(self, endpoint: Endpoint) -> int:
        """Connections opened to `endpoint` from other pods since the first call: TCP SYNs
        arriving on the pod's eth0 for that port, counted by a mangle rule with no target."""
        assert endpoint.pod is not None
        pod, key = self.pods[endpoint.pod], (endpoint.pod, endpoint.port)
        tag = f"bench-syn-{endpoint.port}"
        if key not in self._syn_rules:
            pod.exec(
                ["iptables", "-t", "mangle", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp",
                 "--syn", "--dport", str(endpoint.port), "-m", "comment", "--comment", tag],
            )  # fmt: skip
            self._syn_rules.add(key)
        out = pod.exec(["iptables", "-t", "mangle", "-vxnL", "PREROUTING"]).stdout
        for line in out.splitlines():
            if f"/* {tag} */" in line:
                return int(line.split()[0])
        raise BringupError(f"pod {pod.name}: counting rule {tag} not found:\n{out}")

    def _spawn(
        self,
        pod: Pod,
        argv: list[str],
        role: str,
        name: str,
        uid: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PodProcess:
        return pod.spawn([*self.cpus.taskset(role), *argv], name=name, uid=uid, env=env)

    def _sidecar_dir(self, name: str) -> Path:
        """A directory for one sidecar's files that its uid owns (under a 0711 one in /run)."""
        if self._sidecars is None:
            self._sidecars = Path(tempfile.mkdtemp(prefix="gossamer-bench-sidecars-", dir="/run"))
            self._sidecars.chmod(0o711)
        directory = self._sidecars / name
        directory.mkdir(mode=0o700)
        return directory

    def _nginx(
        self,
        pod: Pod,
        name: str,
        render: Callable[[Path], str],
        role: str,
        directory: Path | None = None,
        uid: int | None = None,
    ) -> PodProcess:
        """nginx with its own prefix directory (pid file, temp paths) in `directory` (the
        pod's state directory by default); errors to stderr (`-e`: nginx opens its built-in
        error log before reading the configuration, which a non-root uid cannot)."""
        directory = pod.state_dir if directory is None else directory
        work = directory / name
        work.mkdir(exist_ok=True)
        path = directory / f"{name}.conf"
        path.write_text(render(work))
        if uid is not None:
            _chown_tree(directory, uid)
        argv = ["nginx", "-e", "stderr", "-p", str(work), "-c", str(path)]
        return self._spawn(pod, argv, role, name, uid=uid)

    def _start_origin(self, pod: Pod) -> None:
        process = self._nginx(pod, "origin", configs.origin_nginx, "load")
        for port in (ORIGIN_H1_PORT, ORIGIN_H2_PORT):
            self._wait_port(pod, port, process)

    def _start_proxy(self, spec: ProxySpec) -> PodProcess:
        pod = self.pods[spec.pod]
        if spec.kind == "identity":
            return self._start_certify_service(spec)
        # HAProxy and nginx in meshed pods are sidecars behind the `gossamer init` rules: run
        # as the proxy uid, so that their own upstream connections skip the redirect.
        sidecar = spec.kind != "gossamer" and self.spec.pod(spec.pod).meshed
        directory = self._sidecar_dir(spec.name) if sidecar else pod.state_dir
        uid = PROXY_UID if sidecar else None
        tls = self._tls_files(spec, directory) if spec.tls else None
        if spec.kind == "gossamer":
            env = dict(GOSSAMER_ENV)
            if self.spec.pod(spec.pod).control_plane:
                if self._control_error is not None:
                    raise BringupError(self._control_error)
                env.update(self._mesh_env[spec.pod])
            argv = [PYTHON, "-m", "gossamer.proxy"]
            process = self._spawn(pod, argv, "proxy", spec.name, uid=PROXY_UID, env=env)
            try:
                pod.wait_for_http(
                    GOSSAMER_ADMIN_PORT, "/ready", timeout=_READY_TIMEOUT_S, process=process
                )
            except SandboxError as error:
                raise BringupError(f"{spec.name}: {error}") from None
        elif spec.kind == "haproxy":
            path = directory / f"{spec.name}.cfg"
            path.write_text(configs.haproxy(spec, self.address, tls))
            if uid is not None:
                _chown_tree(directory, uid)
            argv = ["haproxy", "-db", "-f", str(path)]
            process = self._spawn(pod, argv, "proxy", spec.name, uid=uid)
        elif spec.kind == "nginx":
            process = self._nginx(
                pod,
                spec.name,
                lambda work: configs.nginx_proxy(spec, work, self.address, tls),
                "proxy",
                directory,
                uid,
            )
        else:
            raise BringupError(f"{spec.name}: unknown proxy kind {spec.kind!r}")
        try:
            for route in spec.routes:
                self._wait_port(pod, route.port, process)
        except BringupError:
            process.terminate()
            raise
        comm = Path(f"/proc/{process.pid}/comm").read_text().strip()
        if not comm.startswith(_COMM[spec.kind]):
            raise BringupError(f"{spec.name}: pid {process.pid} is {comm!r}, not the proxy")
        return process

    def _wait_port(self, pod: Pod, port: int, process: PodProcess) -> None:
        try:
            pod.wait_for_port(port, timeout=_READY_TIMEOUT_S, process=process)
        except SandboxError as error:
            raise BringupError(str(error)) from None

    # Checks -------------------------------------------------------------------------------

    def check_path(self, scenario: Scenario) -> None:
        """One request along the scenario's path must answer 200 with the origin's body."""
        if scenario.kind == CERTIFY:
            self.check_certify(scenario)
            return
        pod = self.pods[scenario.client_pod]
        flags = ["--http2-prior-knowledge"] if scenario.protocol == H2 else ["--http1.1"]
        url = self.url(scenario.target)
        done = pod.exec(
            ["curl", "-sS", "--max-time", "5", *flags, "-w", "\n%{http_code} %{http_version}", url],
            check=False,
            timeout=15,
        )
        body, _, trailer = done.stdout.rpartition("\n")
        want_version = "2" if scenario.protocol == H2 else "1.1"
        if done.returncode != 0 or trailer != f"200 {want_version}" or body != ORIGIN_BODY:
            raise BringupError(
                f"{scenario.name}: GET {url} from pod {pod.name} gave "
                f"{trailer or 'nothing'!r} body {body!r} {done.stderr.strip()}"
            )
        if scenario.canary is not None:
            self._check_canary(scenario, pod, flags, url)

    def _check_canary(self, scenario: Scenario, pod: Pod, flags: list[str], url: str) -> None:
        """With the canary header, the route's first rule must take the request to its
        backend without endpoints: 503 once the proxy stops waiting for one. So the route is
        in force and its header match is evaluated per request (the load never sends it)."""
        assert scenario.canary is not None
        header = ": ".join(scenario.canary)
        done = pod.exec(
            ["curl", "-sS", "--max-time", "10", *flags, "-H", header, "-o", "/dev/null",
             "-w", "%{http_code}", url],
            check=False,
            timeout=20,
        )  # fmt: skip
        if done.stdout.strip() != "503":
            raise BringupError(
                f"{scenario.name}: GET {url} with {header!r} from pod {pod.name} gave "
                f"{done.stdout.strip() or 'nothing'!r}, not the canary rule's 503 "
                f"{done.stderr.strip()}"
            )

    def check_certify(self, scenario: Scenario) -> None:
        """One Certify to the service: the leaf it returns must name the requested identity."""
        pod = self.pods[scenario.client_pod]
        done = pod.exec(
            self.certify_argv("--check", self.address(scenario.target)),
            env=BENCH_PACKAGE_ENV,
            check=False,
            timeout=30,
        )
        if done.returncode != 0 or '"ok": true' not in done.stdout:
            raise BringupError(
                f"{scenario.name}: Certify from pod {pod.name} gave {done.stdout.strip()!r} "
                f"{done.stderr.strip()[-1500:]}"
            )

    def certify_argv(self, mode: str, address: str, *options: str) -> list[str]:
        """`python -m bench.certify` (the driver) on the load core, run inside a pod."""
        if self.certify_requests is None:
            raise BringupError("the Certify service was not prepared")
        return [
            *self.cpus.taskset("load"), PYTHON, "-m", "bench.certify", mode, address,
            "--requests", str(self.certify_requests), *options,
        ]  # fmt: skip

    def gossamer_counts(self, name: str, *must_contain: str, prefix: str = "") -> tuple[int, int]:
        """(requests, successful responses) a Gossamer proxy has counted in its /metrics,
        over the series whose labels contain every string of `must_contain`; `prefix`
        "outbound_http_route_" counts per route (logical requests) instead."""
        pod = self.pods[self.spec.proxy(name).pod]
        url = f"http://127.0.0.1:{GOSSAMER_ADMIN_PORT}/metrics"
        done = pod.exec(["curl", "-sS", "--max-time", "5", url], check=False, timeout=15)
        if done.returncode != 0:
            raise BringupError(f"{name}: GET {url} failed: {done.stderr.strip()}")
        return _metric_sum(done.stdout, f"{prefix}request_total", *must_contain), _metric_sum(
            done.stdout, f"{prefix}response_total", 'classification="success"', *must_contain
        )


def _chown_tree(directory: Path, uid: int) -> None:
    for path in (directory, *directory.rglob("*")):
        os.chown(path, uid, uid)


def _metric_sum(text: str, name: str, *must_contain: str) -> int:
    total = 0.0
    pattern = re.compile(rf"^{name}(\{{.*\}})?\s+([0-9.eE+-]+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and all(part in (match.group(1) or "") for part in must_contain):
            total += float(match.group(2))
    return int(total)
