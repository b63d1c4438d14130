"""``python manage.py create_game <scenario> [--bots SEATS]``: a new game, ready to join.

Prints the join code, the page where players join with it, one link per seat (each takes its
player straight to that seat) and the secret host link that runs the game. ``SEATS`` is a
comma-separated list of seat keys, or ``all``, ``chiefs`` or ``constituents``; bots take those
seats. ``--json`` prints the same as one JSON object. An unknown scenario or seat exits with
status 2 and a sentence on stderr.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser
from django.urls import reverse

from negotiation import services
from negotiation.engine.scenario import ScenarioError, scenario_from_dict
from negotiation.models import Scenario, Seat

EXIT_REFUSED = 2
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def bot_seats(argument: str, members: Sequence[tuple[str, str]]) -> list[str]:
    """The seat keys ``--bots`` names, in the scenario's order. Raises ``KeyError`` for an
    unknown seat key."""
    keys = [key for key, _ in members]
    wanted: set[str] = set()
    for part in (p.strip() for p in argument.split(",")):
        if not part:
            continue
        if part == "all":
            wanted.update(keys)
        elif part in ("chiefs", "constituents"):
            role = part[:-1]
            wanted.update(key for key, member_role in members if member_role == role)
        elif part in keys:
            wanted.add(part)
        else:
            raise KeyError(part)
    return [key for key in keys if key in wanted]


class Command(BaseCommand):
    help = "Create a game of a scenario and print its join code, seat links and host link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scenario", help="slug of a loaded scenario")
        parser.add_argument(
            "--bots",
            default="",
            metavar="SEATS",
            help="seats for bots: comma-separated seat keys, or all, chiefs, constituents",
        )
        parser.add_argument(
            "--base-url",
            default=os.environ.get("RATIFY_BASE_URL", DEFAULT_BASE_URL),
            help=f"address the links start with (default: $RATIFY_BASE_URL or {DEFAULT_BASE_URL})",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        row = Scenario.objects.filter(slug=options["scenario"]).first()
        if row is None:
            slugs = ", ".join(Scenario.objects.order_by("slug").values_list("slug", flat=True))
            self._refuse(f"{options['scenario']}: no such scenario (loaded: {slugs or 'none'})")
        try:
            scenario = scenario_from_dict(row.definition)
        except ScenarioError as error:
            self._refuse(f"{row.slug}: the stored scenario is refused:\n{error}")
        members = [(m.key, m.role) for m in scenario.members]
        try:
            bots = bot_seats(options["bots"], members)
        except KeyError as unknown:
            keys = ", ".join(key for key, _ in members)
            self._refuse(f"--bots: {unknown.args[0]!r} is not a seat of {row.slug} ({keys})")
        game = services.create_game(scenario=row, bot_seats=bots)
        base = options["base_url"].rstrip("/")
        seats = [
            {
                "seat": seat.key,
                "role": seat.role,
                "country": seat.country,
                "name": scenario.member(seat.key).name,
                "bot": seat.bot,
                "url": base + reverse("seat", args=[game.code, seat.key]),
            }
            for seat in Seat.objects.filter(game=game).order_by("order")
        ]
        report = {
            "code": game.code,
            "scenario": row.slug,
            "join_url": base + reverse("lobby", args=[game.code]),
            "host_url": base + reverse("host_link", args=[game.code, game.host_token]),
            "seats": seats,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write(f"Game {game.code} of {row.slug}: {scenario.title}")
        self.stdout.write(f"Join code: {game.code}  (players join at {report['join_url']})")
        self.stdout.write(f"Host link (keep it private): {report['host_url']}")
        self.stdout.write("Seat links:")
        width = max(len(s["seat"]) for s in seats)
        for seat in seats:
            who = "bot" if seat["bot"] else seat["url"]
            self.stdout.write(f"  {seat['seat'].ljust(width)}  {seat['name']}: {who}")

    def _refuse(self, message: str) -> NoReturn:
        self.stderr.write(message)
        raise SystemExit(EXIT_REFUSED)
