"""The websocket protocol: every frame a client may send and every frame the server sends.

Frames are JSON objects keyed on ``"type"``. ``parse_client_frame`` turns the text of one client
frame into a typed frame or raises ``FrameError`` with a stable code (``bad_frame``,
``unknown_frame``, ``frame_too_large``, ``unknown_command``, ``bad_command``); the consumer
answers with an error frame and keeps the connection open. ``docs/protocol.md`` describes the
same frames for people; a test checks that the two agree.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from negotiation.engine import commands as c

#: Larger client frames are refused unread.
MAX_FRAME_BYTES = 16_384
#: Command ids are chosen by the client: short printable text.
MAX_COMMAND_ID = 64

#: Free text; the engine refuses it when empty or over its own, lower limit (text_too_long).
Text = Annotated[str, Field(max_length=4000)]
Number = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]
#: Larger than any grid value a scenario may hold (``MAX_MAGNITUDE``) and small enough for a
#: float: values are read as floats, and a longer integer would overflow.
MAX_VALUE = 10**15
Value = (
    Annotated[StrictInt, Field(ge=-MAX_VALUE, le=MAX_VALUE)]
    | Annotated[StrictFloat, Field(allow_inf_nan=False, ge=-MAX_VALUE, le=MAX_VALUE)]
)
Values = Annotated[list[Value], Field(min_length=1, max_length=6)]


class FrameError(Exception):
    """A client frame that cannot be used: ``code`` is stable, ``message`` a plain sentence.

    ``command_id`` is the id of the refused command when the frame got far enough to have one.
    """

    def __init__(self, code: str, message: str, command_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.command_id = command_id


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Client frames


class Hello(_Frame):
    """Sent after connecting and after every reconnect: the last event seq the client holds,
    or null for none (the server answers with a snapshot)."""

    type: Literal["hello"]
    last_seq: Annotated[StrictInt, Field(ge=0)] | None = None


class CommandFrame(_Frame):
    """A command for the game. ``id`` is chosen by the client and unique per client; a retried
    id is answered again but applied once."""

    type: Literal["command"]
    id: Annotated[str, Field(min_length=1, max_length=MAX_COMMAND_ID, pattern=r"^[\x21-\x7e]+$")]
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Ping(_Frame):
    """Keep-alive; the server answers with a pong carrying the same ``t``."""

    type: Literal["ping"]
    t: Number | None = None


ClientFrame = Annotated[Hello | CommandFrame | Ping, Field(discriminator="type")]
CLIENT_FRAME_TYPES = ("hello", "command", "ping")
_client_frame: TypeAdapter[Hello | CommandFrame | Ping] = TypeAdapter(ClientFrame)


# --------------------------------------------------------------------------------------------
# Command arguments, one schema per command a client may send


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(_Args):
    pass


class ProposeArgs(_Args):
    values: Values
    replies_to: Annotated[StrictInt, Field(ge=1)] | None = None


class ProposalArgs(_Args):
    proposal_id: Annotated[StrictInt, Field(ge=1)]


class ChatArgs(_Args):
    channel: Annotated[str, Field(max_length=60)]
    text: Text


class StatementArgs(_Args):
    text: Text


class AnnounceArgs(_Args):
    text: Text


class StrawPollArgs(_Args):
    values: Values


class AnswerPollArgs(_Args):
    poll_id: Annotated[StrictInt, Field(ge=1)]
    yes: StrictBool


class PollArgs(_Args):
    poll_id: Annotated[StrictInt, Field(ge=1)]


class OfferArgs(_Args):
    to: Annotated[str, Field(min_length=1, max_length=40)]
    amount: Annotated[StrictInt, Field(ge=0, le=1_000_000)]


class BallotArgs(_Args):
    yes: StrictBool


class ComplianceArgs(_Args):
    comply: StrictBool


class ExtendArgs(_Args):
    seconds: Annotated[StrictInt, Field(ge=1, le=86_400)]


class SeatArgs(_Args):
    seat: Annotated[str, Field(min_length=1, max_length=40)]


#: Commands a seated player may send (the actor is always the connection's seat).
PLAYER_COMMANDS: dict[str, type[_Args]] = {
    c.Propose.NAME: ProposeArgs,
    c.Withdraw.NAME: ProposalArgs,
    c.Accept.NAME: ProposalArgs,
    c.Chat.NAME: ChatArgs,
    c.MakeStatement.NAME: StatementArgs,
    c.OpenStrawPoll.NAME: StrawPollArgs,
    c.AnswerStrawPoll.NAME: AnswerPollArgs,
    c.CloseStrawPoll.NAME: PollArgs,
    c.OfferSidePayment.NAME: OfferArgs,
    c.CastBallot.NAME: BallotArgs,
    c.ChooseCompliance.NAME: ComplianceArgs,
}

#: Commands the instructor may send. ``seat_bot`` puts a bot in a seat (replacing whoever holds
#: it); ``release_seat`` empties a seat.
SEAT_BOT = "seat_bot"
INSTRUCTOR_COMMANDS: dict[str, type[_Args]] = {
    c.StartGame.NAME: NoArgs,
    c.AdvancePhase.NAME: NoArgs,
    c.PauseGame.NAME: NoArgs,
    c.ResumeGame.NAME: NoArgs,
    c.ExtendDeadline.NAME: ExtendArgs,
    c.Announce.NAME: AnnounceArgs,
    c.EndGame.NAME: NoArgs,
    SEAT_BOT: SeatArgs,
    c.ReleaseSeat.NAME: SeatArgs,
}

ALL_COMMANDS = frozenset(PLAYER_COMMANDS) | frozenset(INSTRUCTOR_COMMANDS)

#: The player id recorded for a seat the instructor gives to a bot.
BOT_PLAYER = "bot"


def parse_client_frame(text: str | bytes) -> Hello | CommandFrame | Ping:
    """The typed frame in ``text``.

    Raises ``FrameError``: ``frame_too_large``, ``bad_frame`` (not JSON, not an object, or a
    field of the wrong shape) or ``unknown_frame`` (an unknown ``type``).
    """
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"Frames are at most {MAX_FRAME_BYTES} bytes.")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FrameError("bad_frame", "A frame must be a JSON object.") from None
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "A frame must be a JSON object.")
    kind = data.get("type")
    if kind not in CLIENT_FRAME_TYPES:
        raise FrameError("unknown_frame", f"Unknown frame type {repr(kind)[:60]}.")
    try:
        return _client_frame.validate_python(data)
    except ValidationError as error:
        command_id = (
            data.get("id") if kind == "command" and isinstance(data.get("id"), str) else None
        )
        raise FrameError("bad_frame", _first_problem(error), command_id) from None


def command_for(frame: CommandFrame, actor: str) -> c.Command:
    """The engine command a command frame asks for, on behalf of ``actor``.

    The actor comes from the connection, never from the frame. Raises ``FrameError``
    (``unknown_command`` or ``bad_command``); whether the actor may send it is the caller's
    check (``PLAYER_COMMANDS`` or ``INSTRUCTOR_COMMANDS``).
    """
    schema = PLAYER_COMMANDS.get(frame.name) or INSTRUCTOR_COMMANDS.get(frame.name)
    if schema is None:
        raise FrameError("unknown_command", f"Unknown command {repr(frame.name)[:60]}.", frame.id)
    try:
        args = schema.model_validate(frame.args)
    except ValidationError as error:
        raise FrameError("bad_command", _first_problem(error), frame.id) from None
    return _build(frame.name, args, actor)


def _build(name: str, args: _Args, actor: str) -> c.Command:
    if isinstance(args, ProposeArgs):
        return c.Propose(actor, tuple(float(v) for v in args.values), args.replies_to)
    if isinstance(args, StrawPollArgs):
        return c.OpenStrawPoll(actor, tuple(float(v) for v in args.values))
    if isinstance(args, ProposalArgs):
        return (c.Accept if name == c.Accept.NAME else c.Withdraw)(actor, args.proposal_id)
    if isinstance(args, ChatArgs):
        return c.Chat(actor, args.channel, args.text)
    if isinstance(args, StatementArgs):
        return c.MakeStatement(actor, args.text)
    if isinstance(args, AnnounceArgs):
        return c.Announce(actor, args.text)
    if isinstance(args, AnswerPollArgs):
        return c.AnswerStrawPoll(actor, args.poll_id, args.yes)
    if isinstance(args, PollArgs):
        return c.CloseStrawPoll(actor, args.poll_id)
    if isinstance(args, OfferArgs):
        return c.OfferSidePayment(actor, args.to, args.amount)
    if isinstance(args, BallotArgs):
        return c.CastBallot(actor, args.yes)
    if isinstance(args, ComplianceArgs):
        return c.ChooseCompliance(actor, args.comply)
    if isinstance(args, ExtendArgs):
        return c.ExtendDeadline(actor, args.seconds)
    if isinstance(args, SeatArgs):
        if name == SEAT_BOT:
            return c.TakeSeat(actor, args.seat, BOT_PLAYER, bot=True, name="Bot")
        return c.ReleaseSeat(actor, args.seat)
    no_args: dict[str, type[c.Command]] = {
        c.StartGame.NAME: c.StartGame,
        c.AdvancePhase.NAME: c.AdvancePhase,
        c.PauseGame.NAME: c.PauseGame,
        c.ResumeGame.NAME: c.ResumeGame,
        c.EndGame.NAME: c.EndGame,
    }
    return no_args[name](actor)


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or "frame"
    return f"{where}: {problem['msg']}."


# --------------------------------------------------------------------------------------------
# Server frames


class SnapshotFrame(_Frame):
    """Everything the connection may see now (``visibility.view``), as of event ``seq``."""

    type: Literal["snapshot"]
    seq: StrictInt
    state: dict[str, Any]
    #: The server's clock (seconds since the epoch), for countdowns to ``state.deadline``.
    now: float


class EventFrame(_Frame):
    """One event of the log as this connection may see it; ``event`` is null (a placeholder)
    when it may not see it at all, so its seq still advances."""

    type: Literal["event"]
    seq: StrictInt
    event: dict[str, Any] | None


class AckFrame(_Frame):
    """The command ``id`` was applied; ``seq`` is the last event it caused."""

    type: Literal["ack"]
    id: str
    seq: StrictInt


class ErrorFrame(_Frame):
    """A frame or command was refused: ``code`` is stable, ``message`` a plain sentence; ``id``
    names the refused command, null when the frame had no usable id."""

    type: Literal["error"]
    id: str | None
    code: str
    message: str


class PresenceFrame(_Frame):
    """Who is connected: the seats with at least one open connection, whether an instructor is
    watching, and how many spectators."""

    type: Literal["presence"]
    online: list[str]
    instructor: bool
    spectators: StrictInt


class PongFrame(_Frame):
    """Echoes the ping's ``t``, with the server's clock ``now``."""

    type: Literal["pong"]
    t: float | int | None = None
    now: float


ServerFrame = Annotated[
    SnapshotFrame | EventFrame | AckFrame | ErrorFrame | PresenceFrame | PongFrame,
    Field(discriminator="type"),
]
SERVER_FRAME_TYPES = ("snapshot", "event", "ack", "error", "presence", "pong")
server_frame: TypeAdapter[
    SnapshotFrame | EventFrame | AckFrame | ErrorFrame | PresenceFrame | PongFrame
] = TypeAdapter(ServerFrame)


def snapshot(seq: int, state: dict[str, Any], now: float) -> dict[str, Any]:
    return {"type": "snapshot", "seq": seq, "state": state, "now": now}


def event(seq: int, payload: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "event", "seq": seq, "event": payload}


def ack(command_id: str, seq: int) -> dict[str, Any]:
    return {"type": "ack", "id": command_id, "seq": seq}


def error(command_id: str | None, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": command_id, "code": code, "message": message}


def presence(online: list[str], instructor: bool, spectators: int) -> dict[str, Any]:
    return {
        "type": "presence",
        "online": online,
        "instructor": instructor,
        "spectators": spectators,
    }


def pong(t: float | int | None, now: float) -> dict[str, Any]:
    return {"type": "pong", "t": t, "now": now}
