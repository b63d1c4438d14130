"""Baseline: a bare ASGI room-broadcast app, served by Daphne (the chosen server's limit).

``daphne asgi_room:application`` with this folder on ``PYTHONPATH``. Same frames as
``raw_ws.py``: each command becomes the room's next event, encoded once and sent to every
socket of the room through its ASGI ``send``, then acknowledged to the sender. No Django, no
Channels, no channel layer.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

rooms: dict[str, dict[int, Send]] = {}
seqs: dict[str, int] = {}


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"room baseline"})
        return
    if scope["type"] != "websocket":
        return
    room = str(scope["path"]).strip("/").split("/")[-1]
    query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
    seat = query.get("seat", ["?"])[0]
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    members = rooms.setdefault(room, {})
    members[id(send)] = send
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            frame = json.loads(message.get("text") or message.get("bytes") or b"{}")
            if frame.get("type") == "hello":
                snapshot = json.dumps({"type": "snapshot", "seq": seqs.get(room, 0)})
                await send({"type": "websocket.send", "text": snapshot})
            elif frame.get("type") == "command":
                seq = seqs[room] = seqs.get(room, 0) + 1
                args = frame.get("args", {})
                event = {
                    "type": "chat_posted",
                    "channel": args.get("channel", "room"),
                    "by": seat,
                    "text": args.get("text", ""),
                }
                text = json.dumps(
                    {"type": "event", "seq": seq, "event": event}, separators=(",", ":")
                )
                for member in list(members.values()):
                    await member({"type": "websocket.send", "text": text})
                ack = json.dumps({"type": "ack", "id": frame.get("id"), "seq": seq})
                await send({"type": "websocket.send", "text": ack})
    finally:
        members.pop(id(send), None)
