"""The voting service: counts votes over gRPC (Vote, Leaderboard).

The demo's deliberate bug lives here: a vote for `catalog.FAILING_SHORTCODE` always fails with
INTERNAL, and `DEMO_VOTING_FAILURE_RATE` fails that share of the other votes with UNAVAILABLE,
so the mesh has a failing path to show. `GET /` on the HTTP port returns the leaderboard.
"""

from __future__ import annotations

import logging
import random
from collections import Counter

import grpc

from gossamer.demo import catalog
from gossamer.demo.config import VotingConfig
from gossamer.demo.gen import voting_pb2, voting_pb2_grpc
from gossamer.demo.http1 import RequestHead
from gossamer.demo.httpserver import Handler, Response, json_response
from gossamer.demo.logs import fields
from gossamer.demo.service import serve_grpc_and_http

log = logging.getLogger("gossamer.demo.voting")


class VoteTally:
    """Votes per shortcode; only catalogue items are counted, so it stays bounded."""

    def __init__(self) -> None:
        self._votes: Counter[str] = Counter()

    def add(self, shortcode: str) -> None:
        self._votes[shortcode] += 1

    def leaderboard(self) -> list[tuple[str, int]]:
        """Most votes first; ties in shortcode order, so the answer is stable."""
        return sorted(self._votes.items(), key=lambda entry: (-entry[1], entry[0]))


class VotingServicer(voting_pb2_grpc.VotingServiceServicer):
    def __init__(self, tally: VoteTally, failure_rate: float, rng: random.Random) -> None:
        self._tally = tally
        self._failure_rate = failure_rate
        self._rng = rng

    async def Vote(
        self, request: voting_pb2.VoteRequest, context: grpc.aio.ServicerContext
    ) -> voting_pb2.VoteResponse:
        shortcode = request.shortcode
        if catalog.find(shortcode) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no item {shortcode!r} to vote for")
        if shortcode == catalog.FAILING_SHORTCODE:
            log.warning("vote failed on purpose", extra=fields(shortcode=shortcode))
            await context.abort(
                grpc.StatusCode.INTERNAL, f"voting for {shortcode} is broken (the demo's bug)"
            )
        if self._failure_rate and self._rng.random() < self._failure_rate:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"injected failure (DEMO_VOTING_FAILURE_RATE={self._failure_rate:g})",
            )
        self._tally.add(shortcode)
        return voting_pb2.VoteResponse()

    async def Leaderboard(
        self, request: voting_pb2.LeaderboardRequest, context: grpc.aio.ServicerContext
    ) -> voting_pb2.LeaderboardResponse:
        return voting_pb2.LeaderboardResponse(
            results=[
                voting_pb2.VotingResult(shortcode=shortcode, votes=votes)
                for shortcode, votes in self._tally.leaderboard()
            ]
        )


def http_routes(tally: VoteTally, grpc_port: int) -> dict[str, Handler]:
    async def leaderboard(request: RequestHead) -> Response:
        return json_response(
            200,
            {
                "service": "voting",
                "grpc": {"port": grpc_port, "service": "gossamer.demo.v1.VotingService"},
                "leaderboard": [
                    {"shortcode": shortcode, "votes": votes}
                    for shortcode, votes in tally.leaderboard()
                ],
            },
        )

    async def healthz(request: RequestHead) -> Response:
        return Response(200, b"ok\n")

    return {"/": leaderboard, "/healthz": healthz}


async def serve(config: VotingConfig) -> None:
    tally = VoteTally()
    servicer = VotingServicer(tally, config.failure_rate, random.Random())

    def add_servicers(server: grpc.aio.Server) -> None:
        voting_pb2_grpc.add_VotingServiceServicer_to_server(servicer, server)

    await serve_grpc_and_http(
        "voting", config.service, add_servicers, lambda grpc_port: http_routes(tally, grpc_port)
    )
