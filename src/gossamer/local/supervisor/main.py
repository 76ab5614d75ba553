"""The supervisor's wiring: arguments, start-up, the status file, signals, shutdown.

Start-up order matters: take the state directory's lock (one supervisor per mesh), clear
what a crashed predecessor left (its pods' processes by recorded PID, their namespaces and
join tokens), then start the identity, destination and policy services, the forwarders,
Prometheus and the controllers, and only then report `ready` in `supervisor.json`, which
`gossamer up` is waiting for. SIGTERM (from `gossamer down`) stops every pod, Prometheus
and the servers, removes the proxies' token directory, then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import uvloop

from gossamer.control.destination import DestinationServer
from gossamer.control.identity import (
    IdentityServer,
    LocalTokenValidator,
    TrustPaths,
    load_issuer,
    load_token_key,
    load_trust_anchors,
)
from gossamer.control.policy import OutboundPolicyServer
from gossamer.control.store import SQLiteStore, Store
from gossamer.core.resources import PodStatus
from gossamer.local.backoff import RestartBackoff
from gossamer.local.identity import (
    DEFAULT_CERT_LIFETIME,
    IDENTITY_PORT,
    PodIdentities,
    remove_run_dir,
)
from gossamer.local.netns import Node
from gossamer.local.ownership import owner_marker
from gossamer.local.pod import PROXY_UID, PYTHON
from gossamer.local.state import StateDir, SupervisorState, SupervisorStatus
from gossamer.local.supervisor.dns import ClusterDNS
from gossamer.local.supervisor.forward import ForwardSpec, PortForwarder
from gossamer.local.supervisor.network import NodeNetwork
from gossamer.local.supervisor.podruntime import PodSettings
from gossamer.local.supervisor.prometheus import LISTEN_HOST, LISTEN_PORT, PrometheusManager
from gossamer.local.supervisor.services import ServiceController
from gossamer.local.supervisor.workloads import Key, WorkloadController
from gossamer.local.teardown import recorded_pids, remove_pod_namespaces, stop_mesh_processes
from gossamer.local.vips import ServiceIPAllocator

log = logging.getLogger("gossamer.local.supervisor")

DESTINATION_PORT = 8086
POLICY_PORT = 8090
PROMETHEUS_READY_TIMEOUT = 30.0
# Where each host-facing port leads inside the node namespace.
FORWARD_TARGETS = {"prometheus": (LISTEN_HOST, LISTEN_PORT)}


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    state: StateDir
    subnet: str
    service_cidr: str
    cluster_domain: str
    prometheus_binary: str
    trust: TrustPaths
    cert_lifetime: float = DEFAULT_CERT_LIFETIME
    forwards: list[ForwardSpec] = field(default_factory=list)


def parse_args(argv: list[str]) -> SupervisorConfig:
    parser = argparse.ArgumentParser(prog="python -m gossamer.local.supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--subnet", required=True)
    parser.add_argument("--service-cidr", required=True)
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--prometheus", default="prometheus", help="the prometheus binary")
    parser.add_argument("--identity-trust-anchors", required=True, metavar="FILE")
    parser.add_argument("--identity-issuer-certificate", required=True, metavar="FILE")
    parser.add_argument("--identity-issuer-key", required=True, metavar="FILE")
    parser.add_argument(
        "--identity-cert-lifetime",
        type=float,
        default=DEFAULT_CERT_LIFETIME,
        metavar="SECONDS",
        help="lifetime of the proxies' leaf certificates",
    )
    parser.add_argument(
        "--forward",
        action="append",
        default=[],
        metavar="NAME=FD",
        help="serve a listening socket inherited as FD (NAME: prometheus)",
    )
    args = parser.parse_args(argv)
    forwards = []
    for item in args.forward:
        name, _, fd = item.partition("=")
        if name not in FORWARD_TARGETS or not fd.isdigit():
            parser.error(
                f"--forward {item!r}: expected NAME=FD with NAME in {sorted(FORWARD_TARGETS)}"
            )
        forwards.append(ForwardSpec(name, int(fd), *FORWARD_TARGETS[name]))
    return SupervisorConfig(
        state=StateDir.at(args.state_dir),
        subnet=args.subnet,
        service_cidr=args.service_cidr,
        cluster_domain=args.cluster_domain,
        prometheus_binary=args.prometheus,
        trust=TrustPaths(
            Path(args.identity_trust_anchors),
            Path(args.identity_issuer_certificate),
            Path(args.identity_issuer_key),
        ),
        cert_lifetime=args.identity_cert_lifetime,
        forwards=forwards,
    )


class Supervisor:
    def __init__(self, config: SupervisorConfig) -> None:
        self.config = config
        self.state = config.state
        self.owner = owner_marker(self.state.node_name)
        self._stop = asyncio.Event()
        self._status = SupervisorStatus(pid=os.getpid(), state=SupervisorState.STARTING)
        self._prometheus: PrometheusManager | None = None

    def _report(self, **changes: Any) -> None:
        prometheus_pid = self._prometheus.pid if self._prometheus is not None else 0
        self._status = dataclasses.replace(self._status, prometheus_pid=prometheus_pid, **changes)
        self._status.save(self.state)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self._report()
        store = SQLiteStore(self.state.store_db)
        try:
            return await self._run_with(store)
        except Exception as error:
            log.exception("supervisor failed")
            self._report(state=SupervisorState.FAILED, message=str(error))
            return 1
        finally:
            await store.close()

    async def _run_with(self, store: Store) -> int:
        preferred_ips = await self._clear_leftovers(store)
        node = await asyncio.to_thread(
            Node.open_or_create,
            self.state.node_name,
            subnet=self.config.subnet,
            state_dir=self.state.pods_dir,
        )
        domain, gateway = self.config.cluster_domain, str(node.gateway)
        # Whatever has started is stopped again in reverse order, on SIGTERM or on a failure.
        async with contextlib.AsyncExitStack() as started:
            network = NodeNetwork(node, self.state)
            started.callback(network.close)
            identities = await self._start_identity(store, gateway, domain, started)
            destination = DestinationServer(store, cluster_domain=domain, trust_domain=domain)
            await destination.start(host=gateway, port=DESTINATION_PORT)
            started.push_async_callback(destination.stop)
            policy = OutboundPolicyServer(store, cluster_domain=domain)
            await policy.start(host=gateway, port=POLICY_PORT)
            started.push_async_callback(policy.stop)
            forwarder = PortForwarder(self.config.forwards)
            await forwarder.start()
            started.push_async_callback(forwarder.close)
            prometheus = PrometheusManager(
                self.config.prometheus_binary,
                self.state.prometheus_dir,
                owner_marker(self.state.node_name, "prometheus"),
                on_change=lambda: self._report(),
            )
            self._prometheus = prometheus
            started.push_async_callback(prometheus.stop)
            settings = PodSettings(
                python=PYTHON,
                node=self.state.node_name,
                destination_addr=f"{gateway}:{DESTINATION_PORT}",
                owner=self.owner,
                policy_addr=f"{gateway}:{POLICY_PORT}",
                identity=identities,
            )
            dns = ClusterDNS(domain)
            workloads = WorkloadController(store, network, dns, settings, preferred_ips)
            started.push_async_callback(workloads.shutdown)
            allocator = ServiceIPAllocator(self.config.service_cidr)
            services = ServiceController(store, network, dns, allocator, prometheus.set_targets)
            prometheus.start()
            controllers = [
                asyncio.create_task(_keep_running("services", services.run)),
                asyncio.create_task(_keep_running("workloads", workloads.run)),
            ]
            started.push_async_callback(_cancel, controllers)
            ready = await prometheus.wait_ready(PROMETHEUS_READY_TIMEOUT)
            self._report(
                state=SupervisorState.READY,
                prometheus_ready=ready,
                destination=f"{gateway}:{DESTINATION_PORT}",
                message=""
                if ready
                else "prometheus is not ready yet; see prometheus/prometheus.log",
            )
            log.info("ready: node %s, gateway %s", node.name, gateway)
            await self._stop.wait()
            log.info("stopping")
            self._report(state=SupervisorState.STOPPING)
        self._report(state=SupervisorState.STOPPED)
        return 0

    async def _start_identity(
        self, store: Store, gateway: str, domain: str, started: contextlib.AsyncExitStack
    ) -> PodIdentities:
        """The identity service on `<gateway>:8080`, and the pods' token writer (the trust
        was checked by `gossamer up`; it is loaded again here, as it is now)."""
        trust = self.config.trust
        anchors = load_trust_anchors(trust.trust_anchors)
        issuer = load_issuer(trust.issuer_certificate, trust.issuer_key, anchors)
        signing_key = load_token_key(self.state.token_key)
        identities = PodIdentities(
            self.state.run_dir,
            signing_key,
            svc_addr=f"{gateway}:{IDENTITY_PORT}",
            trust_domain=domain,
            proxy_uid=PROXY_UID,
        )
        identities.publish_anchors(trust.trust_anchors.read_bytes())
        started.callback(remove_run_dir, self.state)
        validator = LocalTokenValidator(store, signing_key, trust_domain=domain)
        server = IdentityServer(
            issuer, validator, lifetime=timedelta(seconds=self.config.cert_lifetime)
        )
        await server.start(host=gateway, port=IDENTITY_PORT)
        started.push_async_callback(server.stop)
        return identities

    async def _clear_leftovers(self, store: Store) -> dict[Key, ipaddress.IPv4Address]:
        """Stop what a crashed supervisor left and forget its pods (they are recreated,
        keeping their addresses where possible)."""
        pods = await store.list("Pod")
        preferred: dict[Key, ipaddress.IPv4Address] = {}
        for pod in pods:
            status = pod.status_as(PodStatus)
            if status is not None and status.pod_ip is not None:
                preferred[(pod.namespace, pod.name)] = ipaddress.IPv4Address(status.pod_ip)
        stopped = await asyncio.to_thread(
            stop_mesh_processes, self.state, recorded_pids(pods), "pods", "prometheus"
        )
        removed = await asyncio.to_thread(remove_pod_namespaces, self.state)
        remove_run_dir(self.state)  # the old pods' tokens: their Pod objects go next
        for pod in pods:
            await store.delete("Pod", pod.namespace, pod.name, missing_ok=True)
        if stopped or removed or len(pods):
            log.info(
                "cleared leftovers: %d processes, %d namespaces, %d Pod objects",
                len(stopped),
                len(removed),
                len(pods),
            )
        return preferred


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _keep_running(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a controller; if it fails, log and start it again with backoff."""
    backoff = RestartBackoff()
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await run()
            log.error("%s controller returned; restarting it", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s controller failed; restarting it", name)
        await asyncio.sleep(backoff.delay_after_exit(loop.time() - started))


def _lock(state: StateDir) -> IO[bytes] | None:
    state.root.mkdir(parents=True, exist_ok=True)
    handle = state.supervisor_lock.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    for spec in config.forwards:
        # Inherited from `gossamer up`: keep it from leaking into every pod process, where it
        # would keep the host port bound after this process dies.
        os.set_inheritable(spec.fd, False)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    lock = _lock(config.state)
    if lock is None:
        print(f"another supervisor holds {config.state.supervisor_lock}", file=sys.stderr)
        return 3
    with contextlib.closing(lock):
        return uvloop.run(Supervisor(config).run())
