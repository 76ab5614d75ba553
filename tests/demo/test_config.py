"""DEMO_* parsing: defaults, accepted values, and errors that name the variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from gossamer.demo import config
from gossamer.demo.config import DemoConfigError, HostPort


def test_defaults_match_the_mesh_layout() -> None:
    web = config.web_config({})
    assert web.port == 8080
    assert web.emoji_addr == HostPort("emoji.demo.svc.cluster.local", 9090)
    assert web.voting_addr == HostPort("voting.demo.svc.cluster.local", 9090)
    assert web.listen_host == "0.0.0.0"
    service = config.service_config({})
    assert (service.grpc_port, service.http_port) == (9090, 8080)
    assert config.voting_config({}).failure_rate == 0.0
    bot = config.vote_bot_config({})
    assert bot.web_addr == HostPort("web.demo.svc.cluster.local", 8080)
    assert bot.rps == 5 and 0 < bot.failing_share < 0.5 and bot.seed is None


def test_values_are_parsed() -> None:
    bot = config.vote_bot_config(
        {
            "DEMO_WEB_ADDR": "[::1]:8081",
            "DEMO_BOT_RPS": "0.5",
            "DEMO_BOT_TIMEOUT": "250ms",
            "DEMO_BOT_SEED": "7",
            "DEMO_LOG_FORMAT": "JSON",
        }
    )
    assert bot.web_addr == HostPort("::1", 8081) and str(bot.web_addr) == "[::1]:8081"
    assert (bot.rps, bot.request_timeout, bot.seed, bot.log.format) == (0.5, 0.25, 7, "json")
    assert config.voting_config({"DEMO_VOTING_FAILURE_RATE": " 0.25 "}).failure_rate == 0.25
    assert config.service_config({"DEMO_GRPC_PORT": "0"}).grpc_port == 0


@pytest.mark.parametrize(
    ("load", "name", "value", "why"),
    [
        (config.web_config, "DEMO_WEB_PORT", "http", "not an integer"),
        (config.web_config, "DEMO_WEB_PORT", "65536", "out of range"),
        (config.web_config, "DEMO_EMOJI_ADDR", "emoji", "HOST:PORT"),
        (config.web_config, "DEMO_VOTING_ADDR", "voting:0", "out of range"),
        (config.web_config, "DEMO_VOTING_ADDR", "http://voting:9090", "HOST:PORT"),
        (config.web_config, "DEMO_BACKEND_TIMEOUT", "0s", "longer than 0"),
        (config.web_config, "DEMO_LISTEN_HOST", "localhost", "not an IP address"),
        (config.service_config, "DEMO_GRPC_PORT", "-1", "out of range"),
        (config.service_config, "DEMO_SHUTDOWN_GRACE", "soon", "invalid duration"),
        (config.service_config, "DEMO_LOG_LEVEL", "loud", "expected debug"),
        (config.service_config, "DEMO_LOG_FORMAT", "xml", "expected logfmt or json"),
        (config.voting_config, "DEMO_VOTING_FAILURE_RATE", "1.5", "between 0 and 1"),
        (config.voting_config, "DEMO_VOTING_FAILURE_RATE", "nan", "finite"),
        (config.vote_bot_config, "DEMO_BOT_RPS", "0", "greater than 0"),
        (config.vote_bot_config, "DEMO_BOT_CONCURRENCY", "0", "between 1 and 1024"),
        (config.vote_bot_config, "DEMO_BOT_FAILING_SHARE", "-0.1", "between 0 and 1"),
        (config.vote_bot_config, "DEMO_BOT_SEED", "x", "not an integer"),
    ],
)
def test_bad_values_name_the_variable(
    load: Callable[[Mapping[str, str]], object], name: str, value: str, why: str
) -> None:
    with pytest.raises(DemoConfigError) as caught:
        load({name: value})
    assert str(caught.value).startswith(f"{name}={value!r}: ")
    assert why in str(caught.value)


def test_every_component_documents_the_variables_it_reads() -> None:
    assert set(config.COMPONENT_ENV) == {"web", "emoji", "voting", "vote-bot"}
    for variables in config.COMPONENT_ENV.values():
        assert all(var.name.startswith("DEMO_") and var.meaning for var in variables)


def test_native_resolver_unless_chosen() -> None:
    environ: dict[str, str] = {}
    config.prefer_native_grpc_resolver(environ)
    assert environ == {"GRPC_DNS_RESOLVER": "native"}
    chosen = {"GRPC_DNS_RESOLVER": "ares"}
    config.prefer_native_grpc_resolver(chosen)
    assert chosen == {"GRPC_DNS_RESOLVER": "ares"}
