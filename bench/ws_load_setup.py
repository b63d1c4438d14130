"""Database side of ``bench/ws_load.py``: create games, seat players, start games, dump logs.

Runs as its own process with the server's environment (``DATABASE_URL``) so that it writes the
same database through ``negotiation.services``, the project's only writer of games, instead of
starting ``manage.py`` once per game. Two subcommands, each printing one JSON object:

- ``create --games N --scenario SLUG --script-from K``: N games in the lobby, with every phase
  without a deadline (a run must not see the server's clock fire) and enough rounds and
  attempts that a lively game does not end during a run. The seats of games K and later are
  taken here, each by a new ``Player`` bound to a new session in the session store (what the
  seat link does for a browser); prints each game's id, code and seats, with the session
  cookie of the seats taken here.
- ``start --ids ID,ID,...``: the instructor starts each game; prints each game's whole log
  (the load generator folds it with the engine to know which commands the rules accept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from importlib import import_module  # noqa: E402

from django.conf import settings  # noqa: E402
from django.contrib.sessions.backends.base import SessionBase  # noqa: E402
from django.db import transaction  # noqa: E402

from accounts.models import Player  # noqa: E402
from negotiation import services  # noqa: E402
from negotiation.engine import commands as c  # noqa: E402
from negotiation.engine import events as e  # noqa: E402
from negotiation.engine.scenario import Deadlines, GameDefaults  # noqa: E402
from negotiation.models import Scenario, Seat  # noqa: E402

#: Enough that a run at a high rate never plays a game to its end.
ROUNDS = 20
ATTEMPTS = 10
BENCH_ISSUER = "instructor:bench"


def _new_session(player: Player) -> str:
    """A session of the project's session engine bound to ``player``; returns its key."""
    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    session = store()
    session[Player.SESSION_KEY] = str(player.pk)
    session.create()
    key = session.session_key
    assert key is not None
    return key


def create(games: int, slug: str, script_from: int) -> dict[str, Any]:
    """Raises ``LookupError`` when the scenario is not loaded."""
    row = Scenario.objects.filter(slug=slug).first()
    if row is None:
        raise LookupError(f"scenario {slug!r} is not loaded (run load_scenarios)")
    game_settings = GameDefaults(
        rounds=ROUNDS,
        attempts=ATTEMPTS,
        deadlines=Deadlines(level1=None, level2=None, compliance=None),
    )
    created: list[dict[str, Any]] = []
    for index in range(games):
        with transaction.atomic():
            game = services.create_game(scenario=row, settings=game_settings)
            seats: list[dict[str, Any]] = []
            for seat in Seat.objects.filter(game=game).order_by("order"):
                entry: dict[str, Any] = {
                    "key": seat.key,
                    "role": seat.role,
                    "country": seat.country,
                    "session": None,
                }
                if index >= script_from:
                    player = Player.objects.create(display_name=f"Bench {index}-{seat.order}")
                    outcome = services.take_seat(game=game, player=player, seat_key=seat.key)
                    if not outcome.accepted:
                        raise RuntimeError(f"{game.code} {seat.key}: {outcome.code}")
                    entry["session"] = _new_session(player)
                seats.append(entry)
        created.append({"id": game.pk, "code": game.code, "seats": seats})
    return {"session_cookie": settings.SESSION_COOKIE_NAME, "games": created}


def start(ids: list[int]) -> dict[str, Any]:
    """Raises ``RuntimeError`` when a game refuses to start."""
    logs: dict[str, list[dict[str, Any]]] = {}
    for game_id in ids:
        outcome = services.submit(
            game_id=game_id,
            command=c.StartGame(c.INSTRUCTOR),
            issuer=BENCH_ISSUER,
            client_id=f"bench-start-{game_id}",
        )
        if not outcome.accepted and not outcome.replayed:
            raise RuntimeError(f"game {game_id} did not start: {outcome.code}")
        logs[str(game_id)] = [e.event_to_dict(event) for event in services.log_of(game_id)]
    return {"logs": logs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("create")
    make.add_argument("--games", type=int, required=True)
    make.add_argument("--scenario", default="gatt")
    make.add_argument("--script-from", type=int, default=0)
    begin = sub.add_parser("start")
    begin.add_argument("--ids", required=True)
    args = parser.parse_args()
    if args.action == "create":
        report = create(args.games, args.scenario, args.script_from)
    else:
        report = start([int(part) for part in args.ids.split(",") if part])
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
