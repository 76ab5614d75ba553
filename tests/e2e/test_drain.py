"""SIGTERM drains: requests accepted before the signal complete, new ones are refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossamer.local.netns import Node, sandbox
from gossamer.local.pod import PYTHON

APPS = Path(__file__).parent / "apps"
HTTP_PORT = 8080

pytestmark = pytest.mark.netns


@pytest.fixture
def node() -> Iterator[Node]:
    with sandbox(prefix="drain") as node:
        yield node


@pytest.mark.parametrize("side", ["outbound", "inbound"])
def test_sigterm_completes_in_flight_request_then_exits(node: Node, side: str) -> None:
    a, b = node.add_pod("a"), node.add_pod("b")
    try:
        proxies = {}
        for pod, name in ((a, "outbound"), (b, "inbound")):
            pod.install_init_rules()
            proxies[name] = pod.start_proxy({"GOSSAMER_PROXY_SHUTDOWN_GRACE_PERIOD": "10s"})
        app = b.spawn([PYTHON, str(APPS / "http_app.py"), str(HTTP_PORT)])
        b.wait_for_port(HTTP_PORT, process=app)
        url = f"http://{b.ip}:{HTTP_PORT}"
        # A slow request is in flight through both proxies when one of them gets SIGTERM.
        slow = a.spawn(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/slow/2000"],
            name="slow-curl",
        )
        time.sleep(0.7)
        proxy = proxies[side]
        proxy.send_sigterm()
        time.sleep(0.3)
        assert slow.wait(timeout=15) == 0
        assert slow.stdout().strip() == "200"
        # The proxy exits on its own once nothing is in flight, well before the grace period.
        assert proxy.wait(timeout=8) == 0
        # With the proxy gone, the redirect leads nowhere: refused, never around the proxy.
        after = a.exec(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", f"{url}/"],
            check=False,
        )
        if side == "outbound":
            assert after.returncode == 7  # curl: failed to connect
        else:
            # A's proxy reached B, whose redirect to the stopped inbound proxy was refused.
            assert after.stdout.strip() == "502"
    finally:
        a.stop_processes()
        b.stop_processes()
