"""gRPC peers (grpcio on both ends) for end-to-end tests, with raw-bytes messages.

server PORT [--name=NAME] [--fail-every=N] [--delay-ms=MS]
    serves /test.Echo/{Unary,Ping,ServerStream,ClientStream,Bidi,Fail}. Unary and Ping
    echo their request and name the server in the `served-by` trailer; with --fail-every
    every Nth of those calls ends with UNAVAILABLE instead (its status before any
    message), with --delay-ms each waits that long first (less if the call is cancelled).
client HOST PORT
    calls each kind once and prints JSON with what came back
load HOST PORT COUNT [--method=Unary] [--concurrency=4] [--deadline-ms=5000] [--max-s=60]
    makes COUNT unary calls (fewer if --max-s runs out) on one channel and prints JSON:
    {"codes": {name: n}, "by": {served-by: n}, "proxy_errors": {gossamer-proxy-error: n},
    "details": {name: the first failed call's details}, "latency_ms": {"p50", "p99", "max"},
    "elapsed_s"}
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc

SERVICE = "test.Echo"
PROXY_ERROR = "gossamer-proxy-error"
# No transparent retries and no HTTP proxy from the environment: the counts are the mesh's.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 16 << 20),
    ("grpc.max_send_message_length", 16 << 20),
    ("grpc.enable_retries", 0),
    ("grpc.enable_http_proxy", 0),
]


def _identity(data: bytes) -> bytes:
    return data


class Behaviour:
    """What Unary and Ping do: echo, after a delay, failing every Nth call."""

    def __init__(self, name: str, fail_every: int, delay_ms: int) -> None:
        self.name = name
        self.fail_every = fail_every
        self.delay = delay_ms / 1000
        self.lock = threading.Lock()
        self.calls = 0

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if self.delay:
            until = time.monotonic() + self.delay
            while context.is_active() and time.monotonic() < until:
                time.sleep(0.005)
        with self.lock:
            self.calls += 1
            count = self.calls
        if self.fail_every and count % self.fail_every == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "failed by " + self.name)
        context.set_trailing_metadata((("served-by", self.name),))
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


def serve(port: int, behaviour: Behaviour) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=CHANNEL_OPTIONS[:2])
    ser = {"request_deserializer": _identity, "response_serializer": _identity}
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(behaviour, **ser),
        "Ping": grpc.unary_unary_rpc_method_handler(behaviour, **ser),
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
    with grpc.insecure_channel(f"{host}:{port}", options=CHANNEL_OPTIONS) as channel:

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


def load(host: str, port: int, count: int, options: dict[str, str]) -> dict[str, object]:
    method_name = options.get("method", "Unary")
    concurrency = int(options.get("concurrency", "4"))
    deadline = int(options.get("deadline-ms", "5000")) / 1000
    stop_at = time.monotonic() + float(options.get("max-s", "60"))
    lock = threading.Lock()
    codes: dict[str, int] = {}
    by: dict[str, int] = {}
    proxy_errors: dict[str, int] = {}
    details: dict[str, str] = {}
    latencies: list[float] = []
    remaining = [count]

    def bump(counts: dict[str, int], key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    with grpc.insecure_channel(f"{host}:{port}", options=CHANNEL_OPTIONS) as channel:
        unary = channel.unary_unary(
            f"/{SERVICE}/{method_name}",
            request_serializer=_identity,
            response_deserializer=_identity,
        )

        def worker() -> None:
            while True:
                with lock:
                    if remaining[0] <= 0 or time.monotonic() > stop_at:
                        return
                    remaining[0] -= 1
                started = time.monotonic()
                metadata: list[tuple[str, str | bytes]] = []
                detail = ""
                try:
                    _, rpc = unary.with_call(b"x", timeout=deadline)
                    code = grpc.StatusCode.OK
                    metadata = [*rpc.initial_metadata(), *rpc.trailing_metadata()]
                except grpc.RpcError as error:
                    code = error.code()  # type: ignore[attr-defined]
                    detail = error.details() or ""  # type: ignore[attr-defined]
                    metadata = [
                        *(error.initial_metadata() or ()),  # type: ignore[attr-defined]
                        *(error.trailing_metadata() or ()),  # type: ignore[attr-defined]
                    ]
                elapsed = (time.monotonic() - started) * 1000
                with lock:
                    bump(codes, code.name)
                    if code != grpc.StatusCode.OK:
                        details.setdefault(code.name, detail)
                    latencies.append(elapsed)
                    for key, value in metadata:
                        text = value.decode() if isinstance(value, bytes) else value
                        if key == "served-by" and code == grpc.StatusCode.OK:
                            bump(by, text)
                        elif key == PROXY_ERROR:
                            bump(proxy_errors, text)

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {
        "codes": codes,
        "by": by,
        "proxy_errors": proxy_errors,
        "details": details,
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    options = dict(a[2:].partition("=")[::2] for a in argv if a.startswith("--"))
    if args[0] == "server":
        behaviour = Behaviour(
            options.get("name", "server"),
            int(options.get("fail-every", "0")),
            int(options.get("delay-ms", "0")),
        )
        serve(int(args[1]), behaviour)
    elif args[0] == "load":
        print(json.dumps(load(args[1], int(args[2]), int(args[3]), options)))
    else:
        print(json.dumps(call(args[1], int(args[2]))))


if __name__ == "__main__":
    main(sys.argv[1:])
