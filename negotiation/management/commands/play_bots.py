"""``python manage.py play_bots --scenario SLUG [--games N] [--seed N] [--json] ...``.

Plays whole games of a scenario with bots in every seat (``engine.tournament``) and prints the
outcome of every round counted by label, the mean score of every seat and, per chief strategy,
how often it played, its mean score, how often its rounds ended with an agreement in force and
its mean share of the joint gains. The same options and seed print the same bytes.

The scenario is a slug, looked up in the ``negotiation.Scenario`` table (what ``make setup`` /
``load_scenarios`` stored), then among the built-in files; a scenario file's path works too.
A refused file or a slug that names nothing exits with status 2 (one problem per line on
stderr). A bot command the rules refused is listed in the report (``violations``) and makes
the command exit with status 1 after printing it.

Options: ``--games`` (default 50), ``--seed`` (default 0), ``--strategies`` pins the chiefs'
strategies (one key for every chief, one per chief in the scenario's order, or ``SEAT=KEY``
pairs, comma-separated); the others are drawn from ``--pool`` (default: every chief strategy).
``--rounds`` and ``--compliance`` override the scenario's game settings; ``--move-seconds`` is
the mean simulated delay before each bot move (default 1). ``--json`` prints
``Tournament.summary()`` as one JSON object; docs/bots.md lists its keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from negotiation.engine.analytics import LABELS
from negotiation.engine.bots import CHIEF_STRATEGIES, BotBrain
from negotiation.engine.scenario import Scenario, ScenarioError
from negotiation.engine.tournament import DEFAULT_MOVE_SECONDS, play_tournament
from negotiation.engine.winset import Analysis
from negotiation.management.commands.analyze_scenario import (
    EXIT_REFUSED,
    ScenarioNotFoundError,
    resolve_scenario,
)

DEFAULT_GAMES = 50
#: Rounds per game the scenario format allows.
MAX_ROUNDS = 20


def parse_pinned(text: str, scenario: Scenario) -> dict[str, str]:
    """Chief seat -> strategy from ``--strategies``: one key for every chief, one key per chief
    in the scenario's order, or ``SEAT=KEY`` pairs. Raises ``ValueError`` for anything else."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    chiefs = [chief.key for chief in scenario.chiefs]
    if not items:
        raise ValueError("--strategies names no strategy")
    if all("=" in item for item in items):
        pinned: dict[str, str] = {}
        for item in items:
            seat, _, strategy = (part.strip() for part in item.partition("="))
            if seat not in chiefs:
                raise ValueError(f"{seat!r} is not a chief seat (chiefs: {', '.join(chiefs)})")
            if seat in pinned:
                raise ValueError(f"{seat!r} is pinned twice")
            pinned[seat] = strategy
    elif any("=" in item for item in items):
        raise ValueError("--strategies mixes SEAT=KEY pairs with bare keys")
    elif len(items) == 1:
        pinned = dict.fromkeys(chiefs, items[0])
    elif len(items) == len(chiefs):
        pinned = dict(zip(chiefs, items, strict=True))
    else:
        raise ValueError(
            f"--strategies gives {len(items)} strategies; give 1 or one per chief "
            f"({len(chiefs)}: {', '.join(chiefs)})"
        )
    unknown = sorted({s for s in pinned.values() if s not in CHIEF_STRATEGIES})
    if unknown:
        raise ValueError(
            f"unknown chief strategy {', '.join(unknown)} (known: {', '.join(CHIEF_STRATEGIES)})"
        )
    return pinned


def parse_pool(text: str) -> list[str]:
    """The strategy keys of ``--pool``. Raises ``ValueError`` for an empty or unknown one."""
    pool = [item.strip() for item in text.split(",") if item.strip()]
    if not pool:
        raise ValueError("--pool names no strategy")
    unknown = [s for s in pool if s not in CHIEF_STRATEGIES]
    if unknown:
        raise ValueError(
            f"unknown chief strategy {', '.join(unknown)} (known: {', '.join(CHIEF_STRATEGIES)})"
        )
    return pool


# --------------------------------------------------------------------------------------------
# The report for a person


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(part: int | float | None, whole: int | float = 1) -> str:
    if part is None or not whole:
        return "-"
    return f"{100 * part / whole:.1f}%"


def human_report(summary: dict[str, Any]) -> list[str]:
    """The lines of the report for a person, from ``Tournament.summary()``."""
    settings = summary["settings"]
    rounds_text = "1 round" if settings["rounds"] == 1 else f"{settings['rounds']} rounds"
    compliance = "a compliance stage" if settings["compliance"] else "no compliance stage"
    pinned = summary["pinned"]
    lines = [
        f"Bot tournament: {summary['title']} ({summary['scenario']})",
        f"{summary['games']} games, seed {summary['seed']}; {rounds_text} per game, "
        f"{settings['attempts']} attempts per round, {compliance}; bot moves about "
        f"{settings['move_seconds']:g} s apart",
    ]
    if pinned:
        lines.append("Pinned chief strategies: " + ", ".join(f"{k} {v}" for k, v in pinned.items()))
    lines += [
        "Other chief strategies drawn from: " + ", ".join(summary["strategy_pool"]),
        f"Rule violations (bot commands refused): {summary['rule_violations']}",
    ]
    for violation in summary["violations"]:
        command = violation["command"]
        lines.append(
            f"  game {violation['game']}: {violation['seat']} ({violation['strategy']}) "
            f"{command['type']} in {violation['phase']}: {violation['code']}: "
            f"{violation['message']}"
        )
    played = summary["rounds_played"]
    lines += ["", f"Outcomes ({played} rounds)"]
    width = max(len(label) for label in LABELS)
    for label in LABELS:
        count = summary["outcomes"][label]
        name = label.replace("_", " ")
        lines.append(f"  {name:<{width}}  {count:>5}  {_percent(count, played):>6}")
    seat_width = max(len(f"{s['label']} ({s['seat']})") for s in summary["seats"])
    lines += ["", "Mean score per seat"]
    for seat in summary["seats"]:
        label = f"{seat['label']} ({seat['seat']})"
        lines.append(f"  {label:<{seat_width}}  {_number(seat['mean_score']):>8}")
    strategies = summary["chief_strategies"]
    lines += ["", "Chief strategies"]
    if strategies:
        name_width = max(len(name) for name in strategies)
        lines.append(
            f"  {'strategy':<{name_width}}  {'plays':>5}  {'mean score':>10}  "
            f"{'agreements':>10}  {'share of gains':>14}"
        )
        for name, row in strategies.items():
            lines.append(
                f"  {name:<{name_width}}  {row['plays']:>5}  {_number(row['mean_score']):>10}  "
                f"{_percent(row['agreement_rate']):>10}  "
                f"{_number(row['mean_share_of_gains'], 3):>14}"
            )
    else:
        lines.append("  (no games played)")
    lines += [
        "",
        f"Mean bot commands per game: {_number(summary['mean_commands'])}; deadlines fired: "
        f"{summary['deadlines_fired']}; phases ended by the instructor: "
        f"{summary['phases_advanced']}",
    ]
    return lines


# --------------------------------------------------------------------------------------------
# The command


class Command(BaseCommand):
    help = (
        "Play whole games of a scenario with bots in every seat and print outcome counts, "
        "mean scores per seat and per chief strategy. Deterministic for a seed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scenario", required=True, help="a scenario slug (stored or built-in) or file"
        )
        parser.add_argument("--games", type=int, default=DEFAULT_GAMES, help="games to play")
        parser.add_argument("--seed", type=int, default=0, help="seed of the random choices")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print one JSON object"
        )
        parser.add_argument(
            "--strategies",
            help="pin chief strategies: KEY, KEY,KEY,... (one per chief) or SEAT=KEY,...; "
            f"keys: {', '.join(CHIEF_STRATEGIES)}",
        )
        parser.add_argument(
            "--pool", help="strategy keys drawn for chiefs not pinned (default: all)"
        )
        parser.add_argument("--rounds", type=int, help="rounds per game (default: scenario's)")
        parser.add_argument(
            "--compliance",
            action="store_true",
            help="add the compliance stage after each agreement",
        )
        parser.add_argument(
            "--move-seconds",
            type=float,
            default=DEFAULT_MOVE_SECONDS,
            help="mean simulated seconds before each bot move (default 1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Play and print. Raises ``SystemExit(2)`` for a refused file or an unknown slug and
        ``CommandError`` for a bad option or when any bot command was refused."""
        try:
            scenario = resolve_scenario(options["scenario"])
        except ScenarioError as error:
            self.refuse([str(problem) for problem in error.problems])
        except ScenarioNotFoundError as error:
            self.refuse([str(error)])
        games: int = options["games"]
        if games < 1:
            raise CommandError("--games must be at least 1")
        move_seconds: float = options["move_seconds"]
        if not (math.isfinite(move_seconds) and move_seconds >= 0):
            raise CommandError("--move-seconds must be a number >= 0")
        settings = scenario.game
        if options["rounds"] is not None:
            if not 1 <= options["rounds"] <= MAX_ROUNDS:
                raise CommandError(f"--rounds must be 1 to {MAX_ROUNDS}")
            settings = dataclasses.replace(settings, rounds=options["rounds"])
        if options["compliance"]:
            settings = dataclasses.replace(settings, compliance=True)
        try:
            pinned = parse_pinned(options["strategies"], scenario) if options["strategies"] else {}
            pool = parse_pool(options["pool"]) if options["pool"] else None
        except ValueError as error:
            raise CommandError(str(error)) from None
        brain = BotBrain(Analysis(scenario))
        tournament = play_tournament(
            brain,
            games,
            options["seed"],
            pinned=pinned,
            pool=pool,
            settings=settings,
            move_seconds=move_seconds,
        )
        summary = tournament.summary()
        if options["as_json"]:
            self.stdout.write(json.dumps(summary, allow_nan=False))
        else:
            self.stdout.write("\n".join(human_report(summary)))
        if summary["rule_violations"]:
            raise CommandError(
                f"{summary['rule_violations']} bot command(s) were refused by the rules"
            )

    def refuse(self, lines: Sequence[str]) -> NoReturn:
        """Write the problems to stderr, one a line, and exit with status 2 (raises SystemExit)."""
        for line in lines:
            self.stderr.write(line)
        raise SystemExit(EXIT_REFUSED)
