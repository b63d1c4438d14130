"""The stored log is the truth: folding it up to any seq gives the state the live path held then.

Games are played through ``services.submit`` (the only writer), with the on-commit hooks run as
in production (the state cache is filled on commit, events are published). After every submit
the test keeps what the live path held: the state in the outcome, the state ``load_state``
serves from the cache, and the instructor's and a seat's snapshot (``visibility.view``) as JSON
taken at that moment. At the end the stored log is folded to each of those seqs and must give
equal states and identical snapshots. Games cover several built-in scenarios played by bots
(one with two rounds and a compliance stage), a refused command, a paused game, a failed
ratification, and a cache dropped mid-game.

The game drivers here are also used by ``tests/test_export.py``.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.management import call_command
from django.test import TestCase

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.bots import BotBrain, bot_commands
from negotiation.engine.rules import fold
from negotiation.engine.scenario import scenario_from_dict
from negotiation.engine.state import GameState, changed
from negotiation.engine.visibility import view
from negotiation.engine.winset import Analysis
from negotiation.models import Game, Scenario
from tests.engine.rules_support import one_issue_scenario

pytestmark = pytest.mark.django_db

#: An upper bound on the commands of one bot game, so a bot that loops fails the test.
MAX_COMMANDS = 2000

_brains: dict[str, BotBrain] = {}


def brain_for(state: GameState) -> BotBrain:
    """One ``BotBrain`` per scenario slug for the whole test session (they are costly)."""
    slug = state.scenario.slug
    if slug not in _brains:
        _brains[slug] = BotBrain(Analysis(state.scenario))
    return _brains[slug]


@dataclass
class LiveGame:
    """A game played through ``services.submit``, remembering what the live path held."""

    game: Game
    #: seq -> the state the live path held at that seq (outcome state or ``load_state``).
    states: dict[int, list[GameState]] = field(default_factory=dict)
    #: seq -> viewer -> the snapshot sent to that viewer, as JSON text taken at the time.
    snapshots: dict[int, dict[str, str]] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)

    @property
    def pk(self) -> int:
        return self.game.pk

    def submit(self, command: c.Command, *, issuer: str = "test", now: float | None = None) -> bool:
        """Submit ``command`` as the live path does; returns whether it was accepted."""
        with TestCase.captureOnCommitCallbacks(execute=True):
            outcome = services.submit(game_id=self.pk, command=command, issuer=issuer, now=now)
        if outcome.accepted:
            assert outcome.state is not None
            self.keep(outcome.state)
        else:
            self.refusals.append(outcome.code)
        self.keep(services.load_state(self.pk))
        return outcome.accepted

    def keep(self, state: GameState) -> None:
        self.states.setdefault(state.seq, []).append(state)
        viewers = ["instructor", state.scenario.members[-1].key]
        self.snapshots[state.seq] = {v: json.dumps(view(state, v), sort_keys=True) for v in viewers}

    def state(self) -> GameState:
        return services.load_state(self.pk)


def new_live_game(slug: str, *, bots: bool = False, **settings: Any) -> LiveGame:
    """A new game of a stored scenario (bots in every seat with ``bots``; settings changed by
    ``settings``), its creation remembered as the first live state."""
    row = Scenario.objects.get(slug=slug)
    scenario = scenario_from_dict(row.definition)
    game_settings = dataclasses.replace(scenario.game, **settings) if settings else None
    with TestCase.captureOnCommitCallbacks(execute=True):
        game = services.create_game(
            scenario=row,
            settings=game_settings,
            bot_seats=[m.key for m in scenario.members] if bots else (),
        )
    live = LiveGame(game)
    for seq in range(1, game.last_seq + 1):
        live.keep(fold(services.log_of(game.pk)[:seq]))
    live.keep(services.load_state(game.pk))
    return live


def play_bots(live: LiveGame, *, between: Callable[[LiveGame, int], None] | None = None) -> None:
    """Start the game and let the bots play it to the end, one command at a time; when every
    bot waits, the instructor ends the phase (as its deadline would). ``between(live, n)`` runs
    before the ``n``-th command."""
    live.submit(c.StartGame(c.INSTRUCTOR))
    for count in range(MAX_COMMANDS):
        state = live.state()
        if state.ended:
            return
        if between is not None:
            between(live, count)
            state = live.state()
            if state.ended:
                return
        brain = brain_for(state)
        moves = [cmd for seat in sorted(state.seats) for cmd in bot_commands(state, seat, brain)]
        command = moves[0] if moves else c.AdvancePhase(c.INSTRUCTOR)
        live.submit(command, issuer="bot")
    raise AssertionError(f"the game did not end within {MAX_COMMANDS} commands")


def store_counting_scenario() -> Scenario:
    """The one-issue scenario of the rules tests (country A: A1, A2 ratifying by a strict
    half; country B: B1), stored as a ``Scenario`` row."""
    scenario = one_issue_scenario([1, 1])
    return Scenario.objects.create(slug="counting", title="Counting", definition=scenario.to_dict())


def play_failed_then_ratified(live: LiveGame) -> None:
    """A scripted game of the counting scenario: a refused command, a chat over two lines, a
    pause with an extension, a tentative agreement that A fails to ratify (A1 and A2 say no),
    then the same text agreed and ratified on the second attempt."""
    clock = [1_700_000_000.0]

    def run(command: c.Command) -> bool:
        clock[0] += 1.0
        return live.submit(command, now=clock[0])

    for member in live.state().scenario.members:
        assert run(c.TakeSeat(c.SYSTEM, member.key, f"player-{member.key}", name=member.key))
    assert run(c.Chat("A-chief", "caucus:A", "Hold firm,\nwe will see."))
    assert run(c.StartGame(c.INSTRUCTOR))
    assert not run(c.Propose("A-chief", (11,)))  # off the grid: refused
    assert run(c.PauseGame(c.INSTRUCTOR))
    assert not run(c.Propose("A-chief", (10,)))  # paused: refused
    assert run(c.ExtendDeadline(c.INSTRUCTOR, 30))
    assert run(c.ResumeGame(c.INSTRUCTOR))
    assert run(c.OfferSidePayment("A-chief", "A1", 0)) is False  # no change: refused
    for attempt, ballots in ((1, {"A1": False, "A2": False, "B1": True}), (2, None)):
        assert run(c.Propose("A-chief", (10,)))
        proposal = max(live.state().proposals)
        assert run(c.Accept("B-chief", proposal))
        assert live.state().phase == "level2", attempt
        for voter, yes in (ballots or {"A1": True, "A2": True, "B1": True}).items():
            assert run(c.CastBallot(voter, yes))
    assert live.state().ended


def view_json(state: GameState, viewer: str) -> object:
    """The snapshot ``viewer`` receives, as the JSON value sent over the wire."""
    return json.loads(json.dumps(view(state, viewer)))


def assert_log_matches_live(live: LiveGame) -> None:
    log = services.log_of(live.pk)
    assert log, "the game has no log"
    assert max(live.states) == len(log)
    for seq, held in sorted(live.states.items()):
        folded = fold(log[:seq])
        assert folded.seq == seq
        for state in held:
            assert state == folded, f"seq {seq}: the live state differs from the folded log"
        for viewer, snapshot in live.snapshots[seq].items():
            # Compared as JSON values, as a client reads them: a weight the live path holds as
            # 2.0 is stored as 2 in the event payload (``event_to_dict``), the same number.
            assert view_json(folded, viewer) == json.loads(snapshot), (seq, viewer)


@pytest.fixture(autouse=True)
def scenarios() -> None:
    call_command("load_scenarios", stdout=io.StringIO())
    services.state_cache.clear()


@pytest.mark.parametrize("slug", ["gatt", "bonn-1978", "imf-weak"])
def test_bot_games_of_builtin_scenarios_fold_to_the_live_states(slug: str) -> None:
    live = new_live_game(slug, bots=True)
    play_bots(live)
    assert live.state().ended
    assert_log_matches_live(live)


def test_two_rounds_with_compliance_and_a_cache_dropped_mid_game() -> None:
    def drop_cache(live: LiveGame, count: int) -> None:
        if count % 7 == 3:
            services.state_cache.forget(live.pk)

    live = new_live_game("gatt", bots=True, rounds=2, compliance=True)
    play_bots(live, between=drop_cache)
    log = services.log_of(live.pk)
    assert sum(isinstance(event, e.RoundEnded) for event in log) == 2
    assert any(isinstance(event, e.ComplianceResolved) for event in log)
    assert_log_matches_live(live)


def test_a_refused_command_a_pause_and_a_failed_ratification() -> None:
    store_counting_scenario()
    live = new_live_game("counting")
    play_failed_then_ratified(live)
    assert live.refusals == ["bad_values", "game_paused", "no_change"]
    log = services.log_of(live.pk)
    assert [type(event) for event in log].count(e.InvoluntaryDefection) == 1
    assert any(isinstance(event, e.AgreementInForce) for event in log)
    assert any(isinstance(event, e.GamePaused) for event in log)
    assert_log_matches_live(live)


def test_a_game_ended_while_paused_in_level_two() -> None:
    store_counting_scenario()
    live = new_live_game("counting")
    for member in live.state().scenario.members:
        live.submit(c.TakeSeat(c.SYSTEM, member.key, f"p-{member.key}"))
    live.submit(c.StartGame(c.INSTRUCTOR))
    live.submit(c.Propose("B-chief", (4,)))
    live.submit(c.Accept("A-chief", 1))
    live.submit(c.CastBallot("A1", True))
    live.submit(c.PauseGame(c.INSTRUCTOR))
    assert not live.submit(c.CastBallot("A2", True))
    live.submit(c.EndGame(c.INSTRUCTOR))
    state = live.state()
    assert state.ended and state.rounds[-1].result == "no_agreement"
    assert_log_matches_live(live)


def test_the_check_fails_when_a_live_state_differs_from_the_log() -> None:
    """The comparison is not vacuous: one field off in one kept state is caught."""
    live = new_live_game("gatt", bots=True)
    live.submit(c.StartGame(c.INSTRUCTOR))
    assert_log_matches_live(live)
    last = max(live.states)
    live.states[last].append(changed(live.states[last][0], paused=True))
    with pytest.raises(AssertionError, match=f"seq {last}"):
        assert_log_matches_live(live)
