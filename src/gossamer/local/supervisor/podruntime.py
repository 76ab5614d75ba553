"""One pod's life in local mode: namespace, init rules, proxy, app, restarts, status.

Theory of operation. `start` runs three phases in one task:

1. setup: the pod's namespace on the bridge (`NodeNetwork`), its hosts file (`ClusterDNS`)
   and, for a meshed pod, `gossamer init`'s rules and its join token, minted once the
   workload controller has stored the `Pod` object and tells its uid (`bind_uid`);
2. the proxy (meshed pods): started as uid 2102 and polled on `<podIP>:4191/ready`, which
   answers 200 once it holds a certificate; the app starts only then. A proxy that exits,
   or is not ready in time, is started again with backoff; one that keeps being refused a
   certificate is left to keep asking, and the pod's status carries the refusal
   (`CertificateNotIssued`, from its log);
3. the app: started as root inside the namespace (so its outbound traffic is redirected to
   the proxy), ready once something listens on its first port on 127.0.0.1 (an app without
   ports: once it has run for a second). An app that
   exits is started again after 1 s, 2 s, ... up to 1 min (`RestartBackoff`).

Every exit counts as a restart. Each change of what the pod reports (phase, readiness, PIDs,
restarts, reason) calls `on_change`, which the workload controller turns into a `Pod` status
write (`podobject`). `stop` cancels the task, stops both processes by process group and
removes the namespace, its `/etc/netns` files and its join token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gossamer.core.resources import PodPhase, PodStatus, ProxyStatus, Resource, WorkloadSpec
from gossamer.core.resources.formats import format_timestamp
from gossamer.local.backoff import RestartBackoff
from gossamer.local.hosts import PodIdentity
from gossamer.local.identity import PodIdentities
from gossamer.local.iptables import InitConfig
from gossamer.local.pod import ADMIN_PORT, PROXY_UID, Pod, base_env
from gossamer.local.supervisor.children import Child, spawn
from gossamer.local.supervisor.dns import ClusterDNS
from gossamer.local.supervisor.network import NodeNetwork
from gossamer.local.supervisor.podobject import NETNS_ANNOTATION as NETNS_ANNOTATION
from gossamer.local.supervisor.podobject import pod_object
from gossamer.local.supervisor.probes import http_status, tcp_open_in_netns
from gossamer.local.supervisor.proxylog import ProxyLog

log = logging.getLogger(__name__)

SETUP_ATTEMPTS = 5
PROXY_RESTARTING = "ProxyRestarting"
CERTIFICATE_NOT_ISSUED = "CertificateNotIssued"
INVALID_IDENTITY = "InvalidIdentity"
LOG_READ_INTERVAL = 0.5
UID_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class PodSettings:
    python: str
    node: str
    destination_addr: str
    owner: str  # the node's owner marker; a pod's processes carry `<owner>/pods/<ns>/<pod>/...`
    proxy_ready_timeout: float = 30.0
    probe_interval: float = 0.1
    portless_ready_after: float = 1.0
    # The outbound policy service the proxies ask for routes; None: they do not ask.
    policy_addr: str | None = None
    proxy_shutdown_grace: str = "2s"
    # Join tokens and the identity service; None: proxies run without identity (no mTLS).
    identity: PodIdentities | None = None


@dataclass(frozen=True, slots=True)
class PodPlan:
    """What one pod of a workload runs."""

    namespace: str
    name: str
    workload: str
    spec: WorkloadSpec
    preferred_ip: ipaddress.IPv4Address | None = None


class InvalidPodIdentity(Exception):
    """The pod's service account and namespace make no identity name."""


class PodRuntime:
    def __init__(
        self,
        plan: PodPlan,
        network: NodeNetwork,
        dns: ClusterDNS,
        settings: PodSettings,
        on_change: Callable[[PodRuntime], None],
    ) -> None:
        self.plan = plan
        self._network = network
        self._dns = dns
        self._settings = settings
        self._on_change = on_change
        self.phase = PodPhase.PENDING
        self.reason: str | None = "ContainerCreating"
        self.message: str | None = None
        self.restarts = 0
        self.pod_ip: str | None = None
        self.start_time: str | None = None
        self.app_ready = False
        self.proxy_ready = False
        self.pids: dict[str, int] = {}
        self.uid: str | None = None  # of the `Pod` object, once stored
        self._uid_bound = asyncio.Event()
        self._identity_env: dict[str, str] = {}
        self._pod: Pod | None = None
        self._children: dict[str, Child] = {}
        self._proxy_ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.plan.namespace, self.plan.name)

    @property
    def meshed(self) -> bool:
        return self.plan.spec.mesh

    @property
    def owner(self) -> str:
        return f"{self._settings.owner}/pods/{self.plan.namespace}/{self.plan.name}"

    @property
    def ready(self) -> bool:
        return self.app_ready and (self.proxy_ready or not self.meshed)

    def start(self) -> None:
        self._task = asyncio.create_task(
            self._run(), name=f"pod {self.plan.namespace}/{self.plan.name}"
        )

    def _changed(self) -> None:
        self._on_change(self)

    def bind_uid(self, uid: str) -> None:
        """The uid the store gave this pod's `Pod` object: its join token is bound to it."""
        if self.uid is None:
            self.uid = uid
            self._uid_bound.set()

    async def _run(self) -> None:
        try:
            pod = await self._setup()
            if self.meshed and self._settings.identity is not None:
                await self._issue_token(self._settings.identity)
            # A TaskGroup: if one loop fails, the other is cancelled with it.
            async with asyncio.TaskGroup() as group:
                group.create_task(self._app_loop(pod))
                if self.meshed:
                    group.create_task(self._proxy_loop(pod))
        except asyncio.CancelledError:
            raise
        except InvalidPodIdentity as error:
            self.phase, self.reason, self.message = PodPhase.FAILED, INVALID_IDENTITY, str(error)
            self._changed()
        except Exception as error:
            log.exception("pod %s/%s failed", *self.key)
            self.phase, self.reason, self.message = PodPhase.FAILED, "Error", str(error)
            self._changed()

    async def _setup(self) -> Pod:
        backoff = RestartBackoff()
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            try:
                pod = await self._network.add_pod(*self.key, self.plan.preferred_ip)
                self._pod = pod
                self.pod_ip = str(pod.ip)
                self._dns.add_pod(
                    pod.netns, PodIdentity(self.plan.namespace, self.plan.name, self.pod_ip)
                )
                if self.meshed:
                    await self._network.install_init_rules(pod, InitConfig(proxy_uid=PROXY_UID))
                self._changed()
                return pod
            except Exception as error:
                if attempt == SETUP_ATTEMPTS:
                    raise
                log.warning("pod %s/%s: setup attempt %d failed: %s", *self.key, attempt, error)
                self.reason, self.message = "NetworkSetupFailed", str(error)
                self._changed()
                await self._remove_network()
                await asyncio.sleep(backoff.delay_after_exit(0.0))
        raise AssertionError("unreachable")

    async def _issue_token(self, identities: PodIdentities) -> None:
        while not self._uid_bound.is_set():
            try:
                await asyncio.wait_for(self._uid_bound.wait(), UID_WAIT)
            except TimeoutError:
                self._changed()  # the last write failed, or has not happened: again
        assert self.uid is not None
        try:
            self._identity_env = identities.issue(
                *self.key, self.uid, self.plan.spec.service_account_name
            )
        except ValueError as error:
            raise InvalidPodIdentity(f"no join token for this pod: {error}") from None

    def _proxy_env(self) -> dict[str, str]:
        context = {
            "ns": self.plan.namespace,
            "nodeName": self._settings.node,
            "pod": self.plan.name,
        }
        env = {
            "GOSSAMER_PROXY_DESTINATION_SVC_ADDR": self._settings.destination_addr,
            "GOSSAMER_PROXY_DESTINATION_CONTEXT": json.dumps(context, sort_keys=True),
            "GOSSAMER_PROXY_SHUTDOWN_GRACE_PERIOD": self._settings.proxy_shutdown_grace,
        }
        if self._settings.policy_addr is not None:
            env["GOSSAMER_PROXY_POLICY_SVC_ADDR"] = self._settings.policy_addr
        env.update(self._identity_env)
        return base_env(env)

    async def _proxy_loop(self, pod: Pod) -> None:
        backoff = RestartBackoff()
        argv = [*pod.netns_argv(PROXY_UID), self._settings.python, "-m", "gossamer.proxy"]
        while True:
            proxy_log = ProxyLog(pod.state_dir / "proxy.log")
            child = await spawn(
                "proxy",
                argv,
                env=self._proxy_env(),
                owner=f"{self.owner}/proxy",
                log=proxy_log.path,
            )
            self._children["proxy"] = child
            self.pids["proxy"] = child.pid
            self._changed()
            if await self._wait_proxy_ready(pod, child, proxy_log):
                self.proxy_ready = True
                self._proxy_ready.set()
                if self.reason in (PROXY_RESTARTING, CERTIFICATE_NOT_ISSUED):
                    self.reason, self.message = None, None
                self._changed()
                code = await child.wait()
                why = f"proxy exited with code {code}"
            elif not child.running:
                why = f"proxy exited with code {await child.wait()} before it was ready"
                proxy_log.read()
                if proxy_log.last_line:
                    why += f" ({proxy_log.last_line})"
            else:
                await child.stop()
                why = f"proxy not ready within {self._settings.proxy_ready_timeout:.0f}s"
            self.proxy_ready = False
            self.restarts += 1
            self.pids.pop("proxy", None)
            delay = backoff.delay_after_exit(child.ran_for())
            self.reason, self.message = PROXY_RESTARTING, f"{why}; restarting in {delay:.0f}s"
            self._changed()
            await asyncio.sleep(delay)

    async def _wait_proxy_ready(self, pod: Pod, child: Child, proxy_log: ProxyLog) -> bool:
        """True once the proxy is ready. False if it exits, or is not ready in time unless
        it is being refused a certificate: then it keeps asking, as it should, and the
        pod's status says why it is refused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.proxy_ready_timeout
        next_read = loop.time()
        while child.running:
            if await http_status(str(pod.ip), ADMIN_PORT, "/ready", timeout=1.0) == 200:
                return True
            now = loop.time()
            if now >= next_read:
                next_read = now + LOG_READ_INTERVAL
                if proxy_log.read():
                    self.reason = CERTIFICATE_NOT_ISSUED
                    self.message = f"the proxy has no certificate: {proxy_log.certify_failure}"
                    self._changed()
            if now >= deadline and self.reason != CERTIFICATE_NOT_ISSUED:
                return False
            await asyncio.sleep(self._settings.probe_interval)
        return False

    async def _app_loop(self, pod: Pod) -> None:
        if self.meshed:
            await self._proxy_ready.wait()
        backoff = RestartBackoff()
        spec = self.plan.spec
        while True:
            child = await spawn(
                "app",
                [*pod.netns_argv(), *spec.command],
                env=base_env(spec.env),
                owner=f"{self.owner}/app",
                log=pod.state_dir / "app.log",
            )
            self._children["app"] = child
            self.pids["app"] = child.pid
            self.phase, self.reason, self.message = PodPhase.RUNNING, None, None
            self.start_time = self.start_time or format_timestamp(datetime.now(UTC))
            self._changed()
            readiness = asyncio.create_task(self._watch_app_ready(pod, child))
            code = await child.wait()
            readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readiness
            self.app_ready = False
            self.restarts += 1
            self.pids.pop("app", None)
            delay = backoff.delay_after_exit(child.ran_for())
            self.reason = "CrashLoopBackOff" if code != 0 else "Completed"
            self.message = f"app exited with code {code}; restarting in {delay:.0f}s"
            self._changed()
            await asyncio.sleep(delay)

    async def _watch_app_ready(self, pod: Pod, child: Child) -> None:
        ports = self.plan.spec.ports
        if not ports:
            # Nothing to probe: ready once it has stayed up a moment, so a command that fails
            # at once is seen crashing rather than ready.
            await asyncio.sleep(self._settings.portless_ready_after)
        interval = self._settings.probe_interval
        while child.running:
            if not ports or await tcp_open_in_netns(pod.netns, "127.0.0.1", ports[0]):
                self.app_ready = True
                self._changed()
                return
            await asyncio.sleep(interval)
            # An app that never listens costs one probe a second, not ten.
            interval = min(1.0, interval * 1.5)

    async def stop(self) -> None:
        """Stop both processes and remove the pod's namespace; safe to call twice."""
        self.phase, self.reason, self.message = PodPhase.TERMINATING, None, None
        self.app_ready = self.proxy_ready = False
        self._changed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        children = list(self._children.values())
        for child in children:
            child.send_sigterm()
        await asyncio.gather(*(child.stop() for child in children))
        self._children.clear()
        self.pids.clear()
        if self.meshed and self._settings.identity is not None:
            self._settings.identity.revoke(*self.key)
        await self._remove_network()

    async def _remove_network(self) -> None:
        pod, self._pod = self._pod, None
        if pod is not None:
            self._dns.remove_pod(pod.netns)
            await self._network.remove_pod(pod)

    def to_resource(self) -> Resource:
        """The `Pod` object this runtime reports."""
        status = PodStatus(
            phase=self.phase,
            pod_ip=self.pod_ip,
            start_time=self.start_time,
            restarts=self.restarts,
            ready=self.ready,
            reason=self.reason,
            message=self.message,
            proxy=ProxyStatus(self.proxy_ready) if self.meshed else None,
            pids=dict(self.pids),
        )
        return pod_object(
            self.plan.namespace,
            self.plan.name,
            self.plan.workload,
            self.plan.spec,
            status,
            proxy_python=self._settings.python if self.meshed else None,
            netns=self._pod.netns if self._pod is not None else None,
        )
