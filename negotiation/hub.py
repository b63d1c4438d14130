"""A game's events to this process's connections: one channel-layer message per process, not
one per socket.

Each server process joins a game's group once, with one channel of its own (the hub's), while
it serves at least one connection of the game. An event batch written here is handed to the
process's connections of the game directly (``Member.take``), then sent to the group once, for
other processes and for instructors' dashboards; the hub drops its own copy when it comes
back. A batch written elsewhere (another process, or this process's worker threads:
bots, deadlines, pages) arrives on the hub's channel and is decoded once and handed to every
connection of the game here. Handing over never waits for a database: a connection that finds
a gap in what it has sent fetches the missing events in a task of its own, and each connection
sends every seq once and in order (``consumers.GameConsumer``).

Presence messages of the group (who joined, who left, who is connected) are handed to every
connection of the game too, in the order they came, by a second task, so that a slow answer to
a presence probe never holds up the events.

Whether anyone else listens: on the process's own layer (one process) the group's members are
known. On a layer shared by several processes (Redis) they are not, so every listener of a
game's group that is not the writer says so: a hub when it joins the group and every
``LISTEN_RENEW_SECONDS`` after (``LISTENING`` messages, with its origin), a dashboard likewise
(``say_listening``). A hub sends its batches to the group only while some other listener was
heard within ``LISTEN_TTL_SECONDS``; with each game's connections routed to one process
(``docs/deploy.md``) a batch then costs no Redis message, no echo and no decoding of its own
copy. A hub that hears a listener for the first time answers with its own announcement (so the
newcomer sends it the newcomer's batches at once) and sends the batches it kept back meanwhile,
as far as its recent events hold them; anything else missed is fetched by seq, as ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from channels.layers import get_channel_layer

from negotiation import frames, services
from negotiation.engine import events as e
from negotiation.engine.state import GameState
from negotiation.layers import ProcessChannelLayer
from negotiation.runtime import runtime

logger = logging.getLogger(__name__)

#: After a failure of the channel layer, the hub opens a new channel this much later.
RETRY_SECONDS = 1.0
#: Group memberships are renewed this often (channel layers expire them after a day).
RENEW_SECONDS = 3600.0
#: Message types of the group handed to the connections in the order they came.
PRESENCE_TYPES = frozenset({"presence.join", "presence.leave", "presence.probe"})
#: The group message by which a listener of a game's group (another process's hub, a
#: dashboard) asks for the game's events: ``{"type", "game", "origin"}``.
LISTENING = "game.listening"
#: Every listener says so again this often...
LISTEN_RENEW_SECONDS = 10.0
#: ...and is taken to have gone after this long without a word.
LISTEN_TTL_SECONDS = 35.0


def announces(layer: Any) -> bool:
    """Whether listeners on ``layer`` must say they listen: a layer shared by processes, whose
    groups this process cannot see (the process's own layer knows its members)."""
    return layer is not None and not isinstance(layer, ProcessChannelLayer)


async def say_listening(layer: Any, game_ids: Sequence[int], origin: str) -> None:
    """Tell the hubs writing ``game_ids`` that ``origin`` wants their events. Raises what the
    channel layer raises."""
    for game_id in game_ids:
        await layer.group_send(
            services.group_name(game_id), {"type": LISTENING, "game": game_id, "origin": origin}
        )


class Member(Protocol):
    """A connection of a game, as the hub sees it."""

    async def take(self, batch: Sequence[tuple[int, e.Event]]) -> None:
        """New consecutive events of the game; must not wait for anything but its socket."""

    def take_now(self, batch: Sequence[tuple[int, e.Event]]) -> bool:
        """``take`` without awaiting, when the member can (False: ``take`` must be awaited)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        """A presence message of the game's group."""


class Hub:
    """The fan-out of one event loop (one server process, or one test)."""

    def __init__(self) -> None:
        #: Tells this hub's own batches apart when the group sends them back.
        self.origin = uuid.uuid4().hex
        self._members: dict[int, dict[Member, None]] = {}
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._layer: Any = None
        self._channel: str | None = None
        self._listener: asyncio.Task[None] | None = None
        self._presence: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._presence_worker: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._announcer: asyncio.Task[None] | None = None
        #: Other listeners of each game: their origin, and when they were last heard of plus
        #: ``LISTEN_TTL_SECONDS``.
        self._listeners: dict[int, dict[str, float]] = {}
        #: The first and last seq this hub wrote and kept from the group, per game.
        self._unsent: dict[int, tuple[int, int]] = {}

    # ----------------------------------------------------------------------------------------
    # Membership

    async def join(self, game_id: int, member: Member) -> None:
        """Hand ``member`` the game's events from now on. Raises what the channel layer
        raises when the process's channel cannot join the game's group."""
        async with self._lock(game_id):
            members = self._members.setdefault(game_id, {})
            members[member] = None
            if len(members) > 1 and self._layer is get_channel_layer():
                return
            try:
                channel = await self._ready()
                # Again for this game even when the channel is new: a failure must refuse
                # the connection rather than leave it deaf.
                await self._layer.group_add(services.group_name(game_id), channel)
            except BaseException:
                members.pop(member, None)
                if not members:
                    del self._members[game_id]
                raise
            if announces(self._layer):
                try:
                    await say_listening(self._layer, [game_id], self.origin)
                except Exception:
                    # Said again every LISTEN_RENEW_SECONDS; until then, gaps are fetched.
                    logger.warning(
                        "could not announce listening to game %s", game_id, exc_info=True
                    )

    async def leave(self, game_id: int, member: Member) -> None:
        """Stop handing ``member`` the game's events; the process leaves the game's group with
        its last connection of the game."""
        async with self._lock(game_id):
            members = self._members.get(game_id)
            if members is None or member not in members:
                return
            del members[member]
            if members:
                return
            del self._members[game_id]
            self._unsent.pop(game_id, None)
            if self._layer is not None and self._channel is not None:
                try:
                    await self._layer.group_discard(services.group_name(game_id), self._channel)
                except Exception:
                    logger.warning("could not leave the group of game %s", game_id, exc_info=True)

    def serves(self, game_id: int) -> bool:
        """Whether this process serves a connection of ``game_id``."""
        return bool(self._members.get(game_id))

    def members(self, game_id: int) -> list[Member]:
        """The connections of ``game_id`` this process serves (tests)."""
        return list(self._members.get(game_id, ()))

    def _lock(self, game_id: int) -> asyncio.Lock:
        # Kept while anyone holds or awaits it (weakly referenced): a join waiting behind a
        # leave takes the same lock, never a second one.
        lock = self._locks.get(game_id)
        if lock is None:
            lock = self._locks[game_id] = asyncio.Lock()
        return lock

    async def _ready(self) -> str:
        """The hub's channel on the current channel layer, opened (and every group with
        members here joined again) when the layer changed or failed. Raises what the channel
        layer raises when it cannot open one."""
        layer = get_channel_layer()
        if layer is self._layer and self._channel is not None:
            return self._channel
        for task in (self._listener, self._renewer, self._announcer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._layer, self._channel = None, None
        channel = str(await layer.new_channel("ratify-hub."))
        self._layer, self._channel = layer, channel
        for game_id in list(self._members):
            try:
                await layer.group_add(services.group_name(game_id), channel)
            except Exception:
                logger.warning("could not join the group of game %s", game_id, exc_info=True)
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen(layer, channel))
        self._renewer = loop.create_task(self._renew(layer, channel))
        if announces(layer):
            # At once for the groups joined again, then every LISTEN_RENEW_SECONDS.
            self._announcer = loop.create_task(self._announce(layer, at_once=True))
        if self._presence_worker is None or self._presence_worker.done():
            self._presence_worker = loop.create_task(self._hand_presence())
        return channel

    # ----------------------------------------------------------------------------------------
    # Events

    async def publish(
        self,
        game_id: int,
        stored: Sequence[services.StoredEvent],
        first: Member | None = None,
        state: GameState | None = None,
    ) -> None:
        """Hand events written by this process to its connections of the game (``first``
        before the others), then send them to the game's group; ``state`` is the game's state
        after them, when the caller has it (``runtime.observe``). A failure to send is
        logged, not raised: every client finds a missed event by its seq and fetches it."""
        if not stored:
            return
        batch = [(s.seq, s.event) for s in stored]
        await self._hand_out(game_id, batch, first)
        runtime.observe(game_id, {s.payload["type"] for s in stored}, state)
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, ProcessChannelLayer):
            if layer.only_member(services.group_name(game_id), self._channel):
                # One process and no dashboard watching: nobody else to tell.
                return
        elif not self._others_listen(game_id):
            # Nobody else has said they listen: kept back, sent if someone does.
            kept_from = self._unsent.get(game_id, (stored[0].seq, 0))[0]
            self._unsent[game_id] = (kept_from, stored[-1].seq)
            return
        try:
            await self._send_to_group(layer, game_id, stored)
        except Exception:
            logger.exception("game %s: could not publish events %s..", game_id, stored[0].seq)

    async def _send_to_group(
        self, layer: Any, game_id: int, stored: Sequence[services.StoredEvent]
    ) -> None:
        """Raises what the channel layer raises."""
        message = services.events_message(game_id, stored)
        message["origin"] = self.origin
        await layer.group_send(services.group_name(game_id), message)

    def _others_listen(self, game_id: int) -> bool:
        """Whether another listener of the game was heard within ``LISTEN_TTL_SECONDS``."""
        now = time.monotonic()
        return any(until > now for until in self._listeners.get(game_id, {}).values())

    async def _hand_out(
        self, game_id: int, batch: list[tuple[int, e.Event]], first: Member | None = None
    ) -> None:
        # Kept once for all connections: each finds here what it has not sent yet.
        frames.remember(game_id, batch)
        members = self._members.get(game_id)
        if not members:
            return
        ordered = list(members)
        if first is not None and first in members:
            ordered.remove(first)
            ordered.insert(0, first)
        for member in ordered:
            try:
                # A coroutine per connection and event costs more than the rest of its work.
                if not member.take_now(batch):
                    await member.take(batch)
            except Exception:
                logger.exception("game %s: a connection failed to take events", game_id)

    async def _listen(self, layer: Any, channel: str) -> None:
        """Receive the groups' messages for this process, until the layer changes; after a
        failure of the layer, leave the groups with the failed channel and open a new one."""
        try:
            while True:
                message = await layer.receive(channel)
                try:
                    await self._received(message)
                except Exception:
                    # One message this process cannot read (a newer server's event type, say)
                    # must not stop the others; the clients fetch what it carried.
                    logger.exception("the hub could not read a %s message", message.get("type"))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the hub's channel failed; opening a new one")
        if self._channel != channel:
            return
        for game_id in list(self._members):
            with contextlib.suppress(Exception):
                await layer.group_discard(services.group_name(game_id), channel)
        self._channel, self._layer = None, None
        while self._channel is None:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self._ready()
            except Exception:
                logger.exception("the hub could not open a new channel; trying again")

    async def _received(self, message: dict[str, Any]) -> None:
        """Raises what decoding a malformed batch raises."""
        kind = message.get("type")
        game = message.get("game")
        if not isinstance(game, int):
            return
        if kind == "game.events":
            if message.get("origin") == self.origin:
                return
            batch = [(int(seq), e.event_from_dict(payload)) for seq, payload in message["events"]]
            if not batch:
                return
            runtime.observe(game, {payload["type"] for _, payload in message["events"]})
            await self._hand_out(game, batch)
        elif kind in PRESENCE_TYPES:
            self._presence.put_nowait(message)
        elif kind == LISTENING:
            origin = message.get("origin")
            if isinstance(origin, str) and origin != self.origin:
                await self._heard(game, origin)

    async def _heard(self, game_id: int, origin: str) -> None:
        """``origin`` listens to the game: publish to the group while it does. A listener
        not heard of before is answered, and sent the batches kept back meanwhile. Raises
        what the channel layer raises."""
        if not announces(self._layer):
            return
        now = time.monotonic()
        listeners = self._listeners.setdefault(game_id, {})
        new = listeners.get(origin, 0.0) <= now
        listeners[origin] = now + LISTEN_TTL_SECONDS
        if not new:
            return
        if game_id in self._members:
            await say_listening(self._layer, [game_id], self.origin)
        await self._send_unsent(game_id)

    async def _send_unsent(self, game_id: int) -> None:
        """Send the group the batches ``publish`` kept back, from the last that this process
        still holds. Raises what the channel layer raises."""
        span = self._unsent.pop(game_id, None)
        if span is None:
            return
        first, last = span
        found: list[services.StoredEvent] = []
        for seq in range(max(first, last - frames.RECENT_EVENTS + 1), last + 1):
            event = frames.recent_event(game_id, seq)
            if event is None:
                found = []  # only a run of consecutive seqs ending at the last
                continue
            found.append(services.StoredEvent(seq, event, e.event_to_dict(event)))
        if found:
            await self._send_to_group(self._layer, game_id, found)

    async def _hand_presence(self) -> None:
        while True:
            message = await self._presence.get()
            for member in list(self._members.get(int(message["game"]), ())):
                try:
                    await member.dispatch(message)
                except Exception:
                    logger.exception("a connection failed to handle %s", message["type"])

    async def _renew(self, layer: Any, channel: str) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for game_id in list(self._members):
                try:
                    await layer.group_add(services.group_name(game_id), channel)
                except Exception:
                    logger.warning("could not renew the group of game %s", game_id, exc_info=True)

    async def _announce(self, layer: Any, at_once: bool = False) -> None:
        """Say every LISTEN_RENEW_SECONDS that this hub listens to the games it has members
        of, and forget listeners not heard of for LISTEN_TTL_SECONDS."""
        while True:
            if not at_once:
                await asyncio.sleep(LISTEN_RENEW_SECONDS)
            at_once = False
            now = time.monotonic()
            for game_id, listeners in list(self._listeners.items()):
                for origin, until in list(listeners.items()):
                    if until <= now:
                        del listeners[origin]
                if not listeners:
                    del self._listeners[game_id]
            try:
                await say_listening(layer, list(self._members), self.origin)
            except Exception:
                logger.warning("could not announce listening to the games", exc_info=True)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found
