"""``python manage.py score_game <code> [--json]``: the scores of a game, from its log.

Prints every role's score, each country's welfare and reputation, and the outcome label with
its reason (DESIGN §5). ``--json`` prints one JSON object: ``{"code", "scenario", "phase",
"scores": {...}, "debrief": {...}}``. An unknown code exits with status 2.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from negotiation import services
from negotiation.engine.analytics import debrief
from negotiation.engine.scoring import score_state
from negotiation.engine.winset import Analysis

EXIT_REFUSED = 2


class Command(BaseCommand):
    help = "Print the scores of a game, computed from its event log."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the game's join code")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            game = services.game_by_code(options["code"])
        except services.GameNotFoundError:
            self.stderr.write(f"{options['code']}: no game has this code")
            raise SystemExit(EXIT_REFUSED) from None
        log = services.log_of(game.pk)
        state = services.load_state(game.pk)
        scenario = state.scenario
        scores = score_state(state)
        summary = debrief(log, Analysis(scenario)).to_dict(scenario) if state.rounds else None
        if options["json"]:
            report = {
                "code": game.code,
                "scenario": scenario.slug,
                "phase": state.phase,
                "scores": scores.to_dict(),
                "debrief": summary,
            }
            self.stdout.write(json.dumps(report, allow_nan=False))
            return
        self.stdout.write(f"Game {game.code} of {scenario.slug}: {scenario.title}")
        self.stdout.write(
            f"Phase: {state.phase}; rounds played: {scores.rounds_played} of {state.settings.rounds}"
        )
        if summary and summary["outcome"]:
            outcome = summary["outcome"]
            self.stdout.write(f"Outcome: {outcome['label']}. {outcome['reason']}")
        else:
            self.stdout.write("Outcome: none yet (no round has ended).")
        for country in scenario.countries:
            result = scores.countries[country.key]
            self.stdout.write("")
            self.stdout.write(
                f"{country.name} ({country.key}): welfare {result.welfare:.2f}, "
                f"reputation {result.reputation:.1f}"
            )
            chief = country.chief
            self.stdout.write(f"  {chief.key:<16} {chief.name:<32} {scores.chiefs[chief.key]:8.2f}")
            for member in country.constituents:
                self.stdout.write(
                    f"  {member.key:<16} {member.name:<32} {scores.members[member.key]:8.2f}"
                )
