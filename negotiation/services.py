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

import logging
import random
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction

from accounts.models import Player
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.rules import RuleViolation, decide, evolve, fold
from negotiation.engine.rules import create_game as create_log
from negotiation.engine.scenario import GameDefaults, scenario_from_dict
from negotiation.engine.state import ENDED, LOBBY, GameState
from negotiation.models import Game, GameCommand, GameEvent, Scenario, Seat

logger = logging.getLogger(__name__)

#: Join codes use letters and digits that cannot be mistaken for one another.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
#: How often a command is decided again after losing a race for the next seq; between
#: attempts it waits a random moment, longer each time, so racing writers spread out.
MAX_WRITE_ATTEMPTS = 25
RETRY_PAUSE_SECONDS = 0.002
#: Folded states kept in memory per process.
STATE_CACHE_SIZE = 256

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

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


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
) -> Outcome:
    """Decide ``command`` against the game's current state and append what it causes.

    With a ``client_id`` the outcome is recorded under ``(game, issuer, client_id)``: a retried
    id returns the recorded outcome and changes nothing. With a ``holder`` (a player id) the
    command is refused as ``seat_lost`` unless that player still holds the actor's seat: a
    connection opened for a seat the instructor has since given away acts for nobody.

    Never raises for a refused command (the outcome says why); raises ``GameNotFoundError``
    for an unknown game.
    """
    for attempt in range(MAX_WRITE_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * attempt))
        try:
            with transaction.atomic():
                # Writers of one game queue on its row. The unique (game, seq) remains the
                # guarantee where a database has no row locks.
                if not list(Game.objects.select_for_update().filter(pk=game_id).values_list("pk")):
                    raise GameNotFoundError(game_id)
                if client_id is not None:
                    answered = _recorded(game_id, issuer, client_id)
                    if answered is not None:
                        return answered
                state = load_state(game_id)
                moment = time.time() if now is None else now
                try:
                    if holder is not None:
                        _check_holder(state, command.actor, holder)
                    events = decide(state, command, moment)
                except RuleViolation as refusal:
                    if client_id is not None:
                        _record_command(game_id, issuer, client_id, command, state.seq, refusal)
                    return Outcome(
                        accepted=False,
                        last_seq=state.seq,
                        code=refusal.code,
                        message=refusal.message,
                    )
                stored, after = _append(game_id, state, events, issuer, client_id, command)
        except IntegrityError:
            # Another writer took the next seq (or answered the same command id) first.
            state_cache.forget(game_id)
            continue
        return Outcome(accepted=True, last_seq=after.seq, events=tuple(stored), state=after)
    logger.warning("game %s: gave up on %s after %d races", game_id, command, MAX_WRITE_ATTEMPTS)
    return Outcome(
        accepted=False,
        last_seq=load_state(game_id).seq,
        code="busy",
        message="The game is very busy right now; please try again.",
    )


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
) -> None:
    """Store what became of a command id: applied up to ``last_seq``, or ``refusal``."""
    GameCommand.objects.create(
        game_id=game_id,
        issuer=issuer,
        client_id=client_id,
        name=command.NAME,
        accepted=refusal is None,
        last_seq=last_seq,
        code=refusal.code if refusal else "",
        message=refusal.message if refusal else "",
    )


def _append(
    game_id: int,
    state: GameState,
    events: Sequence[e.Event],
    issuer: str,
    client_id: str | None,
    command: c.Command,
) -> tuple[list[StoredEvent], GameState]:
    """Append ``events`` after ``state`` (in the caller's transaction). Raises
    ``IntegrityError`` when another writer got there first."""
    stored: list[StoredEvent] = []
    after = state
    for event in events:
        after = evolve(after, event)
        stored.append(StoredEvent(after.seq, event, e.event_to_dict(event)))
    GameEvent.objects.bulk_create(
        [
            GameEvent(game_id=game_id, seq=s.seq, type=s.event.TYPE, payload=s.payload)
            for s in stored
        ]
    )
    _project(game_id, after, stored)
    if client_id is not None:
        _record_command(game_id, issuer, client_id, command, after.seq)
    # Cached and published only once the events are stored for good.
    transaction.on_commit(lambda: state_cache.put(game_id, after))
    if stored:
        transaction.on_commit(lambda: publish(game_id, stored))
    return stored, after


def _project(game_id: int, state: GameState, stored: Iterable[StoredEvent]) -> None:
    """Bring ``Game`` and ``Seat`` in line with the state the new events lead to."""
    if state.phase == LOBBY:
        status = Game.Status.LOBBY
    elif state.phase == ENDED:
        status = Game.Status.ENDED
    else:
        status = Game.Status.ACTIVE
    Game.objects.filter(pk=game_id).update(
        status=status, phase=state.phase, deadline=state.deadline, last_seq=state.seq
    )
    for item in stored:
        event = item.event
        if isinstance(event, e.SeatTaken):
            player = _player_id(event.player) if not event.bot else None
            Seat.objects.filter(game_id=game_id, key=event.seat).update(
                player_id=player, bot=event.bot, display_name=event.name
            )
        elif isinstance(event, e.SeatReleased):
            Seat.objects.filter(game_id=game_id, key=event.seat).update(
                player_id=None, bot=False, display_name=""
            )


def _player_id(value: str) -> str | None:
    """The ``Player`` id a seat event names, or None when it names no stored player."""
    try:
        uuid.UUID(value)
    except ValueError:
        return None
    return value if Player.objects.filter(pk=value).exists() else None


def publish(game_id: int, stored: Sequence[StoredEvent]) -> None:
    """Send new events to the game's group. A failure is logged, not raised: every client
    finds a missed event by its seq and fetches it."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "game.events", "events": [[s.seq, s.payload] for s in stored]}
    try:
        async_to_sync(layer.group_send)(group_name(game_id), message)
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
) -> Game:
    """A new game of ``scenario`` in the lobby, with bots in ``bot_seats``.

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
            command=c.TakeSeat(c.SYSTEM, seat, BOT_ISSUER, bot=True, name="Bot"),
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

    A player holds at most one seat per game: one already seated gets its seat back unchanged.
    Never raises for a refusal (``seat_taken``, ``no_free_seat``, ``unknown_seat``...).
    """
    current = seat_of(game, player)
    if current is not None:
        if seat_key is None or seat_key == current.key:
            return Outcome(accepted=True, last_seq=game.last_seq)
        return Outcome(
            accepted=False,
            last_seq=game.last_seq,
            code="already_seated",
            message=f"You already hold the seat {current.key} in this game.",
        )
    if seat_key is None:
        free = Seat.objects.filter(game=game, player__isnull=True, bot=False).order_by("order")
        first = free.first()
        if first is None:
            return Outcome(
                accepted=False,
                last_seq=game.last_seq,
                code="no_free_seat",
                message="Every seat in this game is taken.",
            )
        seat_key = first.key
    return submit(
        game_id=game.pk,
        command=c.TakeSeat(c.SYSTEM, seat_key, str(player.pk), bot=False, name=player.display_name),
        issuer=f"player:{player.pk}",
    )
