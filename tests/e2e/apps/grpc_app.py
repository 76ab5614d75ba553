"""gRPC peers (grpcio on both ends) for end-to-end tests, with raw-bytes messages.

server PORT             serves /test.Echo/{Unary,ServerStream,ClientStream,Bidi,Fail}
client HOST PORT        calls each kind once and prints JSON with what came back
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from concurrent import futures

import grpc

SERVICE = "test.Echo"


def _identity(data: bytes) -> bytes:
    return data


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


def _server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    count = int(request.decode())
    for i in range(count):
        yield f"item-{i}".encode()


def _client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    digest = hashlib.sha256()
    total = 0
    for message in requests:
        digest.update(message)
        total += len(message)
    return f"{total}:{digest.hexdigest()}".encode()


def _bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for message in requests:
        yield message.upper()


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())
    raise AssertionError("unreachable")


def serve(port: int) -> None:
    options = [
        ("grpc.max_receive_message_length", 16 << 20),
        ("grpc.max_send_message_length", 16 << 20),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=options)
    ser = {"request_deserializer": _identity, "response_serializer": _identity}
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary, **ser),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream, **ser),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream, **ser),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi, **ser),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail, **ser),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    server.wait_for_termination()


def call(host: str, port: int) -> dict[str, object]:
    options = [
        ("grpc.max_receive_message_length", 16 << 20),
        ("grpc.max_send_message_length", 16 << 20),
    ]
    with grpc.insecure_channel(f"{host}:{port}", options=options) as channel:

        def method(kind: str, name: str):  # type: ignore[no-untyped-def]
            factory = getattr(channel, kind)
            return factory(f"/{SERVICE}/{name}", request_serializer=_identity,
                           response_deserializer=_identity)  # fmt: skip

        out: dict[str, object] = {}
        out["unary"] = method("unary_unary", "Unary")(b"hi", timeout=20).decode()
        big = bytes(range(256)) * (4 << 12)  # 4 MiB
        out["unary_big_sha"] = hashlib.sha256(
            method("unary_unary", "Unary")(big, timeout=30)
        ).hexdigest()
        out["unary_big_expected"] = hashlib.sha256(b"echo:" + big).hexdigest()
        out["server_stream"] = [
            m.decode() for m in method("unary_stream", "ServerStream")(b"5", timeout=20)
        ]
        chunks = [bytes([i]) * 100_000 for i in range(20)]
        out["client_stream"] = method("stream_unary", "ClientStream")(
            iter(chunks), timeout=20
        ).decode()
        out["client_stream_expected"] = (
            f"{sum(map(len, chunks))}:{hashlib.sha256(b''.join(chunks)).hexdigest()}"
        )
        out["bidi"] = [
            m.decode()
            for m in method("stream_stream", "Bidi")(iter([b"a", b"b", b"c"]), timeout=20)
        ]
        try:
            method("unary_unary", "Fail")(b"x", timeout=20)
            out["fail"] = "no error"
        except grpc.RpcError as error:
            out["fail"] = [error.code().name, error.details()]
        return out


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        print(json.dumps(call(sys.argv[2], int(sys.argv[3]))))
