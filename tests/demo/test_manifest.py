"""The deployment description `gossamer demo` reads."""

from __future__ import annotations

import sys

from gossamer.demo import config
from gossamer.demo.manifest import DemoWorkload, service_address, workloads


def test_workloads_describe_the_demo() -> None:
    described = {workload.name: workload for workload in workloads()}
    assert list(described) == ["emoji", "voting", "web", "vote-bot"]
    for name, workload in described.items():
        assert isinstance(workload, DemoWorkload)
        assert workload.command == [sys.executable, "-m", "gossamer.demo", name]
        assert workload.namespace == "demo"
        assert workload.replicas >= 1
    assert described["web"].ports == [8080]
    assert described["emoji"].ports == [9090, 8080]
    assert described["voting"].ports == [9090, 8080]
    assert described["vote-bot"].ports == []
    assert described["web"].env["DEMO_EMOJI_ADDR"] == "emoji.demo.svc.cluster.local:9090"
    assert described["vote-bot"].env["DEMO_WEB_ADDR"] == "web.demo.svc.cluster.local:8080"


def test_every_env_parses_and_points_at_a_served_port() -> None:
    described = {workload.name: workload for workload in workloads()}
    loaders = {
        "web": config.web_config,
        "emoji": config.service_config,
        "voting": config.voting_config,
        "vote-bot": config.vote_bot_config,
    }
    for name, workload in described.items():
        loaders[name](workload.env)
        documented = {var.name for var in config.COMPONENT_ENV[name]}
        assert set(workload.env) <= documented, name
    web = config.web_config(described["web"].env)
    assert web.port in described["web"].ports
    assert web.emoji_addr.port in described["emoji"].ports
    assert web.voting_addr.port in described["voting"].ports
    bot = config.vote_bot_config(described["vote-bot"].env)
    assert bot.web_addr.port in described["web"].ports


def test_other_namespace_and_interpreter() -> None:
    described = {w.name: w for w in workloads(namespace="shop", python="/usr/bin/python3.11")}
    assert described["web"].namespace == "shop"
    assert described["web"].command[0] == "/usr/bin/python3.11"
    assert described["web"].env["DEMO_VOTING_ADDR"] == service_address("voting", 9090, "shop")
    assert service_address("voting", 9090, "shop") == "voting.shop.svc.cluster.local:9090"
