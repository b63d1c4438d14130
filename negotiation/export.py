"""Export of games and class sessions for instructors, and import of the JSON archive.

Three CSV tables (``events.csv``, ``seats.csv``, ``ballots.csv``) for analysis, and one JSON
document (format ``ratify-export``, version 1) holding each game's scenario and whole log, which
``import_games`` turns back into games on another server. Everything is omniscient: ballots,
straw-poll answers, compliance choices and every member's preferences are in it, as an
instructor sees them after class. ``docs/export.md`` documents every file and column.

Import checks a log before writing anything: each stored event must decode, the log must start
with ``game_created``, and every event must be one the engine's rules would have recorded at
that point (``verify_log`` re-enacts the log command by command with ``rules.decide``). The
check proves that a log is one the rules could have produced; it is no signature: whoever edits
a file consistently (a free choice such as a ballot, together with everything that follows
from it) gets an edited game.
"""

from __future__ import annotations

import csv
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from pydantic import BaseModel, Field, ValidationError

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.rules import RuleViolation, decide, evolve, initial_state
from negotiation.engine.scenario import Member, ScenarioError, scenario_from_dict
from negotiation.engine.scoring import member_round_score, score_state
from negotiation.engine.state import ENDED, LOBBY, GameState
from negotiation.models import (
    Annotation,
    ClassSession,
    Game,
    GameEvent,
    Scenario,
    Seat,
    SessionMember,
)

FORMAT: Final = "ratify-export"
VERSION: Final = 1

EVENTS_FILE = "events.csv"
SEATS_FILE = "seats.csv"
BALLOTS_FILE = "ballots.csv"

#: Columns of ``events.csv``, in order (documented in docs/export.md).
EVENT_COLUMNS = (
    "game",
    "seq",
    "time",
    "type",
    "round",
    "attempt",
    "phase",
    "paused",
    "actor",
    "country",
    "proposal_id",
    "poll_id",
    "values",
    "yes",
    "comply",
    "to",
    "amount",
    "channel",
    "text",
    "player",
    "holder",
    "bot",
    "reason",
    "result",
    "deadline",
    "seconds",
    "payload",
)

#: Columns of ``seats.csv``, in order.
SEAT_COLUMNS = (
    "game",
    "seat",
    "role",
    "country",
    "name",
    "holder",
    "bot",
    "player",
    "weight",
    "veto",
    "reservation",
    "score",
    "surplus",
    "round_surplus",
    "welfare",
    "reputation",
    "involuntary_defections",
    "voluntary_defections",
    "compliance_payoff",
    "rounds_played",
    "phase",
)

#: Columns of ``ballots.csv``, in order.
BALLOT_COLUMNS = (
    "game",
    "seq",
    "time",
    "round",
    "attempt",
    "proposal_id",
    "values",
    "country",
    "member",
    "yes",
    "weight",
    "veto",
    "utility",
    "reservation",
    "side_payment",
    "margin",
    "ratified",
    "side_payment_received",
)

#: Decimals kept for computed numbers (utilities, scores), as in ``Scores.to_dict``.
DECIMALS = 6

Row = dict[str, Any]


class ImportRefusedError(ValueError):
    """An export file that cannot be imported; the message says why in a sentence."""


# --------------------------------------------------------------------------------------------
# Which games


@dataclass(frozen=True, slots=True)
class ExportTarget:
    """What one export holds: a class session's games, or one stand-alone game."""

    session: ClassSession | None
    games: tuple[Game, ...]

    @property
    def code(self) -> str:
        return self.session.code if self.session is not None else self.games[0].code


def find_target(code: str, *, game_only: bool = False) -> ExportTarget:
    """The class session with join code ``code`` (all its games, oldest first) or, when no
    session has that code or ``game_only`` is set, the game with that code.

    Codes are matched case-insensitively. Raises ``LookupError`` when nothing has the code.
    """
    wanted = code.strip().upper()
    if not game_only:
        session = ClassSession.objects.select_related("scenario", "owner").filter(code=wanted)
        found = session.first()
        if found is not None:
            games = Game.objects.select_related("scenario").filter(session=found)
            return ExportTarget(found, tuple(games.order_by("created", "pk")))
    game = Game.objects.select_related("scenario").filter(code=wanted).first()
    if game is None:
        raise LookupError(code)
    return ExportTarget(None, (game,))


@dataclass(frozen=True, slots=True)
class _StoredLog:
    created: tuple[datetime, ...]
    payloads: tuple[dict[str, Any], ...]
    events: tuple[e.Event, ...]


def _stored_log(game: Game) -> _StoredLog:
    rows = list(
        GameEvent.objects.filter(game=game).order_by("seq").values_list("created", "payload")
    )
    return _StoredLog(
        created=tuple(created for created, _ in rows),
        payloads=tuple(payload for _, payload in rows),
        events=tuple(e.event_from_dict(payload) for _, payload in rows),
    )


def _states(log: _StoredLog) -> Iterator[tuple[int, GameState, GameState, e.Event]]:
    """``(seq, state before, state after, event)`` for every event but the first."""
    state = initial_state(_created_event(log.events))
    for index, event in enumerate(log.events[1:], start=2):
        after = evolve(state, event)
        yield index, state, after, event
        state = after


def _created_event(events: Sequence[e.Event]) -> e.GameCreated:
    first = events[0] if events else None
    if not isinstance(first, e.GameCreated):
        raise ValueError("a game's log must start with game_created")
    return first


# --------------------------------------------------------------------------------------------
# CSV


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def _epoch_iso(seconds: float | None) -> str:
    return "" if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    rounded = round(float(value), DECIMALS)
    return int(rounded) if rounded.is_integer() else rounded


def _one_line(text: str) -> str:
    """Line breaks become spaces: a cell never spans lines (the ``payload`` keeps the text)."""
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return _one_line(value)
    return value


def _json_cell(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _write_table(path: Path, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """Write ``rows`` with a header; returns the number of rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _cell(row.get(column)) for column in columns})
            count += 1
    return count


def _member_or_none(state: GameState, key: object) -> Member | None:
    if not isinstance(key, str):
        return None
    try:
        return state.scenario.member(key)
    except KeyError:
        return None


def event_rows(game: Game, log: _StoredLog | None = None) -> Iterator[Row]:
    """One row of ``events.csv`` per event of ``game``'s log, in order."""
    log = log if log is not None else _stored_log(game)
    if not log.events:
        return
    first = initial_state(_created_event(log.events))
    steps: list[tuple[int, GameState, e.Event]] = [(1, first, log.events[0])]
    steps += [(seq, after, event) for seq, _, after, event in _states(log)]
    for seq, after, event in steps:
        payload = log.payloads[seq - 1]
        actor = payload.get("by", payload.get("seat"))
        member = _member_or_none(after, actor)
        values = payload.get("values")
        row: Row = {
            "game": game.code,
            "seq": seq,
            "time": _iso(log.created[seq - 1]),
            "type": event.TYPE,
            "round": after.round,
            "attempt": after.attempt,
            "phase": after.phase,
            "paused": after.paused,
            "actor": actor if isinstance(actor, str) else None,
            "country": payload.get("country", member.country if member else None),
            "proposal_id": payload.get("proposal_id"),
            "poll_id": payload.get("poll_id"),
            "values": (
                _json_cell(after.scenario.point_dict(values))
                if isinstance(values, list) and len(values) == len(after.scenario.issues)
                else None
            ),
            "to": payload.get("to"),
            "amount": payload.get("amount"),
            "text": payload.get("text"),
            "reason": payload.get("reason"),
            "payload": _json_cell(payload),
        }
        if isinstance(event, e.BallotCast | e.StrawPollAnswered):
            row["yes"] = event.yes
        elif isinstance(event, e.ComplianceChosen):
            row["comply"] = event.comply
        elif isinstance(event, e.ChatPosted):
            row["channel"] = event.channel
        elif isinstance(event, e.StatementMade):
            row["channel"] = "public"
        elif isinstance(event, e.SeatTaken):
            row.update(player=event.player, holder=event.name, bot=event.bot)
        elif isinstance(event, e.RoundEnded):
            row["result"] = event.result
        elif isinstance(event, e.PhaseChanged | e.GameResumed):
            row["deadline"] = _epoch_iso(event.deadline)
        elif isinstance(event, e.DeadlineExtended):
            row["seconds"] = event.seconds
        elif isinstance(event, e.GamePaused):
            row["seconds"] = _number(event.remaining)
        yield row


def seat_rows(game: Game, log: _StoredLog | None = None) -> Iterator[Row]:
    """One row of ``seats.csv`` per seat of ``game``: who held it at the end and its scores."""
    log = log if log is not None else _stored_log(game)
    if not log.events:
        return
    state = initial_state(_created_event(log.events))
    for _, _, after, _ in _states(log):
        state = after
    scenario = state.scenario
    scores = score_state(state)
    for member in scenario.members:
        holder = state.seats.get(member.key)
        country = scores.countries[member.country]
        surpluses = [member_round_score(scenario, member, r) for r in state.rounds]
        surplus = sum(surpluses) / len(surpluses) if surpluses else 0.0
        score = scores.chiefs[member.key] if member.role == "chief" else scores.members[member.key]
        yield {
            "game": game.code,
            "seat": member.key,
            "role": member.role,
            "country": member.country,
            "name": member.name,
            "holder": holder.name if holder else None,
            "bot": holder.bot if holder else False,
            "player": holder.player if holder else None,
            "weight": _number(float(member.weight)) if member.role != "chief" else None,
            "veto": member.veto,
            "reservation": _number(member.reservation),
            "score": _number(score),
            "surplus": _number(surplus),
            "round_surplus": _json_cell([_number(s) for s in surpluses]),
            "welfare": _number(country.welfare),
            "reputation": _number(country.reputation),
            "involuntary_defections": country.involuntary_defections,
            "voluntary_defections": country.voluntary_defections,
            "compliance_payoff": _number(country.compliance_payoff),
            "rounds_played": scores.rounds_played,
            "phase": state.phase,
        }


def ballot_rows(game: Game, log: _StoredLog | None = None) -> Iterator[Row]:
    """One row of ``ballots.csv`` per ``ballot_cast`` event of ``game``, in order."""
    log = log if log is not None else _stored_log(game)
    if not log.events:
        return
    rows: list[Row] = []
    uncounted: list[Row] = []
    counted: list[Row] = []
    for seq, before, _, event in _states(log):
        if isinstance(event, e.BallotCast):
            member = before.scenario.member(event.by)
            text = before.tentative
            promised = sum(offers.get(member.key, 0) for offers in before.offers.values())
            utility = before.scenario.utility_of(member, text.values) if text else None
            row: Row = {
                "game": game.code,
                "seq": seq,
                "time": _iso(log.created[seq - 1]),
                "round": before.round,
                "attempt": before.attempt,
                "proposal_id": text.proposal_id if text else None,
                "values": _json_cell(before.scenario.point_dict(text.values)) if text else None,
                "country": member.country,
                "member": member.key,
                "yes": event.yes,
                "weight": _number(float(member.weight)),
                "veto": member.veto,
                "utility": _number(utility),
                "reservation": _number(member.reservation),
                "side_payment": promised,
                "margin": (
                    _number(utility + promised - member.reservation)
                    if utility is not None
                    else None
                ),
            }
            rows.append(row)
            uncounted.append(row)
        elif isinstance(event, e.BallotsCounted):
            ratified = {r.country: r.ratified for r in event.results}
            for row in uncounted:
                row["ratified"] = ratified.get(row["country"])
                row["side_payment_received"] = 0
            counted, uncounted = uncounted, []
        elif isinstance(event, e.AgreementInForce):
            for row in counted:
                row["side_payment_received"] = event.transfers.get(row["member"], 0)
    yield from rows


def write_csv(directory: Path, games: Sequence[Game]) -> dict[str, int]:
    """Write ``events.csv``, ``seats.csv`` and ``ballots.csv`` for ``games`` into
    ``directory`` (created if missing, files replaced); returns the row count of each file.

    Raises ``OSError`` when a file cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    logs = {game.pk: _stored_log(game) for game in games}

    def rows(make: Callable[[Game, _StoredLog], Iterator[Row]]) -> Iterator[Row]:
        for game in games:
            yield from make(game, logs[game.pk])

    return {
        EVENTS_FILE: _write_table(directory / EVENTS_FILE, EVENT_COLUMNS, rows(event_rows)),
        SEATS_FILE: _write_table(directory / SEATS_FILE, SEAT_COLUMNS, rows(seat_rows)),
        BALLOTS_FILE: _write_table(directory / BALLOTS_FILE, BALLOT_COLUMNS, rows(ballot_rows)),
    }


# --------------------------------------------------------------------------------------------
# The JSON document (its schema is also what import reads)


class EventRecord(BaseModel):
    seq: int = Field(ge=1)
    created: datetime | None = None
    payload: dict[str, Any]


class SeatRecord(BaseModel):
    key: str = Field(min_length=1, max_length=40)
    role: str = Field(max_length=20)
    country: str = Field(max_length=40)
    order: int = Field(default=0, ge=0, le=32767)
    display_name: str = Field(default="", max_length=40)
    bot: bool = False
    bot_strategy: str = Field(default="", max_length=30)


class AnnotationRecord(BaseModel):
    seq: int = Field(ge=1)
    text: str = Field(max_length=2000)
    author: str | None = None
    created: datetime | None = None


class GameRecord(BaseModel):
    code: str = Field(min_length=1, max_length=8)
    scenario_slug: str = Field(min_length=1, max_length=64)
    title: str = Field(max_length=200)
    summary: str = ""
    scenario: dict[str, Any]
    created: datetime | None = None
    created_by: str | None = None
    public: bool = False
    bot_fill_after: int | None = Field(default=None, ge=0)
    status: str = ""
    phase: str = ""
    seats: list[SeatRecord] = []
    events: list[EventRecord] = Field(min_length=1)
    annotations: list[AnnotationRecord] = []
    #: For the reader only: import computes the scores again from the log.
    scores: dict[str, Any] | None = None


class MemberRecord(BaseModel):
    name: str = Field(max_length=40)
    game: str | None = None
    seat_key: str = Field(default="", max_length=40)
    joined: datetime | None = None


class SessionRecord(BaseModel):
    code: str = Field(min_length=1, max_length=8)
    title: str = Field(max_length=200)
    scenario_slug: str = Field(min_length=1, max_length=64)
    scenario_title: str = Field(default="", max_length=200)
    scenario_summary: str = ""
    scenario: dict[str, Any]
    assignment: Literal["random", "manual", "roster"] = "random"
    started: datetime | None = None
    stall_minutes: int = Field(default=3, ge=0, le=32767)
    created: datetime | None = None
    owner: str | None = None
    members: list[MemberRecord] = []


class ExportDocument(BaseModel):
    format: Literal["ratify-export"]
    version: Literal[1]
    exported: datetime | None = None
    session: SessionRecord | None = None
    games: list[GameRecord]


def _username(user: Any) -> str | None:
    return str(user.get_username()) if user is not None else None


def game_record(game: Game) -> GameRecord:
    """Everything needed to rebuild ``game`` elsewhere (raises ``EventDecodeError`` for a
    stored event the engine cannot read)."""
    rows = GameEvent.objects.filter(game=game).order_by("seq")
    events = [EventRecord(seq=r.seq, created=r.created, payload=r.payload) for r in rows]
    log = [e.event_from_dict(r.payload) for r in events]
    scores = score_state(_fold_all(log)).to_dict() if log else None
    annotations = Annotation.objects.filter(game=game).select_related("author")
    return GameRecord(
        code=game.code,
        scenario_slug=game.scenario.slug,
        title=game.scenario.title,
        summary=game.scenario.summary,
        scenario=game.scenario.definition,
        created=game.created,
        created_by=_username(game.created_by),
        public=game.public,
        bot_fill_after=game.bot_fill_after,
        status=game.status,
        phase=game.phase,
        seats=[
            SeatRecord(
                key=s.key,
                role=s.role,
                country=s.country,
                order=s.order,
                display_name=s.display_name,
                bot=s.bot,
                bot_strategy=s.bot_strategy,
            )
            for s in Seat.objects.filter(game=game).order_by("order")
        ],
        events=events,
        annotations=[
            AnnotationRecord(seq=a.seq, text=a.text, author=_username(a.author), created=a.created)
            for a in annotations.order_by("seq", "pk")
        ],
        scores=scores,
    )


def _fold_all(log: Sequence[e.Event]) -> GameState:
    state = initial_state(_created_event(log))
    for event in log[1:]:
        state = evolve(state, event)
    return state


def session_record(session: ClassSession, games: Sequence[Game]) -> SessionRecord:
    codes = {game.pk: game.code for game in games}
    return SessionRecord(
        code=session.code,
        title=session.title,
        scenario_slug=session.scenario.slug,
        scenario_title=session.scenario.title,
        scenario_summary=session.scenario.summary,
        scenario=session.scenario.definition,
        assignment=session.assignment,  # type: ignore[arg-type]
        started=session.started,
        stall_minutes=session.stall_minutes,
        created=session.created,
        owner=_username(session.owner),
        members=[
            MemberRecord(
                name=m.name,
                game=codes.get(m.game_id) if m.game_id is not None else None,
                seat_key=m.seat_key,
                joined=m.joined,
            )
            for m in SessionMember.objects.filter(session=session).order_by("name", "pk")
        ],
    )


def export_document(target: ExportTarget) -> dict[str, Any]:
    """The JSON-ready export of ``target``."""
    document = ExportDocument(
        format=FORMAT,
        version=VERSION,
        exported=datetime.now(UTC),
        session=(
            session_record(target.session, target.games) if target.session is not None else None
        ),
        games=[game_record(game) for game in target.games],
    )
    return document.model_dump(mode="json")


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``path`` (its folder created if missing). Raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False) + "\n",
        encoding="utf-8",
    )


# --------------------------------------------------------------------------------------------
# Checking a log with the engine


#: Event fields that depend on the server's clock when the command ran: the check compares only
#: whether they are set, since the clock is not in the log.
_CLOCK_FIELDS = {
    e.PhaseChanged.TYPE: "deadline",
    e.GamePaused.TYPE: "remaining",
    e.GameResumed.TYPE: "deadline",
}


def _without_clock(event: e.Event) -> dict[str, Any]:
    data = e.event_to_dict(event)
    field = _CLOCK_FIELDS.get(event.TYPE)
    if field is not None:
        data[field] = data[field] is not None
    return data


_STAFF = c.INSTRUCTOR


def _closing_poll(state: GameState, event: e.StrawPollClosed) -> list[c.Command]:
    poll = state.polls.get(event.poll_id)
    closing = [c.CloseStrawPoll(poll.by, event.poll_id)] if poll is not None else []
    return [*closing, c.AdvancePhase(_STAFF), c.EndGame(_STAFF)]


def _expiry(state: GameState, event: e.Event) -> list[c.Command]:
    return [c.AdvancePhase(_STAFF), c.EndGame(_STAFF)]


#: For each event type that can start a batch, the commands that may have caused it. The
#: instructor stands in for the server's clock (``AdvancePhase`` ends a phase as its deadline
#: would) and for the server seating players (the instructor may do all the server may).
STARTERS: dict[type[e.Event], Callable[[GameState, Any], list[c.Command]]] = {
    e.SeatTaken: lambda s, ev: [c.TakeSeat(_STAFF, ev.seat, ev.player, ev.bot, ev.name)],
    e.SeatReleased: lambda s, ev: [c.ReleaseSeat(_STAFF, ev.seat)],
    e.PhaseChanged: lambda s, ev: [c.StartGame(_STAFF)],
    e.ProposalMade: lambda s, ev: [c.Propose(ev.by, ev.values, ev.replies_to)],
    e.ProposalWithdrawn: lambda s, ev: [c.Withdraw(ev.by, ev.proposal_id)],
    e.ProposalAccepted: lambda s, ev: [c.Accept(ev.by, ev.proposal_id)],
    e.ChatPosted: lambda s, ev: [c.Chat(ev.by, ev.channel, ev.text)],
    e.StatementMade: lambda s, ev: [c.MakeStatement(ev.by, ev.text)],
    e.StrawPollOpened: lambda s, ev: [c.OpenStrawPoll(ev.by, ev.values)],
    e.StrawPollAnswered: lambda s, ev: [c.AnswerStrawPoll(ev.by, ev.poll_id, ev.yes)],
    e.StrawPollClosed: _closing_poll,
    e.SidePaymentOffered: lambda s, ev: [c.OfferSidePayment(ev.by, ev.to, ev.amount)],
    e.BallotCast: lambda s, ev: [c.CastBallot(ev.by, ev.yes)],
    e.BallotsCounted: _expiry,
    e.ComplianceChosen: lambda s, ev: [c.ChooseCompliance(ev.by, ev.comply)],
    e.ComplianceResolved: _expiry,
    e.RoundEnded: _expiry,
    e.AnnouncementMade: lambda s, ev: [c.Announce(_STAFF, ev.text)],
    e.GamePaused: lambda s, ev: [c.PauseGame(_STAFF)],
    e.GameResumed: lambda s, ev: [c.ResumeGame(_STAFF)],
    e.DeadlineExtended: lambda s, ev: [c.ExtendDeadline(_STAFF, ev.seconds)],
    e.GameEnded: lambda s, ev: [c.EndGame(_STAFF)],
}

#: Event types that only ever follow from another event of the same command (and the first).
CONSEQUENCES: frozenset[type[e.Event]] = frozenset(
    {e.GameCreated, e.TentativeAgreement, e.AgreementInForce, e.InvoluntaryDefection}
)


def _enact(state: GameState, log: Sequence[e.Event], start: int) -> int:
    """The number of events, from ``log[start]`` on, that one command decides at ``state``.

    Raises ``ImportRefusedError`` when no command does.
    """
    head = log[start]
    # The engine never reads the clock; the time only sets deadlines, compared by presence.
    now = state.deadline if state.deadline is not None else 0.0
    refusals: list[str] = []
    best = 0
    starter = STARTERS.get(type(head))
    for command in starter(state, head) if starter is not None else []:
        try:
            decided = decide(state, command, now)
        except RuleViolation as refusal:
            refusals.append(refusal.message)
            continue
        recorded = log[start : start + len(decided)]
        if len(recorded) == len(decided) and all(
            _without_clock(a) == _without_clock(b) for a, b in zip(decided, recorded, strict=True)
        ):
            best = max(best, len(decided))
        else:
            refusals.append("the rules record different events at that point")
    if best:
        return best
    why = refusals[0] if refusals else "it only ever follows from another event"
    raise ImportRefusedError(
        f"event {start + 1} ({head.TYPE}) is not one the rules allow there: {why}"
    )


def verify_log(payloads: Sequence[Mapping[str, Any]]) -> tuple[list[e.Event], GameState]:
    """Decode a stored log and check it with the engine: it starts with ``game_created`` and
    every later event is what a command decided at that point. Returns the events and the
    final state.

    Raises ``ImportRefusedError`` naming the first event at fault.
    """
    events: list[e.Event] = []
    for index, payload in enumerate(payloads, start=1):
        try:
            events.append(e.event_from_dict(payload))
        except e.EventDecodeError as error:
            raise ImportRefusedError(f"event {index} cannot be read: {error}") from None
    if not events or not isinstance(events[0], e.GameCreated):
        raise ImportRefusedError("the log does not start with game_created")
    if any(isinstance(event, e.GameCreated) for event in events[1:]):
        raise ImportRefusedError("the log holds game_created more than once")
    try:
        state = initial_state(events[0])
    except (ScenarioError, ValueError, TypeError, KeyError) as error:
        raise ImportRefusedError(f"the scenario in game_created is refused: {error}") from None
    position = 1
    while position < len(events):
        if state.phase == ENDED:
            raise ImportRefusedError(f"event {position + 1} comes after the game ended")
        count = _enact(state, events, position)
        for event in events[position : position + count]:
            state = evolve(state, event)
        position += count
    return events, state


# --------------------------------------------------------------------------------------------
# Import


@dataclass(frozen=True, slots=True)
class ImportedGame:
    code: str
    original_code: str
    scenario: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    session: str | None
    original_session: str | None
    games: tuple[ImportedGame, ...]
    scenarios_created: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "original_session": self.original_session,
            "games": [
                {"code": g.code, "original_code": g.original_code, "scenario": g.scenario}
                for g in self.games
            ],
            "scenarios_created": list(self.scenarios_created),
        }


def read_document(text: str) -> ExportDocument:
    """Parse an export file. Raises ``ImportRefusedError`` for anything but a valid
    ``ratify-export`` document of a version this server reads."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ImportRefusedError(f"the file is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportRefusedError(f"the file is not a Ratify export (format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ImportRefusedError(
            f"export version {data.get('version')!r} is not supported (this server reads "
            f"version {VERSION})"
        )
    try:
        return ExportDocument.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()[:5]
        )
        raise ImportRefusedError(f"the file is malformed: {problems}") from None


@dataclass(frozen=True, slots=True)
class _CheckedGame:
    record: GameRecord
    events: list[e.Event]
    state: GameState


def _check_game(record: GameRecord) -> _CheckedGame:
    where = f"game {record.code}"
    seqs = [r.seq for r in record.events]
    if seqs != list(range(1, len(seqs) + 1)):
        raise ImportRefusedError(f"{where}: the events are not numbered 1, 2, 3, ...")
    try:
        scenario_from_dict(record.scenario)
    except (ScenarioError, ValueError, TypeError, KeyError) as error:
        raise ImportRefusedError(f"{where}: its scenario is refused: {error}") from None
    try:
        events, state = verify_log([r.payload for r in record.events])
    except ImportRefusedError as error:
        raise ImportRefusedError(f"{where}: {error}") from None
    for note in record.annotations:
        if note.seq > len(events):
            raise ImportRefusedError(f"{where}: an annotation is on event {note.seq}, past the log")
    return _CheckedGame(record, events, state)


def _fresh_slug(slug: str) -> str:
    base = f"{slug[:50]}-imported"
    candidate, number = base, 1
    while Scenario.objects.filter(slug=candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


class _Scenarios:
    """Scenario rows for the definitions of a file: an identical stored one is reused; a
    different one under the same slug is never touched (the import gets a fresh slug)."""

    def __init__(self, owner: User | None) -> None:
        self._owner = owner
        self._rows: list[Scenario] = []
        self.created: list[str] = []

    def row(self, slug: str, title: str, summary: str, definition: dict[str, Any]) -> Scenario:
        for row in self._rows:
            if row.definition == definition:
                return row
        same_slug = Scenario.objects.filter(slug=slug).first()
        found = (
            same_slug
            if same_slug is not None and same_slug.definition == definition
            else next(
                (s for s in Scenario.objects.order_by("pk") if s.definition == definition), None
            )
        )
        if found is None:
            found = Scenario.objects.create(
                slug=slug if same_slug is None else _fresh_slug(slug),
                title=title or slug,
                summary=summary,
                definition=definition,
                owner=self._owner,
            )
            self.created.append(found.slug)
        self._rows.append(found)
        return found


def _fresh_session_code() -> str:
    while True:
        code = "".join(secrets.choice(services.CODE_ALPHABET) for _ in range(services.CODE_LENGTH))
        if not ClassSession.objects.filter(code=code).exists():
            return code


def _status(state: GameState) -> str:
    if state.phase == LOBBY:
        return Game.Status.LOBBY
    if state.phase == ENDED:
        return Game.Status.ENDED
    return Game.Status.ACTIVE


def _import_game(
    checked: _CheckedGame,
    scenario: Scenario,
    session: ClassSession | None,
    owner: User | None,
) -> Game:
    record, state = checked.record, checked.state
    taken = Game.objects.filter(code=record.code.upper()).exists()
    game = Game.objects.create(
        code=services.new_code() if taken else record.code.upper(),
        scenario=scenario,
        status=_status(state),
        phase=state.phase,
        deadline=state.deadline,
        last_seq=state.seq,
        host_token=secrets.token_urlsafe(24),
        created_by=owner,
        session=session,
        public=record.public,
        bot_fill_after=record.bot_fill_after,
    )
    if record.created is not None:
        Game.objects.filter(pk=game.pk).update(created=record.created)
    strategies = {s.key: s.bot_strategy for s in record.seats}
    # Seats follow the scenario and the holders the log: the log is what was checked.
    Seat.objects.bulk_create(
        [
            Seat(
                game=game,
                key=member.key,
                role=member.role,
                country=member.country,
                order=order,
                display_name=state.seats[member.key].name if member.key in state.seats else "",
                bot=state.seats[member.key].bot if member.key in state.seats else False,
                bot_strategy=strategies.get(member.key, ""),
            )
            for order, member in enumerate(state.scenario.members)
        ]
    )
    GameEvent.objects.bulk_create(
        [
            GameEvent(game=game, seq=r.seq, type=event.TYPE, payload=e.event_to_dict(event))
            for r, event in zip(record.events, checked.events, strict=True)
        ]
    )
    _keep_event_times(game, [r.created for r in record.events])
    Annotation.objects.bulk_create(
        [Annotation(game=game, seq=n.seq, text=n.text, author=owner) for n in record.annotations]
    )
    _keep_annotation_times(game, [n.created for n in record.annotations])
    return game


# auto_now_add gave the rows just inserted the time of the import; they get their original
# times back while still in the importing transaction, so no stored event is ever changed.


def _keep_event_times(game: Game, times: Sequence[datetime | None]) -> None:
    rows = list(GameEvent.objects.filter(game=game).order_by("seq"))
    for row, moment in zip(rows, times, strict=True):
        row.created = moment or row.created
    GameEvent.objects.bulk_update(rows, ["created"], batch_size=500)


def _keep_annotation_times(game: Game, times: Sequence[datetime | None]) -> None:
    rows = list(Annotation.objects.filter(game=game).order_by("pk"))
    for row, moment in zip(rows, times, strict=True):
        row.created = moment or row.created
    Annotation.objects.bulk_update(rows, ["created"], batch_size=500)


def import_document(document: ExportDocument, *, owner: str | None = None) -> ImportResult:
    """Create the games (and the session) of an export, all or nothing.

    Games and the session keep their codes unless taken here (then they get fresh ones).
    ``owner`` (a username) owns the session, created scenarios and games and authors the
    annotations; it is required when the document holds a session. Raises
    ``ImportRefusedError`` before writing anything when a log is refused by the engine, the
    owner is unknown or missing, or a session member names a game not in the file.
    """
    user: User | None = None
    if owner is not None:
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: owner}).first()
        if user is None:
            raise ImportRefusedError(f"no user is called {owner!r}")
    if document.session is not None and user is None:
        raise ImportRefusedError("the file holds a class session: name its owner with --owner")
    if not document.games and document.session is None:
        raise ImportRefusedError("the file holds no game")
    codes = [g.code.upper() for g in document.games]
    if len(set(codes)) != len(codes):
        raise ImportRefusedError("the file holds the same game code twice")
    checked = [_check_game(record) for record in document.games]
    if document.session is not None:
        try:
            scenario_from_dict(document.session.scenario)
        except (ScenarioError, ValueError, TypeError, KeyError) as error:
            raise ImportRefusedError(f"the session's scenario is refused: {error}") from None
        for member in document.session.members:
            if member.game is not None and member.game.upper() not in codes:
                raise ImportRefusedError(
                    f"session member {member.name!r} sits in game {member.game}, not in the file"
                )

    with transaction.atomic():
        scenarios = _Scenarios(user)
        session: ClassSession | None = None
        if document.session is not None:
            record = document.session
            assert user is not None
            taken = ClassSession.objects.filter(code=record.code.upper()).exists()
            session = ClassSession.objects.create(
                code=_fresh_session_code() if taken else record.code.upper(),
                title=record.title,
                owner=user,
                scenario=scenarios.row(
                    record.scenario_slug,
                    record.scenario_title,
                    record.scenario_summary,
                    record.scenario,
                ),
                assignment=record.assignment,
                started=record.started,
                stall_minutes=record.stall_minutes,
            )
            if record.created is not None:
                ClassSession.objects.filter(pk=session.pk).update(created=record.created)
        games: dict[str, Game] = {}
        for item in checked:
            scenario = scenarios.row(
                item.record.scenario_slug,
                item.record.title,
                item.record.summary,
                item.record.scenario,
            )
            games[item.record.code.upper()] = _import_game(item, scenario, session, user)
        if session is not None and document.session is not None:
            SessionMember.objects.bulk_create(
                [
                    SessionMember(
                        session=session,
                        name=m.name,
                        game=games[m.game.upper()] if m.game is not None else None,
                        seat_key=m.seat_key,
                        joined=m.joined,
                    )
                    for m in document.session.members
                ]
            )
    for game in games.values():
        # A cached state left by a game that once had this id must not stand for this log.
        services.state_cache.forget(game.pk)
    return ImportResult(
        session=session.code if session is not None else None,
        original_session=document.session.code if document.session is not None else None,
        games=tuple(
            ImportedGame(code=game.code, original_code=original, scenario=game.scenario.slug)
            for original, game in games.items()
        ),
        scenarios_created=tuple(scenarios.created),
    )
