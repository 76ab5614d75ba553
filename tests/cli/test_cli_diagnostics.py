"""`gossamer diagnostics proxy-metrics`: a real proxy in a pod of a sandbox node, reached from
inside the node's namespace as local mode's Prometheus reaches it; and the errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from gossamer.cli import main
from gossamer.local.netns import Node
from gossamer.local.pod import Pod
from gossamer.local.state import RuntimeInfo, StateDir
from tests.viz.mesh import pod, workload
from tests.viz.state_dir import write_state_dir


def proxy_metrics(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["diagnostics", "proxy-metrics", *args])
    return result.exit_code, result.stdout, result.stderr


def use_node(state: StateDir, node: Node) -> None:
    """Point runtime.json at the sandbox node (its pods' addresses live there)."""
    data = json.loads(state.runtime_file.read_text())
    RuntimeInfo(**{**data, "node_netns": node.name}).save(state)


@pytest.mark.netns
def test_metrics_of_a_running_proxy(
    node: Node, make_pod: Callable[[str], Pod], tmp_path: Path
) -> None:
    sandbox_pod = make_pod("web")
    sandbox_pod.start_proxy()
    state = write_state_dir(
        tmp_path / "state",
        resources=[
            workload("web"),
            pod("web-0", "web", ip=str(sandbox_pod.ip)),
            pod("web-1", "web", ip=str(sandbox_pod.ip)),  # same proxy twice: two sections
            pod("gone-0", "web", ip=None, phase="Failed"),
        ],
    )
    use_node(state, node)

    code, out, err = proxy_metrics("web-0", "-n", "demo", "--state-dir", str(state.root))
    assert code == 0, err
    assert out.startswith("#\n# POD web-0 (1 of 1)\n#\n")
    families = {family.name: family.type for family in text_string_to_metric_families(out)}
    # The parser names counter families without `_total`.
    assert families["request"] == "counter" and families["response_latency_ms"] == "histogram"
    assert families["process_start_time_seconds"] == "gauge"

    code, out, err = proxy_metrics("deploy/web", "-n", "demo", "--state-dir", str(state.root))
    assert code == 0, err
    assert "# POD web-0 (1 of 2)" in out and "# POD web-1 (2 of 2)" in out
    assert "gone-0" not in out


@pytest.mark.netns
def test_a_pod_whose_proxy_does_not_answer(
    node: Node, make_pod: Callable[[str], Pod], tmp_path: Path
) -> None:
    sandbox_pod = make_pod("web")  # no proxy started
    state = write_state_dir(
        tmp_path / "state", resources=[pod("web-0", "web", ip=str(sandbox_pod.ip))]
    )
    use_node(state, node)
    code, _, err = proxy_metrics("pod/web-0", "-n", "demo", "--state-dir", str(state.root))
    assert code == 1
    assert f"{sandbox_pod.ip}:4191: Connection refused" in err


def test_errors_without_a_network_namespace(tmp_path: Path) -> None:
    state = write_state_dir(
        tmp_path / "state",
        resources=[
            workload("web"),
            workload("legacy", mesh=False),
            pod("web-0", "web", ip="10.1.0.5"),
            pod("pending-0", "web", ip=None, phase="Pending"),
            pod("legacy-0", "legacy", ip="10.1.0.6", meshed=False),
        ],
    )
    root = str(state.root)
    cases = {
        ("nope",): "pod/nope not found in namespace demo",
        ("deploy/nope",): "deploy/nope not found in namespace demo",
        ("legacy-0",): "pod demo/legacy-0 has no proxy",
        ("pending-0",): "pod demo/pending-0 has no IP address yet",
        ("web-0",): "cannot make a socket",  # the node namespace does not exist
    }
    for args, message in cases.items():
        code, _, err = proxy_metrics(*args, "-n", "demo", "--state-dir", root)
        assert code == 1 and message in err, (args, err)


def test_usage_and_missing_mesh(tmp_path: Path) -> None:
    code, _, err = proxy_metrics("svc/web", "--state-dir", str(tmp_path))
    assert code == 2 and "takes a pod or a workload" in err
    code, _, err = proxy_metrics("web-0", "--state-dir", str(tmp_path / "none"))
    assert code == 1 and "run `gossamer up` first" in err
