"""The emoji service: serves the catalogue over gRPC (ListAll, FindByShortcode).

An unknown shortcode is an empty answer, not an error, so emoji's success rate in the mesh
reflects its health rather than what clients ask for. `GET /` on the HTTP port describes the
service as JSON.
"""

from __future__ import annotations

import grpc

from gossamer.demo import catalog
from gossamer.demo.config import ServiceConfig
from gossamer.demo.gen import emoji_pb2, emoji_pb2_grpc
from gossamer.demo.http1 import RequestHead
from gossamer.demo.httpserver import Handler, Response, json_response
from gossamer.demo.service import serve_grpc_and_http


def to_message(item: catalog.Item) -> emoji_pb2.Emoji:
    return emoji_pb2.Emoji(unicode=item.unicode, shortcode=item.shortcode)


class EmojiServicer(emoji_pb2_grpc.EmojiServiceServicer):
    async def ListAll(
        self, request: emoji_pb2.ListAllRequest, context: grpc.aio.ServicerContext
    ) -> emoji_pb2.ListAllResponse:
        return emoji_pb2.ListAllResponse(list=[to_message(item) for item in catalog.CATALOG])

    async def FindByShortcode(
        self, request: emoji_pb2.FindByShortcodeRequest, context: grpc.aio.ServicerContext
    ) -> emoji_pb2.FindByShortcodeResponse:
        item = catalog.find(request.shortcode)
        if item is None:
            return emoji_pb2.FindByShortcodeResponse()
        return emoji_pb2.FindByShortcodeResponse(emoji=to_message(item))


def http_routes(grpc_port: int) -> dict[str, Handler]:
    async def about(request: RequestHead) -> Response:
        return json_response(
            200,
            {
                "service": "emoji",
                "grpc": {"port": grpc_port, "service": "gossamer.demo.v1.EmojiService"},
                "items": len(catalog.CATALOG),
            },
        )

    async def healthz(request: RequestHead) -> Response:
        return Response(200, b"ok\n")

    return {"/": about, "/healthz": healthz}


async def serve(config: ServiceConfig) -> None:
    def add_servicers(server: grpc.aio.Server) -> None:
        emoji_pb2_grpc.add_EmojiServiceServicer_to_server(EmojiServicer(), server)

    await serve_grpc_and_http("emoji", config, add_servicers, http_routes)
