"""The only writer of games: load the state, ``decide``, append the events atomically, publish.

Every change to a game goes through ``submit``: it folds the cached state forward with the
events stored since, asks the engine to ``decide``, and appends the events with consecutive seqs
in one transaction together with their projections (``Game`` status, phase and deadline,
``Seat`` holders) and the record of the command id. A duplicate ``(game, seq)`` means another
process wrote first: the state is reloaded and the command decided again. After the commit the
events are published to the game's channel-layer group.

All functions here are synchronous (database work); async code calls them through
``channels.db.database_sync_to_async``.
"""

from __future__ import annotations

import functools
import logging
import random
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.db.models import Case, When
from django.utils import timezone

from accounts.models import Player
from negotiation import frames
from negotiation.engine import bots
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.rules import RuleViolation, decide, evolve, fold
from negotiation.engine.rules import create_game as create_log
from negotiation.engine.scenario import GameDefaults, scenario_from_dict
from negotiation.engine.state import ENDED, LOBBY, GameState
from negotiation.models import Game, GameCommand, GameEvent, Scenario, Seat, SessionMember

logger = logging.getLogger(__name__)

#: Join codes use letters and digits that cannot be mistaken for one another.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
#: How often a command is decided again after losing a race for the next seq; between
#: attempts it waits a random moment, longer each time, so racing writers spread out.
MAX_WRITE_ATTEMPTS = 25
RETRY_PAUSE_SECONDS = 0.002
#: Refusals that time lifts: not recorded under the command id, so the same id (a deadline
#: timer that fired early by this process's clock) may be tried again and applied.
PASSING_REFUSALS = frozenset({"deadline_not_reached"})
#: Folded states kept in memory per process: more than the games one process serves at once
#: (a state missing here is folded again from the whole log, for every command of its game).
#: A game's state is a few tens of KiB; its 8 connections take more.
STATE_CACHE_SIZE = 4096

#: Who issued a command, for the command-id records: the server's clock and the bots.
SYSTEM_ISSUER = "system"
BOT_ISSUER = "bot"


class GameNotFoundError(LookupError):
    """No game with that id or code, or a game without a log."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    event: e.Event
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a command: applied (``events`` it caused, ending at ``last_seq``) or
    refused (``code`` and ``message``). ``replayed`` marks the stored answer to a retried id,
    whose events are not repeated here."""

    accepted: bool
    last_seq: int
    code: str = ""
    message: str = ""
    events: tuple[StoredEvent, ...] = ()
    state: GameState | None = None
    replayed: bool = False


def group_name(game_id: int) -> str:
    """The channel-layer group of a game's connections."""
    return f"game.{game_id}"


# --------------------------------------------------------------------------------------------
# Reading


class _StateCache:
    """Folded states by game id, least recently used dropped first; safe across threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._states: OrderedDict[int, GameState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, game_id: int) -> GameState | None:
        with self._lock:
            state = self._states.get(game_id)
            if state is not None:
                self._states.move_to_end(game_id)
            return state

    def put(self, game_id: int, state: GameState) -> None:
        with self._lock:
            current = self._states.get(game_id)
            if current is not None and current.seq > state.seq:
                return
            self._states[game_id] = state
            self._states.move_to_end(game_id)
            while len(self._states) > self._size:
                self._states.popitem(last=False)

    def forget(self, game_id: int) -> None:
        with self._lock:
            self._states.pop(game_id, None)
        frames.forget_recent(game_id)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
        frames.forget_recent()


state_cache = _StateCache(STATE_CACHE_SIZE)


def load_state(game_id: int) -> GameState:
    """The game's current state: the cached state folded forward with the events stored since.

    Raises ``GameNotFoundError`` when the game has no log.
    """
    cached = state_cache.get(game_id)
    after = cached.seq if cached is not None else 0
    rows = list(
        GameEvent.objects.filter(game_id=game_id, seq__gt=after)
        .order_by("seq")
        .values_list("seq", "payload")
    )
    if cached is None:
        if not rows:
            raise GameNotFoundError(f"game {game_id} has no events")
        state = fold(e.event_from_dict(payload) for _, payload in rows)
    else:
        state = cached
        for seq, payload in rows:
            if seq != state.seq + 1:
                # A hole can only come from a cache that outlived its log (tests flushing the
                # database); start again from the log.
                state_cache.forget(game_id)
                return load_state(game_id)
            state = evolve(state, e.event_from_dict(payload))
    state_cache.put(game_id, state)
    return state


def events_between(game_id: int, after: int, upto: int | None = None) -> list[tuple[int, e.Event]]:
    """The stored events with ``after < seq <= upto`` (to the end without ``upto``), in order."""
    query = GameEvent.objects.filter(game_id=game_id, seq__gt=after)
    if upto is not None:
        query = query.filter(seq__lte=upto)
    return [
        (seq, e.event_from_dict(payload))
        for seq, payload in query.order_by("seq").values_list("seq", "payload")
    ]


def log_of(game_id: int) -> list[e.Event]:
    """The whole log of a game, in order."""
    return [event for _, event in events_between(game_id, 0)]


def game_by_code(code: str) -> Game:
    """Raises ``GameNotFoundError`` for an unknown code (codes are matched case-insensitively)."""
    game = Game.objects.select_related("scenario").filter(code=code.strip().upper()).first()
    if game is None:
        raise GameNotFoundError(code)
    return game


# --------------------------------------------------------------------------------------------
# Writing


def submit(
    *,
    game_id: int,
    command: c.Command,
    issuer: str,
    client_id: str | None = None,
    now: float | None = None,
    holder: str | None = None,
    publish_events: bool = True,
) -> Outcome:
    """Decide ``command`` against the game's current state and append what it causes.

    With a ``client_id`` the outcome is recorded under ``(game, issuer, client_id)``: a retried
    id returns the recorded outcome and changes nothing. With a ``holder`` (a player id) the
    command is refused as ``seat_lost`` unless that player still holds the actor's seat: a
    connection opened for a seat the instructor has since given away acts for nobody.
    With ``publish_events=False`` the caller publishes the outcome's events itself (the
    websocket consumer does, from the event loop, through ``hub.publish``).

    The common path is three statements: the events, the ``Game`` projection and the command
    record. The cached state is trusted until the database disagrees: a state another
    process has overtaken makes the insert of the next seq fail (then the state is reloaded
    and the command decided again), and a refusal is confirmed against the stored log before
    it is given. A retried command id is found the same way, by the unique record it cannot
    add a second time.

    Never raises for a refused command (the outcome says why); raises ``GameNotFoundError``
    for an unknown game.
    """
    request = Request(game_id, command, issuer, client_id, holder)
    for attempt in range(MAX_WRITE_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * attempt))
        try:
            with transaction.atomic():
                latest = _lock_games([game_id])
                outcome = _write(request, now, {}, latest, publish_events)
        except IntegrityError:
            # The command id was answered before, or another writer took the next seq first.
            if client_id is not None:
                answered = _recorded(game_id, issuer, client_id)
                if answered is not None:
                    return answered
            state_cache.forget(game_id)
            continue
        return outcome
    logger.warning("game %s: gave up on %s after %d races", game_id, command, MAX_WRITE_ATTEMPTS)
    return Outcome(
        accepted=False,
        last_seq=load_state(game_id).seq,
        code="busy",
        message="The game is very busy right now; please try again.",
    )


@dataclass(frozen=True, slots=True)
class Request:
    """A command for ``submit_many``, with what ``submit`` takes besides it."""

    game_id: int
    command: c.Command
    issuer: str
    client_id: str | None = None
    holder: str | None = None


def submit_many(requests: Sequence[Request], now: float | None = None) -> list[Outcome | Exception]:
    """``submit`` several commands, of one game or several, in one transaction: what a
    server process's connections sent while the previous batch was being written (one hop
    to the database thread and one commit for all of them). The events are not published:
    the caller publishes each outcome's events.

    The result holds, in order, each request's outcome, or the exception ``submit`` raised
    for it (``GameNotFoundError``). When anything in the batch fails (a race for a seq, a
    retried command id, an unknown game), the batch is rolled back and each request is
    submitted on its own, so one request never changes another's answer.

    On PostgreSQL, outside a transaction, a batch (of one command too) whose commands can be
    decided from the states this process holds goes as one statement, its own transaction:
    the row locks, the inserts and the games' update together, one round trip where a
    transaction takes four (begin, locks, rows, commit). The cached states are trusted as on
    SQLite: a state another process has overtaken makes the insert of its next seq fail, and
    the batch then goes in a transaction, which checks the states against the locked rows.
    So does a batch that needs the database to decide (a state to load after an earlier
    command of the batch wrote to that game), moves seats, or records a refusal in a game
    where it writes no event (that game's row would be locked out of order).
    """
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
    ):
        try:
            return _submit_in_one_statement(requests, now)
        except (_NeedsTransaction, IntegrityError, GameNotFoundError):
            # Nothing was written, and the states this process holds are committed ones
            # (behind at worst): the transaction below brings them up to the locked rows.
            pass
        except OperationalError as failure:
            if not _deadlocked(failure):
                raise
    try:
        if len(requests) > 1:
            with transaction.atomic():
                latest = _lock_games(sorted({r.game_id for r in requests}))
                working: dict[int, GameState] = {}
                sink = _Rows()
                results: list[Outcome | Exception] = [
                    _write(r, now, working, latest, False, sink) for r in requests
                ]
                sink.flush()
                return results
    except (IntegrityError, GameNotFoundError):
        # A state loaded after an earlier request of the batch wrote may have been cached: it
        # holds events the rollback took back.
        _forget_states(requests)
    except BaseException:
        _forget_states(requests)
        raise
    one_by_one: list[Outcome | Exception] = []
    for request in requests:
        try:
            one_by_one.append(
                submit(
                    game_id=request.game_id,
                    command=request.command,
                    issuer=request.issuer,
                    client_id=request.client_id,
                    now=now,
                    holder=request.holder,
                    publish_events=False,
                )
            )
        except GameNotFoundError as missing:
            one_by_one.append(missing)
    return one_by_one


def _deadlocked(failure: OperationalError) -> bool:
    """Whether PostgreSQL chose ``failure``'s statement to break a deadlock (it wrote
    nothing)."""
    return getattr(failure.__cause__, "sqlstate", None) == "40P01"


class _NeedsTransaction(Exception):
    """A batch cannot go as one statement (see ``submit_many``); nothing was written."""


def _submit_in_one_statement(
    requests: Sequence[Request], now: float | None
) -> list[Outcome | Exception]:
    """``submit_many``'s batch as one statement in autocommit (PostgreSQL). Raises
    ``_NeedsTransaction`` before writing anything when it cannot, ``IntegrityError`` and
    ``GameNotFoundError`` as the transaction would."""
    working: dict[int, GameState] = {}
    sink = _Rows(alone=True)
    results: list[Outcome | Exception] = [
        _write(r, now, working, None, False, sink) for r in requests
    ]
    sink.flush_alone()
    for callback in sink.after_commit:
        callback()
    return results


def _forget_states(requests: Iterable[Request]) -> None:
    for game_id in {r.game_id for r in requests}:
        state_cache.forget(game_id)


def _lock_games(game_ids: Sequence[int]) -> dict[int, int] | None:
    """Where the database has row locks, lock the games' rows (in id order, so that writers
    of several games cannot deadlock) and return each one's last seq; None elsewhere (SQLite
    serialises whole write transactions). Raises ``GameNotFoundError`` for a missing game."""
    if not connection.features.has_select_for_update:
        return None
    rows: dict[int, int] = dict(
        _run(_lock_statement(len(game_ids), connection.vendor), sorted(game_ids), fetch=True)
    )
    for game_id in game_ids:
        if game_id not in rows:
            raise GameNotFoundError(game_id)
    return rows


@functools.cache
def _lock_statement(games: int, vendor: str) -> str:
    """``_lock_games``'s ``SELECT ... FOR UPDATE`` of ``games`` rows, made once per count."""
    return "SELECT {id}, {last_seq} FROM {table} WHERE {id} IN ({ids}) ORDER BY {id} FOR UPDATE".format(
        id=_column(Game, "id"),
        last_seq=_column(Game, "last_seq"),
        table=connection.ops.quote_name(Game._meta.db_table),
        ids=", ".join(["%s"] * games),
    )


def _write(
    request: Request,
    now: float | None,
    working: dict[int, GameState],
    latest: dict[int, int] | None,
    publish_events: bool,
    sink: _Rows | None = None,
) -> Outcome:
    """Decide and append one request in the caller's transaction (or in the batch's one
    statement, with a ``sink`` that goes alone). ``working`` holds the states this batch has
    written (and gets this request's); ``latest`` the locked rows' last seqs (see
    ``_lock_games``). Raises ``IntegrityError`` when another writer took the next seq or the
    command id is recorded already, ``GameNotFoundError`` for a game without a log."""
    game_id, command = request.game_id, request.command
    trusted = working.get(game_id)
    cached = trusted if trusted is not None else state_cache.get(game_id)
    if trusted is None and cached is not None and latest is not None:
        # The row's seq tells whether the cached state is still the latest once the lock
        # is ours; the events another process wrote since are often in this process
        # already (published to its connections), which spares reading them again.
        cached = _brought_up_to(game_id, cached, latest[game_id])
    state = cached if cached is not None else _load_after_flush(game_id, sink)
    moment = time.time() if now is None else now
    try:
        try:
            events = _decide_for(state, command, moment, request.holder)
        except RuleViolation:
            if cached is None:
                raise
            # Refuse only what the stored log refuses.
            state = _load_after_flush(game_id, sink)
            events = _decide_for(state, command, moment, request.holder)
    except RuleViolation as refusal:
        if request.client_id is not None and refusal.code not in PASSING_REFUSALS:
            _record_command(
                game_id, request.issuer, request.client_id, command, state.seq, refusal, sink
            )
        return Outcome(
            accepted=False, last_seq=state.seq, code=refusal.code, message=refusal.message
        )
    stored, after = _append(
        game_id, state, events, request.issuer, request.client_id, command, publish_events, sink
    )
    working[game_id] = after
    return Outcome(accepted=True, last_seq=after.seq, events=tuple(stored), state=after)


def _brought_up_to(game_id: int, state: GameState, seq: int) -> GameState | None:
    """``state`` folded forward to ``seq`` with the events this process holds in memory, or
    None when it lacks some (or ``state`` is past ``seq``)."""
    if state.seq == seq:
        return state
    missing = frames.recent_between(game_id, state.seq, seq) if state.seq < seq else None
    if missing is None:
        return None
    for _, event in missing:
        state = evolve(state, event)
    return state


def _load_after_flush(game_id: int, sink: _Rows | None) -> GameState:
    """``load_state`` once the batch's rows so far are written (it reads the database).
    Raises ``_NeedsTransaction`` for a batch going as one statement that has rows of this
    game already (they are written only at its end)."""
    if sink is not None:
        if sink.alone:
            if game_id in sink.games:
                raise _NeedsTransaction
        else:
            sink.flush()
    return load_state(game_id)


def _decide_for(
    state: GameState, command: c.Command, moment: float, holder: str | None
) -> list[e.Event]:
    """``decide``, refusing first a connection whose player lost the seat. Raises
    ``RuleViolation``."""
    if holder is not None:
        _check_holder(state, command.actor, holder)
    return list(decide(state, command, moment))


def _recorded(game_id: int, issuer: str, client_id: str) -> Outcome | None:
    record = GameCommand.objects.filter(game_id=game_id, issuer=issuer, client_id=client_id).first()
    if record is None:
        return None
    return Outcome(
        accepted=record.accepted,
        last_seq=record.last_seq or 0,
        code=record.code,
        message=record.message,
        replayed=True,
    )


def _check_holder(state: GameState, seat: str, holder: str) -> None:
    """Raises ``RuleViolation`` (``seat_lost``) unless ``holder`` holds ``seat``."""
    held = state.seats.get(seat)
    if held is None or held.bot or held.player != holder:
        raise RuleViolation(
            "seat_lost",
            "You no longer hold this seat: the instructor has given it to someone else.",
        )


def _record_command(
    game_id: int,
    issuer: str,
    client_id: str,
    command: c.Command,
    last_seq: int,
    refusal: RuleViolation | None = None,
    sink: _Rows | None = None,
) -> None:
    """Store what became of a command id: applied up to ``last_seq``, or ``refusal`` (now, or
    with the rest of a batch's rows in ``sink``)."""
    rows = sink if sink is not None else _Rows()
    rows.commands.append(
        (
            game_id,
            issuer,
            client_id,
            command.NAME,
            refusal is None,
            last_seq,
            refusal.code if refusal else "",
            refusal.message if refusal else "",
        )
    )
    if sink is None:
        rows.flush()


#: The columns ``_Rows`` writes, as the models name them.
EVENT_FIELDS = ("game", "seq", "type", "payload", "created")
COMMAND_FIELDS = (
    "game",
    "issuer",
    "client_id",
    "name",
    "accepted",
    "last_seq",
    "code",
    "message",
    "created",
)


class _Rows:
    """The rows a batch has decided and not yet written: written together by ``flush``, one
    statement per table, with one ``Game`` projection per game. ``flush`` raises
    ``IntegrityError`` as the single writes would.

    ``alone``: the rows of a batch written by ``flush_alone`` as one statement outside a
    transaction; what must wait for the commit waits in ``after_commit``."""

    def __init__(self, alone: bool = False) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.commands: list[tuple[Any, ...]] = []
        self.games: dict[int, tuple[GameState, list[StoredEvent]]] = {}
        self.alone = alone
        self.after_commit: list[Callable[[], None]] = []

    def on_commit(self, callback: Callable[[], None]) -> None:
        if self.alone:
            self.after_commit.append(callback)
        else:
            transaction.on_commit(callback)

    def flush_alone(self) -> None:
        """Write every row as one statement, its own transaction, the games' rows locked
        first in id order (as ``_lock_games`` does). Raises ``_NeedsTransaction`` (writing
        nothing) for rows that need more than one statement (seats to move, more rows than
        one ``INSERT`` takes) and for a command record of a game without events here: its
        foreign key would lock that game's row at the commit, after the others, out of
        order. Raises ``IntegrityError`` as ``flush`` does."""
        if len(self.events) > INSERT_ROWS or len(self.commands) > INSERT_ROWS:
            raise _NeedsTransaction
        if any(row[0] not in self.games for row in self.commands):
            raise _NeedsTransaction
        moves_seats = (e.SeatTaken, e.SeatReleased)
        for _, stored in self.games.values():
            if any(isinstance(item.event, moves_seats) for item in stored):
                raise _NeedsTransaction
        events, commands, written = self._take()
        if written:
            _write_together(events, commands, written, locked=True)

    def add(self, game_id: int, after: GameState, stored: list[StoredEvent]) -> None:
        self.events.extend((game_id, s.seq, s.event.TYPE, s.payload) for s in stored)
        earlier = self.games.get(game_id)
        self.games[game_id] = (after, [*(earlier[1] if earlier else []), *stored])

    def _take(
        self,
    ) -> tuple[
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[int, GameState, list[StoredEvent]]],
    ]:
        """The rows to write (events, command records, games), emptied from here."""
        # One moment for the whole batch, prepared for the database once.
        created = _created_field().get_db_prep_save(timezone.now(), connection)
        events = [(*row, created) for row in self.events]
        commands = [(*row, created) for row in self.commands]
        written = [(game_id, after, stored) for game_id, (after, stored) in self.games.items()]
        self.events, self.commands, self.games = [], [], {}
        return events, commands, written

    def flush(self) -> None:
        events, commands, written = self._take()
        if (
            written
            and connection.vendor == "postgresql"
            and len(events) <= INSERT_ROWS
            and len(commands) <= INSERT_ROWS
        ):
            _write_together(events, commands, written)
        else:
            if events:
                _insert(GameEvent, EVENT_FIELDS, events)
            if commands:
                _insert(GameCommand, COMMAND_FIELDS, commands)
            if written:
                _run(*_projection_with(written))
        # Then the seats of the games whose seats changed.
        for game_id, _, stored in written:
            _project_seats(game_id, stored)


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column is not None, name
    return field


@functools.cache
def _created_field() -> models.Field[Any, Any]:
    return _field(GameEvent, "created")


def _column(model: type[models.Model], name: str) -> str:
    return connection.ops.quote_name(str(_field(model, name).column))


#: At most this many rows per ``INSERT`` statement (databases limit a statement's parameters).
INSERT_ROWS = 200


@functools.cache
def _insert_statement(
    model: type[models.Model], fields: tuple[str, ...], rows: int, vendor: str
) -> tuple[str, tuple[tuple[int, models.Field[Any, Any]], ...]]:
    """The ``INSERT`` of ``rows`` rows for ``_insert`` on a database ``vendor`` (quoting
    differs), and the JSON columns it must prepare: made once per process and row count."""
    row = "({})".format(", ".join(["%s"] * len(fields)))
    sql = "INSERT INTO {} ({}) VALUES {}".format(
        connection.ops.quote_name(model._meta.db_table),
        ", ".join(_column(model, name) for name in fields),
        ", ".join([row] * rows),
    )
    json_columns = tuple(
        (index, field)
        for index, field in enumerate(_field(model, name) for name in fields)
        if isinstance(field, models.JSONField)
    )
    return sql, json_columns


def _insert(model: type[models.Model], fields: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (values of ``fields``, in order) into ``model``'s table with one
    statement (per ``INSERT_ROWS``): one round trip, one parse by the database and one step
    of the database thread, instead of the ORM's compiling and sending a statement per row.
    Values go to the database as given (ids, text, numbers, booleans, and moments already
    prepared by their field), except JSON, which its field prepares here as the ORM does.
    Raises ``IntegrityError`` for a row that breaks a constraint."""
    for start in range(0, len(rows), INSERT_ROWS):
        _run(*_insert_with(model, fields, rows[start : start + INSERT_ROWS]))


def _insert_with(
    model: type[models.Model], fields: Sequence[str], rows: list[tuple[Any, ...]]
) -> tuple[str, list[Any]]:
    """The ``INSERT`` of ``rows`` (at most ``INSERT_ROWS``) and its parameters."""
    sql, json_columns = _insert_statement(model, tuple(fields), len(rows), connection.vendor)
    params: list[Any] = []
    for row in rows:
        if json_columns:
            values = list(row)
            for index, field in json_columns:
                values[index] = field.get_db_prep_save(values[index], connection)
            params.extend(values)
        else:
            params.extend(row)
    return sql, params


def _write_together(
    events: list[tuple[Any, ...]],
    commands: list[tuple[Any, ...]],
    written: Sequence[tuple[int, GameState, Sequence[StoredEvent]]],
    locked: bool = False,
) -> None:
    """A batch's rows on PostgreSQL in one statement: the inserts of events and command
    records as data-modifying ``WITH`` clauses of the ``Game`` projection's ``UPDATE`` (which
    PostgreSQL runs to completion whether or not the ``UPDATE`` reads them), so one round
    trip and one parse instead of three. With ``locked``, the statement locks the games'
    rows itself, in id order, before the ``UPDATE`` reaches them (the ``UPDATE`` takes its
    rows from the locking clause). Raises ``IntegrityError`` as the separate statements
    would."""
    clauses: list[str] = []
    params: list[Any] = []
    if locked:
        game_ids = sorted(game_id for game_id, _, _ in written)
        clauses.append(f"locked AS ({_lock_statement(len(game_ids), connection.vendor)})")
        params += game_ids
    for name, model, fields, rows in (
        ("new_events", GameEvent, EVENT_FIELDS, events),
        ("new_commands", GameCommand, COMMAND_FIELDS, commands),
    ):
        if rows:
            sql, values = _insert_with(model, fields, rows)
            clauses.append(f"{name} AS ({sql})")
            params += values
    update, values = _projection_with(written, locked)
    _run(f"WITH {', '.join(clauses)} {update}" if clauses else update, params + values)


def _run(statement: str, params: Sequence[Any], fetch: bool = False) -> list[tuple[Any, ...]]:
    """Run one of the statements this module builds (``%s`` placeholders, no other ``%``);
    with ``fetch``, return its rows. Raises what the database raises (``IntegrityError``...).

    On PostgreSQL the statement goes with PostgreSQL's own ``$1, $2, ...`` placeholders
    through a cursor that sends it as it is: psycopg's usual cursor looks for ``%s`` in
    every statement it runs and keeps what it found only for statements of at most 50
    parameters, so it searched each batch's statement (a few hundred parameters) again:
    0.5 ms of the database thread for a batch of 8 chats, 2.3 ms for one of 24, about
    half the thread's time (``bench/README.md``). Not where queries are logged (``DEBUG``,
    Django's query-counting tools), whose log formats statements with ``%s``."""
    if connection.vendor == "postgresql" and not connection.queries_logged:
        # What Django's ``connection.cursor()`` does before making its own cursor.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        connection.validate_thread_sharing()
        with connection.wrap_database_errors:
            raw: Any = psycopg.RawCursor(connection.connection)
        cursor = connection.make_cursor(raw)
        statement = _numbered(statement)
    else:
        cursor = connection.cursor()
    with cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if fetch else []


@functools.lru_cache(maxsize=256)
def _numbered(statement: str) -> str:
    """``statement`` with its ``%s`` placeholders numbered ``$1, $2, ...`` for PostgreSQL."""
    pieces = statement.split("%s")
    return pieces[0] + "".join(f"${number}{piece}" for number, piece in enumerate(pieces[1:], 1))


def _append(
    game_id: int,
    state: GameState,
    events: Sequence[e.Event],
    issuer: str,
    client_id: str | None,
    command: c.Command | None,
    publish_events: bool = True,
    sink: _Rows | None = None,
) -> tuple[list[StoredEvent], GameState]:
    """Append ``events`` after ``state`` (in the caller's transaction; with a ``sink``, when
    the batch flushes it), published on commit unless ``publish_events`` is false. Raises
    ``IntegrityError`` when another writer got there first or the command id is recorded
    already."""
    stored: list[StoredEvent] = []
    after = state
    for event in events:
        after = evolve(after, event)
        stored.append(StoredEvent(after.seq, event, e.event_to_dict(event)))
    rows = sink if sink is not None else _Rows()
    rows.add(game_id, after, stored)
    if client_id is not None and command is not None:
        _record_command(game_id, issuer, client_id, command, after.seq, sink=rows)
    if sink is None:
        rows.flush()
    # Cached and published only once the events are stored for good.
    rows.on_commit(lambda: state_cache.put(game_id, after))
    if stored and publish_events:
        rows.on_commit(lambda: publish(game_id, stored))
    return stored, after


#: The ``Game`` columns the projection sets, from a game's state.
PROJECTED = ("status", "phase", "deadline", "last_seq")


def _projection_with(
    written: Sequence[tuple[int, GameState, Sequence[StoredEvent]]],
    locked: bool = False,
) -> tuple[str, list[Any]]:
    """The ``UPDATE`` that brings the ``Game`` rows of the ``written`` games (at least one) in
    line with the states their new events lead to, one statement for all, and its
    parameters; with ``locked``, of the rows of a ``WITH`` clause named ``locked``."""
    rows = [
        (game_id, (_status_of(state), state.phase, state.deadline, state.seq))
        for game_id, state, _ in written
    ]
    statement = _projection_statement(len(rows), connection.vendor, locked)
    if len(rows) == 1:
        [(game_id, values)] = rows
        return statement, [*values] if locked else [*values, game_id]
    params: list[Any] = []
    for column in range(len(PROJECTED)):
        for game_id, values in rows:
            params += (game_id, values[column])
    if not locked:
        params += (game_id for game_id, _ in rows)
    return statement, params


@functools.cache
def _projection_statement(games: int, vendor: str, locked: bool = False) -> str:
    """The ``UPDATE`` of ``_projection_with`` for ``games`` games on a database ``vendor``, made
    once per process and count: for several games, each column is a ``CASE`` on the id (cast
    to the column's type, so that a column of NULLs is still of its type)."""
    quote = connection.ops.quote_name
    table = quote(Game._meta.db_table)
    key = _column(Game, "id")
    if locked:
        where = f"{key} IN (SELECT {key} FROM locked)"
    else:
        where = f"{key} = %s" if games == 1 else f"{key} IN ({', '.join(['%s'] * games)})"
    if games == 1:
        assignments = ", ".join(f"{_column(Game, name)} = %s" for name in PROJECTED)
        return f"UPDATE {table} SET {assignments} WHERE {where}"
    cases = []
    for name in PROJECTED:
        cast = _field(Game, name).cast_db_type(connection)
        whens = " ".join([f"WHEN %s THEN CAST(%s AS {cast})"] * games)
        cases.append(f"{_column(Game, name)} = CASE {key} {whens} END")
    return f"UPDATE {table} SET {', '.join(cases)} WHERE {where}"


def _status_of(state: GameState) -> str:
    if state.phase == LOBBY:
        return Game.Status.LOBBY.value
    if state.phase == ENDED:
        return Game.Status.ENDED.value
    return Game.Status.ACTIVE.value


def _project_seats(game_id: int, stored: Iterable[StoredEvent]) -> None:
    """Bring the game's ``Seat`` rows in line with its new seat events.

    A bot that takes a seat in the same write as the human who held it leaves it (released
    first, or replaced by the instructor) stands in for that human: ``Seat.stand_in_for``.
    A human who takes a seat is not connected yet: ``Seat.away_since`` starts now.
    """
    seat_events = [
        item.event for item in stored if isinstance(item.event, e.SeatTaken | e.SeatReleased)
    ]
    if not seat_events:
        return
    rows = {
        row.key: row
        for row in Seat.objects.filter(game_id=game_id, key__in={ev.seat for ev in seat_events})
    }
    #: The human each seat lost earlier in this write.
    left_by: dict[str, Any] = {}
    moment = timezone.now()
    for event in seat_events:
        row = rows.get(event.seat)
        if row is None:
            continue
        if isinstance(event, e.SeatReleased):
            if row.player_id is not None:
                left_by[row.key] = row.player_id
            row.player_id, row.bot, row.display_name = None, False, ""
            row.stand_in_for_id, row.away_since = None, None
        elif event.bot:
            replaced = row.player_id or left_by.get(row.key)
            row.stand_in_for_id = replaced if replaced is not None else row.stand_in_for_id
            row.player_id, row.bot, row.display_name = None, True, event.name
            row.away_since = None
        else:
            row.player_id, row.bot, row.display_name = _player_id(event.player), False, event.name
            row.stand_in_for_id, row.away_since = None, moment
    for row in rows.values():
        row.save(update_fields=["player", "bot", "display_name", "stand_in_for", "away_since"])


def _player_id(value: str) -> str | None:
    """The ``Player`` id a seat event names, or None when it names no stored player."""
    try:
        uuid.UUID(value)
    except ValueError:
        return None
    return value if Player.objects.filter(pk=value).exists() else None


def events_message(game_id: int, stored: Sequence[StoredEvent]) -> dict[str, Any]:
    """The group message that carries new events of a game (``hub`` reads it)."""
    return {
        "type": "game.events",
        "game": game_id,
        "events": [[s.seq, s.payload] for s in stored],
    }


def publish(game_id: int, stored: Sequence[StoredEvent]) -> None:
    """Send new events to the game's group (from synchronous code). A failure is logged, not
    raised: every client finds a missed event by its seq and fetches it."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(game_id), events_message(game_id, stored))
    except Exception:
        logger.exception("game %s: could not publish events %s..", game_id, stored[0].seq)


# --------------------------------------------------------------------------------------------
# Games and seats


def new_code() -> str:
    """A join code no game uses yet."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not Game.objects.filter(code=code).exists():
            return code


def create_game(
    *,
    scenario: Scenario,
    settings: GameDefaults | None = None,
    created_by: Any = None,
    bot_seats: Sequence[str] = (),
    public: bool = False,
    bot_fill_after: int | None = None,
) -> Game:
    """A new game of ``scenario`` in the lobby, with bots in ``bot_seats``. A ``public`` game is
    a remote match, listed in the public lobby; ``bot_fill_after`` seconds after its creation
    bots take the seats still empty (see ``fill_match``).

    Raises ``ScenarioError`` for a stored definition the engine refuses and ``KeyError`` for a
    bot seat that is not a member of the scenario.
    """
    engine_scenario = scenario_from_dict(scenario.definition)
    members = {m.key: m for m in engine_scenario.members}
    for seat in bot_seats:
        if seat not in members:
            raise KeyError(seat)
    created = create_log(engine_scenario, settings)
    with transaction.atomic():
        game = Game.objects.create(
            code=new_code(),
            scenario=scenario,
            host_token=secrets.token_urlsafe(24),
            created_by=created_by if getattr(created_by, "pk", None) else None,
            last_seq=1,
            public=public,
            bot_fill_after=bot_fill_after,
        )
        Seat.objects.bulk_create(
            [
                Seat(game=game, key=m.key, role=m.role, country=m.country, order=order)
                for order, m in enumerate(engine_scenario.members)
            ]
        )
        GameEvent.objects.create(
            game=game, seq=1, type=created.TYPE, payload=e.event_to_dict(created)
        )
    for seat in bot_seats:
        outcome = submit(
            game_id=game.pk,
            command=c.TakeSeat(c.SYSTEM, seat, BOT_PLAYER, bot=True, name=BOT_NAME),
            issuer=SYSTEM_ISSUER,
        )
        assert outcome.accepted, outcome
    game.refresh_from_db()
    return game


def seat_of(game: Game, player: Player | None) -> Seat | None:
    """The seat ``player`` holds in ``game``, if any."""
    if player is None:
        return None
    return Seat.objects.filter(game=game, player=player).first()


def take_seat(*, game: Game, player: Player, seat_key: str | None) -> Outcome:
    """Seat ``player`` at ``seat_key``, or at the first free seat when it is None.

    A player holds at most one seat per game: one already seated gets its seat back unchanged,
    and one a bot stands in for gets that seat back. A remote match is filled with bots when
    due and starts once every seat is taken.
    Never raises for a refusal (``seat_taken``, ``no_free_seat``, ``unknown_seat``...).
    """
    current = seat_of(game, player)
    kept = Seat.objects.filter(game=game, stand_in_for=player, bot=True).first()
    held = current or kept
    if held is not None:
        if seat_key is not None and seat_key != held.key:
            return _refused(
                game.last_seq,
                "already_seated",
                f"You already hold the seat {held.key} in this game.",
            )
        if current is not None:
            return Outcome(accepted=True, last_seq=game.last_seq)
        return _give_back(game.pk, held.key, player_id=str(player.pk), connected=False)
    if seat_key is None:
        free = Seat.objects.filter(game=game, player__isnull=True, bot=False).order_by("order")
        first = free.first()
        if first is None:
            return _refused(game.last_seq, "no_free_seat", "Every seat in this game is taken.")
        seat_key = first.key
    command = c.TakeSeat(c.SYSTEM, seat_key, str(player.pk), bot=False, name=player.display_name)
    return _transact(
        main=game.pk, plan=lambda _: [(game.pk, command)], issuer=f"player:{player.pk}"
    )


def _refused(last_seq: int, code: str, message: str) -> Outcome:
    return Outcome(accepted=False, last_seq=last_seq, code=code, message=message)


# --------------------------------------------------------------------------------------------
# Several commands in one transaction: seat hand-offs, moves, remote matches

#: The player id and display name of a bot in the seat events.
BOT_PLAYER = "bot"
BOT_NAME = "Bot"
#: A bot standing in for someone is shown as "<their name> (bot)".
STAND_IN_SUFFIX = " (bot)"

Step = tuple[int, c.Command]


@dataclass(slots=True)
class _Tables:
    """What a plan sees under the locks of its games: their rows and current states."""

    games: dict[int, Game]
    states: dict[int, GameState]
    now: float


Plan = Callable[[_Tables], Sequence[Step]]

#: Called with a game's id after a commit of ``_transact`` changed it (the runtime listens, to
#: time the deadline and wake the bots of writes made outside it, like a page's).
_write_listeners: list[Callable[[int], None]] = []


def listen_to_writes(callback: Callable[[int], None]) -> None:
    """Call ``callback(game_id)`` after every seat hand-off, move or match write commits."""
    if callback not in _write_listeners:
        _write_listeners.append(callback)


def _transact(
    *,
    main: int,
    plan: Plan,
    issuer: str,
    also: Sequence[int] = (),
    extra: Callable[[_Tables], None] | None = None,
    now: float | None = None,
) -> Outcome:
    """Decide ``plan``'s commands, in order, against the current states of ``main`` (and the
    games in ``also``), holding the locks of their rows, and append all they cause in one
    transaction; ``extra`` then writes what is not in the log (same transaction). A remote
    match in its lobby is also filled with bots when due and started once every seat is held.

    The plan refuses by raising ``RuleViolation``; the outcome carries its code, or that of the
    first command the rules refuse (nothing is written then). The outcome's events and state
    are ``main``'s. Never raises for a refusal; raises ``GameNotFoundError`` for an unknown game.
    """
    ids = sorted({main, *also})
    for attempt in range(MAX_WRITE_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * attempt))
        try:
            with transaction.atomic():
                games = {
                    game.pk: game
                    for game in Game.objects.select_for_update().filter(pk__in=ids).order_by("pk")
                }
                if len(games) != len(ids):
                    raise GameNotFoundError(main)
                before = {game_id: load_state(game_id) for game_id in ids}
                tables = _Tables(games, dict(before), time.time() if now is None else now)
                caused: dict[int, list[e.Event]] = {game_id: [] for game_id in ids}
                try:
                    for game_id, command in plan(tables):
                        _decide_into(tables, caused, game_id, command)
                    for game_id in ids:
                        for command in _match_steps(
                            games[game_id], tables.states[game_id], tables.now
                        ):
                            _decide_into(tables, caused, game_id, command)
                except RuleViolation as refusal:
                    return _refused(before[main].seq, refusal.code, refusal.message)
                written: dict[int, list[StoredEvent]] = {}
                for game_id in ids:
                    if caused[game_id]:
                        written[game_id], _ = _append(
                            game_id, before[game_id], caused[game_id], issuer, None, None
                        )
                if extra is not None:
                    extra(tables)
                if written:
                    transaction.on_commit(functools.partial(_tell_listeners, list(written)))
        except IntegrityError:
            for game_id in ids:
                state_cache.forget(game_id)
            continue
        after = tables.states[main]
        return Outcome(
            accepted=True, last_seq=after.seq, events=tuple(written.get(main, ())), state=after
        )
    logger.warning("game %s: gave up on a seat change after %d races", main, MAX_WRITE_ATTEMPTS)
    return _refused(
        load_state(main).seq, "busy", "The game is very busy right now; please try again."
    )


def _decide_into(
    tables: _Tables, caused: dict[int, list[e.Event]], game_id: int, command: c.Command
) -> None:
    """Raises ``RuleViolation`` when the rules refuse ``command``."""
    state = tables.states[game_id]
    events = decide(state, command, tables.now)
    for event in events:
        state = evolve(state, event)
    tables.states[game_id] = state
    caused[game_id].extend(events)


def _tell_listeners(game_ids: Sequence[int]) -> None:
    for game_id in game_ids:
        for listener in list(_write_listeners):
            try:
                listener(game_id)
            except Exception:
                logger.exception("game %s: a write listener failed", game_id)


def _match_steps(game: Game, state: GameState, now: float) -> list[c.Command]:
    """What a remote match in its lobby does by itself: once its wait is over, bots take the
    seats still empty; once every seat is held, it starts. Only while a person holds a seat:
    a match nobody plays in stays open for people instead of playing itself."""
    if not game.public or state.phase != LOBBY:
        return []
    if all(holder.bot for holder in state.seats.values()):
        return []
    empty = [m.key for m in state.scenario.members if m.key not in state.seats]
    steps: list[c.Command] = []
    if empty and fill_due(game, now):
        steps = [c.TakeSeat(c.SYSTEM, key, BOT_PLAYER, bot=True, name=BOT_NAME) for key in empty]
        empty = []
    if not empty:
        steps.append(c.StartGame(c.INSTRUCTOR))
    return steps


def fill_due(game: Game, now: float) -> bool:
    """Whether the wait before bots fill ``game``'s empty seats is over."""
    return game.bot_fill_after is not None and game.created.timestamp() + game.bot_fill_after <= now


def _member_keys(state: GameState) -> set[str]:
    return {m.key for m in state.scenario.members}


def _seat_row(game_id: int, seat_key: str) -> Seat:
    """Raises ``RuleViolation`` (``unknown_seat``) when the game has no such seat."""
    row = Seat.objects.filter(game_id=game_id, key=seat_key).first()
    if row is None:
        raise RuleViolation("unknown_seat", f"This game has no seat {seat_key!r}.")
    return row


# --------------------------------------------------------------------------------------------
# Seat hand-offs (the instructor's controls and the grace period of remote matches)


def hand_to_bot(*, game: Game, seat_key: str, strategy: str = "") -> Outcome:
    """A bot takes ``seat_key`` (the engine's ``ReleaseSeat`` then ``TakeSeat`` with
    ``bot=True``, in one write); the player who held it is remembered in ``Seat.stand_in_for``
    to get it back with ``give_back``. ``strategy`` (a key of the engine's strategy registry for
    the seat's role) is stored in ``Seat.bot_strategy`` when given. An empty seat simply gets a
    bot.

    Never raises for a refusal (``unknown_seat``, ``already_bot``, ``game_ended``,
    ``unknown_strategy``); raises ``GameNotFoundError`` for a game without a log.
    """
    return _hand_to_bot(game.pk, seat_key, strategy=strategy, away_before=None)


def hand_over_absent_seat(*, game_id: int, seat_key: str, away_before: Any) -> Outcome:
    """The grace period is over: a bot takes ``seat_key`` if its holder is still away, and has
    been since ``away_before`` (a datetime) or earlier; checked under the game's lock, so of
    several processes whose timers fire only one hands the seat over.

    Never raises for a refusal (``not_away`` when the holder came back, or the codes of
    ``hand_to_bot``); raises ``GameNotFoundError`` for an unknown game.
    """
    return _hand_to_bot(game_id, seat_key, strategy="", away_before=away_before)


def _hand_to_bot(game_id: int, seat_key: str, *, strategy: str, away_before: Any) -> Outcome:
    def plan(tables: _Tables) -> list[Step]:
        state = tables.states[game_id]
        row = _seat_row(game_id, seat_key)
        if state.ended:
            raise RuleViolation("game_ended", "The game is over.")
        problem = strategy_problem(row.role, strategy)
        if problem:
            raise RuleViolation("unknown_strategy", problem)
        holder = state.seats.get(seat_key)
        if holder is not None and holder.bot:
            raise RuleViolation("already_bot", "A bot already holds this seat.")
        if away_before is not None and (
            holder is None
            or row.player_id is None
            or str(row.player_id) != holder.player
            or row.away_since is None
            or row.away_since > away_before
        ):
            raise RuleViolation("not_away", "The seat's player is connected again.")
        steps: list[Step] = []
        name = BOT_NAME
        if holder is not None:
            steps.append((game_id, c.ReleaseSeat(c.SYSTEM, seat_key)))
            if holder.name:
                name = holder.name[: MAX_NAME - len(STAND_IN_SUFFIX)] + STAND_IN_SUFFIX
        steps.append((game_id, c.TakeSeat(c.SYSTEM, seat_key, BOT_PLAYER, bot=True, name=name)))
        return steps

    def remember_strategy(_: _Tables) -> None:
        if strategy:
            Seat.objects.filter(game_id=game_id, key=seat_key).update(bot_strategy=strategy)

    return _transact(main=game_id, plan=plan, issuer=SYSTEM_ISSUER, extra=remember_strategy)


#: The engine's longest display name.
MAX_NAME = 40


def give_back(*, game: Game, seat_key: str) -> Outcome:
    """The player a bot stands in for at ``seat_key`` takes the seat back (``ReleaseSeat`` then
    ``TakeSeat``, in one write).

    Never raises for a refusal (``unknown_seat``; ``nobody_to_give_back`` when no bot stands in
    for anyone there; ``already_seated`` when that player holds another seat of the game now);
    raises ``GameNotFoundError`` for a game without a log.
    """
    return _give_back(game.pk, seat_key, player_id=None, connected=False)


def _give_back(game_id: int, seat_key: str, *, player_id: str | None, connected: bool) -> Outcome:
    """``give_back``; with ``player_id`` only to that player, and ``connected`` when they are
    connected right now (their seat is not away)."""

    def plan(tables: _Tables) -> list[Step]:
        row = _seat_row(game_id, seat_key)
        owner = row.stand_in_for
        if owner is None or not row.bot or (player_id is not None and str(owner.pk) != player_id):
            raise RuleViolation("nobody_to_give_back", "No bot is keeping this seat for anyone.")
        elsewhere = Seat.objects.filter(game_id=game_id, player=owner).exclude(key=seat_key)
        if elsewhere.exists():
            raise RuleViolation(
                "already_seated", f"{owner.display_name} holds another seat of this game now."
            )
        name = owner.display_name
        return [
            (game_id, c.ReleaseSeat(c.SYSTEM, seat_key)),
            (game_id, c.TakeSeat(c.SYSTEM, seat_key, str(owner.pk), bot=False, name=name)),
        ]

    def mark_connected(_: _Tables) -> None:
        if connected:
            Seat.objects.filter(game_id=game_id, key=seat_key).update(away_since=None)

    return _transact(main=game_id, plan=plan, issuer=SYSTEM_ISSUER, extra=mark_connected)


def move_player(*, player: Player, to_game: Game, to_seat_key: str) -> Outcome:
    """``player`` leaves the seat they hold in any game of ``to_game``'s class session (or in
    ``to_game`` itself) and takes ``to_seat_key`` of ``to_game``, which must be free or held by
    a bot (the bot leaves). A bot keeping a seat of the session for them keeps playing it, no
    longer for them. Their ``SessionMember`` row follows. Moving to the seat they hold is
    accepted and changes nothing.

    Never raises for a refusal (``unknown_seat``, ``seat_taken``, ``game_ended``,
    ``other_session`` when the player is not part of ``to_game``'s session); raises
    ``GameNotFoundError`` for a game without a log.
    """
    session_id = to_game.session_id
    scope = (
        Game.objects.filter(session_id=session_id)
        if session_id is not None
        else Game.objects.filter(pk=to_game.pk)
    )
    current = Seat.objects.filter(game__in=scope, player=player, bot=False).order_by("pk").first()
    if (
        session_id is not None
        and current is None
        and not SessionMember.objects.filter(session_id=session_id, player=player).exists()
    ):
        return _refused(
            to_game.last_seq, "other_session", "This player is not in that game's class session."
        )
    if current is not None and current.game_id == to_game.pk and current.key == to_seat_key:
        return Outcome(accepted=True, last_seq=to_game.last_seq)
    also = [current.game_id] if current is not None else []

    def plan(tables: _Tables) -> list[Step]:
        state = tables.states[to_game.pk]
        if to_seat_key not in _member_keys(state):
            raise RuleViolation("unknown_seat", f"This game has no seat {to_seat_key!r}.")
        if state.ended:
            raise RuleViolation("game_ended", "That game is over.")
        steps: list[Step] = []
        if current is not None:
            held = tables.states[current.game_id].seats.get(current.key)
            if held is None or held.bot or held.player != str(player.pk):
                raise RuleViolation("seat_lost", "The player's seat changed meanwhile; try again.")
            steps.append((current.game_id, c.ReleaseSeat(c.SYSTEM, current.key)))
        holder = state.seats.get(to_seat_key)
        if holder is not None:
            if not holder.bot:
                raise RuleViolation("seat_taken", f"{holder.name or 'Someone'} holds that seat.")
            steps.append((to_game.pk, c.ReleaseSeat(c.SYSTEM, to_seat_key)))
        steps.append(
            (
                to_game.pk,
                c.TakeSeat(c.SYSTEM, to_seat_key, str(player.pk), name=player.display_name),
            )
        )
        return steps

    def follow(_: _Tables) -> None:
        Seat.objects.filter(game__in=scope, stand_in_for=player).update(stand_in_for=None)
        if session_id is not None:
            SessionMember.objects.filter(session_id=session_id, player=player).update(
                game=to_game, seat_key=to_seat_key
            )

    return _transact(main=to_game.pk, plan=plan, issuer=SYSTEM_ISSUER, also=also, extra=follow)


def strategy_problem(role: str, strategy: str) -> str:
    """Why ``strategy`` cannot play a seat of ``role`` (blank: it can; blank is the default)."""
    if not strategy:
        return ""
    registry = _strategies(role)
    if strategy not in registry:
        known = ", ".join(sorted(registry)) or "none"
        return f"No {role} bot strategy is called {strategy!r} (known: {known})."
    return ""


def _strategies(role: str) -> frozenset[str]:
    """The strategy names of the engine's registry for ``role``."""
    registry = bots.CONSTITUENT_STRATEGIES if role == "constituent" else bots.CHIEF_STRATEGIES
    return frozenset(registry)


def set_bot_strategy(*, game: Game, seat_key: str, strategy: str) -> None:
    """The strategy a bot in ``seat_key`` plays from its next move on (blank: the default).

    Raises ``KeyError`` for a seat the game does not have and ``ValueError`` for a strategy
    the engine's registry does not know for the seat's role.
    """
    row = Seat.objects.filter(game=game, key=seat_key).first()
    if row is None:
        raise KeyError(seat_key)
    problem = strategy_problem(row.role, strategy)
    if problem:
        raise ValueError(problem)
    Seat.objects.filter(pk=row.pk).update(bot_strategy=strategy)


# --------------------------------------------------------------------------------------------
# Presence: is a seat's player connected (``Seat.away_since``)


def note_arrival(*, game_id: int, player_id: str) -> bool:
    """The player connected to the game: their seat is no longer away, and in a remote match a
    bot keeping their seat gives it back. Returns whether they got a seat back.

    Takes the game's lock only when there is something to change, so it is ordered with the
    grace period's hand-over: whichever comes second sees the first. Raises nothing.
    """
    seats = Seat.objects.filter(game_id=game_id)
    away = seats.filter(player_id=player_id, bot=False, away_since__isnull=False).exists()
    kept = (
        seats.filter(stand_in_for__pk=player_id, bot=True, game__public=True)
        .exclude(game__status=Game.Status.ENDED)
        .values_list("key", flat=True)
        .first()
    )
    if kept is not None:
        return _give_back(game_id, kept, player_id=player_id, connected=True).accepted
    if away:
        with transaction.atomic():
            list(Game.objects.select_for_update().filter(pk=game_id).values_list("pk"))
            seats.filter(player_id=player_id, bot=False).update(away_since=None)
    return False


def note_departure(*, game_id: int, seat_key: str, player_id: str, since: Any) -> bool:
    """The seat's player has no connection left since ``since`` (a datetime): the seat is away
    from then, unless it already was or changed hands. Returns whether it is now away."""
    updated = Seat.objects.filter(
        game_id=game_id, key=seat_key, player_id=player_id, bot=False, away_since__isnull=True
    ).update(away_since=since)
    return updated > 0


def note_present(*, game_id: int, seat_key: str, player_id: str) -> bool:
    """A connection of the seat's player answered: the seat is not away. Returns whether it
    was marked away."""
    with transaction.atomic():
        list(Game.objects.select_for_update().filter(pk=game_id).values_list("pk"))
        updated = Seat.objects.filter(
            game_id=game_id, key=seat_key, player_id=player_id, away_since__isnull=False
        ).update(away_since=None)
    return updated > 0


# --------------------------------------------------------------------------------------------
# Remote matches

#: A quick match that opens a new match lets bots fill it after this wait (seconds).
QUICK_MATCH_BOT_WAIT = 60


def fill_match(*, game_id: int) -> Outcome:
    """The match's wait is over: bots take its empty seats (if a person holds one) and it
    starts. Nothing happens when that is done already or not due, so several processes may
    call it. Never raises for a refusal; raises ``GameNotFoundError`` for an unknown game."""
    return _transact(main=game_id, plan=lambda _: [], issuer=SYSTEM_ISSUER)


def create_match(
    *,
    scenario: Scenario,
    bot_fill_after: int | None,
    created_by: Any = None,
    settings: GameDefaults | None = None,
) -> Game:
    """A new remote match of ``scenario``, listed in the public lobby.

    Raises ``ScenarioError`` for a stored definition the engine refuses.
    """
    return create_game(
        scenario=scenario,
        settings=settings,
        created_by=created_by,
        public=True,
        bot_fill_after=bot_fill_after,
    )


def quick_match(*, player: Player, scenario: Scenario | None = None) -> tuple[Game, Outcome]:
    """Seat ``player`` in the first open remote match (of ``scenario`` when given) with a free
    seat, waiting matches first, oldest first; or in a new one when none fits (of ``scenario``,
    or the first built-in scenario), whose empty seats bots fill after ``QUICK_MATCH_BOT_WAIT``.
    A player who already holds a seat in such a match goes back to it.

    Raises ``Scenario.DoesNotExist`` when no scenario is loaded.
    """
    matches = Game.objects.filter(public=True).exclude(status=Game.Status.ENDED)
    if scenario is not None:
        matches = matches.filter(scenario=scenario)
    mine = matches.filter(seats__player=player).order_by("created").first()
    mine = mine or matches.filter(seats__stand_in_for=player).order_by("created").first()
    if mine is not None:
        return mine, take_seat(game=mine, player=player, seat_key=None)
    open_ones = (
        matches.filter(seats__player__isnull=True, seats__bot=False)
        .distinct()
        .order_by(Case(When(status=Game.Status.LOBBY, then=0), default=1), "created", "pk")
    )
    for game in open_ones.select_related("scenario")[:QUICK_MATCH_CANDIDATES]:
        outcome = take_seat(game=game, player=player, seat_key=None)
        if outcome.accepted:
            return game, outcome
    if scenario is None:
        scenario = Scenario.objects.order_by("-builtin", "title", "slug").first()
        if scenario is None:
            raise Scenario.DoesNotExist("No scenario is loaded.")
    game = create_match(scenario=scenario, bot_fill_after=QUICK_MATCH_BOT_WAIT)
    return game, take_seat(game=game, player=player, seat_key=None)


#: Matches a quick match tries (each may fill up meanwhile) before it opens a new one.
QUICK_MATCH_CANDIDATES = 10
