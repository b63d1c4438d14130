"""Baseline: a plain Channels consumer that ``group_send``s each command to its room.

What a straightforward Channels implementation gets: ``AsyncWebsocketConsumer`` with its
default ``dispatch`` (which closes stale database connections in a worker thread before every
handler), one channel-layer message per member for every event (``group_send``), and each
member encoding its own frame. The channel layer is Channels' own ``InMemoryChannelLayer``, or
with ``REDIS_URL`` the project's Redis pub/sub layer (``channels_redis``, as shipped); with
``RATIFY_BENCH_CHANNEL_LAYER=project`` the project's in-memory layer instead. Served by
Daphne: ``daphne channels_room:application`` with this folder and the project on
``PYTHONPATH``. Same frames as ``raw_ws.py``. The room's seq is counted in the process (the
baseline runs one process).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django
from django.conf import settings

if not os.environ.get("REDIS_URL") and os.environ.get("RATIFY_BENCH_CHANNEL_LAYER") != "project":
    # Channels' own in-memory layer, as a straightforward implementation has it. The project's
    # faster ``negotiation.layers.ProcessChannelLayer`` is part of Ratify; the benchmark's
    # ``channels_layer`` system runs this consumer on it (RATIFY_BENCH_CHANNEL_LAYER=project).
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import path  # noqa: E402

seqs: dict[str, int] = {}


class RoomConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # Channels is untyped
    room = ""
    seat = ""

    async def connect(self) -> None:
        self.room = str(self.scope["url_route"]["kwargs"]["room"])
        query = urllib.parse.parse_qs(self.scope.get("query_string", b"").decode())
        self.seat = query.get("seat", ["?"])[0]
        await self.channel_layer.group_add(f"room.{self.room}", self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(f"room.{self.room}", self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or bytes_data or b"{}")
        if frame.get("type") == "hello":
            await self.send(json.dumps({"type": "snapshot", "seq": seqs.get(self.room, 0)}))
        elif frame.get("type") == "command":
            seq = seqs[self.room] = seqs.get(self.room, 0) + 1
            args = frame.get("args", {})
            event = {
                "type": "chat_posted",
                "channel": args.get("channel", "room"),
                "by": self.seat,
                "text": args.get("text", ""),
            }
            await self.channel_layer.group_send(
                f"room.{self.room}", {"type": "room.event", "seq": seq, "event": event}
            )
            await self.send(json.dumps({"type": "ack", "id": frame.get("id"), "seq": seq}))

    async def room_event(self, message: dict[str, Any]) -> None:
        frame = {"type": "event", "seq": message["seq"], "event": message["event"]}
        await self.send(json.dumps(frame, separators=(",", ":")))


application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("room/<str:room>/", RoomConsumer.as_asgi())]),
    }
)
