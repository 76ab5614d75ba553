"""The web front end: HTTP/1.1 for people and the vote-bot, gRPC to emoji and voting.

Routes: `GET /` (HTML page), `/api/list`, `/api/vote?choice=SHORTCODE`, `/api/leaderboard`,
`/healthz`. A vote first asks emoji whether the item exists (404 if not), then asks voting to
count it. Backend failures become HTTP statuses in one place (`_answer_backend_failure`): a
failed vote is a 500, which is what the mesh's success rate for web shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from gossamer.demo.catalog import Item
from gossamer.demo.config import HostPort, WebConfig
from gossamer.demo.gen import emoji_pb2, emoji_pb2_grpc, voting_pb2, voting_pb2_grpc
from gossamer.demo.http1 import RequestHead
from gossamer.demo.httpserver import Handler, HttpServer, Response, html_response, json_response
from gossamer.demo.lifecycle import StopSignal
from gossamer.demo.logs import fields
from gossamer.demo.page import render_index

log = logging.getLogger("gossamer.demo.web")

_CHANNEL_OPTIONS = [
    # The mesh is transparent; an http_proxy variable in the pod must not reroute gRPC.
    ("grpc.enable_http_proxy", 0),
    # grpcio backs off up to 120 s after failed connects; a demo should recover within seconds
    # of a backend coming back. (Not min_reconnect_backoff_ms: grpcio uses it as the connect
    # timeout, which must stay long.)
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

# Backend answers that are the client's fault, not the backend's; anything else is a 500.
_CLIENT_STATUSES = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400}


class BackendError(Exception):
    """A gRPC call to a backend failed."""

    def __init__(self, backend: str, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{backend} {method}: {code.name}: {details}")
        self.backend = backend
        self.method = method
        self.code = code
        self.details = details


class Backends:
    """The two gRPC clients; every call carries the configured deadline."""

    def __init__(self, emoji_addr: HostPort, voting_addr: HostPort, timeout: float) -> None:
        self._timeout = timeout
        self._emoji_channel = grpc.aio.insecure_channel(str(emoji_addr), options=_CHANNEL_OPTIONS)
        self._voting_channel = grpc.aio.insecure_channel(str(voting_addr), options=_CHANNEL_OPTIONS)
        self._emoji = emoji_pb2_grpc.EmojiServiceStub(self._emoji_channel)
        self._voting = voting_pb2_grpc.VotingServiceStub(self._voting_channel)

    async def list_items(self) -> list[Item]:
        request = emoji_pb2.ListAllRequest()
        response: emoji_pb2.ListAllResponse = await self._call(
            "emoji", "ListAll", self._emoji.ListAll, request
        )
        return [Item(emoji.shortcode, emoji.unicode) for emoji in response.list]

    async def find_item(self, shortcode: str) -> Item | None:
        request = emoji_pb2.FindByShortcodeRequest(shortcode=shortcode)
        response: emoji_pb2.FindByShortcodeResponse = await self._call(
            "emoji", "FindByShortcode", self._emoji.FindByShortcode, request
        )
        if not response.HasField("emoji"):
            return None
        return Item(response.emoji.shortcode, response.emoji.unicode)

    async def vote(self, shortcode: str) -> None:
        request = voting_pb2.VoteRequest(shortcode=shortcode)
        await self._call("voting", "Vote", self._voting.Vote, request)

    async def leaderboard(self) -> list[tuple[str, int]]:
        request = voting_pb2.LeaderboardRequest()
        response: voting_pb2.LeaderboardResponse = await self._call(
            "voting", "Leaderboard", self._voting.Leaderboard, request
        )
        return [(result.shortcode, result.votes) for result in response.results]

    async def _call(
        self,
        backend: str,
        method: str,
        stub_method: Callable[..., Awaitable[Any]],
        request: Message,
    ) -> Any:
        try:
            return await stub_method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise BackendError(backend, method, error.code(), error.details() or "") from None

    async def close(self) -> None:
        await asyncio.gather(self._emoji_channel.close(), self._voting_channel.close())


class WebFrontEnd:
    """The routes; each turns backend answers into JSON or HTML."""

    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def routes(self) -> dict[str, Handler]:
        pages: dict[str, Handler] = {
            "/": self.index,
            "/api/list": self.api_list,
            "/api/vote": self.api_vote,
            "/api/leaderboard": self.api_leaderboard,
        }
        routes = {path: _answer_backend_failure(handler) for path, handler in pages.items()}
        routes["/healthz"] = self.healthz
        return routes

    async def index(self, request: RequestHead) -> Response:
        items, ranked = await self._items_and_leaderboard()
        return html_response(200, render_index(items, ranked))

    async def api_list(self, request: RequestHead) -> Response:
        items = await self._backends.list_items()
        return json_response(200, [_item_json(item) for item in items])

    async def api_vote(self, request: RequestHead) -> Response:
        choice = request.query.get("choice", "")
        if not choice:
            return json_response(400, {"error": "missing ?choice=SHORTCODE"})
        item = await self._backends.find_item(choice)
        if item is None:
            return json_response(404, {"error": f"no item {choice!r}"})
        await self._backends.vote(item.shortcode)
        return json_response(200, {"voted": item.shortcode, "unicode": item.unicode})

    async def api_leaderboard(self, request: RequestHead) -> Response:
        _, ranked = await self._items_and_leaderboard()
        return json_response(200, [{**_item_json(item), "votes": votes} for item, votes in ranked])

    async def healthz(self, request: RequestHead) -> Response:
        # Liveness of web itself: a backend outage must not get web restarted.
        return Response(200, b"ok\n")

    async def _items_and_leaderboard(self) -> tuple[list[Item], list[tuple[Item, int]]]:
        items, results = await asyncio.gather(
            self._backends.list_items(), self._backends.leaderboard()
        )
        by_shortcode = {item.shortcode: item for item in items}
        ranked = [
            (by_shortcode.get(shortcode, Item(shortcode, "?")), votes)
            for shortcode, votes in results
        ]
        return items, ranked


def _item_json(item: Item) -> dict[str, str]:
    return {"shortcode": item.shortcode, "unicode": item.unicode}


def _answer_backend_failure(handler: Handler) -> Handler:
    """The one place where a failed backend call becomes an HTTP status."""

    async def answer(request: RequestHead) -> Response:
        try:
            return await handler(request)
        except BackendError as error:
            status = _CLIENT_STATUSES.get(error.code, 500)
            log.warning(
                "backend call failed",
                extra=fields(
                    path=request.path,
                    backend=error.backend,
                    method=error.method,
                    grpc_status=error.code.name,
                    details=error.details,
                    status=status,
                ),
            )
            return json_response(
                status,
                {
                    "error": error.details,
                    "backend": error.backend,
                    "method": error.method,
                    "grpc_status": error.code.name,
                },
            )

    return answer


async def serve(config: WebConfig) -> None:
    stop = StopSignal.install()
    backends = Backends(config.emoji_addr, config.voting_addr, config.backend_timeout)
    server = HttpServer("web", WebFrontEnd(backends).routes())
    try:
        port = await server.start(config.listen_host, config.port)
        log.info(
            "ready",
            extra=fields(
                http_port=port, emoji=str(config.emoji_addr), voting=str(config.voting_addr)
            ),
        )
        received = await stop.wait()
        log.info("shutting down", extra=fields(signal=received, grace_s=config.shutdown_grace))
        await server.shutdown(config.shutdown_grace)
    finally:
        await backends.close()
    log.info("stopped")
