"""Every rule refuses bad input: one case per refusal path of ``rules.decide``.

``REFUSALS`` names, for every ``_refuse(`` call in ``rules.py``, a game, a command and the
stable ``code`` it must be refused with. ``test_every_refusal_in_rules_is_exercised`` traces the
table and fails when a refusal path of ``rules.py`` has no case. Each refusal must leave the
game unchanged (``Game.refuse`` checks that).
"""

from __future__ import annotations

import ast
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from negotiation.engine import commands as c
from negotiation.engine import rules
from negotiation.engine.rules import (
    MAX_EXTENSION,
    MAX_PLAYER_ID,
    MAX_TEXT,
    RuleViolation,
    decide,
    fold,
)
from negotiation.engine.scenario import Deadlines
from tests.engine.rules_support import INSTRUCTOR, SYSTEM, T0, Game, load_builtin, started_game

A_CHIEF, B_CHIEF = "A-chief", "B-chief"

# --------------------------------------------------------------------------------------------
# Games in each phase


def lobby() -> Game:
    game = Game(load_builtin("gatt"))
    game.seat_everyone()
    return game


def level1() -> Game:
    return started_game()


def level1_without_deadlines() -> Game:
    return started_game(deadlines=Deadlines(level1=None, level2=None, compliance=None))


def with_proposals() -> Game:
    """Level I with proposal 1 by A (accepted by A) and proposal 2 by B."""
    game = started_game()
    game.propose(0, (4, 8))
    game.propose(1, (8, 4))
    return game


def with_poll() -> Game:
    """Level I with A's straw poll 1 open and A1's answer in."""
    game = started_game()
    game.run(c.OpenStrawPoll(A_CHIEF, (5, 6)))
    game.run(c.AnswerStrawPoll("A1", 1, True))
    return game


def with_closed_poll() -> Game:
    game = with_poll()
    game.run(c.CloseStrawPoll(A_CHIEF, 1))
    return game


def bonn_with_offer() -> Game:
    game = started_game("bonn-1978")
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 2))
    return game


def level2() -> Game:
    """Level II on (5, 6) with A1's ballot cast."""
    game = started_game()
    game.agree((5, 6))
    game.run(c.CastBallot("A1", True))
    return game


def compliance() -> Game:
    """The compliance stage, A's government having chosen to comply."""
    game = started_game(compliance=True)
    game.agree((5, 6))
    game.vote(game.sincere_ballots((5, 6)))
    game.run(c.ChooseCompliance(A_CHIEF, True))
    return game


def paused() -> Game:
    game = started_game()
    game.run(c.PauseGame(INSTRUCTOR))
    return game


def paused_without_deadline() -> Game:
    game = level1_without_deadlines()
    game.run(c.PauseGame(INSTRUCTOR))
    return game


def ended() -> Game:
    game = started_game()
    game.run(c.EndGame(INSTRUCTOR))
    return game


# --------------------------------------------------------------------------------------------
# Commands that no handler reads as they are


@dataclass(frozen=True, slots=True)
class Shout(c.Command):
    """A command the rules do not know."""

    NAME = "shout"


@dataclass(frozen=True, slots=True)
class LoudPropose(c.Propose):
    """A subclass of a known command is still not a known command."""


def propose_without_values() -> c.Propose:
    """A ``Propose`` whose ``values`` field was never set (as a careless decoder might build)."""
    command = object.__new__(c.Propose)
    object.__setattr__(command, "actor", A_CHIEF)
    return command


def command_without_actor() -> c.Chat:
    command = object.__new__(c.Chat)
    object.__setattr__(command, "channel", "table")
    object.__setattr__(command, "text", "hi")
    return command


def at_deadline(game: Game) -> float:
    assert game.state.deadline is not None
    return game.state.deadline


@dataclass(frozen=True)
class Refusal:
    """``command`` (or ``make_command(game)``) in the game ``setup`` builds, at ``now`` (default
    one second after the last command; a callable gets the game), is refused with ``code``."""

    setup: Callable[[], Game]
    command: Any
    code: str
    now: Any = None

    def prepare(self) -> tuple[Game, Any, Any]:
        """The game, the command and the time to decide it at."""
        game = self.setup()
        command = self.command(game) if callable(self.command) else self.command
        now = self.now(game) if callable(self.now) else self.now
        return game, command, game.now + 1.0 if now is None else now


def refusal_of(game: Game, command: Any, now: Any) -> RuleViolation:
    """The ``RuleViolation`` ``decide`` raises; fails the test when the command is accepted
    or the state changes."""
    before = game.state
    with pytest.raises(RuleViolation) as caught:
        decide(game.state, command, now)
    assert game.state is before and game.state == fold(game.log)
    assert caught.value.message
    return caught.value


R = Refusal
TOO_LONG = "x" * (MAX_TEXT + 1)

REFUSALS: dict[str, Refusal] = {
    # The frame of every command (rules._run)
    "unknown command": R(level1, Shout(A_CHIEF), "unknown_command"),
    "subclass of a command": R(level1, LoudPropose(A_CHIEF, (5, 6)), "unknown_command"),
    "not a command at all": R(level1, "propose (5, 6)", "unknown_command"),
    "clock is NaN": R(level1, c.Chat(A_CHIEF, "table", "hi"), "bad_command", math.nan),
    "clock is infinite": R(level1, c.Chat(A_CHIEF, "table", "hi"), "bad_command", math.inf),
    "clock is a string": R(level1, c.Chat(A_CHIEF, "table", "hi"), "bad_command", "noon"),
    "clock is a bool": R(level1, c.Chat(A_CHIEF, "table", "hi"), "bad_command", True),
    "clock overflows a float": R(level1, c.Chat(A_CHIEF, "table", "hi"), "bad_command", 10**400),
    "game over": R(ended, c.Chat(A_CHIEF, "table", "hi"), "game_over"),
    "game paused": R(paused, c.Propose(A_CHIEF, (5, 6)), "game_paused"),
    "actor is not a string": R(level1, c.Propose(None, (5, 6)), "unknown_seat"),  # type: ignore[arg-type]
    "command lacks its actor": R(level1, lambda g: command_without_actor(), "unknown_seat"),
    "command lacks a field": R(level1, lambda g: propose_without_values(), "bad_command"),
    # Shared checks
    "seat key is not a string": R(level1, c.OfferSidePayment(A_CHIEF, 7, 1), "unknown_seat"),  # type: ignore[arg-type]
    "seat does not exist": R(level1, c.Propose("nobody", (5, 6)), "unknown_seat"),
    "instructor is no seat": R(level1, c.Chat(INSTRUCTOR, "table", "hi"), "unknown_seat"),
    "constituent proposes": R(level1, c.Propose("A1", (5, 6)), "not_a_chief"),
    "chief votes": R(level2, c.CastBallot(A_CHIEF, True), "not_a_constituent"),
    "player starts the game": R(lobby, c.StartGame(A_CHIEF), "not_instructor"),
    "proposal in the lobby": R(lobby, c.Propose(A_CHIEF, (5, 6)), "wrong_phase"),
    "id is not a whole number": R(with_proposals, c.Accept(B_CHIEF, "1"), "bad_command"),  # type: ignore[arg-type]
    "id is a bool": R(with_proposals, c.Accept(B_CHIEF, True), "bad_command"),
    "ballot is not a bool": R(level2, c.CastBallot("A2", 1), "bad_command"),  # type: ignore[arg-type]
    "text is not a string": R(level1, c.MakeStatement(A_CHIEF, None), "bad_command"),  # type: ignore[arg-type]
    "text is blank": R(level1, c.Chat(A_CHIEF, "table", " \n\t "), "empty_text"),
    "text is too long": R(level1, c.MakeStatement(A_CHIEF, TOO_LONG), "text_too_long"),
    "values missing": R(level1, c.Propose(A_CHIEF, None), "bad_values"),  # type: ignore[arg-type]
    "values too few": R(level1, c.Propose(A_CHIEF, (5,)), "bad_values"),
    "values a string": R(level1, c.Propose(A_CHIEF, "56"), "bad_values"),  # type: ignore[arg-type]
    "value not a number": R(level1, c.Propose(A_CHIEF, (5, "6")), "bad_values"),  # type: ignore[arg-type]
    "value a bool": R(level1, c.Propose(A_CHIEF, (True, 6)), "bad_values"),
    "value NaN": R(level1, c.Propose(A_CHIEF, (5, math.nan)), "bad_values"),
    "value infinite": R(level1, c.Propose(A_CHIEF, (-math.inf, 6)), "bad_values"),
    "value overflows a float": R(level1, c.Propose(A_CHIEF, (10**400, 6)), "bad_values"),
    "value above max": R(level1, c.Propose(A_CHIEF, (5, 11)), "bad_values"),
    "value below min": R(level1, c.Propose(A_CHIEF, (-1, 6)), "bad_values"),
    "value off the grid": R(level1, c.Propose(A_CHIEF, (5, 5.5)), "bad_values"),
    # Seats
    "player takes a seat": R(lobby, c.TakeSeat("A1", "B1", "me"), "not_allowed"),
    "empty player id": R(lobby, c.TakeSeat(SYSTEM, "A1", ""), "bad_command"),
    "player id too long": R(
        lobby, c.TakeSeat(SYSTEM, "A1", "p" * (MAX_PLAYER_ID + 1)), "bad_command"
    ),
    "player id not a string": R(lobby, c.TakeSeat(SYSTEM, "A1", 42), "bad_command"),  # type: ignore[arg-type]
    "bot flag not a bool": R(lobby, c.TakeSeat(INSTRUCTOR, "A1", "x", "yes"), "bad_command"),  # type: ignore[arg-type]
    "seat an unknown seat": R(lobby, c.TakeSeat(SYSTEM, "Z9", "me"), "unknown_seat"),
    "display name too long": R(lobby, c.TakeSeat(SYSTEM, "A2", "me", name="n" * 41), "bad_command"),
    "display name not text": R(lobby, c.TakeSeat(SYSTEM, "A2", "me", name=7), "bad_command"),  # type: ignore[arg-type]
    "same player again": R(lobby, c.TakeSeat(SYSTEM, "A1", "player-A1"), "already_seated"),
    "server takes a held seat": R(lobby, c.TakeSeat(SYSTEM, "A1", "mallory"), "seat_taken"),
    "player releases a seat": R(lobby, c.ReleaseSeat("A1", "A1"), "not_allowed"),
    "release an empty seat": R(
        lambda: Game(load_builtin("gatt")), c.ReleaseSeat(SYSTEM, "A1"), "seat_empty"
    ),
    # Starting
    "start twice": R(level1, c.StartGame(INSTRUCTOR), "wrong_phase"),
    # Proposals
    "reply to no proposal": R(level1, c.Propose(A_CHIEF, (5, 6), replies_to=1), "unknown_proposal"),
    "reply to proposal 0": R(
        with_proposals, c.Propose(A_CHIEF, (5, 6), replies_to=0), "unknown_proposal"
    ),
    "reply to a future proposal": R(
        with_proposals, c.Propose(A_CHIEF, (5, 6), replies_to=3), "unknown_proposal"
    ),
    "reply id not a number": R(
        with_proposals,
        c.Propose(A_CHIEF, (5, 6), replies_to=1.0),  # type: ignore[arg-type]
        "bad_command",
    ),
    "accept an unknown proposal": R(with_proposals, c.Accept(B_CHIEF, 9), "unknown_proposal"),
    "withdraw another's proposal": R(with_proposals, c.Withdraw(A_CHIEF, 2), "not_your_proposal"),
    "withdraw an unknown proposal": R(with_proposals, c.Withdraw(A_CHIEF, 9), "unknown_proposal"),
    "accept own proposal again": R(with_proposals, c.Accept(A_CHIEF, 1), "already_accepted"),
    # Chat
    "channel not a string": R(level1, c.Chat(A_CHIEF, None, "hi"), "unknown_channel"),  # type: ignore[arg-type]
    "constituent at the table": R(level1, c.Chat("A1", "table", "hi"), "not_in_channel"),
    "caucus of no country": R(level1, c.Chat(A_CHIEF, "caucus:Z", "hi"), "unknown_channel"),
    "other country's caucus": R(level1, c.Chat("A1", "caucus:B", "hi"), "not_in_channel"),
    "chief in other caucus": R(level1, c.Chat(B_CHIEF, "caucus:A", "hi"), "not_in_channel"),
    "unknown channel": R(level1, c.Chat(A_CHIEF, "public", "hi"), "unknown_channel"),
    "chat text too long": R(level1, c.Chat(A_CHIEF, "table", TOO_LONG), "text_too_long"),
    # Statements
    "constituent makes a statement": R(level1, c.MakeStatement("A1", "hi"), "not_a_chief"),
    # Straw polls
    "second open poll": R(with_poll, c.OpenStrawPoll(A_CHIEF, (6, 6)), "poll_already_open"),
    "poll off the grid": R(level1, c.OpenStrawPoll(A_CHIEF, (6, 60)), "bad_values"),
    "answer no poll": R(with_poll, c.AnswerStrawPoll("A2", 9, True), "unknown_poll"),
    "answer a closed poll": R(with_closed_poll, c.AnswerStrawPoll("A2", 1, True), "poll_closed"),
    "answer another country's poll": R(with_poll, c.AnswerStrawPoll("B1", 1, True), "not_polled"),
    "answer twice": R(with_poll, c.AnswerStrawPoll("A1", 1, False), "already_answered"),
    "answer not a bool": R(with_poll, c.AnswerStrawPoll("A2", 1, None), "bad_command"),  # type: ignore[arg-type]
    "chief answers a poll": R(with_poll, c.AnswerStrawPoll(A_CHIEF, 1, True), "not_a_constituent"),
    "close another's poll": R(with_poll, c.CloseStrawPoll(B_CHIEF, 1), "not_your_poll"),
    "close a closed poll": R(with_closed_poll, c.CloseStrawPoll(A_CHIEF, 1), "poll_closed"),
    "close no poll": R(with_poll, c.CloseStrawPoll(A_CHIEF, 2), "unknown_poll"),
    "poll id not a number": R(with_poll, c.CloseStrawPoll(A_CHIEF, "1"), "bad_command"),  # type: ignore[arg-type]
    # Side payments
    "pay a chief": R(
        bonn_with_offer, c.OfferSidePayment("us-chief", "de-chief", 1), "not_a_recipient"
    ),
    "pay a negative amount": R(
        bonn_with_offer, c.OfferSidePayment("us-chief", "us-consumers", -1), "bad_amount"
    ),
    "amount not whole": R(
        bonn_with_offer,
        c.OfferSidePayment("us-chief", "us-consumers", 1.5),  # type: ignore[arg-type]
        "bad_command",
    ),
    "same offer again": R(
        bonn_with_offer, c.OfferSidePayment("us-chief", "us-moderates", 2), "no_change"
    ),
    "withdraw no offer": R(
        bonn_with_offer, c.OfferSidePayment("us-chief", "us-consumers", 0), "no_change"
    ),
    "over the budget": R(
        bonn_with_offer, c.OfferSidePayment("us-chief", "us-consumers", 9), "over_budget"
    ),
    "no budget at all": R(level1, c.OfferSidePayment(A_CHIEF, "A3", 1), "over_budget"),
    "pay an unknown seat": R(level1, c.OfferSidePayment(A_CHIEF, "Z9", 1), "unknown_seat"),
    # Level II
    "vote twice": R(level2, c.CastBallot("A1", False), "already_voted"),
    "vote in Level I": R(level1, c.CastBallot("A1", True), "wrong_phase"),
    # Compliance
    "comply in Level I": R(level1, c.ChooseCompliance(A_CHIEF, True), "wrong_phase"),
    "choose twice": R(compliance, c.ChooseCompliance(A_CHIEF, False), "already_chosen"),
    "comply not a bool": R(compliance, c.ChooseCompliance(B_CHIEF, "no"), "bad_command"),  # type: ignore[arg-type]
    "constituent chooses": R(compliance, c.ChooseCompliance("B1", True), "not_a_chief"),
    # Deadlines
    "instructor fires a deadline": R(
        level1, lambda g: c.FireDeadline(INSTRUCTOR, at_deadline(g)), "not_allowed", at_deadline
    ),
    "player fires a deadline": R(
        level1, lambda g: c.FireDeadline(A_CHIEF, at_deadline(g)), "not_allowed", at_deadline
    ),
    "deadline not a number": R(level1, c.FireDeadline(SYSTEM, "now"), "bad_command"),  # type: ignore[arg-type]
    "deadline NaN": R(level1, c.FireDeadline(SYSTEM, math.nan), "bad_command", at_deadline),
    "deadline overflows": R(level1, c.FireDeadline(SYSTEM, 10**400), "bad_command", at_deadline),
    "stale deadline": R(
        level1, lambda g: c.FireDeadline(SYSTEM, at_deadline(g) - 1), "stale_deadline", at_deadline
    ),
    "deadline in a phase without one": R(
        level1_without_deadlines, c.FireDeadline(SYSTEM, T0 + 900), "stale_deadline", T0 + 2000
    ),
    "deadline in the lobby": R(lobby, c.FireDeadline(SYSTEM, T0), "stale_deadline", T0 + 1),
    "deadline not reached": R(
        level1,
        lambda g: c.FireDeadline(SYSTEM, at_deadline(g)),
        "deadline_not_reached",
        lambda g: at_deadline(g) - 1e-3,
    ),
    # Pause, resume, extend, advance, end
    "pause twice": R(paused, c.PauseGame(INSTRUCTOR), "already_paused"),
    "player pauses": R(level1, c.PauseGame(A_CHIEF), "not_instructor"),
    "resume a running game": R(level1, c.ResumeGame(INSTRUCTOR), "not_paused"),
    "player resumes": R(paused, c.ResumeGame("A1"), "not_instructor"),
    "extend by zero": R(level1, c.ExtendDeadline(INSTRUCTOR, 0), "bad_duration"),
    "extend backwards": R(level1, c.ExtendDeadline(INSTRUCTOR, -60), "bad_duration"),
    "extend beyond a day": R(
        level1, c.ExtendDeadline(INSTRUCTOR, MAX_EXTENSION + 1), "bad_duration"
    ),
    "extend by a fraction": R(level1, c.ExtendDeadline(INSTRUCTOR, 1.5), "bad_command"),  # type: ignore[arg-type]
    "extend in the lobby": R(lobby, c.ExtendDeadline(INSTRUCTOR, 60), "no_deadline"),
    "extend a phase without deadline": R(
        level1_without_deadlines, c.ExtendDeadline(INSTRUCTOR, 60), "no_deadline"
    ),
    "extend a pause without deadline": R(
        paused_without_deadline, c.ExtendDeadline(INSTRUCTOR, 60), "no_deadline"
    ),
    "player extends": R(level1, c.ExtendDeadline(A_CHIEF, 60), "not_instructor"),
    "system advances": R(level1, c.AdvancePhase(SYSTEM), "not_instructor"),
    "player ends the game": R(level1, c.EndGame(B_CHIEF), "not_instructor"),
    "end an ended game": R(ended, c.EndGame(INSTRUCTOR), "game_over"),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusal(case: Refusal) -> None:
    assert refusal_of(*case.prepare()).code == case.code


# --------------------------------------------------------------------------------------------
# The same refusal for every command of a kind


PHASE_BOUND = {
    "propose": (c.Propose(A_CHIEF, (5, 6)), [lobby, level2, compliance]),
    "withdraw": (c.Withdraw(A_CHIEF, 1), [lobby, level2, compliance]),
    "accept": (c.Accept(B_CHIEF, 1), [lobby, level2, compliance]),
    "open poll": (c.OpenStrawPoll(A_CHIEF, (5, 6)), [lobby, level2, compliance]),
    "answer poll": (c.AnswerStrawPoll("A1", 1, True), [lobby, level2, compliance]),
    "close poll": (c.CloseStrawPoll(A_CHIEF, 1), [lobby, level2, compliance]),
    "offer": (c.OfferSidePayment(A_CHIEF, "A1", 0), [lobby, level2, compliance]),
    "ballot": (c.CastBallot("A2", True), [lobby, level1, compliance]),
    "comply": (c.ChooseCompliance(B_CHIEF, True), [lobby, level1, level2]),
    "start": (c.StartGame(INSTRUCTOR), [level1, level2, compliance]),
}


@pytest.mark.parametrize(
    ("command", "setup"),
    [
        pytest.param(command, setup, id=f"{name}-in-{setup.__name__}")
        for name, (command, setups) in PHASE_BOUND.items()
        for setup in setups
    ],
)
def test_a_command_outside_its_phase_is_refused(
    command: c.Command, setup: Callable[[], Game]
) -> None:
    assert setup().code(command) == "wrong_phase"


CHIEFS_ONLY = [
    c.Propose("A1", (5, 6)),
    c.Withdraw("A1", 1),
    c.Accept("B2", 1),
    c.MakeStatement("B3", "hi"),
    c.OpenStrawPoll("A2", (5, 6)),
    c.CloseStrawPoll("A1", 1),
    c.OfferSidePayment("A1", "A2", 0),
    c.ChooseCompliance("B1", True),
]


@pytest.mark.parametrize("command", CHIEFS_ONLY, ids=lambda cmd: type(cmd).__name__)
def test_only_a_chief_negotiates(command: c.Command) -> None:
    assert level1().code(command) == "not_a_chief"


@pytest.mark.parametrize(
    "command",
    [c.AnswerStrawPoll(B_CHIEF, 1, True), c.CastBallot(B_CHIEF, True)],
    ids=lambda cmd: type(cmd).__name__,
)
def test_only_a_constituent_answers_and_votes(command: c.Command) -> None:
    assert level1().code(command) == "not_a_constituent"


INSTRUCTOR_ONLY = [
    c.StartGame(SYSTEM),
    c.AdvancePhase(A_CHIEF),
    c.PauseGame(SYSTEM),
    c.ResumeGame(B_CHIEF),
    c.ExtendDeadline("A1", 60),
    c.EndGame(SYSTEM),
]


@pytest.mark.parametrize("command", INSTRUCTOR_ONLY, ids=lambda cmd: type(cmd).__name__)
def test_only_the_instructor_controls_the_game(command: c.Command) -> None:
    assert lobby().code(command) == "not_instructor"


@pytest.mark.parametrize(
    "actor", ["spectator", INSTRUCTOR, SYSTEM, "", "a-chief", "A-CHIEF", " A-chief"]
)
def test_an_actor_that_is_no_seat_cannot_play(actor: str) -> None:
    assert level1().code(c.Propose(actor, (5, 6))) == "unknown_seat"


def test_a_refusal_changes_neither_state_nor_log() -> None:
    game = with_proposals()
    state, log = game.state, list(game.log)
    for case in ("accept an unknown proposal", "accept own proposal again"):
        command = REFUSALS[case].command
        with pytest.raises(RuleViolation):
            decide(game.state, command, game.now + 1)
    assert game.state is state and game.log == log
    assert game.state == state


# --------------------------------------------------------------------------------------------
# Every refusal path of rules.py has a case above


def refusal_lines() -> set[int]:
    """Lines of ``rules.py`` that refuse: each ``_refuse(`` call and each ``RuleViolation(``
    raised outside ``_refuse`` itself."""
    source = Path(rules.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    inside_refuse: set[int] = set()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_refuse":
            assert node.end_lineno is not None
            inside_refuse |= set(range(node.lineno, node.end_lineno + 1))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"_refuse", "RuleViolation"}
        ):
            lines.add(node.lineno)
    return lines - inside_refuse


def lines_run_in_rules(action: Callable[[], None]) -> set[int]:
    """The lines of ``rules.py`` that ``action`` runs."""
    target = rules.__file__
    hit: set[int] = set()

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            hit.add(frame.f_lineno)
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename == target else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        action()
    finally:
        sys.settrace(previous)
    return hit


def test_refusal_lines_are_found() -> None:
    lines = refusal_lines()
    assert len(lines) >= 50
    source = Path(rules.__file__).read_text(encoding="utf-8").splitlines()
    assert all("_refuse(" in source[n - 1] or "RuleViolation(" in source[n - 1] for n in lines)


def test_every_refusal_in_rules_is_exercised() -> None:
    prepared = [case.prepare() for case in REFUSALS.values()]

    def run_every_case() -> None:
        for game, command, now in prepared:
            with pytest.raises(RuleViolation):
                decide(game.state, command, now)

    missed = refusal_lines() - lines_run_in_rules(run_every_case)
    source = Path(rules.__file__).read_text(encoding="utf-8").splitlines()
    assert not missed, "refusals without a case:\n" + "\n".join(
        f"rules.py:{n}: {source[n - 1].strip()}" for n in sorted(missed)
    )


def test_every_refusal_code_in_rules_has_a_case() -> None:
    source = Path(rules.__file__).read_text(encoding="utf-8")
    codes = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"_refuse", "RuleViolation"}
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert codes == {case.code for case in REFUSALS.values()}
