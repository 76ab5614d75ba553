"""WebSocket peers (the `websockets` library) for end-to-end tests.

server PORT          echoes each message back upper-cased
client URL N SIZE    sends N binary messages of SIZE bytes and one text message; prints JSON
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message.upper() if isinstance(message, str) else message)


async def server(port: int) -> None:
    async with serve(_echo, "0.0.0.0", port, max_size=None):
        await asyncio.Future()


async def client(url: str, count: int, size: int) -> None:
    sent = hashlib.sha256()
    got = hashlib.sha256()
    async with connect(url, max_size=None, open_timeout=20) as ws:
        for i in range(count):
            payload = bytes([i % 256]) * size
            sent.update(payload)
            await ws.send(payload)
            reply = await asyncio.wait_for(ws.recv(), 20)
            assert isinstance(reply, bytes)
            got.update(reply)
        await ws.send("hello")
        text = await asyncio.wait_for(ws.recv(), 20)
    print(json.dumps({"sent": sent.hexdigest(), "got": got.hexdigest(), "text": text}))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(int(sys.argv[2])))
    else:
        asyncio.run(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
