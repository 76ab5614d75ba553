"""The proxy's configuration: every `GOSSAMER_PROXY_*` environment variable is read here.

Nothing else in the proxy reads the environment. `ProxyConfig.from_env()` parses once at
start-up into frozen values; an invalid value stops the proxy with a message naming the
variable. Defaults follow linkerd2-proxy (ports 4140/4143/4191, opaque ports, 10 s detect
timeout, 1 s outbound connect timeout).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gossamer.core.durations import parse_duration

ENV_PREFIX = "GOSSAMER_PROXY_"

# Linkerd's default opaque ports: SMTP, MySQL, Galera, PostgreSQL, Redis, Elasticsearch,
# Memcached. Server-speaks-first protocols cannot be detected, so detection is skipped.
DEFAULT_OPAQUE_PORTS = frozenset({25, 587, 3306, 4444, 5432, 6379, 9300, 11211})


class ConfigError(ValueError):
    """An environment variable holds a value the proxy cannot use."""


@dataclass(frozen=True, slots=True)
class ListenAddr:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Http1Limits:
    """Bounds on what one HTTP/1 connection may make the proxy hold."""

    max_header_bytes: int = 64 * 1024
    header_read_timeout: float = 10.0
    pool_idle_timeout: float = 20.0
    pool_max_idle_per_target: int = 64


@dataclass(frozen=True, slots=True)
class Http2Limits:
    """What one HTTP/2 connection may make the proxy hold (defaults follow linkerd2-proxy)."""

    # Advertised to clients as SETTINGS_MAX_CONCURRENT_STREAMS; enforced before it is acked.
    max_concurrent_streams: int = 100
    # SETTINGS_MAX_HEADER_LIST_SIZE, and the HPACK decoder's limit, on both sides.
    max_header_list_size: int = 64 * 1024
    # The per-stream receive window the proxy advertises on both sides. The proxy
    # acknowledges data only once it has forwarded it, so this is also the most it
    # buffers per stream and direction.
    initial_stream_window: int = 65_535
    # The connection-level receive window toward clients: the most one client connection
    # can make the proxy hold, over all its streams.
    initial_connection_window: int = 1024 * 1024
    # Streams per upstream connection (fewer if the upstream says so); more connections
    # are opened beyond it. The upstream connection window is this many stream windows,
    # so streams of clients that read slowly (each holding up to a stream window) can
    # never exhaust the window the shared connection's other streams need.
    max_streams_per_upstream: int = 100
    # Requests waiting for an upstream connection to one target (while it connects).
    max_pending_per_target: int = 1024
    # How long an upstream connection may take to send its SETTINGS after connecting.
    upstream_settings_timeout: float = 5.0

    @property
    def upstream_connection_window(self) -> int:
        window = self.initial_stream_window * self.max_streams_per_upstream
        return min(max(window, self.initial_connection_window), 2**31 - 1)


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """Where the proxy gets its certificate, and what it trusts (mesh TLS is on with it)."""

    svc_addr: ListenAddr
    local_name: str
    trust_anchors_pem: bytes
    token_file: str
    # Renew at this fraction of the certificate's lifetime (Linkerd renews at 70%).
    refresh_fraction: float = 0.7
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    handshake_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class BufferLimits:
    """Write-buffer water marks: above `high` the proxy stops reading from the other side."""

    high: int = 256 * 1024
    low: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    outbound_listen: ListenAddr = ListenAddr("127.0.0.1", 4140)
    inbound_listen: ListenAddr = ListenAddr("0.0.0.0", 4143)
    admin_listen: ListenAddr = ListenAddr("0.0.0.0", 4191)
    # Where inbound connections are forwarded: the app listens here on the original port.
    inbound_forward_ip: str = "127.0.0.1"
    opaque_ports: frozenset[int] = DEFAULT_OPAQUE_PORTS
    detect_timeout: float = 10.0
    # linkerd2-proxy reads up to a small prefix to detect the protocol; so do we.
    detect_max_bytes: int = 1024
    outbound_connect_timeout: float = 1.0
    inbound_connect_timeout: float = 1.0
    # The destination service (host:port); without it, outbound traffic goes to the original
    # destination unresolved.
    destination_addr: ListenAddr | None = None
    # The outbound policy service (routes, retries, timeouts); optional even with discovery.
    policy_addr: ListenAddr | None = None
    # Who this proxy is, for the control plane: {"ns": ..., "pod": ...}.
    destination_context: str = ""
    identity: IdentityConfig | None = None
    shutdown_grace_period: float = 30.0
    admin_shutdown_enabled: bool = False
    log_level: str = "info"
    log_format: str = "plain"
    http1: Http1Limits = field(default_factory=Http1Limits)
    http2: Http2Limits = field(default_factory=Http2Limits)
    buffers: BufferLimits = field(default_factory=BufferLimits)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxyConfig:
        env = _Env(os.environ if environ is None else environ)
        defaults = cls()
        http1 = Http1Limits(
            max_header_bytes=env.integer("HTTP1_MAX_HEADER_BYTES", defaults.http1.max_header_bytes),
            header_read_timeout=env.duration(
                "HTTP1_HEADER_READ_TIMEOUT", defaults.http1.header_read_timeout
            ),
            pool_idle_timeout=env.duration(
                "OUTBOUND_POOL_IDLE_TIMEOUT", defaults.http1.pool_idle_timeout
            ),
            pool_max_idle_per_target=env.integer(
                "OUTBOUND_POOL_MAX_IDLE", defaults.http1.pool_max_idle_per_target
            ),
        )
        h2 = defaults.http2
        http2 = Http2Limits(
            max_concurrent_streams=env.integer(
                "HTTP2_MAX_CONCURRENT_STREAMS", h2.max_concurrent_streams
            ),
            max_header_list_size=env.integer("HTTP2_MAX_HEADER_LIST_SIZE", h2.max_header_list_size),
            initial_stream_window=env.integer(
                "HTTP2_INITIAL_STREAM_WINDOW", h2.initial_stream_window
            ),
            initial_connection_window=env.integer(
                "HTTP2_INITIAL_CONNECTION_WINDOW", h2.initial_connection_window
            ),
            max_streams_per_upstream=env.integer(
                "HTTP2_MAX_STREAMS_PER_UPSTREAM", h2.max_streams_per_upstream
            ),
            max_pending_per_target=env.integer(
                "HTTP2_MAX_PENDING_PER_TARGET", h2.max_pending_per_target
            ),
            upstream_settings_timeout=env.duration(
                "HTTP2_UPSTREAM_SETTINGS_TIMEOUT", h2.upstream_settings_timeout
            ),
        )
        for name, value, low, high_ in (
            ("HTTP2_MAX_CONCURRENT_STREAMS", http2.max_concurrent_streams, 1, 2**31 - 1),
            ("HTTP2_INITIAL_STREAM_WINDOW", http2.initial_stream_window, 1, 2**31 - 1),
            ("HTTP2_INITIAL_CONNECTION_WINDOW", http2.initial_connection_window, 65_535, 2**31 - 1),
            ("HTTP2_MAX_STREAMS_PER_UPSTREAM", http2.max_streams_per_upstream, 1, 2**31 - 1),
            ("HTTP2_MAX_HEADER_LIST_SIZE", http2.max_header_list_size, 1024, 2**31 - 1),
        ):
            if not low <= value <= high_:
                raise ConfigError(f"{ENV_PREFIX}{name}={value}: must be from {low} to {high_}")
        high = env.integer("BUFFER_HIGH_WATER", defaults.buffers.high)
        buffers = BufferLimits(high=high, low=env.integer("BUFFER_LOW_WATER", high // 4))
        if buffers.low > buffers.high:
            raise ConfigError(f"{ENV_PREFIX}BUFFER_LOW_WATER must not exceed BUFFER_HIGH_WATER")
        log_format = env.text("LOG_FORMAT", defaults.log_format).lower()
        if log_format not in ("plain", "json"):
            raise ConfigError(
                f"{ENV_PREFIX}LOG_FORMAT must be 'plain' or 'json', not {log_format!r}"
            )
        log_level = env.text("LOG_LEVEL", defaults.log_level).lower()
        if log_level not in ("trace", "debug", "info", "warn", "warning", "error"):
            raise ConfigError(f"{ENV_PREFIX}LOG_LEVEL {log_level!r} is not a log level")
        return cls(
            outbound_listen=env.addr("OUTBOUND_LISTEN_ADDR", defaults.outbound_listen),
            inbound_listen=env.addr("INBOUND_LISTEN_ADDR", defaults.inbound_listen),
            admin_listen=env.addr("ADMIN_LISTEN_ADDR", defaults.admin_listen),
            inbound_forward_ip=env.ip("INBOUND_FORWARD_IP", defaults.inbound_forward_ip),
            opaque_ports=env.ports("OPAQUE_PORTS", defaults.opaque_ports),
            detect_timeout=env.duration("DETECT_TIMEOUT", defaults.detect_timeout),
            outbound_connect_timeout=env.duration(
                "OUTBOUND_CONNECT_TIMEOUT", defaults.outbound_connect_timeout
            ),
            inbound_connect_timeout=env.duration(
                "INBOUND_CONNECT_TIMEOUT", defaults.inbound_connect_timeout
            ),
            destination_addr=env.optional_addr("DESTINATION_SVC_ADDR"),
            policy_addr=env.optional_addr("POLICY_SVC_ADDR"),
            identity=_identity(env),
            destination_context=env.json_object("DESTINATION_CONTEXT"),
            shutdown_grace_period=env.duration(
                "SHUTDOWN_GRACE_PERIOD", defaults.shutdown_grace_period
            ),
            admin_shutdown_enabled=env.boolean("ADMIN_SHUTDOWN", defaults.admin_shutdown_enabled),
            log_level=log_level,
            log_format=log_format,
            http1=http1,
            http2=http2,
            buffers=buffers,
        )


def _identity(env: _Env) -> IdentityConfig | None:
    addr = env.optional_addr("IDENTITY_SVC_ADDR")
    if addr is None or env.boolean("IDENTITY_DISABLED", False):
        return None
    name = env.text("IDENTITY_LOCAL_NAME", "")
    if not name:
        raise ConfigError(f"{ENV_PREFIX}IDENTITY_LOCAL_NAME is required with IDENTITY_SVC_ADDR")
    anchors = env.text("IDENTITY_TRUST_ANCHORS", "")
    anchors_file = env.text("IDENTITY_TRUST_ANCHORS_FILE", "")
    if not anchors and anchors_file:
        try:
            with open(anchors_file, "rb") as handle:
                anchors = handle.read().decode("ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{ENV_PREFIX}IDENTITY_TRUST_ANCHORS_FILE: {error}") from None
    if "-----BEGIN CERTIFICATE-----" not in anchors:
        raise ConfigError(
            f"{ENV_PREFIX}IDENTITY_TRUST_ANCHORS (or _FILE) must hold PEM certificates"
        )
    token_file = env.text("IDENTITY_TOKEN_FILE", "")
    if not token_file:
        raise ConfigError(f"{ENV_PREFIX}IDENTITY_TOKEN_FILE is required with IDENTITY_SVC_ADDR")
    return IdentityConfig(
        svc_addr=addr,
        local_name=name,
        trust_anchors_pem=anchors.encode("ascii"),
        token_file=token_file,
        handshake_timeout=env.duration("TLS_HANDSHAKE_TIMEOUT", 10.0),
    )


class _Env:
    """Typed reads of `GOSSAMER_PROXY_<name>`; each error names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(ENV_PREFIX + name)
        return None if value is None or value.strip() == "" else value.strip()

    def _fail(self, name: str, value: str, why: str) -> ConfigError:
        return ConfigError(f"{ENV_PREFIX}{name}={value!r}: {why}")

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def integer(self, name: str, default: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._fail(name, raw, "not an integer") from None
        if value < 0:
            raise self._fail(name, raw, "must not be negative")
        return value

    def duration(self, name: str, default: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return parse_duration(raw)
        except ValueError as error:
            raise self._fail(name, raw, str(error)) from None

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise self._fail(name, raw, "expected true or false")

    def ip(self, name: str, default: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            raise self._fail(name, raw, "not an IP address") from None

    def addr(self, name: str, default: ListenAddr) -> ListenAddr:
        raw = self._raw(name)
        if raw is None:
            return default
        host, sep, port_text = raw.rpartition(":")
        if not sep:
            raise self._fail(name, raw, "expected HOST:PORT")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise self._fail(name, raw, "host must be an IP address") from None
        return ListenAddr(host, self._port(name, raw, port_text))

    def json_object(self, name: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return ""
        try:
            value = json.loads(raw)
        except ValueError:
            raise self._fail(name, raw, "not valid JSON") from None
        if not isinstance(value, dict):
            raise self._fail(name, raw, "expected a JSON object")
        return raw

    def optional_addr(self, name: str) -> ListenAddr | None:
        if self._raw(name) is None:
            return None
        return self.addr(name, ListenAddr("0.0.0.0", 0))

    def ports(self, name: str, default: frozenset[int]) -> frozenset[int]:
        """A comma-separated list of ports and ranges (`25,587,8000-8010`)."""
        raw = self._raw(name)
        if raw is None:
            return default
        ports: set[int] = set()
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            low, dash, high = item.partition("-")
            first = self._port(name, raw, low)
            last = self._port(name, raw, high) if dash else first
            if last < first:
                raise self._fail(name, raw, f"range {item} runs backwards")
            ports.update(range(first, last + 1))
        return frozenset(ports)

    def _port(self, name: str, raw: str, text: str) -> int:
        try:
            port = int(text)
        except ValueError:
            raise self._fail(name, raw, f"{text!r} is not a port number") from None
        if not 0 <= port <= 65535:
            raise self._fail(name, raw, f"port {port} out of range")
        return port
