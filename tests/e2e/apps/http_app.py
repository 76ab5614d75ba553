"""A small HTTP/1.1 origin for end-to-end tests (stdlib threading server, keep-alive).

GET /bytes/N   N deterministic bytes, with x-sha256 of the body
POST /echo     the request body back, with x-sha256 of what arrived
GET /slow/MS   waits MS milliseconds, then answers "slow"
GET /status/N  answers with status N
GET /          "hello from NAME" (NAME: the second argument); options --fail-every=N
               (every Nth answer is a 500) and --delay-ms=MS (every answer waits)
"""

from __future__ import annotations

import hashlib
import sys
import threading
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
            if DELAY:
                time.sleep(DELAY)
            with _COUNT_LOCK:
                _COUNT[0] += 1
                count = _COUNT[0]
            if FAIL_EVERY and count % FAIL_EVERY == 0:
                self._send(500, b"failed by " + NAME.encode())
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
FAIL_EVERY = 0  # with N > 0, every Nth request to / answers 500
DELAY = 0.0  # seconds added to every answer to /
_COUNT = [0]
_COUNT_LOCK = threading.Lock()


def main() -> None:
    global NAME, FAIL_EVERY, DELAY
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    for option in (a for a in sys.argv[1:] if a.startswith("--")):
        key, _, value = option[2:].partition("=")
        if key == "fail-every":
            FAIL_EVERY = int(value)
        elif key == "delay-ms":
            DELAY = int(value) / 1000
    port = int(args[0])
    if len(args) > 1:
        NAME = args[1]
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
