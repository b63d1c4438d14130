"""The instructor's live dashboard of a class session, over one websocket.

The connection belongs to the session's owner only. It listens to the groups of every game of
the session and answers any event or presence change with a fresh summary of the session
(debounced), and it carries the instructor's controls: start every game, pause, resume, extend,
end the phase, end a game, announce to one game or all, seat a student, move a student, and hand
a seat to a bot and back. Frames are documented in ``docs/classroom.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from negotiation import class_sessions, services
from negotiation.engine import commands as c
from negotiation.hub import LISTENING, announces, say_listening
from negotiation.models import ClassSession, Game, SessionMember
from negotiation.runtime import runtime

logger = logging.getLogger(__name__)

#: Close code for a connection that is not the session's owner (or no such session).
CLOSE_NOT_YOURS = 4403
#: At most one summary per this many seconds, however many events arrive.
SUMMARY_INTERVAL = 0.4
#: A fresh summary at least this often, so disconnection alerts grow without events.
HEARTBEAT_SECONDS = 10.0
MAX_FRAME_BYTES = 16 * 1024

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Code = Annotated[str, Field(min_length=1, max_length=8)]
Key = Annotated[str, Field(min_length=1, max_length=40)]
ClientId = Annotated[str, Field(min_length=1, max_length=80)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: ClientId


class StartAll(_Frame):
    action: Literal["start_all"]
    fill_bots: bool = False


class Control(_Frame):
    """One of the game's instructor commands for one game (or ``game: "*"`` for all)."""

    action: Literal["control"]
    game: Annotated[str, Field(min_length=1, max_length=8)]
    name: Literal["start_game", "pause", "resume", "advance_phase", "extend_deadline", "end_game"]
    seconds: Annotated[StrictInt, Field(ge=1, le=86400)] | None = None


class Announce(_Frame):
    action: Literal["announce"]
    game: Annotated[str, Field(min_length=1, max_length=8)]  # a game code, or "*" for all
    text: Text


class Assign(_Frame):
    action: Literal["assign"]
    member: Annotated[StrictInt, Field(ge=1)]
    game: Code
    seat: Key


class AssignRandom(_Frame):
    action: Literal["assign_random"]


class SeatAction(_Frame):
    action: Literal["to_bot", "give_back"]
    game: Code
    seat: Key


class FillBots(_Frame):
    action: Literal["fill_bots"]


class Refresh(_Frame):
    action: Literal["refresh"]


DashboardFrame = Annotated[
    StartAll | Control | Announce | Assign | AssignRandom | SeatAction | FillBots | Refresh,
    Field(discriminator="action"),
]


class _Envelope(BaseModel):
    frame: DashboardFrame


def parse_frame(
    text: str,
) -> StartAll | Control | Announce | Assign | AssignRandom | SeatAction | FillBots | Refresh:
    """The dashboard frame in ``text``. Raises ``ValueError`` with a readable reason."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not JSON: {error}") from None
    try:
        return _Envelope.model_validate({"frame": data}).frame
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "frame"
        raise ValueError(f"{where}: {first['msg']}") from None


_COMMANDS: dict[str, type[c.Command]] = {
    "start_game": c.StartGame,
    "pause": c.PauseGame,
    "resume": c.ResumeGame,
    "advance_phase": c.AdvancePhase,
    "end_game": c.EndGame,
}


class DashboardConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # Channels is untyped
    """The owner's live view of one class session, and their controls."""

    session_id: int | None = None
    game_ids: Sequence[int] = ()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Every message of a game's group reaches the dashboard; any of them may change what it
        # shows, and none needs a database connection of Channels' own.
        kind = str(message.get("type", ""))
        if kind == LISTENING:
            return  # another listener of a game's group; nothing the dashboard shows
        if kind.startswith("websocket."):
            handler = getattr(self, kind.replace(".", "_"), None)
            if handler is not None:
                await handler(message)
            return
        self._schedule_summary()

    async def connect(self) -> None:
        code = str(self.scope["url_route"]["kwargs"]["code"])
        user = self.scope.get("user")
        found = await database_sync_to_async(_owned_session)(code, user)
        if found is None:
            await self.close(code=CLOSE_NOT_YOURS)
            return
        self.session_id, self.user, self.game_ids = found[0], user, found[1]
        self.groups_joined = [services.group_name(game_id) for game_id in self.game_ids]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self._say_listening()
        self._pending: asyncio.Task[None] | None = None
        self._last_summary = 0.0
        await self.accept()
        runtime.start()
        await self._send_summary()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def disconnect(self, code: int) -> None:
        if self.session_id is not None:
            self._heartbeat.cancel()
            if self._pending is not None:
                self._pending.cancel()
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
        raise StopConsumer()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self._schedule_summary()
            await self._say_listening()

    async def _say_listening(self) -> None:
        """Ask the processes writing the session's games for their events (``hub``): each
        HEARTBEAT_SECONDS, within the hubs' LISTEN_TTL_SECONDS."""
        if not announces(self.channel_layer):
            return
        try:
            await say_listening(self.channel_layer, self.game_ids, self.channel_name)
        except Exception:
            # The heartbeat's summary still comes; the next beat says it again.
            logger.warning(
                "dashboard %s could not announce listening", self.session_id, exc_info=True
            )

    def _schedule_summary(self) -> None:
        if self.session_id is None or (self._pending is not None and not self._pending.done()):
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._last_summary + SUMMARY_INTERVAL - loop.time())
        self._pending = loop.create_task(self._summary_after(wait))

    async def _summary_after(self, wait: float) -> None:
        await asyncio.sleep(wait)
        await self._send_summary()

    async def _send_summary(self) -> None:
        assert self.session_id is not None
        self._last_summary = asyncio.get_running_loop().time()
        summary = await database_sync_to_async(_summary)(self.session_id)
        await self.send(text_data=json.dumps({"type": "summary", "session": summary}))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session_id is None:
            return
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if len(raw) > MAX_FRAME_BYTES:
            await self._error(None, "too_large", "The frame is too large.")
            return
        try:
            frame = parse_frame(raw)
        except ValueError as problem:
            await self._error(_frame_id(raw), "bad_frame", str(problem))
            return
        try:
            refusals, touched = await database_sync_to_async(_act)(
                self.session_id, self.user, frame
            )
        except LookupError as missing:
            await self._error(frame.id, "unknown", str(missing.args[0]))
            return
        for game_id in touched:
            # Bots and timers of the games this process changed.
            runtime.after_write(game_id, None)
        if refusals:
            await self._error(frame.id, refusals[0][0], "; ".join(m for _, m in refusals))
        else:
            await self.send(text_data=json.dumps({"type": "ack", "id": frame.id}))
        await self._send_summary()

    async def _error(self, frame_id: str | None, code: str, message: str) -> None:
        await self.send(
            text_data=json.dumps(
                {"type": "error", "id": frame_id, "code": code, "message": message}
            )
        )


def _frame_id(raw: str) -> str | None:
    """The id of a refused frame, when it has a readable one, so the client can match it."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    frame_id = data.get("id") if isinstance(data, dict) else None
    return frame_id if isinstance(frame_id, str) and len(frame_id) <= 80 else None


def _owned_session(code: str, user: Any) -> tuple[int, list[int]] | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    session = ClassSession.objects.filter(code=code.upper(), owner=user).first()
    if session is None:
        return None
    return session.pk, list(session.games.values_list("pk", flat=True))


def _summary(session_id: int) -> dict[str, Any]:
    return class_sessions.session_summary(ClassSession.objects.get(pk=session_id))


def _game(session: ClassSession, code: str) -> Game:
    game = session.games.filter(code=code.upper()).first()
    if game is None:
        raise LookupError(f"This session has no game {code!r}.")
    return game


def _act(session_id: int, user: Any, frame: Any) -> tuple[list[tuple[str, str]], set[int]]:
    """Carry out a dashboard frame: the refusals (code, message) and the games written to.

    Raises ``LookupError`` for a game or member that is not the session's.
    """
    session = ClassSession.objects.get(pk=session_id)
    refusals: list[tuple[str, str]] = []
    touched: set[int] = set()

    def note(game: Game, outcome: services.Outcome, what: str) -> None:
        if outcome.accepted:
            touched.add(game.pk)
        else:
            refusals.append((outcome.code, f"Game {game.code}: {outcome.message or what}"))

    games = class_sessions.session_games(session)
    if isinstance(frame, StartAll):
        if frame.fill_bots:
            for game, outcome in class_sessions.fill_with_bots(session):
                note(game, outcome, "no bot")
        for game in games:
            if game.status == Game.Status.LOBBY:
                start: c.Command = c.StartGame(c.INSTRUCTOR)
                note(
                    game,
                    class_sessions.control(
                        game=game, user=user, command=start, client_id=f"{frame.id}:{game.code}"
                    ),
                    "not started",
                )
        class_sessions.mark_started(session)
    elif isinstance(frame, Control | Announce):
        targets = games if frame.game == "*" else [_game(session, frame.game)]
        for game in targets:
            if frame.game == "*" and game.status == Game.Status.ENDED:
                continue
            command: c.Command
            if isinstance(frame, Announce):
                command = c.Announce(c.INSTRUCTOR, frame.text)
            elif frame.name == "extend_deadline":
                command = c.ExtendDeadline(c.INSTRUCTOR, frame.seconds or 60)
            else:
                command = _COMMANDS[frame.name](c.INSTRUCTOR)
            outcome = class_sessions.control(
                game=game, user=user, command=command, client_id=f"{frame.id}:{game.code}"
            )
            note(game, outcome, "refused")
        if isinstance(frame, Control) and frame.name == "start_game":
            class_sessions.mark_started(session)
    elif isinstance(frame, Assign):
        member = (
            SessionMember.objects.filter(session=session, pk=frame.member)
            .select_related("player", "session")
            .first()
        )
        if member is None:
            raise LookupError("This session has no such student.")
        game = _game(session, frame.game)
        note(
            game, class_sessions.assign(member=member, game=game, seat_key=frame.seat), "not seated"
        )
    elif isinstance(frame, AssignRandom):
        class_sessions.assign_rest_at_random(session)
    elif isinstance(frame, SeatAction):
        game = _game(session, frame.game)
        if frame.action == "to_bot":
            note(game, services.hand_to_bot(game=game, seat_key=frame.seat), "no bot")
        else:
            note(game, services.give_back(game=game, seat_key=frame.seat), "not given back")
    elif isinstance(frame, FillBots):
        for game, outcome in class_sessions.fill_with_bots(session):
            note(game, outcome, "no bot")
    return refusals, touched
