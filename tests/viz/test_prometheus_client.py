"""The Prometheus client's answers and errors, against the real Prometheus and against
things that are not Prometheus."""

from __future__ import annotations

import http.server
import math
import threading
from collections.abc import Iterator

import pytest

from gossamer.viz.prometheus import PrometheusClient, PrometheusUnavailable, QueryError
from tests.viz.support import PrometheusProcess, free_port


def test_query_targets_and_ready(prometheus: PrometheusProcess) -> None:
    client = PrometheusClient(prometheus.url)
    assert client.ready()
    up = client.query("up")
    assert {s.labels["pod"] for s in up} == {"web-0", "emoji-0", "vote-bot-0", "idle-0"}
    assert all(s.value == 1.0 for s in up)
    assert client.query("vector(2)")[0].value == 2.0
    assert client.query("scalar(vector(3))")[0].value == 3.0
    assert math.isnan(client.query("vector(0) / 0")[0].value)
    targets = client.targets()
    assert {t.labels["deployment"] for t in targets} == {"web", "emoji", "vote-bot", "idle"}
    assert all(t.health == "up" and t.job == "gossamer-proxy" for t in targets)


def test_bad_promql_is_a_query_error(prometheus: PrometheusProcess) -> None:
    with pytest.raises(QueryError, match="bad_data") as raised:
        PrometheusClient(prometheus.url).query("sum by (")
    assert raised.value.query == "sum by ("


def test_nothing_listening() -> None:
    port = free_port()
    with pytest.raises(PrometheusUnavailable, match="connection refused") as raised:
        PrometheusClient(f"http://127.0.0.1:{port}").query("up")
    assert f"127.0.0.1:{port}" in str(raised.value)


@pytest.fixture
def not_prometheus() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            if self.path.startswith("/slow"):
                threading.Event().wait(2)
            body = b"<html>hello</html>"
            self.send_response(404 if "ready" in self.path else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_something_else_answering(not_prometheus: str) -> None:
    client = PrometheusClient(not_prometheus)
    with pytest.raises(PrometheusUnavailable, match="without JSON"):
        client.query("up")
    assert not client.ready()


def test_timeouts_are_bounded(not_prometheus: str) -> None:
    with pytest.raises(PrometheusUnavailable, match=r"0\.2s|timed out"):
        PrometheusClient(f"{not_prometheus}/slow", timeout=0.2).query("up")
