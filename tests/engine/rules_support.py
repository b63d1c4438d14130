"""Helpers for the rules tests: a game driver that keeps the log, and small scenario builders.

``Game`` wraps ``rules.apply``: every command runs at a clock that moves one second per command
(or to an explicit time), every event lands in ``game.log``, and ``game.refuse`` checks that a
command is refused without changing anything. The clock starts at ``T0``, a real epoch time, so
that tolerances relative to the size of a timestamp would show up.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.rules import RuleViolation, apply, create_game, decide, initial_state
from negotiation.engine.scenario import GameDefaults, Scenario, parse_scenario
from negotiation.engine.scenario import load_builtin as load_builtin_file
from negotiation.engine.state import GameState
from negotiation.engine.utility import votes_yes

T0 = 1_700_000_000.0

INSTRUCTOR = c.INSTRUCTOR
SYSTEM = c.SYSTEM


@functools.cache
def load_builtin(slug: str) -> Scenario:
    """``scenario.load_builtin``, read once per test session (scenarios are immutable).
    Raises ``KeyError`` for an unknown slug."""
    return load_builtin_file(slug)


def settings_for(scenario: Scenario, **changes: Any) -> GameDefaults:
    """The scenario's game settings with ``changes`` (fields of ``GameDefaults``)."""
    return dataclasses.replace(scenario.game, **changes)


class Game:
    """A game under test: its state, its log (starting with ``GameCreated``) and its clock."""

    def __init__(self, scenario: Scenario, settings: GameDefaults | None = None) -> None:
        created = create_game(scenario, settings)
        self.state: GameState = initial_state(created)
        self.log: list[e.Event] = [created]
        self.now = T0

    @property
    def scenario(self) -> Scenario:
        return self.state.scenario

    def run(self, command: c.Command, *, at: float | None = None) -> list[e.Event]:
        """Apply ``command`` at ``at`` (default: one second after the last command) and return
        its events. Raises ``RuleViolation`` when the command is refused."""
        now = self.now + 1.0 if at is None else at
        self.state, events = apply(self.state, command, now)
        self.now = now
        self.log.extend(events)
        return events

    def refuse(self, command: c.Command, *, at: float | None = None) -> RuleViolation:
        """Check that ``command`` is refused and that the refusal changes nothing; return the
        ``RuleViolation``. Fails the test when the command is accepted."""
        before = self.state
        now = self.now + 1.0 if at is None else at
        with pytest.raises(RuleViolation) as caught:
            decide(self.state, command, now)
        assert self.state is before
        assert isinstance(caught.value.code, str) and caught.value.code
        assert isinstance(caught.value.message, str) and caught.value.message
        return caught.value

    def code(self, command: c.Command, *, at: float | None = None) -> str:
        """The code of the refusal of ``command`` (see ``refuse``)."""
        return self.refuse(command, at=at).code

    # ----------------------------------------------------------------------------------------
    # Seats and roles

    def chief(self, index: int = 0) -> str:
        return self.scenario.countries[index].chief.key

    def constituents(self, index: int) -> list[str]:
        return [m.key for m in self.scenario.countries[index].constituents]

    def all_constituents(self) -> list[str]:
        return [m.key for co in self.scenario.countries for m in co.constituents]

    def seat_everyone(self) -> None:
        for member in self.scenario.members:
            self.run(c.TakeSeat(SYSTEM, member.key, f"player-{member.key}"))

    def start(self) -> list[e.Event]:
        return self.run(c.StartGame(INSTRUCTOR))

    # ----------------------------------------------------------------------------------------
    # Level I and Level II

    def propose(self, index: int, values: Sequence[float], **kwargs: Any) -> int:
        """Chief ``index`` tables ``values``; returns the new proposal's id."""
        events = self.run(c.Propose(self.chief(index), tuple(values), **kwargs))
        made = [ev for ev in events if isinstance(ev, e.ProposalMade)]
        assert len(made) == 1
        return made[0].proposal_id

    def agree(self, values: Sequence[float]) -> list[e.Event]:
        """Chief 0 proposes ``values`` and every other chief accepts: a tentative agreement.
        Returns the events of the last acceptance."""
        proposal_id = self.propose(0, values)
        events: list[e.Event] = []
        for index in range(1, len(self.scenario.countries)):
            events = self.run(c.Accept(self.chief(index), proposal_id))
        assert any(isinstance(ev, e.TentativeAgreement) for ev in events)
        return events

    def vote(self, ballots: Mapping[str, bool]) -> list[e.Event]:
        """Cast ``ballots`` in order; returns every event they caused."""
        events: list[e.Event] = []
        for member, yes in ballots.items():
            events += self.run(c.CastBallot(member, yes))
        return events

    def sincere_ballots(
        self, values: Sequence[float], transfers: Mapping[str, int] | None = None
    ) -> dict[str, bool]:
        """Each constituent's sincere vote on ``values`` (DESIGN §3: ``U + t > r + 1e-9``)."""
        transfers = transfers or {}
        return {
            m.key: votes_yes(
                self.scenario.utility_of(m, values), m.reservation, transfers.get(m.key, 0)
            )
            for co in self.scenario.countries
            for m in co.constituents
        }

    def events_of(self, kind: type[e.Event]) -> list[Any]:
        return [ev for ev in self.log if isinstance(ev, kind)]


def started_game(slug: str = "gatt", **settings: Any) -> Game:
    """A built-in scenario with every seat taken, started: round 1, attempt 1, Level I."""
    scenario = load_builtin(slug)
    game = Game(scenario, settings_for(scenario, **settings))
    game.seat_everyone()
    game.start()
    return game


def scenario_game(scenario: Scenario, **settings: Any) -> Game:
    """A started game of ``scenario`` with every seat taken."""
    game = Game(scenario, settings_for(scenario, **settings))
    game.seat_everyone()
    game.start()
    return game


def counting_member(key: str, **extra: Any) -> dict[str, Any]:
    """A member of the counting scenarios: ideal 10 on issue ``x``, reservation 0."""
    return {"key": key, "name": key, "ideal": {"x": 10}, "reservation": 0, **extra}


def counting_country(key: str, constituents: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "name": key,
        "ratification": {"quota": "1/2"},
        "chief": counting_member(f"{key}-chief"),
        "constituents": constituents,
        **extra,
    }


def one_issue_scenario(
    weights_a: Sequence[str | int | float],
    *,
    quota: str = "1/2",
    strict: bool = True,
    veto_a: Sequence[bool] | None = None,
    budget_a: int = 0,
) -> Scenario:
    """One issue ``x`` in 0..10. Country A's constituents A1.. have ``weights_a`` (and veto
    flags ``veto_a``) and ratify by ``quota``; country B has one constituent B1. Every member's
    preferences are the same (ideal 10, reservation 0): these scenarios test counting only."""
    vetoes = list(veto_a) if veto_a is not None else [False] * len(weights_a)
    members_a = [
        counting_member(f"A{i + 1}", weight=w, veto=v)
        for i, (w, v) in enumerate(zip(weights_a, vetoes, strict=True))
    ]
    return parse_scenario(
        {
            "schema": 1,
            "slug": "counting",
            "title": "Counting",
            "utility": "cityblock",
            "issues": [{"key": "x", "label": "x", "min": 0, "max": 10}],
            "no_agreement": {"x": 0},
            "countries": [
                counting_country(
                    "A",
                    members_a,
                    ratification={"quota": quota, "strict": strict},
                    side_payment_budget=budget_a,
                ),
                counting_country("B", [counting_member("B1")]),
            ],
        }
    )


def three_country_scenario() -> Scenario:
    """``one_issue_scenario([1, 1])`` with a third country C (chief C-chief, constituent C1):
    with three chiefs one acceptance does not close a deal, so acceptances can be watched."""
    data = one_issue_scenario([1, 1]).to_dict()
    data["countries"].append(counting_country("C", [counting_member("C1")]))
    return parse_scenario(data)
