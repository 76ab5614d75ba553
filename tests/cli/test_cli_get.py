"""`gossamer get` rendering: kubectl's ages, READY counts with and without a sidecar, the
columns of each kind, and the List shape of -o json/yaml."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import yaml

from gossamer.cli.get import age, render, render_table
from gossamer.core.resources import (
    Container,
    ObjectMeta,
    PodPhase,
    PodSpec,
    PodStatus,
    ProxyStatus,
    Resource,
)

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)


def test_age_reads_like_kubectl() -> None:
    assert age("2026-01-02T11:59:18Z", NOW) == "42s"
    assert age("2026-01-02T11:58:30Z", NOW) == "90s"
    assert age("2026-01-02T11:55:00Z", NOW) == "5m"
    assert age("2026-01-02T09:00:00Z", NOW) == "3h"
    assert age("2025-12-30T12:00:00Z", NOW) == "3d"
    assert age("", NOW) == age("garbage", NOW) == "<unknown>"
    assert age("2026-01-02T12:00:05Z", NOW) == "0s"  # a clock a little ahead


def pod(name: str, status: PodStatus) -> Resource:
    return Resource(
        api_version="v1",
        kind="Pod",
        metadata=ObjectMeta(name=name, namespace="demo", creation_timestamp="2026-01-02T11:59:00Z"),
        spec=PodSpec((Container("web"),)),
        status=status,
    )


def test_pod_rows_count_the_sidecar_and_show_reasons() -> None:
    pods = [
        pod("ready", PodStatus(PodPhase.RUNNING, "10.77.0.2", ready=True, proxy=ProxyStatus(True))),
        pod(
            "crashing",
            PodStatus(
                PodPhase.RUNNING,
                "10.77.0.3",
                restarts=4,
                reason="CrashLoopBackOff",
                proxy=ProxyStatus(True),
            ),
        ),
        pod("plain", PodStatus(PodPhase.RUNNING, "10.77.0.4", ready=True)),
        pod("new", PodStatus(reason="ContainerCreating", proxy=ProxyStatus(False))),
    ]
    lines = render(pods, "Pod", "table").splitlines()
    assert [line.split()[:5] for line in lines[1:]] == [
        ["ready", "2/2", "Running", "0", lines[1].split()[4]],
        ["crashing", "1/2", "CrashLoopBackOff", "4", lines[2].split()[4]],
        ["plain", "1/1", "Running", "0", lines[3].split()[4]],
        ["new", "0/2", "ContainerCreating", "0", lines[4].split()[4]],
    ]
    assert lines[4].split()[-1] == "<none>"
    wide = render(pods, "Pod", "wide", all_namespaces=True).splitlines()
    assert wide[0].split() == [
        "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "WORKLOAD", "MESHED",
        "NETNS",
    ]  # fmt: skip
    assert wide[3].split()[8] == "no"


def test_json_and_yaml_are_a_list_unless_one_was_named() -> None:
    pods = [pod("a", PodStatus()), pod("b", PodStatus())]
    document = json.loads(render(pods, "Pod", "json"))
    assert document["kind"] == "List" and [i["metadata"]["name"] for i in document["items"]] == [
        "a",
        "b",
    ]
    assert json.loads(render(pods[:1], "Pod", "json"))["kind"] == "List"
    assert json.loads(render(pods[:1], "Pod", "json", single=True))["kind"] == "Pod"
    assert yaml.safe_load(render(pods[:1], "Pod", "yaml", single=True))["metadata"]["name"] == "a"
    assert yaml.safe_load(render(pods, "Pod", "yaml"))["kind"] == "List"


def test_table_columns_align() -> None:
    assert render_table(["A", "LONGER"], [["xx", "y"], ["x", ""]]).splitlines() == [
        "A    LONGER",
        "xx   y",
        "x",
    ]
