"""Opaque TCP peers for end-to-end tests.

server PORT [--banner] [--name=NAME] [--delay-ms=N]
        echo everything back; half-close aware: after the client's EOF it sends
        "bye:<sha256 of all it read>" and closes. With --banner it speaks first (as MySQL or
        Redis do), "BANNER\n"; with --name its banner is "NAME\n". With --delay-ms it holds
        each connection N ms longer (after the client's EOF, before the trailer).
client HOST PORT NBYTES [--banner] [--no-eof]
        sends NBYTES, shuts down its write side, reads everything back and prints JSON
        {sent_sha, echoed_sha, trailer, banner}. With --no-eof it keeps its write side open
        and closes once the echo is back (no trailer).
load HOST PORT COUNT [--concurrency=N]
        COUNT short connections, N at a time, to servers started with --name; each reads the
        banner, sends a little, half-closes and checks the echo and the trailer. Prints JSON
        {"by": {name: connections}, "errors": n}.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time


def serve(port: int, banner: bytes, delay: float) -> None:
    listener = socket.create_server(("0.0.0.0", port), reuse_port=False, backlog=128)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_echo, args=(conn, banner, delay), daemon=True).start()


def _echo(conn: socket.socket, banner: bytes, delay: float) -> None:
    digest = hashlib.sha256()
    with conn:
        if banner:
            conn.sendall(banner)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            digest.update(data)
            conn.sendall(data)
        time.sleep(delay)
        conn.sendall(b"bye:" + digest.hexdigest().encode())


def client(host: str, port: int, nbytes: int, banner: bool, eof: bool = True) -> None:
    payload = (bytes(range(256)) * (nbytes // 256 + 1))[:nbytes]
    sock = socket.create_connection((host, port), timeout=30)
    got_banner = b""
    if banner:
        while not got_banner.endswith(b"\n"):
            byte = sock.recv(1)
            if not byte:
                sys.exit("closed before the banner")
            got_banner += byte
    received = bytearray()

    def reader() -> None:
        while eof or len(received) < nbytes:
            data = sock.recv(65536)
            if not data:
                break
            received.extend(data)

    thread = threading.Thread(target=reader)
    thread.start()
    sock.sendall(payload)
    if eof:
        sock.shutdown(socket.SHUT_WR)
    thread.join(60)
    sock.close()
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


def load(host: str, port: int, count: int, concurrency: int) -> None:
    payload = b"x" * 1000
    trailer = b"bye:" + hashlib.sha256(payload).hexdigest().encode()
    lock = threading.Lock()
    by: dict[str, int] = {}
    errors = [0]
    remaining = [count]

    def one() -> str:
        with socket.create_connection((host, port), timeout=10) as sock:
            banner = b""
            while not banner.endswith(b"\n"):
                byte = sock.recv(1)
                if not byte:
                    raise OSError("closed before the banner")
                banner += byte
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while data := sock.recv(65536):
                received += data
        if received != payload + trailer:
            raise OSError(f"bad echo from {banner!r}: {len(received)} bytes")
        return banner.decode().strip()

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            try:
                name = one()
            except OSError as error:
                print(error, file=sys.stderr)
                with lock:
                    errors[0] += 1
                continue
            with lock:
                by[name] = by.get(name, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"by": by, "errors": errors[0]}))


if __name__ == "__main__":
    options = dict(a[2:].partition("=")[::2] for a in sys.argv[1:] if a.startswith("--"))
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if args[0] == "server":
        name = options.get("name")
        banner = f"{name}\n".encode() if name else b"BANNER\n" if "banner" in options else b""
        serve(int(args[1]), banner, int(options.get("delay-ms", "0")) / 1000)
    elif args[0] == "load":
        load(args[1], int(args[2]), int(args[3]), int(options.get("concurrency", "4")))
    else:
        client(args[1], int(args[2]), int(args[3]), "banner" in options, "no-eof" not in options)
