"""create_game and score_game, as an instructor types them."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine.bots import BotBrain, bot_commands
from negotiation.engine.winset import Analysis
from negotiation.models import Game, Seat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scenarios() -> None:
    call_command("load_scenarios", stdout=io.StringIO())
    services.state_cache.clear()


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as stop:
        return int(stop.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_create_game_prints_the_code_the_host_link_and_every_seat_link() -> None:
    code, out, _ = run("create_game", "gatt", "--base-url", "https://ratify.example.org/")
    assert code == 0
    game = Game.objects.get()
    assert f"Join code: {game.code}" in out
    assert f"https://ratify.example.org/g/{game.code}/host/{game.host_token}/" in out
    for seat in Seat.objects.filter(game=game):
        assert f"https://ratify.example.org/g/{game.code}/seat/{seat.key}/" in out


def test_create_game_json_and_bots() -> None:
    code, out, _ = run("create_game", "bonn-1978", "--bots", "constituents,us-chief", "--json")
    assert code == 0
    report: dict[str, Any] = json.loads(out)
    assert set(report) == {"code", "scenario", "join_url", "host_url", "seats"}
    bots = {s["seat"] for s in report["seats"] if s["bot"]}
    assert bots == {
        "de-spd",
        "de-fdp",
        "de-cdu",
        "us-producers",
        "us-consumers",
        "us-moderates",
        "us-chief",
    }
    state = services.load_state(Game.objects.get(code=report["code"]).pk)
    assert {seat for seat, holder in state.seats.items() if holder.bot} == bots


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create_game", "nope"), "nope: no such scenario"),
        (("create_game", "gatt", "--bots", "A1,Z9"), "--bots: 'Z9' is not a seat of gatt"),
        (("score_game", "ZZZZZZ"), "ZZZZZZ: no game has this code"),
    ],
)
def test_mistakes_exit_2_with_a_sentence(args: tuple[str, ...], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert message in err
    assert not Game.objects.exists() or args[0] == "score_game"


def play_with_bots(game: Game) -> None:
    services.submit(game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="test")
    state = services.load_state(game.pk)
    brain = BotBrain(Analysis(state.scenario))
    while not state.ended:
        moves = [(s, cmd) for s in sorted(state.seats) for cmd in bot_commands(state, s, brain)]
        assert moves, "the bots stopped before the end"
        for seat, command in moves[:1]:
            outcome = services.submit(game_id=game.pk, command=command, issuer=f"bot:{seat}")
            assert outcome.accepted, outcome
        state = services.load_state(game.pk)


def test_score_game_after_a_game_of_bots() -> None:
    _, out, _ = run("create_game", "gatt", "--bots", "all", "--json")
    game = Game.objects.get(code=json.loads(out)["code"])
    play_with_bots(game)
    code, text, _ = run("score_game", game.code)
    assert code == 0
    assert "Outcome: cooperation." in text
    assert "Atlantis (A): welfare" in text
    code, out, _ = run("score_game", game.code.lower(), "--json")
    report = json.loads(out)
    assert report["phase"] == "ended"
    assert report["debrief"]["outcome"]["label"] == "cooperation"
    # GATT at (5, 5): A1 has U = 100 * (1 - (1/10 + 4/10) / 2) = 75 against r = 70.
    assert report["scores"]["members"]["A1"] == pytest.approx(5.0)


def test_score_game_before_any_round_ended() -> None:
    _, out, _ = run("create_game", "gatt", "--json")
    code, text, _ = run("score_game", json.loads(out)["code"])
    assert code == 0
    assert "Outcome: none yet" in text
