"""vote-bot as a real process: it drives traffic through web, and it outlives web's absence."""

from __future__ import annotations

import re
import time

from gossamer.demo.gen import voting_pb2
from tests.demo.harness import DemoProcess, DemoProcesses, free_port, grpc_channel, voting_stub


def _total_votes(voting: DemoProcess) -> int:
    with grpc_channel(voting.ports["grpc_port"]) as channel:
        response = voting_stub(channel).Leaderboard(voting_pb2.LeaderboardRequest(), timeout=10)
    return sum(result.votes for result in response.results)


def _wait_for_votes(voting: DemoProcess, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    total = _total_votes(voting)
    while total < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
        total = _total_votes(voting)
    return total


def test_bot_drives_votes_with_some_failing(demo: DemoProcesses) -> None:
    emoji, voting = demo.start_backends()
    web = demo.start_web(emoji, voting)
    bot = demo.start_ready(
        "vote-bot",
        DEMO_WEB_ADDR=f"127.0.0.1:{web.ports['http_port']}",
        DEMO_BOT_RPS="100",
        DEMO_BOT_REPORT_INTERVAL="1s",
        DEMO_BOT_SEED="1",
    )
    assert _wait_for_votes(voting, at_least=100, timeout=20) >= 100
    summary = bot.wait_for_log(r"msg=summary .*\bok=(\d+) .*\bhttp_5xx=(\d+) ", timeout=10)
    ok, failed = int(summary.group(1)), int(summary.group(2))
    assert ok > 0 and failed > 0, summary.group(0)  # the failing item gets its share
    assert failed < ok
    # Every component stops cleanly while traffic flows: web first, under the bot's load.
    for process in (web, bot, voting, emoji):
        assert process.terminate() == 0, process.log()
    final = re.search(r'msg="final summary" .*\bsent=(\d+) ', bot.log())
    assert final and int(final.group(1)) >= 100


def test_bot_waits_out_an_absent_web(demo: DemoProcesses) -> None:
    web_port = free_port()
    bot = demo.start_ready(
        "vote-bot",
        DEMO_WEB_ADDR=f"127.0.0.1:{web_port}",
        DEMO_BOT_RPS="50",
        DEMO_BOT_REPORT_INTERVAL="500ms",
    )
    bot.wait_for_log(r'msg="web unreachable; backing off"', timeout=10)
    bot.wait_for_log(r"msg=summary .*\berrors=[1-9]", timeout=10)
    time.sleep(1.0)
    assert bot.popen.poll() is None  # errors never end it
    emoji, voting = demo.start_backends()
    demo.start_web(emoji, voting, DEMO_WEB_PORT=str(web_port))
    assert _wait_for_votes(voting, at_least=10, timeout=20) >= 10
    bot.wait_for_log(r'msg="web is answering"', timeout=5)
    assert bot.terminate() == 0
