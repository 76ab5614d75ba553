"""The demo's configuration: every `DEMO_*` environment variable is declared and read here.

Each variable is an `EnvVar` (name, default, meaning); the component configs are parsed from
them once at start-up into frozen values, and `python -m gossamer.demo --help` prints the same
declarations, so documentation and parsing cannot drift apart. An invalid value raises
`DemoConfigError` naming the variable; the entry point turns it into a non-zero exit.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from gossamer.core.durations import parse_duration


class DemoConfigError(ValueError):
    """An environment variable holds a value the component cannot use."""


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    default: str
    meaning: str


LISTEN_HOST = EnvVar("DEMO_LISTEN_HOST", "0.0.0.0", "IP address the servers listen on")
SHUTDOWN_GRACE = EnvVar(
    "DEMO_SHUTDOWN_GRACE", "2s", "how long SIGTERM waits for in-flight requests"
)
LOG_LEVEL = EnvVar("DEMO_LOG_LEVEL", "info", "debug, info, warning or error")
LOG_FORMAT = EnvVar("DEMO_LOG_FORMAT", "logfmt", "logfmt (key=value) or json")
WEB_PORT = EnvVar("DEMO_WEB_PORT", "8080", "HTTP/1.1 port of the front end")
EMOJI_ADDR = EnvVar("DEMO_EMOJI_ADDR", "emoji.demo.svc.cluster.local:9090", "gRPC address of emoji")
VOTING_ADDR = EnvVar(
    "DEMO_VOTING_ADDR", "voting.demo.svc.cluster.local:9090", "gRPC address of voting"
)
BACKEND_TIMEOUT = EnvVar("DEMO_BACKEND_TIMEOUT", "2s", "deadline of each gRPC call web makes")
GRPC_PORT = EnvVar("DEMO_GRPC_PORT", "9090", "gRPC port")
HTTP_PORT = EnvVar("DEMO_HTTP_PORT", "8080", "HTTP/1.1 port (GET / describes the service)")
VOTING_FAILURE_RATE = EnvVar(
    "DEMO_VOTING_FAILURE_RATE", "0", "share (0..1) of other votes failed at random"
)
WEB_ADDR = EnvVar("DEMO_WEB_ADDR", "web.demo.svc.cluster.local:8080", "HTTP address of web")
BOT_RPS = EnvVar("DEMO_BOT_RPS", "5", "requests per second sent to web")
BOT_CONCURRENCY = EnvVar("DEMO_BOT_CONCURRENCY", "8", "most requests in flight at once")
BOT_FAILING_SHARE = EnvVar(
    "DEMO_BOT_FAILING_SHARE", "0.15", "share (0..1) of votes cast for the failing item"
)
BOT_TIMEOUT = EnvVar("DEMO_BOT_TIMEOUT", "5s", "deadline of each request to web")
BOT_REPORT_INTERVAL = EnvVar("DEMO_BOT_REPORT_INTERVAL", "10s", "period of the summary line")
BOT_SEED = EnvVar("DEMO_BOT_SEED", "", "random seed, for reproducible choices")

_COMMON = (LISTEN_HOST, SHUTDOWN_GRACE, LOG_LEVEL, LOG_FORMAT)

# The variables each component reads, in the order --help lists them.
COMPONENT_ENV: dict[str, tuple[EnvVar, ...]] = {
    "web": (WEB_PORT, EMOJI_ADDR, VOTING_ADDR, BACKEND_TIMEOUT, *_COMMON),
    "emoji": (GRPC_PORT, HTTP_PORT, *_COMMON),
    "voting": (GRPC_PORT, HTTP_PORT, VOTING_FAILURE_RATE, *_COMMON),
    "vote-bot": (
        WEB_ADDR,
        BOT_RPS,
        BOT_CONCURRENCY,
        BOT_FAILING_SHARE,
        BOT_TIMEOUT,
        BOT_REPORT_INTERVAL,
        BOT_SEED,
        SHUTDOWN_GRACE,
        LOG_LEVEL,
        LOG_FORMAT,
    ),
}


@dataclass(frozen=True, slots=True)
class HostPort:
    """Where a peer is: a DNS name or IP address, and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        # gRPC targets and Host headers bracket IPv6 literals.
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str
    format: str


@dataclass(frozen=True, slots=True)
class WebConfig:
    listen_host: str
    port: int
    emoji_addr: HostPort
    voting_addr: HostPort
    backend_timeout: float
    shutdown_grace: float
    log: LogSettings


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """A gRPC backend (emoji or voting) with its small HTTP side door."""

    listen_host: str
    grpc_port: int
    http_port: int
    shutdown_grace: float
    log: LogSettings


@dataclass(frozen=True, slots=True)
class VotingConfig:
    service: ServiceConfig
    failure_rate: float


@dataclass(frozen=True, slots=True)
class VoteBotConfig:
    web_addr: HostPort
    rps: float
    concurrency: int
    failing_share: float
    request_timeout: float
    report_interval: float
    seed: int | None
    shutdown_grace: float
    log: LogSettings


def web_config(environ: Mapping[str, str] | None = None) -> WebConfig:
    env = _Env(environ)
    return WebConfig(
        listen_host=env.ip(LISTEN_HOST),
        port=env.port(WEB_PORT),
        emoji_addr=env.host_port(EMOJI_ADDR),
        voting_addr=env.host_port(VOTING_ADDR),
        backend_timeout=env.duration(BACKEND_TIMEOUT, positive=True),
        shutdown_grace=env.duration(SHUTDOWN_GRACE),
        log=env.log_settings(),
    )


def service_config(environ: Mapping[str, str] | None = None) -> ServiceConfig:
    env = _Env(environ)
    return ServiceConfig(
        listen_host=env.ip(LISTEN_HOST),
        grpc_port=env.port(GRPC_PORT),
        http_port=env.port(HTTP_PORT),
        shutdown_grace=env.duration(SHUTDOWN_GRACE),
        log=env.log_settings(),
    )


def voting_config(environ: Mapping[str, str] | None = None) -> VotingConfig:
    return VotingConfig(
        service=service_config(environ), failure_rate=_Env(environ).share(VOTING_FAILURE_RATE)
    )


def vote_bot_config(environ: Mapping[str, str] | None = None) -> VoteBotConfig:
    env = _Env(environ)
    rps = env.number(BOT_RPS)
    if rps <= 0:
        raise env.fail(BOT_RPS, "must be greater than 0")
    concurrency = env.integer(BOT_CONCURRENCY)
    if not 1 <= concurrency <= 1024:
        raise env.fail(BOT_CONCURRENCY, "must be between 1 and 1024")
    seed_text = env.raw(BOT_SEED)
    return VoteBotConfig(
        web_addr=env.host_port(WEB_ADDR),
        rps=rps,
        concurrency=concurrency,
        failing_share=env.share(BOT_FAILING_SHARE),
        request_timeout=env.duration(BOT_TIMEOUT, positive=True),
        report_interval=env.duration(BOT_REPORT_INTERVAL, positive=True),
        seed=None if seed_text is None else env.integer(BOT_SEED),
        shutdown_grace=env.duration(SHUTDOWN_GRACE),
        log=env.log_settings(),
    )


def prefer_native_grpc_resolver(environ: MutableMapping[str, str] | None = None) -> None:
    """Make gRPC resolve names with getaddrinfo unless the user chose a resolver.

    In local mode, service names resolve through the pod's /etc/hosts (mounted by
    `ip netns exec`); grpcio's default c-ares resolver can fail when the pod has no reachable
    DNS server, while getaddrinfo reads /etc/hosts as curl and Python do. Must run before
    grpc is imported.
    """
    target = os.environ if environ is None else environ
    target.setdefault("GRPC_DNS_RESOLVER", "native")


class _Env:
    """Typed reads of the declared variables; each error names the variable and its value."""

    def __init__(self, environ: Mapping[str, str] | None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, var: EnvVar) -> str | None:
        value = self._environ.get(var.name, "").strip()
        return value or None

    def _text(self, var: EnvVar) -> str:
        return self.raw(var) or var.default

    def fail(self, var: EnvVar, why: str) -> DemoConfigError:
        return DemoConfigError(f"{var.name}={self._text(var)!r}: {why}")

    def integer(self, var: EnvVar) -> int:
        try:
            return int(self._text(var))
        except ValueError:
            raise self.fail(var, "not an integer") from None

    def number(self, var: EnvVar) -> float:
        try:
            value = float(self._text(var))
        except ValueError:
            raise self.fail(var, "not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(var, "not a finite number")
        return value

    def share(self, var: EnvVar) -> float:
        value = self.number(var)
        if not 0.0 <= value <= 1.0:
            raise self.fail(var, "must be between 0 and 1")
        return value

    def port(self, var: EnvVar) -> int:
        # 0 asks the kernel for a free port; the ready log line tells which one it gave.
        value = self.integer(var)
        if not 0 <= value <= 65535:
            raise self.fail(var, "port out of range 0..65535")
        return value

    def duration(self, var: EnvVar, positive: bool = False) -> float:
        try:
            value = parse_duration(self._text(var))
        except ValueError as error:
            raise self.fail(var, str(error)) from None
        if positive and value <= 0:
            raise self.fail(var, "must be longer than 0")
        return value

    def ip(self, var: EnvVar) -> str:
        try:
            return str(ipaddress.ip_address(self._text(var)))
        except ValueError:
            raise self.fail(var, "not an IP address") from None

    def host_port(self, var: EnvVar) -> HostPort:
        text = self._text(var)
        host, sep, port_text = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or any(c.isspace() or c in "/[]" for c in host):
            raise self.fail(var, "expected HOST:PORT")
        try:
            port = int(port_text)
        except ValueError:
            raise self.fail(var, f"{port_text!r} is not a port number") from None
        if not 1 <= port <= 65535:
            raise self.fail(var, "port out of range 1..65535")
        return HostPort(host, port)

    def log_settings(self) -> LogSettings:
        level = self._text(LOG_LEVEL).lower()
        if level not in ("debug", "info", "warning", "error"):
            raise self.fail(LOG_LEVEL, "expected debug, info, warning or error")
        fmt = self._text(LOG_FORMAT).lower()
        if fmt not in ("logfmt", "json"):
            raise self.fail(LOG_FORMAT, "expected logfmt or json")
        return LogSettings(level, fmt)
