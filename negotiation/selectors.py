"""Reads for the web shell: who a request or a connection is in a game."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import Player
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.visibility import SPECTATOR
from negotiation.models import Game, Seat

#: Session key listing the join codes of the games this browser may run (from host links).
HOST_SESSION_KEY = "ratify_host_games"


@dataclass(frozen=True, slots=True)
class Binding:
    """What a connection is bound to: a seat, the instructor or a spectator.

    ``viewer`` is what ``visibility`` filters for (a seat key, ``INSTRUCTOR`` or ``SPECTATOR``);
    ``actor`` is the engine actor of its commands (None for a spectator, who may send none);
    ``issuer`` scopes its command ids; ``player`` is the player id a seat's commands must
    still be held by.
    """

    game_id: int
    code: str
    viewer: str
    actor: str | None
    issuer: str
    player: str | None = None

    @property
    def is_instructor(self) -> bool:
        return self.viewer == INSTRUCTOR


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
    connection falls back to the player's seat or a spectator.
    """
    game = Game.objects.filter(code=code.upper()).first()
    if game is None:
        return None
    if as_host and is_host(game, session, user):
        who = f"user-{user.pk}" if getattr(user, "is_authenticated", False) else session.session_key
        return Binding(game.pk, game.code, INSTRUCTOR, INSTRUCTOR, f"instructor:{who}")
    player = player_of(session)
    seat = Seat.objects.filter(game=game, player=player).first() if player else None
    if seat is not None and player is not None:
        return Binding(
            game.pk, game.code, seat.key, seat.key, f"player:{player.pk}", str(player.pk)
        )
    return Binding(game.pk, game.code, SPECTATOR, None, f"spectator:{session.session_key}")
