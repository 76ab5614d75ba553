"""web as a real process in front of real emoji and voting processes."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gossamer.demo.catalog import CATALOG, FAILING_SHORTCODE
from tests.demo.harness import DemoProcess, DemoProcesses, http_get, http_json


@pytest.fixture(scope="module")
def web(module_demo: DemoProcesses, backends: tuple[DemoProcess, DemoProcess]) -> DemoProcess:
    emoji, voting = backends
    # A name, not an address, for emoji: resolved as pods resolve service names (getaddrinfo,
    # /etc/hosts), which is what `prefer_native_grpc_resolver` arranges.
    emoji_addr = f"localhost:{emoji.ports['grpc_port']}"
    return module_demo.start_web(emoji, voting, DEMO_EMOJI_ADDR=emoji_addr)


def _vote_count(web: DemoProcess, shortcode: str) -> int:
    status, board = http_json(web.ports["http_port"], "/api/leaderboard")
    assert status == 200 and isinstance(board, list)
    return next((row["votes"] for row in board if row["shortcode"] == shortcode), 0)


def test_list_comes_from_emoji(web: DemoProcess) -> None:
    status, items = http_json(web.ports["http_port"], "/api/list")
    assert status == 200
    assert items == [{"shortcode": i.shortcode, "unicode": i.unicode} for i in CATALOG]


def test_vote_and_leaderboard(web: DemoProcess) -> None:
    port = web.ports["http_port"]
    before = _vote_count(web, ":rocket:")
    status, body = http_json(port, "/api/vote?choice=%3Arocket%3A")
    assert (status, body) == (200, {"voted": ":rocket:", "unicode": "\N{ROCKET}"})
    assert http_json(port, "/api/vote?choice=:rocket:")[0] == 200
    assert _vote_count(web, ":rocket:") == before + 2
    _, board = http_json(port, "/api/leaderboard")
    assert isinstance(board, list)
    assert all(set(row) == {"shortcode", "unicode", "votes"} for row in board)


def test_failing_vote_is_a_500_with_the_grpc_error(web: DemoProcess) -> None:
    status, body = http_json(web.ports["http_port"], "/api/vote?choice=:doughnut:")
    assert status == 500
    assert body == {
        "error": f"voting for {FAILING_SHORTCODE} is broken (the demo's bug)",
        "backend": "voting",
        "method": "Vote",
        "grpc_status": "INTERNAL",
    }
    assert _vote_count(web, FAILING_SHORTCODE) == 0
    web.wait_for_log(r"msg=\"backend call failed\".*grpc_status=INTERNAL.*status=500", 5)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/vote", 400), ("/api/vote?choice=", 400), ("/api/vote?choice=:nope:", 404), ("/x", 404)],
)
def test_client_errors(web: DemoProcess, path: str, status: int) -> None:
    assert http_get(web.ports["http_port"], path)[0] == status


def test_page_and_health(web: DemoProcess) -> None:
    port = web.ports["http_port"]
    status, headers, page = http_get(port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert all(item.unicode.encode() in page for item in CATALOG)
    assert b"Leaderboard" in page
    assert http_get(port, "/healthz")[:1] == (200,)


def test_keep_alive_from_a_client(web: DemoProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", web.ports["http_port"], timeout=10)
    try:
        for _ in range(5):
            connection.request("GET", "/api/list")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())
        assert connection.sock is not None  # still the first connection
    finally:
        connection.close()


def test_backend_down_is_a_500_and_web_stays_up(demo: DemoProcesses) -> None:
    emoji, voting = demo.start_backends()
    web = demo.start_web(emoji, voting, DEMO_BACKEND_TIMEOUT="1s")
    port = web.ports["http_port"]
    assert voting.terminate() == 0
    status, body = http_json(port, "/api/vote?choice=:joy:")
    assert (
        status == 500
        and isinstance(body, dict)
        and body["grpc_status"]
        in (
            "UNAVAILABLE",
            "DEADLINE_EXCEEDED",
        )
    )
    assert http_json(port, "/api/list")[0] == 200  # the other backend still answers
    assert http_get(port, "/healthz")[0] == 200


@pytest.fixture
def silent_backend() -> Iterator[int]:
    """A listener that accepts and never answers: a gRPC call to it hangs until its deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_sigterm_finishes_the_request_in_flight(demo: DemoProcesses, silent_backend: int) -> None:
    web = demo.start_ready(
        "web",
        DEMO_WEB_PORT="0",
        DEMO_EMOJI_ADDR=f"127.0.0.1:{silent_backend}",
        DEMO_BACKEND_TIMEOUT="1500ms",
        DEMO_SHUTDOWN_GRACE="5s",
    )
    port = web.ports["http_port"]
    result: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def in_flight() -> None:
        result["response"] = http_get(port, "/api/list", timeout=10)

    request = threading.Thread(target=in_flight)
    request.start()
    time.sleep(0.5)  # the request is now waiting on the silent backend
    started = time.monotonic()
    web.popen.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    request.join(10)
    status, headers, body = result["response"]
    # Answered (with the backend's deadline), not dropped, and the connection closes after it.
    assert status == 500 and json.loads(body)["grpc_status"] == "DEADLINE_EXCEEDED"
    assert headers.get("connection") == "close"
    assert web.wait_exit(timeout=5) == 0
    assert time.monotonic() - started < 4.0
