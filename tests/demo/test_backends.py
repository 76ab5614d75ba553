"""emoji and voting as real processes: their gRPC APIs, the failing vote, the HTTP side doors."""

from __future__ import annotations

import grpc
import pytest

from gossamer.demo.catalog import CATALOG, FAILING_SHORTCODE
from gossamer.demo.gen import emoji_pb2, voting_pb2
from tests.demo.harness import (
    DemoProcess,
    DemoProcesses,
    emoji_stub,
    grpc_channel,
    http_json,
    voting_stub,
)


def _votes(voting: DemoProcess) -> dict[str, int]:
    with grpc_channel(voting.ports["grpc_port"]) as channel:
        response = voting_stub(channel).Leaderboard(voting_pb2.LeaderboardRequest(), timeout=10)
    return {result.shortcode: result.votes for result in response.results}


def test_emoji_lists_and_finds(backends: tuple[DemoProcess, DemoProcess]) -> None:
    emoji, _ = backends
    with grpc_channel(emoji.ports["grpc_port"]) as channel:
        stub = emoji_stub(channel)
        listed = stub.ListAll(emoji_pb2.ListAllRequest(), timeout=10).list
        assert [(e.shortcode, e.unicode) for e in listed] == [
            (item.shortcode, item.unicode) for item in CATALOG
        ]
        found = stub.FindByShortcode(
            emoji_pb2.FindByShortcodeRequest(shortcode=":joy:"), timeout=10
        )
        assert found.HasField("emoji") and found.emoji.shortcode == ":joy:"
        missing = stub.FindByShortcode(
            emoji_pb2.FindByShortcodeRequest(shortcode=":no-such:"), timeout=10
        )
        assert not missing.HasField("emoji")  # an answer, not an error


def test_emoji_http_describes_itself(backends: tuple[DemoProcess, DemoProcess]) -> None:
    emoji, _ = backends
    status, about = http_json(emoji.ports["http_port"], "/")
    assert status == 200
    assert about == {
        "service": "emoji",
        "grpc": {"port": emoji.ports["grpc_port"], "service": "gossamer.demo.v1.EmojiService"},
        "items": len(CATALOG),
    }


def test_votes_are_counted_and_ranked(backends: tuple[DemoProcess, DemoProcess]) -> None:
    _, voting = backends
    before = _votes(voting)
    with grpc_channel(voting.ports["grpc_port"]) as channel:
        stub = voting_stub(channel)
        for shortcode in [":taco:", ":taco:", ":crab:"]:
            stub.Vote(voting_pb2.VoteRequest(shortcode=shortcode), timeout=10)
    after = _votes(voting)
    assert after[":taco:"] - before.get(":taco:", 0) == 2
    assert after[":crab:"] - before.get(":crab:", 0) == 1
    ranked = list(after.values())
    assert ranked == sorted(ranked, reverse=True)
    status, body = http_json(voting.ports["http_port"], "/")
    assert status == 200 and isinstance(body, dict)
    assert {"shortcode": ":taco:", "votes": after[":taco:"]} in body["leaderboard"]


def test_the_failing_vote_fails_with_a_message(backends: tuple[DemoProcess, DemoProcess]) -> None:
    _, voting = backends
    with grpc_channel(voting.ports["grpc_port"]) as channel:
        stub = voting_stub(channel)
        for _ in range(3):  # always, not some of the time
            with pytest.raises(grpc.RpcError) as caught:
                stub.Vote(voting_pb2.VoteRequest(shortcode=FAILING_SHORTCODE), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INTERNAL
            assert FAILING_SHORTCODE in caught.value.details()
        with pytest.raises(grpc.RpcError) as unknown:
            stub.Vote(voting_pb2.VoteRequest(shortcode=":no-such:"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert FAILING_SHORTCODE not in _votes(voting)


def test_random_failure_rate(demo: DemoProcesses) -> None:
    _, voting = demo.start_backends(DEMO_VOTING_FAILURE_RATE="1")
    with grpc_channel(voting.ports["grpc_port"]) as channel, pytest.raises(grpc.RpcError) as caught:
        voting_stub(channel).Vote(voting_pb2.VoteRequest(shortcode=":joy:"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "DEMO_VOTING_FAILURE_RATE" in caught.value.details()
    assert _votes(voting) == {}
