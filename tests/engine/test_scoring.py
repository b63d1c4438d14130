"""Scores (DESIGN §5) on hand-built event logs with hand-computed answers.

Logs are built event by event (``LogBuilder`` below) starting with ``rules.create_game``; one
test plays the same game through ``rules.apply`` and checks it scores the same.

On GATT every salience is 1 and both ranges are 10, so ``U(x) = 100 - 5 * d`` with ``d`` the
city-block distance from the member's ideal point. Member score = ``U + t - r``:

    point    A1 (6,9) r70   A2 (2,8) r70   A3 (1,5) r75   A-chief (4,8) r60
    (5,5)    d5 U75 -> 5    d6 U70 -> 0    d4 U80 -> 5    d4 U80 -> 20
    (6,7)    d2 U90 -> 20   d5 U75 -> 5    d7 U65 -> -10  d3 U85 -> 25

    point    B1 (9,5) r66   B2 (8,3) r68   B3 (5,0) r73   B-chief (8,4) r60
    (5,5)    d4 U80 -> 14   d5 U75 -> 7    d5 U75 -> 2    d4 U80 -> 20
    (6,7)    d5 U75 -> 9    d6 U70 -> 2    d8 U60 -> -13  d5 U75 -> 15

Both points are in GATT's zone of agreement (each country has two yes votes of three).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine import rules
from negotiation.engine.scenario import Scenario, parse_scenario
from negotiation.engine.scoring import CountryScore, reputation, score_game, score_state
from negotiation.engine.state import COMPLIANCE, LEVEL1, LEVEL2

Point = tuple[float, ...]
GATT_GRID = [(float(a), float(b)) for a in range(11) for b in range(11)]

# --------------------------------------------------------------------------------------------
# Scenarios, built inline from DESIGN §6 so the hand arithmetic does not depend on the files


def member(
    key: str,
    ideal: Sequence[float],
    reservation: float | None = None,
    *,
    issues: Sequence[str] = ("a_cut", "b_cut"),
    salience: Sequence[float] | None = None,
    weight: int | str | None = None,
    veto: bool | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"key": key, "name": key, "ideal": dict(zip(issues, ideal, strict=True))}
    if reservation is not None:
        data["reservation"] = reservation
    if salience is not None:
        data["salience"] = dict(zip(issues, salience, strict=True))
    if weight is not None:
        data["weight"] = weight
    if veto is not None:
        data["veto"] = veto
    return data


def two_issue_scenario(
    slug: str,
    a_members: Sequence[dict[str, Any]],
    b_members: Sequence[dict[str, Any]],
    *,
    chiefs: tuple[dict[str, Any], dict[str, Any]],
    issues: Sequence[dict[str, Any]] | None = None,
    ratification: tuple[dict[str, Any], dict[str, Any]] | None = None,
    country_keys: tuple[str, str] = ("A", "B"),
    extra: Mapping[str, Any] | None = None,
    budgets: tuple[int, int] = (0, 0),
) -> Scenario:
    rat = ratification or ({"quota": "1/2", "strict": True}, {"quota": "1/2", "strict": True})
    return parse_scenario(
        {
            "schema": 1,
            "slug": slug,
            "title": slug,
            "utility": "cityblock",
            "issues": list(
                issues
                or [
                    {"key": "a_cut", "min": 0, "max": 10},
                    {"key": "b_cut", "min": 0, "max": 10},
                ]
            ),
            **(extra or {}),
            "countries": [
                {
                    "key": key,
                    "ratification": rat[i],
                    "side_payment_budget": budgets[i],
                    "chief": chiefs[i],
                    "constituents": list(members),
                }
                for i, (key, members) in enumerate(
                    zip(country_keys, (a_members, b_members), strict=True)
                )
            ],
        }
    )


def gatt(*, b_ratification: dict[str, Any] | None = None) -> Scenario:
    """DESIGN §6 GATT round; ``b_ratification`` overrides Borduria's rule."""
    majority = {"quota": "1/2", "strict": True}
    return two_issue_scenario(
        "gatt-inline",
        [member("A1", (6, 9), 70), member("A2", (2, 8), 70), member("A3", (1, 5), 75)],
        [member("B1", (9, 5), 66), member("B2", (8, 3), 68), member("B3", (5, 0), 73)],
        chiefs=(member("A-chief", (4, 8), 60), member("B-chief", (8, 4), 60)),
        ratification=(majority, b_ratification or majority),
    )


BONN_ISSUES = [
    {"key": "stimulus", "min": 0, "max": 8},
    {"key": "oil", "min": 50, "max": 100, "step": 5},
]


def bonn(
    de_weights: Sequence[int | str] = (42, 13, 45), us_weights: Sequence[int | str] = (30, 45, 25)
) -> Scenario:
    """DESIGN §6 Bonn 1978: no agreement (0, 60), every reservation derived from it."""
    keys = ("stimulus", "oil")
    de = [
        member("de-spd", (4, 100), issues=keys, salience=(2, 1), weight=de_weights[0]),
        member("de-fdp", (0, 100), issues=keys, salience=(1, 1), weight=de_weights[1]),
        member("de-cdu", (0, 100), issues=keys, salience=(3, 1), weight=de_weights[2]),
    ]
    us = [
        member("us-producers", (8, 100), issues=keys, salience=(1, 2), weight=us_weights[0]),
        member("us-consumers", (8, 50), issues=keys, salience=(1, 2), weight=us_weights[1]),
        member("us-moderates", (8, 65), issues=keys, salience=(1, 1), weight=us_weights[2]),
    ]
    return two_issue_scenario(
        "bonn-inline",
        de,
        us,
        chiefs=(
            member("de-chief", (2, 100), issues=keys),
            member("us-chief", (6, 100), issues=keys),
        ),
        issues=BONN_ISSUES,
        country_keys=("DE", "USA"),
        extra={"no_agreement": {"stimulus": 0, "oil": 60}},
        budgets=(0, 10),
    )


# --------------------------------------------------------------------------------------------
# Hand-built logs


class LogBuilder:
    """Appends the events of a game by hand, in the order ``rules`` would emit them."""

    def __init__(self, scenario: Scenario, **game: Any) -> None:
        self.scenario = scenario
        self.chiefs = [ch.key for ch in scenario.chiefs]
        settings_ = dataclasses.replace(scenario.game, **game)
        self.events: list[e.Event] = [rules.create_game(scenario, settings_)]
        self.round = 0
        self.attempt = 0
        self.next_id = 1
        self.pending: tuple[int, Point] | None = None

    def add(self, *events: e.Event) -> LogBuilder:
        self.events.extend(events)
        return self

    def phase(self, phase: str, reason: str) -> LogBuilder:
        return self.add(e.PhaseChanged(phase, self.round, self.attempt, None, reason))

    def start_round(self) -> LogBuilder:
        self.round += 1
        self.attempt = 1
        return self.phase(LEVEL1, "game_started" if self.round == 1 else "next_round")

    def propose(self, by: str, values: Sequence[float]) -> int:
        pid = self.next_id
        self.next_id += 1
        self.add(e.ProposalMade(pid, by, tuple(float(v) for v in values)))
        return pid

    def tentative(self, values: Sequence[float]) -> LogBuilder:
        """The first chief proposes ``values``, the others accept: Level II opens."""
        point = tuple(float(v) for v in values)
        pid = self.propose(self.chiefs[0], point)
        for chief in self.chiefs[1:]:
            self.add(e.ProposalAccepted(pid, chief))
        self.pending = (pid, point)
        self.add(e.TentativeAgreement(pid, point))
        return self.phase(LEVEL2, "tentative_agreement")

    def _count(self, failed: Sequence[str]) -> tuple[int, Point]:
        assert self.pending is not None
        pid, point = self.pending
        results = tuple(
            e.CountryResult(co.key, co.key not in failed, 2.0, 3.0, ())
            for co in self.scenario.countries
        )
        self.add(e.BallotsCounted(pid, point, {}, results))
        return pid, point

    def ratify(self, transfers: Mapping[str, int] | None = None) -> LogBuilder:
        pid, point = self._count(())
        return self.add(e.AgreementInForce(pid, point, dict(transfers or {})))

    def fail(self, *countries: str, attempts_left: int) -> LogBuilder:
        pid, _ = self._count(countries)
        self.add(e.InvoluntaryDefection(pid, tuple(countries), attempts_left))
        self.pending = None
        if attempts_left > 0:
            self.attempt += 1
            self.phase(LEVEL1, "involuntary_defection")
        return self

    def comply(self, choices: Mapping[str, bool], payoffs: Mapping[str, float]) -> LogBuilder:
        self.phase(COMPLIANCE, "agreement_in_force")
        for country in self.scenario.countries:
            if country.key in choices:
                self.add(e.ComplianceChosen(country.chief.key, choices[country.key]))
        return self.add(e.ComplianceResolved(dict(choices), dict(payoffs)))

    def end_round(self, result: str) -> LogBuilder:
        values = (
            self.pending[1]
            if self.pending is not None and result in ("agreement", "voluntary_defection")
            else None
        )
        self.pending = None
        return self.add(e.RoundEnded(self.round, result, values))

    def end_game(self, reason: str = "all_rounds_played") -> list[e.Event]:
        self.add(e.GameEnded(reason))
        return self.events


def agreement_game(
    scenario: Scenario, values: Sequence[float], transfers: Mapping[str, int] | None = None
) -> list[e.Event]:
    """One round: tentative agreement on ``values``, ratified, in force."""
    log = LogBuilder(scenario).start_round().tentative(values).ratify(transfers)
    return log.end_round("agreement").end_game()


def chief_score(welfare: float, own: float, reputation_: float) -> float:
    return 0.5 * welfare + 0.3 * own + 0.2 * reputation_


# --------------------------------------------------------------------------------------------
# Members, countries and chiefs on hand-computed answers


def test_gatt_agreement_scores_members_countries_and_chiefs() -> None:
    scores = score_game(agreement_game(gatt(), (5, 5)))
    # A1: U(5,5) = 100*(1 - (1/10 + 4/10)/2) = 75, r = 70, score 5 (table in the docstring)
    assert scores.members == pytest.approx({"A1": 5, "A2": 0, "A3": 5, "B1": 14, "B2": 7, "B3": 2})
    assert scores.rounds_played == 1
    a, b = scores.countries["A"], scores.countries["B"]
    # equal weights: A (5 + 0 + 5)/3 = 10/3; B (14 + 7 + 2)/3 = 23/3
    assert a.welfare == pytest.approx(10 / 3)
    assert b.welfare == pytest.approx(23 / 3)
    # one tentative agreement, no defection: reputation 100
    assert (a.reputation, b.reputation) == (100.0, 100.0)
    # A-chief: 0.5 * 10/3 + 0.3 * 20 + 0.2 * 100 = 27.6667; B-chief: 0.5 * 23/3 + 6 + 20
    assert scores.chiefs == pytest.approx({"A-chief": 27.666666667, "B-chief": 29.833333333})
    assert a == CountryScore("A", a.welfare, 100.0, 0, 0, 0.0)


def test_bonn_welfare_is_the_weight_average_and_counts_transfers() -> None:
    # Reservations from (0, 60): SPD 100*(1 - (2*4/8 + 40/50)/3) = 40; FDP 100*(1 - 0.8/2) = 60;
    # CDU 100*(1 - 0.8/4) = 80; producers 100*(1 - (1 + 2*0.8)/3) = 13.333;
    # consumers 100*(1 - (1 + 2*0.2)/3) = 53.333; moderates 100*(1 - (1 + 0.1)/2) = 45;
    # Schmidt (2,100): 100*(1 - (2/8 + 0.8)/2) = 47.5; Carter (6,100): 100*(1 - (6/8 + 0.8)/2) = 22.5
    # At (4, 90):
    # SPD 100*(1 - (0 + 2*... ) -> (2*0/8 + 10/50)/3 = 0.0667, U 93.333, score 53.333
    # FDP (4/8 + 10/50)/2 = 0.35, U 65, score 5;  CDU (3*4/8 + 0.2)/4 = 0.425, U 57.5, score -22.5
    # producers (4/8 + 2*10/50)/3 = 0.3, U 70, score 56.667
    # consumers (4/8 + 2*40/50)/3 = 0.7, U 30, + t 4 - 53.333 = -19.333
    # moderates (4/8 + 25/50)/2 = 0.5, U 50, + t 6 - 45 = 11
    transfers = {"us-consumers": 4, "us-moderates": 6}
    scores = score_game(agreement_game(bonn(), (4, 90), transfers))
    assert scores.members == pytest.approx(
        {
            "de-spd": 53.333333333,
            "de-fdp": 5,
            "de-cdu": -22.5,
            "us-producers": 56.666666667,
            "us-consumers": -19.333333333,
            "us-moderates": 11,
        }
    )
    # DE: 0.42*53.333 + 0.13*5 + 0.45*(-22.5) = 22.4 + 0.65 - 10.125 = 12.925
    # USA: 0.30*56.667 + 0.45*(-19.333) + 0.25*11 = 17 - 8.7 + 2.75 = 11.05
    assert scores.countries["DE"].welfare == pytest.approx(12.925)
    assert scores.countries["USA"].welfare == pytest.approx(11.05)
    # Schmidt: U(4,90) = 100*(1 - (2/8 + 10/50)/2) = 77.5, own 77.5 - 47.5 = 30
    #   0.5*12.925 + 0.3*30 + 0.2*100 = 6.4625 + 9 + 20 = 35.4625
    # Carter: U = 100*(1 - (2/8 + 10/50)/2) = 77.5, own 55: 5.525 + 16.5 + 20 = 42.025
    assert scores.chiefs == pytest.approx({"de-chief": 35.4625, "us-chief": 42.025})


def test_transfers_change_exactly_the_paid_members() -> None:
    unpaid = score_game(agreement_game(bonn(), (4, 90)))
    paid = score_game(agreement_game(bonn(), (4, 90), {"us-consumers": 4, "us-moderates": 6}))
    assert paid.members["us-consumers"] - unpaid.members["us-consumers"] == pytest.approx(4)
    assert paid.members["us-moderates"] - unpaid.members["us-moderates"] == pytest.approx(6)
    assert {k: v for k, v in paid.members.items() if k not in ("us-consumers", "us-moderates")} == {
        k: v for k, v in unpaid.members.items() if k not in ("us-consumers", "us-moderates")
    }
    # welfare rises by 0.45*4 + 0.25*6 = 3.3 (7.75 -> 11.05); the chief by half of it
    assert paid.countries["USA"].welfare - unpaid.countries["USA"].welfare == pytest.approx(3.3)
    assert paid.chiefs["us-chief"] - unpaid.chiefs["us-chief"] == pytest.approx(1.65)


def test_fractional_weights() -> None:
    # 21/50, 13/100, 9/20 are 0.42, 0.13, 0.45: the same shares as 42/13/45, so 12.925 again
    same = score_game(agreement_game(bonn(de_weights=("21/50", "13/100", "9/20")), (4, 90)))
    assert same.countries["DE"].welfare == pytest.approx(12.925)
    # 1/2, 1/3, 1/6 (total 1): 53.333/2 + 5/3 - 22.5/6 = 26.6667 + 1.6667 - 3.75 = 24.5833
    halves = score_game(agreement_game(bonn(de_weights=("1/2", "1/3", "1/6")), (4, 90)))
    assert halves.countries["DE"].welfare == pytest.approx(24.583333333)
    # USA 0.5, 1.5, 2 (total 4): (0.5*56.667 + 1.5*(-23.333) + 2*5)/4 = (28.333 - 35 + 10)/4
    decimals = score_game(agreement_game(bonn(us_weights=("0.5", "1.5", 2)), (4, 90)))
    assert decimals.countries["USA"].welfare == pytest.approx(3.333333333 / 4)


def test_member_scores_are_zero_without_an_agreement_in_force() -> None:
    # round 1: discord; round 2: a tentative agreement that A fails to ratify, attempts run out
    log = LogBuilder(gatt(), rounds=2, attempts=1).start_round()
    log.propose("A-chief", (2, 9))
    log.propose("B-chief", (9, 2))
    log.end_round("no_agreement").start_round().tentative((5, 5))
    events = log.fail("A", attempts_left=0).end_round("involuntary_defection").end_game()
    scores = score_game(events)
    assert scores.rounds_played == 2
    assert set(scores.members.values()) == {0.0}
    assert scores.countries["A"].welfare == scores.countries["B"].welfare == 0.0
    # 1 tentative agreement, A failed it: reputation 100*(1 - 1/1) = 0; B keeps 100
    assert scores.countries["A"].reputation == 0.0
    assert scores.countries["B"].reputation == 100.0
    # chiefs: 0.5*0 + 0.3*0 + 0.2*reputation
    assert scores.chiefs == {"A-chief": 0.0, "B-chief": 20.0}
    assert scores.countries["A"].involuntary_defections == 1


def test_game_without_rounds_scores_zero_and_full_reputation() -> None:
    events = [rules.create_game(gatt()), e.GameEnded("ended_by_instructor")]
    scores = score_game(events)
    assert scores.rounds_played == 0
    assert set(scores.members.values()) == {0.0}
    assert scores.chiefs == {"A-chief": 20.0, "B-chief": 20.0}


def multi_round_game() -> list[e.Event]:
    """Three rounds with compliance:
    1. a tentative agreement on (5,5) fails in A; the second attempt ratifies it; B defects
       (payoffs A sucker 0, B temptation 5): voluntary defection;
    2. no agreement;
    3. (6,7) ratified, both comply (3 each)."""
    log = LogBuilder(gatt(), rounds=3, attempts=2, compliance=True).start_round()
    log.tentative((5, 5)).fail("A", attempts_left=1).tentative((5, 5)).ratify()
    log.comply({"A": True, "B": False}, {"A": 0.0, "B": 5.0}).end_round("voluntary_defection")
    log.start_round()
    log.propose("B-chief", (9, 2))
    log.end_round("no_agreement")
    log.start_round().tentative((6, 7)).ratify()
    log.comply({"A": True, "B": True}, {"A": 3.0, "B": 3.0}).end_round("agreement")
    return log.end_game()


def test_multi_round_game_with_both_kinds_of_defection() -> None:
    scores = score_game(multi_round_game())
    assert scores.rounds_played == 3
    # mean over rounds (5,5) / none / (6,7), the voluntary-defection round still counting:
    # A1 (5 + 0 + 20)/3 = 25/3; A2 (0 + 0 + 5)/3 = 5/3; A3 (5 + 0 - 10)/3 = -5/3
    # B1 (14 + 0 + 9)/3 = 23/3; B2 (7 + 0 + 2)/3 = 3;   B3 (2 + 0 - 13)/3 = -11/3
    assert scores.members == pytest.approx(
        {"A1": 25 / 3, "A2": 5 / 3, "A3": -5 / 3, "B1": 23 / 3, "B2": 3, "B3": -11 / 3}
    )
    a, b = scores.countries["A"], scores.countries["B"]
    # A welfare (25/3 + 5/3 - 5/3)/3 = 25/9; B (23/3 + 9/3 - 11/3)/3 = 7/3
    assert a.welfare == pytest.approx(25 / 9)
    assert b.welfare == pytest.approx(7 / 3)
    # 3 tentative agreements (two in round 1, one in round 3)
    # A: 1 involuntary -> 100*(1 - 1/3) = 66.667; B: 1 voluntary (2x) -> 100*(1 - 2/3) = 33.333
    assert (a.involuntary_defections, a.voluntary_defections) == (1, 0)
    assert (b.involuntary_defections, b.voluntary_defections) == (0, 1)
    assert a.reputation == pytest.approx(200 / 3)
    assert b.reputation == pytest.approx(100 / 3)
    # A-chief own (20 + 0 + 25)/3 = 15: 0.5*25/9 + 0.3*15 + 0.2*66.667 = 1.3889 + 4.5 + 13.3333
    # B-chief own (20 + 0 + 15)/3 = 35/3: 0.5*7/3 + 0.3*35/3 + 0.2*33.333 = 1.1667 + 3.5 + 6.6667
    assert scores.chiefs["A-chief"] == pytest.approx(19.222222222)
    assert scores.chiefs["B-chief"] == pytest.approx(11.333333333)
    assert scores.chiefs["A-chief"] == pytest.approx(chief_score(25 / 9, 15, 200 / 3))
    # compliance payoffs summed over rounds: A 0 + 3, B 5 + 3
    assert (a.compliance_payoff, b.compliance_payoff) == (3.0, 8.0)


@pytest.mark.parametrize(
    ("tentative", "involuntary", "voluntary", "expected"),
    [
        (1, 0, 0, 100.0),
        (2, 1, 0, 50.0),  # 1x: 100*(1 - 1/2)
        (4, 0, 1, 50.0),  # 2x: 100*(1 - 2/4)
        (4, 1, 1, 25.0),  # 100*(1 - 3/4)
        (1, 0, 1, 0.0),  # 100*(1 - 2/1) = -100, floored at 0
        (0, 0, 0, 100.0),
    ],
)
def test_reputation_falls_per_tentative_agreement(
    tentative: int, involuntary: int, voluntary: int, expected: float
) -> None:
    state = rules.fold([rules.create_game(gatt())])
    state = dataclasses.replace(
        state,
        tentative_agreements=tentative,
        involuntary_defections={"A": involuntary},
        voluntary_defections={"A": voluntary},
    )
    assert reputation(state, "A") == pytest.approx(expected)
    assert reputation(state, "B") == 100.0


def test_reputation_floor_from_a_log() -> None:
    # one tentative agreement, ratified, then A defects: 100*(1 - 2/1) < 0 -> 0
    log = LogBuilder(gatt(), compliance=True).start_round().tentative((5, 5)).ratify()
    log.comply({"A": False, "B": True}, {"A": 5.0, "B": 0.0}).end_round("voluntary_defection")
    scores = score_game(log.end_game())
    assert scores.countries["A"].reputation == 0.0
    # members of both countries still score the agreement that entered into force
    assert scores.members["A1"] == pytest.approx(5)
    assert scores.members["B1"] == pytest.approx(14)
    # A-chief: 0.5*10/3 + 0.3*20 + 0.2*0 = 7.6667
    assert scores.chiefs["A-chief"] == pytest.approx(7.666666667)


def test_played_game_scores_like_the_hand_built_log() -> None:
    scenario = gatt()
    state = rules.fold([rules.create_game(scenario)])
    events: list[e.Event] = [rules.create_game(scenario)]
    commands: list[c.Command] = [
        c.StartGame(actor=c.INSTRUCTOR),
        c.Chat(actor="A-chief", channel="table", text="Five and five?"),
        c.Propose(actor="A-chief", values=(5.0, 5.0)),
        c.Accept(actor="B-chief", proposal_id=1),
        *(c.CastBallot(actor=key, yes=True) for key in ("A1", "A2", "A3", "B1", "B2", "B3")),
    ]
    for command in commands:
        state, new = rules.apply(state, command, 1000.0)
        events += new
    assert state.ended
    assert score_game(events) == score_game(agreement_game(scenario, (5, 5)))
    assert score_state(state) == score_game(events)


def test_score_game_needs_game_created_first() -> None:
    with pytest.raises(ValueError, match="game_created"):
        score_game([e.GameEnded("x")])
    with pytest.raises(ValueError, match="game_created"):
        score_game([])


def test_to_dict_is_json_and_rounded() -> None:
    scores = score_game(multi_round_game())
    data = scores.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["members"]["A1"] == 8.333333
    assert data["countries"]["B"]["compliance_payoff"] == 8
    # a non-finite number (only a corrupt state could hold one) becomes None, not NaN
    broken = dataclasses.replace(scores, members={"A1": float("nan")}, chiefs={"x": float("inf")})
    assert broken.to_dict()["members"] == {"A1": None}
    assert broken.to_dict()["chiefs"] == {"x": None}
    json.dumps(broken.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------------------------
# Properties (hypothesis)

KINDS = ("agreement", "no_agreement", "involuntary_defection", "voluntary_defection")
GATT_CONSTITUENTS = ("A1", "A2", "A3", "B1", "B2", "B3")


@st.composite
def round_specs(draw: st.DrawFn, kinds: Sequence[str] = KINDS) -> dict[str, Any]:
    return {
        "kind": draw(st.sampled_from(kinds)),
        "point": draw(st.sampled_from(GATT_GRID)),
        "failures": draw(st.integers(0, 1)),
        "transfers": draw(
            st.dictionaries(st.sampled_from(GATT_CONSTITUENTS), st.integers(1, 10), max_size=3)
        ),
        "defector": draw(st.sampled_from(("A", "B"))),
    }


def build_game(specs: Sequence[dict[str, Any]]) -> list[e.Event]:
    """A GATT game of ``len(specs)`` rounds, each shaped by its spec."""
    log = LogBuilder(gatt(), rounds=max(1, len(specs)), attempts=2, compliance=True)
    for spec in specs:
        log.start_round()
        kind = spec["kind"]
        if kind == "no_agreement":
            log.propose("A-chief", spec["point"])
            log.end_round("no_agreement")
            continue
        if kind == "involuntary_defection":
            log.tentative(spec["point"]).fail("A", attempts_left=1)
            log.tentative(spec["point"]).fail("B", attempts_left=0)
            log.end_round("involuntary_defection")
            continue
        for _ in range(spec["failures"]):
            log.tentative(spec["point"]).fail(spec["defector"], attempts_left=1)
        log.tentative(spec["point"]).ratify(spec["transfers"])
        comply = kind == "agreement"
        choices = {"A": comply or spec["defector"] != "A", "B": comply or spec["defector"] != "B"}
        payoffs = {
            k: 3.0 if all(choices.values()) else (0.0 if v else 5.0) for k, v in choices.items()
        }
        log.comply(choices, payoffs).end_round(kind)
    return log.end_game()


def with_talk(events: Sequence[e.Event], positions: Sequence[int]) -> list[e.Event]:
    """``events`` with chat lines and statements inserted after the given positions."""
    result = list(events[:1])
    for index, event in enumerate(events[1:], start=1):
        result.append(event)
        for n in range(positions.count(index)):
            result.append(
                e.ChatPosted("table", "A-chief", f"line {n}")
                if n % 2 == 0
                else e.StatementMade("B-chief", "We will not move.")
            )
    return result


@settings(max_examples=40, deadline=None)
@given(st.lists(round_specs(("no_agreement", "involuntary_defection")), min_size=1, max_size=4))
def test_member_score_is_zero_without_agreement(specs: list[dict[str, Any]]) -> None:
    scores = score_game(build_game(specs))
    assert set(scores.members.values()) == {0.0}
    for country in scores.countries.values():
        assert country.welfare == 0.0
        assert scores.chiefs[f"{country.country}-chief"] == pytest.approx(0.2 * country.reputation)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(round_specs(), min_size=1, max_size=4),
    st.lists(st.integers(1, 60), max_size=12),
)
def test_scores_are_a_pure_function_of_the_log(
    specs: list[dict[str, Any]], positions: list[int]
) -> None:
    events = build_game(specs)
    first = score_game(events)
    assert score_game(list(events)) == first
    # chat and statements change nothing; nor does a round trip through the stored payloads
    assert score_game(with_talk(events, positions)) == first
    stored = [e.event_from_dict(json.loads(json.dumps(e.event_to_dict(ev)))) for ev in events]
    assert score_game(stored) == first
    json.dumps(first.to_dict(), allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(GATT_GRID),
    st.dictionaries(st.sampled_from(GATT_CONSTITUENTS), st.integers(0, 10), max_size=6),
)
def test_one_round_member_score_is_utility_plus_transfer_minus_reservation(
    point: Point, transfers: dict[str, int]
) -> None:
    scenario = gatt()
    scores = score_game(agreement_game(scenario, point, transfers))
    for m in scenario.members:
        expected = scenario.utility_of(m, point) + transfers.get(m.key, 0) - m.reservation
        if m.role == "constituent":
            assert scores.members[m.key] == pytest.approx(expected)
    for country in scenario.countries:
        welfare = sum(scores.members[m.key] for m in country.constituents) / 3
        assert scores.countries[country.key].welfare == pytest.approx(welfare)
        own = scenario.utility_of(country.chief, point) - country.chief.reservation
        assert scores.chiefs[country.chief.key] == pytest.approx(chief_score(welfare, own, 100))


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([(float(s), float(o)) for s in range(9) for o in range(50, 101, 5)]),
    st.fractions(min_value=Fraction(1, 100), max_value=100),
)
def test_welfare_does_not_change_when_all_weights_scale(point: Point, factor: Fraction) -> None:
    base = score_game(agreement_game(bonn(), point))
    scaled_weights = [str(Fraction(w) * factor) for w in (42, 13, 45)]
    scaled = score_game(agreement_game(bonn(de_weights=scaled_weights), point))
    assert scaled.countries["DE"].welfare == pytest.approx(base.countries["DE"].welfare, abs=1e-9)
    assert scaled.members == pytest.approx(base.members)
