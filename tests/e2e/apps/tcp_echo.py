"""Opaque TCP peers for end-to-end tests.

server PORT [--banner]   echo everything back; half-close aware: after the client's EOF it
                         sends "bye:<sha256 of all it read>" and closes. With --banner it
                         speaks first (as MySQL or Redis do).
client HOST PORT NBYTES  sends NBYTES, shuts down its write side, reads everything back and
                         prints JSON {sent_sha, echoed_sha, trailer, banner}.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading


def serve(port: int, banner: bool) -> None:
    listener = socket.create_server(("0.0.0.0", port), reuse_port=False)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_echo, args=(conn, banner), daemon=True).start()


def _echo(conn: socket.socket, banner: bool) -> None:
    digest = hashlib.sha256()
    with conn:
        if banner:
            conn.sendall(b"BANNER\n")
        while True:
            data = conn.recv(65536)
            if not data:
                break
            digest.update(data)
            conn.sendall(data)
        conn.sendall(b"bye:" + digest.hexdigest().encode())


def client(host: str, port: int, nbytes: int, banner: bool) -> None:
    payload = (bytes(range(256)) * (nbytes // 256 + 1))[:nbytes]
    sock = socket.create_connection((host, port), timeout=30)
    got_banner = b""
    if banner:
        while not got_banner.endswith(b"\n"):
            got_banner += sock.recv(1)
    received = bytearray()

    def reader() -> None:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received.extend(data)

    thread = threading.Thread(target=reader)
    thread.start()
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    thread.join(60)
    echoed, trailer = bytes(received[:nbytes]), bytes(received[nbytes:])
    print(
        json.dumps(
            {
                "sent_sha": hashlib.sha256(payload).hexdigest(),
                "echoed_sha": hashlib.sha256(echoed).hexdigest(),
                "trailer": trailer.decode(errors="replace"),
                "banner": got_banner.decode(errors="replace"),
            }
        )
    )


if __name__ == "__main__":
    banner = "--banner" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--banner"]
    if args[0] == "server":
        serve(int(args[1]), banner)
    else:
        client(args[1], int(args[2]), int(args[3]), banner)
