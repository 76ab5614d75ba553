"""A TLS client for probing a proxy's inbound port from outside the mesh.

tls_probe.py HOST PORT SNI [--cert CERT --key KEY] [--ca CA] [--garbage]
Prints JSON {"handshake": bool, "error": str, "reply": str}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("sni")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    parser.add_argument("--garbage", action="store_true")
    args = parser.parse_args()
    out: dict[str, object] = {"handshake": False, "error": "", "reply": ""}
    sock = socket.create_connection((args.host, args.port), timeout=10)
    try:
        if args.garbage:
            sock.sendall(b"\x16\x03\x01\x00\x10" + os.urandom(64))
            out["reply"] = sock.recv(100).hex()
            print(json.dumps(out))
            return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        if args.ca:
            context.load_verify_locations(args.ca)
        else:
            context.verify_mode = ssl.CERT_NONE
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
        with context.wrap_socket(sock, server_hostname=args.sni) as tls:
            out["handshake"] = True
            tls.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            out["reply"] = tls.recv(100).decode("latin-1")
    except (OSError, ssl.SSLError) as error:
        out["error"] = f"{type(error).__name__}: {error}"
    finally:
        sock.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
