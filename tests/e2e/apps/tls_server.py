"""A TLS server that presents whatever certificate it is given, whatever name is asked.

tls_server.py PORT CERT KEY   answers every request with "fake" over TLS
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading


def serve(port: int, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("0.0.0.0", port))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_answer, args=(context, conn), daemon=True).start()


def _answer(context: ssl.SSLContext, conn: socket.socket) -> None:
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nfake")
    except (OSError, ssl.SSLError):
        conn.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3])
