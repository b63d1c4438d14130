"""Baseline: a minimal room-broadcast server on the ``websockets`` library (the machine's limit).

``python bench/baselines/raw_ws.py PORT``. A socket joins the room named by its path
(``/room/<name>/?seat=<key>``). It speaks the same frames as a Ratify client needs for the load
generator: ``hello`` gets a ``snapshot`` with the room's current seq; a ``command`` becomes the
room's next event, ``{"type": "event", "seq": N, "event": {...}}``, encoded once and broadcast
to every socket of the room, then the sender gets ``{"type": "ack", "id": ..., "seq": N}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.parse

from websockets.asyncio.server import ServerConnection, broadcast, serve

rooms: dict[str, set[ServerConnection]] = {}
seqs: dict[str, int] = {}


def _where(path: str) -> tuple[str, str]:
    """The room and the seat a request path names."""
    parts = urllib.parse.urlsplit(path)
    room = parts.path.strip("/").split("/")[-1]
    seat = urllib.parse.parse_qs(parts.query).get("seat", ["?"])[0]
    return room, seat


async def handle(socket: ServerConnection) -> None:
    room, seat = _where(socket.request.path if socket.request else "/")
    members = rooms.setdefault(room, set())
    members.add(socket)
    try:
        async for raw in socket:
            frame = json.loads(raw)
            if frame.get("type") == "hello":
                await socket.send(json.dumps({"type": "snapshot", "seq": seqs.get(room, 0)}))
            elif frame.get("type") == "command":
                seq = seqs[room] = seqs.get(room, 0) + 1
                args = frame.get("args", {})
                event = {
                    "type": "chat_posted",
                    "channel": args.get("channel", "room"),
                    "by": seat,
                    "text": args.get("text", ""),
                }
                broadcast(
                    members,
                    json.dumps(
                        {"type": "event", "seq": seq, "event": event}, separators=(",", ":")
                    ),
                )
                await socket.send(json.dumps({"type": "ack", "id": frame.get("id"), "seq": seq}))
    finally:
        members.discard(socket)


async def main(port: int) -> None:
    async with serve(
        handle, "127.0.0.1", port, compression=None, ping_interval=None, max_queue=None
    ):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
