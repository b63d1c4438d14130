"""``manage.py play_bots``: a bot tournament that finishes, breaks no rule and repeats itself."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from negotiation.engine import commands as c
from negotiation.engine.analytics import LABELS
from negotiation.engine.bots import CHIEF_STRATEGIES, BotBrain, bot_commands
from negotiation.engine.scenario import load_builtin
from negotiation.engine.state import GameState
from negotiation.models import Scenario as StoredScenario

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = [
    "scenario",
    "title",
    "games",
    "seed",
    "settings",
    "strategy_pool",
    "pinned",
    "rule_violations",
    "violations",
    "rounds_played",
    "outcomes",
    "seats",
    "chief_strategies",
    "mean_commands",
    "deadlines_fired",
    "phases_advanced",
    "per_game",
]


def play(*arguments: str) -> str:
    stdout = io.StringIO()
    call_command("play_bots", *arguments, stdout=stdout)
    return stdout.getvalue()


@pytest.mark.django_db
def test_fifty_gatt_games_finish_without_a_rule_violation_and_repeat_for_a_seed() -> None:
    arguments = ("--scenario", "gatt", "--games", "50", "--seed", "7", "--json")
    output = play(*arguments)
    assert play(*arguments) == output
    report: dict[str, Any] = json.loads(output)
    assert list(report) == SUMMARY_KEYS
    assert report["games"] == 50 and len(report["per_game"]) == 50
    assert report["rule_violations"] == 0 and report["violations"] == []
    assert report["rounds_played"] == 50
    assert list(report["outcomes"]) == list(LABELS)
    assert sum(report["outcomes"].values()) == 50
    assert all(len(game["outcomes"]) == 1 for game in report["per_game"])
    scenario = load_builtin("gatt")
    assert [seat["seat"] for seat in report["seats"]] == [m.key for m in scenario.members]
    assert report["seats"][0]["label"] == "Atlantis / chief"
    assert report["seats"][1]["label"] == "Atlantis / Export manufacturers"
    plays = sum(row["plays"] for row in report["chief_strategies"].values())
    assert plays == 50 * len(scenario.chiefs)
    assert set(report["chief_strategies"]) <= set(CHIEF_STRATEGIES)
    # Every game drew its chiefs' strategies from the whole pool.
    assert report["strategy_pool"] == list(CHIEF_STRATEGIES)
    drawn = {s for game in report["per_game"] for s in game["strategies"].values()}
    assert drawn == set(CHIEF_STRATEGIES)
    other_seed = json.loads(play("--scenario", "gatt", "--games", "50", "--seed", "8", "--json"))
    assert [g["seed"] for g in other_seed["per_game"]] != [g["seed"] for g in report["per_game"]]


@pytest.mark.django_db
def test_the_human_table_shows_outcomes_seats_and_strategies() -> None:
    output = play("--scenario", "gatt", "--games", "50", "--seed", "7")
    assert play("--scenario", "gatt", "--games", "50", "--seed", "7") == output
    report = json.loads(play("--scenario", "gatt", "--games", "50", "--seed", "7", "--json"))
    assert "Bot tournament: A GATT round: reciprocal tariff cuts (gatt)" in output
    assert "Rule violations (bot commands refused): 0" in output
    assert "Outcomes (50 rounds)" in output
    for label in LABELS:
        count = report["outcomes"][label]
        assert re.search(rf"^  {label.replace('_', ' ')} +{count} ", output, flags=re.MULTILINE)
    for seat in report["seats"]:
        line = next(
            line for line in output.splitlines() if f"{seat['label']} ({seat['seat']})" in line
        )
        assert line.split()[-1] == f"{seat['mean_score']:.2f}"
    for name, row in report["chief_strategies"].items():
        assert re.search(rf"^  {name} +{row['plays']} ", output, flags=re.MULTILINE)


@pytest.mark.django_db
def test_strategies_can_be_pinned_for_every_chief_or_by_seat() -> None:
    every = json.loads(
        play("--scenario", "bonn-1978", "--games", "3", "--strategies", "prober", "--json")
    )
    assert every["pinned"] == {"de-chief": "prober", "us-chief": "prober"}
    assert all(set(g["strategies"].values()) == {"prober"} for g in every["per_game"])
    by_seat = json.loads(
        play(
            "--scenario",
            "bonn-1978",
            "--games",
            "4",
            "--strategies",
            "us-chief=hard_bargainer",
            "--pool",
            "nash_seeker",
            "--rounds",
            "2",
            "--compliance",
            "--json",
        )
    )
    assert by_seat["settings"]["rounds"] == 2 and by_seat["settings"]["compliance"]
    assert all(
        g["strategies"] == {"de-chief": "nash_seeker", "us-chief": "hard_bargainer"}
        for g in by_seat["per_game"]
    )
    assert by_seat["rounds_played"] == 8


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--strategies", "greedy"), "unknown chief strategy greedy"),
        (("--strategies", "prober,prober,prober"), "give 1 or one per chief"),
        (("--strategies", "A1=prober"), "not a chief seat"),
        (("--pool", "sincere"), "unknown chief strategy sincere"),
        (("--games", "0"), "--games must be at least 1"),
        (("--rounds", "21"), "--rounds must be 1 to 20"),
        (("--move-seconds", "-1"), "--move-seconds"),
    ],
)
def test_bad_options_are_refused(arguments: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        play("--scenario", "gatt", "--games", "2", *arguments)


@pytest.mark.django_db
def test_an_unknown_scenario_exits_with_status_2() -> None:
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("play_bots", "--scenario", "no-such-scenario", stderr=stderr)
    assert exit_.value.code == 2
    assert "no-such-scenario" in stderr.getvalue()


@pytest.mark.django_db
def test_a_stored_scenario_comes_before_the_builtin_file() -> None:
    definition = load_builtin("gatt").to_dict()
    definition["title"] = "GATT as stored by an instructor"
    StoredScenario.objects.create(
        slug="gatt", title=definition["title"], definition=definition, builtin=True
    )
    report = json.loads(play("--scenario", "gatt", "--games", "2", "--json"))
    assert report["title"] == "GATT as stored by an instructor"


@pytest.mark.django_db
def test_a_refused_bot_command_is_reported_and_fails_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = bot_commands

    def one_bad_move(
        state: GameState, seat: str, brain: BotBrain, strategy: str | None = None, **kw: Any
    ) -> list[c.Command]:
        commands = real(state, seat, brain, strategy, **kw)
        if seat == "B-chief" and commands and state.next_proposal_id == 2:
            return [c.Withdraw(seat, 999), *commands]
        return commands

    monkeypatch.setattr("negotiation.engine.tournament.bot_commands", one_bad_move)
    stdout = io.StringIO()
    with pytest.raises(CommandError, match="refused by the rules"):
        call_command("play_bots", "--scenario", "gatt", "--games", "1", "--json", stdout=stdout)
    report = json.loads(stdout.getvalue())
    assert report["rule_violations"] >= 1
    (first, *_) = report["violations"]
    assert first["seat"] == "B-chief"
    assert first["code"] == "unknown_proposal"
    assert first["command"] == {"type": "withdraw", "actor": "B-chief", "proposal_id": 999}


def test_the_docs_list_every_json_key() -> None:
    text = (ROOT / "docs" / "bots.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `([a-z_]+)` \|", text.split("## JSON", 1)[1], re.MULTILINE)
    for key in SUMMARY_KEYS:
        assert key in documented
    for strategy in CHIEF_STRATEGIES:
        assert f"`{strategy}`" in text
