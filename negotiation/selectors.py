"""Reads for the web shell: who a request or a connection is in a game."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Count, Q, When

from accounts.models import Player
from negotiation import services
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.visibility import SPECTATOR
from negotiation.models import Game, GameEvent, Seat

#: Session key listing the join codes of the games this browser may run (from host links).
HOST_SESSION_KEY = "ratify_host_games"


@dataclass(frozen=True, slots=True)
class Binding:
    """What a connection is bound to: a seat, the instructor or a spectator.

    ``viewer`` is what ``visibility`` filters for (a seat key, ``INSTRUCTOR`` or ``SPECTATOR``);
    ``actor`` is the engine actor of its commands (None for a spectator, who may send none);
    ``issuer`` scopes its command ids; ``player`` is the player id a seat's commands must
    still be held by; ``seq`` is the last event the binding took into account.
    """

    game_id: int
    code: str
    viewer: str
    actor: str | None
    issuer: str
    player: str | None = None
    #: The game's seq when the binding was made: seat events up to it are history.
    seq: int = 0

    @property
    def is_instructor(self) -> bool:
        return self.viewer == INSTRUCTOR


def session_player_id(session: Any) -> str | None:
    """The id of the player this session belongs to, if any (not checked against the table)."""
    player_id = session.get(Player.SESSION_KEY)
    return str(player_id) if player_id else None


def player_of(session: Any) -> Player | None:
    """The player this session belongs to, if it has joined a game before."""
    player_id = session.get(Player.SESSION_KEY)
    if not player_id:
        return None
    return Player.objects.filter(pk=player_id).first()


def is_host(game: Game, session: Any, user: Any) -> bool:
    """Whether this browser may run ``game``: staff, the instructor who created it, or the
    holder of its host link."""
    signed_in = user is not None and getattr(user, "is_authenticated", False)
    if signed_in and (user.is_staff or game.created_by_id == user.pk):
        return True
    return game.code in session.get(HOST_SESSION_KEY, [])


def binding_for(code: str, session: Any, user: Any, *, as_host: bool) -> Binding | None:
    """The binding of a new connection to the game ``code``; None when there is no such game.

    ``as_host`` asks for the instructor's view; it is granted only to a host, else the
    connection falls back to the player's seat or a spectator. Who holds which seat is read
    from the game's state, so the binding and its ``seq`` agree.
    """
    game = Game.objects.filter(code=code.upper()).first()
    if game is None:
        return None
    state = services.load_state(game.pk)
    if as_host and is_host(game, session, user):
        who = f"user-{user.pk}" if getattr(user, "is_authenticated", False) else session.session_key
        return Binding(
            game.pk, game.code, INSTRUCTOR, INSTRUCTOR, f"instructor:{who}", seq=state.seq
        )
    player_id = session_player_id(session)
    if player_id is not None:
        for key, holder in state.seats.items():
            if not holder.bot and holder.player == player_id:
                return Binding(
                    game.pk, game.code, key, key, f"player:{player_id}", player_id, state.seq
                )
    return Binding(
        game.pk, game.code, SPECTATOR, None, f"spectator:{session.session_key}", seq=state.seq
    )


@dataclass(frozen=True, slots=True)
class OpenMatch:
    """A remote match in the public lobby."""

    code: str
    scenario: str
    seats: int
    free: int
    started: bool
    #: Seconds after its creation when bots fill the empty seats; None: never.
    bot_fill_after: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "scenario": self.scenario,
            "seats": self.seats,
            "free": self.free,
            "started": self.started,
            "bot_fill_after": self.bot_fill_after,
        }


#: At most this many matches are listed in the public lobby.
OPEN_MATCHES_SHOWN = 50


def open_matches(limit: int = OPEN_MATCHES_SHOWN) -> list[OpenMatch]:
    """Remote matches not over yet: those waiting for players first, newest first."""
    games = (
        Game.objects.filter(public=True)
        .exclude(status=Game.Status.ENDED)
        .annotate(
            total=Count("seats"),
            empty=Count("seats", filter=Q(seats__player__isnull=True, seats__bot=False)),
            waiting=Case(When(status=Game.Status.LOBBY, then=0), default=1),
        )
        .order_by("waiting", "-created", "-pk")
        .values_list("code", "scenario__title", "total", "empty", "status", "bot_fill_after")
    )
    return [
        OpenMatch(code, title, total, empty, status != Game.Status.LOBBY, fill_after)
        for code, title, total, empty, status, fill_after in games[:limit]
    ]


def stood_in(game: Game, player_id: str) -> dict[str, Any] | None:
    """The last time a bot kept ``player_id``'s seat in ``game`` and gave it back, from the
    log: ``seat``, ``since`` and ``until`` (seconds since the epoch), ``until_seq`` and
    ``moves`` (the bot's events in between). None when the player holds no seat or no bot
    ever stood in for them there."""
    seat = Seat.objects.filter(game=game, player_id=player_id, bot=False).first()
    if seat is None:
        return None
    changes = list(
        GameEvent.objects.filter(
            game=game, type__in=("seat_taken", "seat_released"), payload__seat=seat.key
        )
        .order_by("seq")
        .values_list("seq", "type", "payload", "created")
    )
    taken = [
        (seq, payload, created) for seq, kind, payload, created in changes if kind == "seat_taken"
    ]
    # Walking back from the player's last taking of the seat: the bot just before it, and the
    # player's own holding just before the bot.
    for index in range(len(taken) - 1, 1, -1):
        seq, payload, created = taken[index]
        if payload.get("bot") or payload.get("player") != player_id:
            continue
        bot_seq, bot, bot_created = taken[index - 1]
        before = taken[index - 2][1]
        if not bot.get("bot") or before.get("bot") or before.get("player") != player_id:
            return None
        moves = GameEvent.objects.filter(
            game=game, seq__gt=bot_seq, seq__lt=seq, payload__by=seat.key
        ).count()
        return {
            "seat": seat.key,
            "since": bot_created.timestamp(),
            "until": created.timestamp(),
            "until_seq": seq,
            "moves": moves,
        }
    return None
