"""The channel layer of a single server process: Channels' in-memory layer, made cheap per message.

Channels' ``InMemoryChannelLayer`` scans every channel and group for expired messages on each
``receive`` and ``group_send``, deep-copies each message once per member and starts a task per
member: with 1,600 sockets a game event costs milliseconds before any byte is sent, and the
scans alone saturate the process (``bench/ws_load.py``). This layer keeps its semantics
(capacity per channel, expiry, group expiry, ``ChannelFull``) with work proportional to the
members of the group:

- expired messages and groups are swept at most once per ``SWEEP_SECONDS``, not per message;
- a message is copied once, shallowly, per send (receivers must not mutate nested values;
  nothing in the project does);
- ``group_send`` puts the message into each member's queue directly.

Like Channels' own, it serves one process only: several server processes need Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

logger = logging.getLogger(__name__)

#: Expired messages and group memberships are swept at most this often.
SWEEP_SECONDS = 1.0


class ProcessChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]  # Channels is untyped
    """In-memory channel layer whose cost per message does not grow with the process's sockets."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._next_sweep = 0.0
        #: Names already validated (the check is a regular expression).
        self._valid_channels: set[str] = set()
        self._valid_groups: set[str] = set()

    def _sweep_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            self._clean_expired()
            # Queues stay between messages (making one per message costs more than the
            # message); an empty one nobody waits on goes here.
            for channel, queue in list(self.channels.items()):
                if queue.empty() and not getattr(queue, "_getters", None):
                    del self.channels[channel]

    def _check_channel(self, channel: str) -> None:
        if channel not in self._valid_channels:
            self.require_valid_channel_name(channel)
            if len(self._valid_channels) > 100_000:
                self._valid_channels.clear()
            self._valid_channels.add(channel)

    def _check_group(self, group: str) -> None:
        if group not in self._valid_groups:
            self.require_valid_group_name(group)
            if len(self._valid_groups) > 100_000:
                self._valid_groups.clear()
            self._valid_groups.add(group)

    def _put(self, channel: str, message: dict[str, Any], expires: float) -> None:
        """Raises ``ChannelFull`` when the channel's queue is at capacity."""
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((expires, dict(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Raises ``ChannelFull`` when the channel's queue is at capacity."""
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        self._check_channel(channel)
        self._put(channel, message, time.time() + self.expiry)

    async def receive(self, channel: str) -> dict[str, Any]:
        self._check_channel(channel)
        self._sweep_if_due()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        _, message = await queue.get()
        result: dict[str, Any] = message
        return result

    async def group_add(self, group: str, channel: str) -> None:
        self._check_group(group)
        self._check_channel(channel)
        self.groups.setdefault(group, {})[channel] = time.time()

    async def group_discard(self, group: str, channel: str) -> None:
        self._check_group(group)
        self._check_channel(channel)
        members = self.groups.get(group)
        if members:
            members.pop(channel, None)
            if not members:
                del self.groups[group]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """A member whose queue is full misses the message (as with Channels' layers); the
        game's clients notice the gap by its seq and fetch what they missed."""
        assert isinstance(message, dict), "Message is not a dict"
        self._check_group(group)
        self._sweep_if_due()
        members = self.groups.get(group)
        if not members:
            return
        expires = time.time() + self.expiry
        for channel in list(members):
            try:
                self._put(channel, message, expires)
            except ChannelFull:
                logger.warning("channel %s is full: a %s message was dropped", channel, group)

    def only_member(self, group: str, channel: str | None) -> bool:
        """Whether ``channel`` is the group's only member (a message to it would come back
        to its sender alone)."""
        members = self.groups.get(group)
        return members is not None and len(members) == 1 and channel in members

    async def flush(self) -> None:
        await super().flush()
        self._valid_channels.clear()
        self._valid_groups.clear()
