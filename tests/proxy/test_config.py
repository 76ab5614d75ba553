"""`ProxyConfig.from_env` (pure): Linkerd's defaults, parsing, and errors naming the variable."""

from __future__ import annotations

import pytest

from gossamer.proxy.config import (
    DEFAULT_OPAQUE_PORTS,
    ConfigError,
    ListenAddr,
    ProxyConfig,
)

P = "GOSSAMER_PROXY_"


def test_defaults_follow_linkerd() -> None:
    config = ProxyConfig.from_env({})
    assert config.outbound_listen == ListenAddr("127.0.0.1", 4140)
    assert config.inbound_listen == ListenAddr("0.0.0.0", 4143)
    assert config.admin_listen == ListenAddr("0.0.0.0", 4191)
    assert config.opaque_ports == frozenset({25, 587, 3306, 4444, 5432, 6379, 9300, 11211})
    assert config.opaque_ports == DEFAULT_OPAQUE_PORTS
    assert config.detect_timeout == 10.0
    assert config.outbound_connect_timeout == 1.0
    assert config.admin_shutdown_enabled is False
    assert config.log_level == "info"
    assert config.log_format == "plain"
    assert config.buffers.low <= config.buffers.high
    assert config == ProxyConfig()


def test_empty_values_mean_default() -> None:
    assert ProxyConfig.from_env({P + "DETECT_TIMEOUT": "  ", P + "OPAQUE_PORTS": ""}) == (
        ProxyConfig()
    )


def test_unrelated_variables_are_ignored() -> None:
    assert ProxyConfig.from_env({"DETECT_TIMEOUT": "x", "LINKERD2_PROXY_LOG": "x"}) == (
        ProxyConfig()
    )


def test_values_are_parsed() -> None:
    config = ProxyConfig.from_env(
        {
            P + "OUTBOUND_LISTEN_ADDR": "127.0.0.1:14140",
            P + "INBOUND_LISTEN_ADDR": "[::]:14143",
            P + "ADMIN_LISTEN_ADDR": "127.0.0.2:14191",
            P + "INBOUND_FORWARD_IP": "::1",
            P + "OPAQUE_PORTS": "25, 8000-8002,9000",
            P + "DETECT_TIMEOUT": "500ms",
            P + "OUTBOUND_CONNECT_TIMEOUT": "2s",
            P + "INBOUND_CONNECT_TIMEOUT": "1.5",
            P + "SHUTDOWN_GRACE_PERIOD": "1m",
            P + "ADMIN_SHUTDOWN": "true",
            P + "LOG_LEVEL": "DEBUG",
            P + "LOG_FORMAT": "json",
            P + "HTTP1_MAX_HEADER_BYTES": "8192",
            P + "HTTP1_HEADER_READ_TIMEOUT": "3s",
            P + "OUTBOUND_POOL_IDLE_TIMEOUT": "90s",
            P + "OUTBOUND_POOL_MAX_IDLE": "4",
            P + "BUFFER_HIGH_WATER": "1000",
        }
    )
    assert config.outbound_listen == ListenAddr("127.0.0.1", 14140)
    assert config.inbound_listen == ListenAddr("::", 14143)
    assert str(config.inbound_listen) == "[::]:14143"
    assert config.admin_listen == ListenAddr("127.0.0.2", 14191)
    assert config.inbound_forward_ip == "::1"
    assert config.opaque_ports == frozenset({25, 8000, 8001, 8002, 9000})
    assert config.detect_timeout == 0.5
    assert config.outbound_connect_timeout == 2.0
    assert config.inbound_connect_timeout == 1.5
    assert config.shutdown_grace_period == 60.0
    assert config.admin_shutdown_enabled is True
    assert config.log_level == "debug"
    assert config.log_format == "json"
    assert config.http1.max_header_bytes == 8192
    assert config.http1.header_read_timeout == 3.0
    assert config.http1.pool_idle_timeout == 90.0
    assert config.http1.pool_max_idle_per_target == 4
    assert config.buffers.high == 1000
    assert config.buffers.low == 250


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("yes", True), ("ON", True), ("0", False), ("false", False), ("off", False)],
)
def test_booleans(value: str, expected: bool) -> None:
    assert ProxyConfig.from_env({P + "ADMIN_SHUTDOWN": value}).admin_shutdown_enabled is expected


def test_opaque_ports_empty_list_disables() -> None:
    assert ProxyConfig.from_env({P + "OPAQUE_PORTS": ",,"}).opaque_ports == frozenset()


def test_config_is_frozen() -> None:
    config = ProxyConfig()
    with pytest.raises(AttributeError):
        config.detect_timeout = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OUTBOUND_LISTEN_ADDR", "4140"),
        ("OUTBOUND_LISTEN_ADDR", "localhost:4140"),
        ("OUTBOUND_LISTEN_ADDR", "127.0.0.1:"),
        ("OUTBOUND_LISTEN_ADDR", "127.0.0.1:http"),
        ("INBOUND_LISTEN_ADDR", "0.0.0.0:65536"),
        ("INBOUND_LISTEN_ADDR", "0.0.0.0:-1"),
        ("ADMIN_LISTEN_ADDR", ":4191"),
        ("ADMIN_LISTEN_ADDR", "300.0.0.1:4191"),
        ("INBOUND_FORWARD_IP", "app.local"),
        ("OPAQUE_PORTS", "25,abc"),
        ("OPAQUE_PORTS", "70000"),
        ("OPAQUE_PORTS", "9000-8000"),
        ("OPAQUE_PORTS", "1-2-3"),
        ("OPAQUE_PORTS", "-5"),
        ("DETECT_TIMEOUT", "10x"),
        ("DETECT_TIMEOUT", "-1s"),
        ("DETECT_TIMEOUT", "s"),
        ("OUTBOUND_CONNECT_TIMEOUT", "fast"),
        ("INBOUND_CONNECT_TIMEOUT", "1 sec"),
        ("SHUTDOWN_GRACE_PERIOD", "1d"),
        ("HTTP1_HEADER_READ_TIMEOUT", "forever"),
        ("OUTBOUND_POOL_IDLE_TIMEOUT", "1e3"),
        ("ADMIN_SHUTDOWN", "maybe"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_FORMAT", "xml"),
        ("HTTP1_MAX_HEADER_BYTES", "64k"),
        ("HTTP1_MAX_HEADER_BYTES", "-1"),
        ("OUTBOUND_POOL_MAX_IDLE", "1.5"),
        ("BUFFER_HIGH_WATER", "lots"),
        ("BUFFER_LOW_WATER", "-3"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        ProxyConfig.from_env({P + name: value})
    assert P + name in str(error.value)


def test_low_water_above_high_water_is_an_error() -> None:
    env = {P + "BUFFER_HIGH_WATER": "100", P + "BUFFER_LOW_WATER": "200"}
    with pytest.raises(ConfigError, match=P + "BUFFER_LOW_WATER"):
        ProxyConfig.from_env(env)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
