"""A small HTTP/1.1 origin for end-to-end tests (stdlib threading server, keep-alive).

GET /bytes/N   N deterministic bytes, with x-sha256 of the body
POST /echo     the request body back, with x-sha256 of what arrived
GET /slow/MS   waits MS milliseconds, then answers "slow"
GET /status/N  answers with status N
GET /          "hello from NAME" (NAME: the second argument)
"""

from __future__ import annotations

import hashlib
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def pattern(n: int) -> bytes:
    block = bytes(range(256)) * 4096  # 1 MiB
    out = block * (n // len(block)) + block[: n % len(block)]
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-sha256", hashlib.sha256(body).hexdigest())
        self.send_header("x-seen-headers", ",".join(k.lower() for k in self.headers))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[0] == "bytes":
            self._send(200, pattern(int(parts[1])))
        elif parts[0] == "slow":
            time.sleep(int(parts[1]) / 1000)
            self._send(200, b"slow")
        elif parts[0] == "status":
            self._send(int(parts[1]), b"status")
        else:
            self._send(200, b"hello from " + NAME.encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(length)
        self._send(200, body)


NAME = "origin"


def main() -> None:
    global NAME
    port = int(sys.argv[1])
    if len(sys.argv) > 2:
        NAME = sys.argv[2]
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
