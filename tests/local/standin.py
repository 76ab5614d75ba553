"""Stand-ins run inside pods by the redirect tests: a fake proxy and a fake app.

`standin.py proxy POD` listens like the proxy (outbound 127.0.0.1:4140, inbound 0.0.0.0:4143,
admin 0.0.0.0:4191 answering 200 to any GET) and answers each redirected connection with one
line, `outbound|inbound POD ORIG_IP:ORIG_PORT`, read from SO_ORIGINAL_DST. `standin.py app
POD PORT...` answers `app POD PORT`. A line tells a test which process took the connection
and where the client meant to go. Stdlib only; runs until signalled.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Callable

SO_ORIGINAL_DST = 80


def original_dst(conn: socket.socket) -> str:
    try:
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return "none"
    port = struct.unpack_from("!H", raw, 2)[0]
    return f"{socket.inet_ntoa(raw[4:8])}:{port}"


def serve(host: str, port: int, reply: Callable[[socket.socket], str]) -> threading.Thread:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)

    def loop() -> None:
        while True:
            conn, _ = sock.accept()
            with conn:
                conn.sendall(reply(conn).encode())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def app_reply(line: str) -> Callable[[socket.socket], str]:
    def reply(conn: socket.socket) -> str:
        return line

    return reply


def main() -> None:
    mode, pod, *ports = sys.argv[1:]
    threads = []
    if mode == "proxy":
        threads.append(serve("127.0.0.1", 4140, lambda c: f"outbound {pod} {original_dst(c)}\n"))
        threads.append(serve("0.0.0.0", 4143, lambda c: f"inbound {pod} {original_dst(c)}\n"))
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nready\n"
        threads.append(serve("0.0.0.0", 4191, lambda c: (c.recv(4096), ok.decode())[1]))
    else:
        for port in ports:
            threads.append(serve("0.0.0.0", int(port), app_reply(f"app {pod} {port}\n")))
    print("listening", flush=True)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
