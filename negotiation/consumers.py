"""The game's websocket consumer: bind the connection, parse frames, call ``services``, send.

No rule lives here. Each connection is bound to a seat, the instructor or a spectator when it
opens (``selectors.binding_for``). Events reach it from the process's ``hub``, which hands each
batch to every connection of the game in the process; it filters each event through
``visibility`` for its viewer and sends every seq exactly once and in order (a placeholder for
an event it may not see). A seq it has not got, because the channel layer lost it or because a
neighbour's batch is handed out after its own, is taken from the process's recent events
(``frames``) or, failing that, fetched from the database by a task of the connection's own, so
that handing events out never waits for the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from negotiation import frames, protocol, selectors, services
from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.scenario import GameDefaults, Scenario
from negotiation.engine.visibility import SPECTATOR, view, visible_shared
from negotiation.hub import hub
from negotiation.runtime import runtime
from negotiation.writer import writer

logger = logging.getLogger(__name__)

#: A client this many events behind gets a snapshot instead of the events it missed.
REPLAY_LIMIT = 500
#: After a failed fetch of missed events, the next try comes this much later.
FETCH_RETRY_SECONDS = 1.0
#: At most this many frames per window from one connection.
RATE_LIMIT_FRAMES = 20
RATE_LIMIT_SECONDS = 2.0
RATE_LIMIT_MESSAGE = "Too many frames; slow down."
#: The events that may take a connection's seat from its player (``_loses_its_seat``).
SEAT_EVENTS = frozenset({e.SeatTaken, e.SeatReleased})
#: Close codes.
CLOSE_NO_SUCH_GAME = 4404


class GameConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # Channels is untyped
    """One player's (or the instructor's, or a spectator's) connection to one game."""

    binding: selectors.Binding | None = None
    scenario: Scenario | None = None
    settings: GameDefaults | None = None
    #: The last seq sent to the client; None until it said hello.
    last_sent: int | None = None
    #: The highest seq of the game this connection knows to exist.
    known_seq: int = 0
    #: Fetching missed events from the database, when it is.
    _fetching: asyncio.Task[None] | None = None
    #: Saying hello: events wait until the snapshot or catch-up is decided.
    _greeting: bool = False
    _joined: bool = False
    #: The server's synchronous text sender (``frames.TEXT_SENDER``), when it offers one.
    _send_text: Callable[[str], bool] | None = None
    #: Its sender of several frames in one write, when it offers one.
    _send_all: Callable[[Sequence[str]], bool] | None = None
    #: Frames held back by ``_hold`` until ``_release``, and the sender they then go through.
    _held: list[str] | None = None
    _held_for: Callable[[str], bool] | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler, a hop to a worker
        # thread for every frame and every event. The database is used only through
        # database_sync_to_async, which does that itself.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # ----------------------------------------------------------------------------------------
    # Connection

    async def connect(self) -> None:
        code = str(self.scope["url_route"]["kwargs"]["code"])
        as_host = b"role=host" in self.scope.get("query_string", b"").split(b"&")
        self.binding = await self._bind(code, as_host)
        if self.binding is None:
            await self.close(code=CLOSE_NO_SUCH_GAME)
            return
        player_id = selectors.session_player_id(self.scope["session"])
        if not self.binding.is_instructor and player_id is not None:
            # Back at the table: the seat is no longer away, and a bot keeping it in a remote
            # match gives it back (then the connection is bound to it).
            returned = await database_sync_to_async(services.note_arrival)(
                game_id=self.binding.game_id, player_id=player_id
            )
            if returned:
                self.binding = await self._bind(code, as_host)
                if self.binding is None:
                    await self.close(code=CLOSE_NO_SUCH_GAME)
                    return
        state = await database_sync_to_async(services.load_state)(self.binding.game_id)
        self.scenario = state.scenario
        self.settings = state.settings
        self.peers: dict[str, str] = {self.channel_name: self.binding.viewer}
        self.frames: list[float] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        await hub().join(self.binding.game_id, self)
        self._joined = True
        await self.accept()
        offered = self.scope.get("extensions", {}).get(frames.TEXT_SENDER)
        if isinstance(offered, dict) and callable(offered.get("send")):
            self._send_text = offered["send"]
            if callable(offered.get("send_all")):
                self._send_all = offered["send_all"]
        runtime.start()
        runtime.watch(self.binding.game_id, state)
        await self._announce("presence.join")

    async def _bind(self, code: str, as_host: bool) -> selectors.Binding | None:
        binding: selectors.Binding | None = await database_sync_to_async(selectors.binding_for)(
            code, self.scope["session"], self.scope.get("user"), as_host=as_host
        )
        return binding

    async def disconnect(self, code: int) -> None:
        binding = self.binding
        if self._fetching is not None:
            self._fetching.cancel()
        if binding is not None and self._joined:
            await hub().leave(binding.game_id, self)
            await self._announce("presence.leave")
            seat_connections = [
                channel
                for channel, viewer in getattr(self, "peers", {}).items()
                if viewer == binding.viewer and channel != self.channel_name
            ]
            if binding.player is not None and binding.viewer != SPECTATOR and not seat_connections:
                # As far as this process knows, the seat's last connection closed.
                runtime.seat_left(binding.game_id, binding.viewer, binding.player)
        raise StopConsumer()

    @property
    def group(self) -> str:
        assert self.binding is not None
        return services.group_name(self.binding.game_id)

    # ----------------------------------------------------------------------------------------
    # Client frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.binding is None:
            return
        # Parsed before the rate check so that a refused command is answered by its id.
        over_rate = self._over_rate()
        try:
            frame = protocol.parse_client_frame(
                text_data if text_data is not None else bytes_data or b""
            )
        except protocol.FrameError as refusal:
            code, message = (
                ("rate_limited", RATE_LIMIT_MESSAGE)
                if over_rate
                else (refusal.code, refusal.message)
            )
            await self._send(protocol.error(refusal.command_id, code, message))
            return
        if over_rate:
            command_id = frame.id if isinstance(frame, protocol.CommandFrame) else None
            await self._send(protocol.error(command_id, "rate_limited", RATE_LIMIT_MESSAGE))
            return
        if isinstance(frame, protocol.Hello):
            await self._hello(frame.last_seq)
        elif isinstance(frame, protocol.Ping):
            await self._send(protocol.pong(frame.t, time.time()))
        else:
            await self._command(frame)

    def _over_rate(self) -> bool:
        now = time.monotonic()
        self.frames = [t for t in self.frames if now - t < RATE_LIMIT_SECONDS]
        if len(self.frames) >= RATE_LIMIT_FRAMES:
            return True
        self.frames.append(now)
        return False

    async def _hello(self, last_seq: int | None) -> None:
        assert self.binding is not None
        game_id = self.binding.game_id
        self._greeting = True
        try:
            state = await database_sync_to_async(services.load_state)(game_id)
        finally:
            self._greeting = False
        self.known_seq = max(self.known_seq, state.seq)
        if last_seq is None or last_seq > state.seq or state.seq - last_seq > REPLAY_LIMIT:
            self.last_sent = state.seq
            await self._send(
                protocol.snapshot(state.seq, view(state, self.binding.viewer), time.time())
            )
        else:
            self.last_sent = last_seq
        await self._pump()
        await self._fetched()
        await self._send_presence()

    async def _command(self, frame: protocol.CommandFrame) -> None:
        binding = self.binding
        assert binding is not None
        if frame.name not in protocol.ALL_COMMANDS:
            await self._send(
                protocol.error(
                    frame.id, "unknown_command", f"Unknown command {repr(frame.name)[:60]}."
                )
            )
            return
        allowed = (
            protocol.INSTRUCTOR_COMMANDS if binding.is_instructor else protocol.PLAYER_COMMANDS
        )
        if binding.actor is None or frame.name not in allowed:
            who = "A spectator" if binding.viewer == SPECTATOR else "This connection"
            await self._send(protocol.error(frame.id, "forbidden", f"{who} may not {frame.name}."))
            return
        try:
            command = protocol.command_for(frame, binding.actor)
        except protocol.FrameError as refusal:
            await self._send(protocol.error(frame.id, refusal.code, refusal.message))
            return
        outcome = await writer().submit(
            services.Request(
                binding.game_id,
                command,
                issuer=binding.issuer,
                client_id=frame.id,
                holder=binding.player,
            )
        )
        if not outcome.accepted:
            await self._send(protocol.error(frame.id, outcome.code, outcome.message))
            return
        # The command's events and its acknowledgement reach this connection in one write.
        self._hold()
        try:
            if outcome.events:
                # This connection first, then the others here, then the group, from this loop.
                await hub().publish(
                    binding.game_id, outcome.events, first=self, state=outcome.state
                )
                runtime.after_write(binding.game_id, outcome.state)
            else:
                # A retried command: its events were sent before, or are still to come.
                await self.take_upto(outcome.last_seq)
            if self._fetching is not None:
                # Events fetched from the database go out as they come, not held meanwhile.
                await self._release()
                # The command's events before its acknowledgement, even when fetched.
                await self._fetched()
            await self._send(protocol.ack(frame.id, outcome.last_seq))
        finally:
            await self._release()

    def _hold(self) -> None:
        """Hold every frame of this connection from now until ``_release``, which sends them
        in order in one write (``send_all``): one system call for a command's events and its
        acknowledgement instead of one each. Does nothing without ``send_all``."""
        send_text = self._send_text
        if send_text is None or self._send_all is None or self._held is not None:
            return
        held: list[str] = []

        def hold(text: str) -> bool:
            held.append(text)
            return True

        self._held, self._held_for, self._send_text = held, send_text, hold

    async def _release(self) -> None:
        """Send the frames held since ``_hold`` and send at once again (nothing when not
        holding)."""
        held, send_text = self._held, self._held_for
        if held is None or send_text is None:
            return
        self._held, self._held_for, self._send_text = None, None, send_text
        if not held:
            return
        # ``_hold`` holds only where the server offers ``send_all``.
        assert self._send_all is not None
        if not self._send_all(held):
            for text in held:
                await self.base_send({"type": "websocket.send", "text": text})

    # ----------------------------------------------------------------------------------------
    # Events, from the hub

    async def take(self, batch: Sequence[tuple[int, e.Event]]) -> None:
        """New events of the game (the hub keeps them in ``frames`` for every connection)."""
        if batch:
            await self.take_upto(batch[-1][0])

    def take_now(self, batch: Sequence[tuple[int, e.Event]]) -> bool:
        """``take`` without awaiting: True when done, False when ``take`` must be awaited (the
        server offers no synchronous sender, or it refused a frame)."""
        send_text = self._send_text
        if send_text is None:
            return False
        if not batch:
            return self._pump_now()
        if batch[-1][0] > self.known_seq:
            self.known_seq = batch[-1][0]
        if (
            self.last_sent is not None
            and batch[0][0] == self.last_sent + 1
            and not self._greeting
            and self._fetching is None
        ):
            # The usual case: the batch follows what was sent, and is sent straight from it
            # (``_pump_now`` would look each event up again among the recent ones).
            for seq, event in batch:
                if not send_text(self._event_text(seq, event)):
                    return False
                self._sent(seq, event)
        return self._pump_now()

    async def take_upto(self, seq: int) -> None:
        """Send what the client lacks up to ``seq``. Waits for nothing but the socket: a gap
        the process's recent events cannot fill is fetched by a task (``_fetch``)."""
        if seq > self.known_seq:
            self.known_seq = seq
        await self._pump()

    async def _pump(self) -> None:
        if self._pump_now():
            return
        while (pending := self._next_to_send()) is not None:
            await self._send_event(*pending)

    def _pump_now(self) -> bool:
        """``_pump`` through the server's synchronous sender, without a coroutine; False when a
        frame must go through the ASGI ``send`` instead (``_pump`` goes on from there)."""
        send_text = self._send_text
        if send_text is None:
            return False
        while (pending := self._next_to_send()) is not None:
            seq, event = pending
            if not send_text(self._event_text(seq, event)):
                return False
            self._sent(seq, event)
        return True

    def _next_to_send(self) -> tuple[int, e.Event] | None:
        """The next event the client lacks, when it may be sent now and this process holds
        it; None otherwise (having started a fetch when the process lacks it)."""
        binding = self.binding
        if (
            binding is None
            or self.last_sent is None
            or self._greeting
            or self._fetching is not None
            or self.last_sent >= self.known_seq
        ):
            return None
        seq = self.last_sent + 1
        event = frames.recent_event(binding.game_id, seq)
        if event is None:
            self._fetching = asyncio.get_running_loop().create_task(self._fetch(self.known_seq))
            return None
        return seq, event

    async def _fetch(self, upto: int) -> None:
        """Send the events after ``last_sent`` up to ``upto`` from the database; after a
        failure of the database, try again (``FETCH_RETRY_SECONDS``) for as long as the
        connection is open."""
        assert self.binding is not None and self.last_sent is not None
        before = self.last_sent
        failed = False
        try:
            missed = await database_sync_to_async(services.events_between)(
                self.binding.game_id, self.last_sent, upto
            )
            for seq, event in missed:
                if seq == self.last_sent + 1:
                    await self._send_event(seq, event)
        except Exception:
            failed = True
            logger.warning(
                "game %s: could not fetch missed events", self.binding.game_id, exc_info=True
            )
        if failed:
            # Still fetching meanwhile: new events wait, and closing the connection ends it.
            await asyncio.sleep(FETCH_RETRY_SECONDS)
        elif self.last_sent == before and self.known_seq <= upto:
            # Nothing stored up to ``upto`` after all: wait for the game's next event rather
            # than ask again.
            self.known_seq = self.last_sent
        self._fetching = None
        await self._pump()

    async def _fetched(self) -> None:
        """Wait until events being fetched for this connection are sent."""
        while self._fetching is not None:
            await asyncio.shield(self._fetching)

    async def _send_event(self, seq: int, event: e.Event) -> None:
        text = self._event_text(seq, event)
        # Counted as sent before the send yields, so that another pump does not send it too.
        self.last_sent = seq
        await self._send_raw(text)
        self._sent(seq, event)

    def _event_text(self, seq: int, event: e.Event) -> str:
        """The frame of event ``seq`` as this connection's viewer sees it."""
        assert self.binding is not None and self.scenario is not None
        shown = visible_shared(self.scenario, event, self.binding.viewer, settings=self.settings)
        return frames.event_text(seq, shown)

    def _sent(self, seq: int, event: e.Event) -> None:
        self.last_sent = seq
        if type(event) in SEAT_EVENTS and self._loses_its_seat(seq, event):
            self._become_spectator()

    def _loses_its_seat(self, seq: int, event: e.Event) -> bool:
        """Whether ``event`` takes this connection's seat from its player."""
        binding = self.binding
        assert binding is not None
        if binding.player is None or getattr(event, "seat", None) != binding.viewer:
            # Not a seat's connection, or it already lost its seat.
            return False
        if seq <= binding.seq:
            # History the binding already took into account: a player who got the seat back
            # from a bot catches up on the bot's taking it.
            return False
        if isinstance(event, e.SeatReleased):
            return True
        return isinstance(event, e.SeatTaken) and (event.bot or event.player != binding.player)

    def _become_spectator(self) -> None:
        """From now on this connection sees what a spectator sees; its commands still name the
        seat and its former player, so ``services`` refuses them as ``seat_lost``. The page
        reconnects to rebind. The others hear of it in a task: taking events never waits."""
        assert self.binding is not None
        former_viewer = self.binding.viewer
        self.binding = dataclasses.replace(self.binding, viewer=SPECTATOR)
        self.peers[self.channel_name] = SPECTATOR
        task = asyncio.get_running_loop().create_task(self._reannounce(former_viewer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reannounce(self, former_viewer: str) -> None:
        try:
            await self._announce("presence.leave", former_viewer)
            await self._announce("presence.join")
        except Exception:
            logger.warning("could not announce a seat's loss", exc_info=True)

    # ----------------------------------------------------------------------------------------
    # Presence: every connection tells the group when it comes and goes; the others answer
    # "here" so a newcomer learns who is already connected, whichever process serves them.

    async def _announce(self, kind: str, viewer: str | None = None) -> None:
        binding = self.binding
        assert binding is not None
        await self.channel_layer.group_send(
            self.group,
            {
                "type": kind,
                "game": binding.game_id,
                "channel": self.channel_name,
                "viewer": binding.viewer if viewer is None else viewer,
            },
        )

    async def presence_join(self, message: dict[str, Any]) -> None:
        if message["channel"] == self.channel_name:
            return
        self.peers[message["channel"]] = message["viewer"]
        # Only the newcomer needs to hear who is here: one message each, not one to everyone.
        assert self.binding is not None
        try:
            await self.channel_layer.send(
                message["channel"],
                {
                    "type": "presence.here",
                    "channel": self.channel_name,
                    "viewer": self.binding.viewer,
                },
            )
        except Exception:
            logger.warning("could not tell a newcomer who is here", exc_info=True)
        await self._send_presence()

    async def presence_here(self, message: dict[str, Any]) -> None:
        if message["channel"] == self.channel_name or message["channel"] in self.peers:
            return
        self.peers[message["channel"]] = message["viewer"]
        await self._send_presence()

    async def presence_probe(self, message: dict[str, Any]) -> None:
        """A runtime asks who is connected: a seat's connection answers to its inbox."""
        binding = self.binding
        if binding is None or binding.player is None or binding.viewer == SPECTATOR:
            return
        answer = {
            "type": "presence.answer",
            "probe": message["probe"],
            "game": binding.game_id,
            "seat": binding.viewer,
            "player": binding.player,
        }
        try:
            await self.channel_layer.send(message["reply_to"], answer)
        except Exception:
            # A full or vanished inbox: the prober counts this seat as away and asks again.
            logger.warning("could not answer a presence probe", exc_info=True)

    async def presence_leave(self, message: dict[str, Any]) -> None:
        if self.peers.pop(message["channel"], None) is not None:
            await self._send_presence()

    async def _send_presence(self) -> None:
        if self.last_sent is None or self.scenario is None:
            return
        seats = {m.key for m in self.scenario.members}
        viewers = list(self.peers.values())
        await self._send(
            protocol.presence(
                online=sorted({v for v in viewers if v in seats}),
                instructor=any(v == INSTRUCTOR for v in viewers),
                spectators=sum(1 for v in viewers if v == SPECTATOR),
            )
        )

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_raw(frames.FRAME_ENCODER.encode(frame))

    async def _send_raw(self, text: str) -> None:
        """Send a text frame: through the server's own sender when it offers one, else through
        the ASGI ``send``. Both write before returning, so frames keep their order."""
        send_text = self._send_text
        if send_text is None or not send_text(text):
            await self.base_send({"type": "websocket.send", "text": text})
