"""Debrief analytics (DESIGN §5) on hand-built proposal sequences and logs.

On GATT (see ``test_scoring``) ``U = 100 - 5 * d``, and with three equal weights and a strict
majority the pivotal surplus is the second-best margin:

    m_A(x) = 2nd largest of (30 - 5 d(x, (6,9)), 30 - 5 d(x, (2,8)), 25 - 5 d(x, (1,5)))
    m_B(x) = 2nd largest of (34 - 5 d(x, (9,5)), 32 - 5 d(x, (8,3)), 27 - 5 d(x, (5,0)))

(every m is also lowered by the 1e-9 tie margin, which cancels in concessions). Values used:

    A proposes   B1   B2   B3   m_B        B proposes   A1   A2   A3   m_A
    (2,9)       -21  -28  -33   -28        (9,2)       -20  -35  -30   -30
    (3,8)       -11  -18  -23   -18        (8,3)       -10  -25  -20   -20
    (4,7)        -1   -8  -13    -8        (8,4)        -5  -20  -15   -15
    (5,6)         9    2   -3     2
    (3,9)       -16  -23  -28   -23
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from negotiation.engine import events as e
from negotiation.engine import rules
from negotiation.engine.analytics import (
    COOPERATION,
    DISCORD,
    HARMONY,
    INVOLUNTARY,
    LABELS,
    VOLUNTARY,
    Concession,
    Debrief,
    Outcome,
    concessions,
    debrief,
    distance_to_nash,
    outcomes,
    reciprocity,
    share_of_gains,
    surpluses,
)
from negotiation.engine.scenario import Scenario, parse_scenario
from negotiation.engine.winset import Analysis
from tests.engine.test_scoring import (
    GATT_GRID,
    LogBuilder,
    agreement_game,
    bonn,
    build_game,
    gatt,
    member,
    multi_round_game,
    round_specs,
    two_issue_scenario,
    with_talk,
)

Point = tuple[float, ...]
EPS = 1e-9  # the tie margin inside every pivotal surplus

# --------------------------------------------------------------------------------------------
# Small scenarios


def one_issue(r_a: float, r_b: float) -> Scenario:
    """Issue x in 0..10; A's only member wants 0, B's wants 10: m_A = 100 - 10x - r_a,
    m_B = 10x - r_b."""
    x = ("x",)
    return two_issue_scenario(
        "one-issue",
        [member("A1", (0,), r_a, issues=x)],
        [member("B1", (10,), r_b, issues=x)],
        chiefs=(member("A-chief", (0,), 0, issues=x), member("B-chief", (10,), 0, issues=x)),
        issues=[{"key": "x", "min": 0, "max": 10}],
    )


def toy_2d() -> Scenario:
    """x in 0..10, y in 0..4 (different ranges). A's member (0,2) r40, B's (10,2) r40:
    m_A = 100*(1 - (x/10 + |y-2|/4)/2) - 40, m_B = 100*(1 - ((10-x)/10 + |y-2|/4)/2) - 40."""
    keys = ("x", "y")
    return two_issue_scenario(
        "toy-2d",
        [member("A1", (0, 2), 40, issues=keys)],
        [member("B1", (10, 2), 40, issues=keys)],
        chiefs=(
            member("A-chief", (0, 2), 0, issues=keys),
            member("B-chief", (10, 2), 0, issues=keys),
        ),
        issues=[{"key": "x", "min": 0, "max": 10}, {"key": "y", "min": 0, "max": 4}],
    )


def harmonious() -> Scenario:
    """A scenario in harmony. A: A1 and A2 at (4,6), A3 at (2,8); B: B1 and B3 at (5,5), B2 at
    (6,4); every reservation 80, so a member votes yes iff d < 4.

    A's best point is (4,6) alone (the only point where two members reach 100: m_A = 20); B's
    is (5,5). At (4,6) B1 and B3 have d = 2, U = 90 > 80: B ratifies A's best. At (5,5) A1 and
    A2 have d = 2: A ratifies B's best. Each best point is inside the other's win-set."""
    return two_issue_scenario(
        "harmony",
        [member("A1", (4, 6), 80), member("A2", (4, 6), 80), member("A3", (2, 8), 80)],
        [member("B1", (5, 5), 80), member("B2", (6, 4), 80), member("B3", (5, 5), 80)],
        chiefs=(member("A-chief", (4, 6), 0), member("B-chief", (5, 5), 0)),
    )


def proposals(*moves: tuple[str, Point] | str) -> list[e.Event]:
    """``ProposalMade`` events for (seat, point) moves; the string ``"|"`` ends a round."""
    result: list[e.Event] = []
    pid = 1
    for move in moves:
        if move == "|":
            result.append(e.RoundEnded(1, "no_agreement", None))
            continue
        assert isinstance(move, tuple)
        by, point = move
        result.append(e.ProposalMade(pid, by, tuple(float(v) for v in point)))
        pid += 1
    return result


A = "A-chief"
B = "B-chief"
MAIN = proposals((A, (2, 9)), (B, (9, 2)), (A, (3, 8)), (B, (8, 3)), (A, (4, 7)), (B, (8, 4)))

# --------------------------------------------------------------------------------------------
# Surpluses, share of joint gains, distance to the Nash point


def test_surpluses_at_a_gatt_point() -> None:
    # (5,5): A margins 5, 0, 5 -> second 5; B margins 14, 7, 2 -> second 7
    assert surpluses(gatt(), (5, 5)) == pytest.approx({"A": 5 - EPS, "B": 7 - EPS}, abs=1e-12)


def test_share_of_gains_by_hand() -> None:
    # GATT (5,5): 5 / 12 and 7 / 12
    assert share_of_gains(gatt(), (5, 5)) == pytest.approx({"A": 5 / 12, "B": 7 / 12})
    # one issue, r 20/20, x = 3: m_A = 100 - 30 - 20 = 50, m_B = 30 - 20 = 10 -> 5/6, 1/6
    assert share_of_gains(one_issue(20, 20), (3,)) == pytest.approx({"A": 5 / 6, "B": 1 / 6})
    # toy 2-D at (2,3): m_A = 100*(1 - (0.2 + 0.25)/2) - 40 = 37.5; m_B = 100*(1 - (0.8 +
    # 0.25)/2) - 40 = 7.5 -> 37.5/45 = 5/6, 7.5/45 = 1/6
    assert share_of_gains(toy_2d(), (2, 3)) == pytest.approx({"A": 5 / 6, "B": 1 / 6})


def test_share_of_gains_counts_side_payments() -> None:
    # Bonn (4,90): DE margins SPD 53.3 (42), FDP 5 (13), CDU -22.5 (45): 42 + 13 > 50, m = 5.
    # USA producers 56.7 (30), moderates 5 (25), consumers -23.3 (45): 30 + 25 > 50, m = 5.
    assert share_of_gains(bonn(), (4, 90)) == pytest.approx({"DE": 0.5, "USA": 0.5})
    # paying consumers 4 and moderates 6: moderates' margin 11 is now pivotal -> 5/16, 11/16
    transfers = {"us-consumers": 4, "us-moderates": 6}
    assert surpluses(bonn(), (4, 90), transfers)["USA"] == pytest.approx(11)
    assert share_of_gains(bonn(), (4, 90), transfers) == pytest.approx(
        {"DE": 5 / 16, "USA": 11 / 16}
    )


def test_share_of_gains_is_none_when_undefined() -> None:
    # one issue r 20/20 at x = 9: m_A = 100 - 90 - 20 = -10, m_B = 70; sum 60 > 0: defined,
    # and the loser's share is negative: -10/60
    assert share_of_gains(one_issue(20, 20), (9,)) == pytest.approx({"A": -1 / 6, "B": 7 / 6})
    # r 60/60 at x = 5: m_A = m_B = 100 - 50 - 60 = -10: the sum is negative
    assert share_of_gains(one_issue(60, 60), (5,)) is None
    # B's quota "1" strict can never be met: m_B = -inf at every point
    unreachable = gatt(b_ratification={"quota": "1", "strict": True})
    assert surpluses(unreachable, (5, 5))["B"] == -math.inf
    assert share_of_gains(unreachable, (5, 5)) is None


def test_distance_to_a_single_nash_point_scales_each_issue_by_its_range() -> None:
    analysis = Analysis(toy_2d())
    # Nash (5,2): m_A = m_B = 35, product 1225; (4,2) and (6,2) give 40*30 = 1200
    assert analysis.points(analysis.nash_indices).tolist() == [[5.0, 2.0]]
    assert distance_to_nash(analysis, (5, 2)) == 0.0
    # from (2,3): sqrt(((2-5)/10)^2 + ((3-2)/4)^2) = sqrt(0.09 + 0.0625) = 0.39051
    assert distance_to_nash(analysis, (2, 3)) == pytest.approx(math.sqrt(0.1525))


def test_distance_to_tied_nash_points_takes_the_nearest() -> None:
    # r 20/30: m_A = 80 - 10x, m_B = 10x - 30; zone 4..7; products 400, 600, 600, 400
    analysis = Analysis(one_issue(20, 30))
    assert analysis.points(analysis.nash_indices).tolist() == [[5.0], [6.0]]
    assert distance_to_nash(analysis, (5,)) == 0.0
    assert distance_to_nash(analysis, (6,)) == 0.0
    assert distance_to_nash(analysis, (7,)) == pytest.approx(0.1)  # to 6, not 0.2 to 5
    assert distance_to_nash(analysis, (4,)) == pytest.approx(0.1)  # to 5
    assert distance_to_nash(analysis, (0,)) == pytest.approx(0.5)


def test_distance_is_none_without_a_zone() -> None:
    # r 60/60: A needs x < 4, B needs x > 6
    assert distance_to_nash(Analysis(one_issue(60, 60)), (5,)) is None
    assert distance_to_nash(Analysis(one_issue(20, 20)), (math.nan,)) is None


def test_a_point_needs_one_value_per_issue() -> None:
    # (5,) on two issues would otherwise broadcast against every Nash point
    with pytest.raises(ValueError, match="one per issue"):
        distance_to_nash(Analysis(toy_2d()), (5,))
    with pytest.raises(ValueError, match="one per issue"):
        surpluses(gatt(), (5, 5, 5))
    with pytest.raises(ValueError, match="one per issue"):
        share_of_gains(gatt(), ())


# --------------------------------------------------------------------------------------------
# Concessions and reciprocity


def test_concessions_by_hand() -> None:
    # orders count chiefs' proposals from 0; the first proposal of each chief concedes nothing
    assert concessions(gatt(), MAIN) == [
        Concession(2, "A", "B", 10.0),  # m_B -28 -> -18
        Concession(3, "B", "A", 10.0),  # m_A -30 -> -20
        Concession(4, "A", "B", 10.0),  # m_B -18 -> -8
        Concession(5, "B", "A", 5.0),  # m_A -20 -> -15
    ]


def test_specific_and_diffuse_reciprocity_by_hand() -> None:
    result = reciprocity(gatt(), MAIN, ("A", "B"))
    # A's 10 (order 2) answered by B's 10 (1x); B's 10 (3) by A's 10 (1x); A's 10 (4) by B's 5
    # (0.5x, the band includes its ends); B's 5 (5) has no later A proposal: 3 of 4
    assert result.specific == pytest.approx(3 / 4)
    # sum A = 20, sum B = 15: 1 - |20 - 15| / (20 + 15) = 6/7
    assert result.diffuse == pytest.approx(6 / 7)
    assert result.countries == ("A", "B")
    assert len(result.concessions) == 4
    swapped = reciprocity(gatt(), MAIN, ("B", "A"))
    assert (swapped.specific, swapped.diffuse) == (result.specific, result.diffuse)


@pytest.mark.parametrize(
    ("reply", "specific", "diffuse"),
    [
        # B concedes 10 (m_A -30 -> -20, computed as 10.000000000000014 before rounding);
        # A answers from (2,9), m_B -28:
        ((3, 9), 1 / 2, 2 / 3),  # m_B -23: +5 = 0.5x, answered; 1 - 5/15
        ((4, 7), 1 / 2, 2 / 3),  # m_B -8: +20 = 2x, answered; 1 - 10/30
        ((5, 6), 0.0, 1 / 2),  # m_B 2: +30 = 3x, not answered; 1 - 20/40
        ((2, 9), 0.0, 0.0),  # no move: 0 is no answer; 1 - 10/10
    ],
)
def test_specific_reciprocity_band_ends(reply: Point, specific: float, diffuse: float) -> None:
    sequence = proposals((B, (9, 2)), (A, (2, 9)), (B, (8, 3)), (A, reply))
    result = reciprocity(gatt(), sequence, ("A", "B"))
    assert result.specific == pytest.approx(specific)
    assert result.diffuse == pytest.approx(diffuse)


def test_a_concession_may_cross_the_win_set_boundary() -> None:
    # A from (4,7) (m_B -8, outside B's win-set) to (5,6) (m_B 2, inside): a concession of 10
    sequence = proposals((A, (4, 7)), (A, (5, 6)))
    assert concessions(gatt(), sequence) == [Concession(1, "A", "B", 10.0)]
    assert surpluses(gatt(), (4, 7))["B"] < 0 < surpluses(gatt(), (5, 6))["B"]


def test_floating_point_noise_is_no_concession() -> None:
    # (0,3): B margins -21, -8, -13; (0,2): -26, -13, -8: m_B = -13 at both, but the floats
    # differ in the last place (0.6 + 0.3 != 0.9)
    m3, m2 = surpluses(gatt(), (0, 3))["B"], surpluses(gatt(), (0, 2))["B"]
    assert m3 != m2 and m3 == pytest.approx(m2)
    sequence = proposals((A, (0, 3)), (A, (0, 2)), (B, (9, 2)), (B, (9, 2)))
    assert [c.amount for c in concessions(gatt(), sequence)] == [0.0, 0.0]
    result = reciprocity(gatt(), sequence, ("A", "B"))
    assert (result.specific, result.diffuse) == (None, None)


def test_only_chiefs_proposals_count() -> None:
    noisy: list[e.Event] = list(MAIN)
    noisy.insert(3, e.ProposalMade(90, "A1", (10.0, 0.0)))
    noisy.insert(1, e.ProposalMade(91, "B2", (0.0, 10.0)))
    noisy.insert(5, e.ProposalMade(92, "nobody", (0.0, 0.0)))
    assert concessions(gatt(), noisy) == concessions(gatt(), MAIN)
    assert reciprocity(gatt(), noisy, ("A", "B")) == reciprocity(gatt(), MAIN, ("A", "B"))


def test_a_new_round_starts_a_new_negotiation() -> None:
    across = proposals((A, (2, 9)), (B, (9, 2)), "|", (A, (4, 7)), (B, (8, 3)))
    assert concessions(gatt(), across) == []
    result = reciprocity(gatt(), across, ("A", "B"))
    assert (result.specific, result.diffuse) == (None, None)
    # the same moves within one round: A +20, B +10
    within = proposals((A, (2, 9)), (B, (9, 2)), (A, (4, 7)), (B, (8, 3)))
    assert [c.amount for c in concessions(gatt(), within)] == [20.0, 10.0]


def test_retreats_count_against_their_maker_in_diffuse_reciprocity() -> None:
    # A: (2,9) -> (4,7) is +20, then back to (3,8) is -10; B makes one proposal only
    sequence = proposals((A, (2, 9)), (B, (9, 2)), (A, (4, 7)), (A, (3, 8)))
    assert [c.amount for c in concessions(gatt(), sequence)] == [20.0, -10.0]
    result = reciprocity(gatt(), sequence, ("A", "B"))
    # sum A = 10, sum B = 0, sum |A| = 30: 1 - 10/30
    assert result.diffuse == pytest.approx(2 / 3)
    # A's +20 is never answered (B never proposes again); the retreat is no concession
    assert result.specific == 0.0


def test_no_concession_to_a_country_that_can_never_ratify() -> None:
    unreachable = gatt(b_ratification={"quota": "1", "strict": True})
    # m_B = -inf everywhere: A's moves concede nothing measurable; B's to A still count
    assert concessions(unreachable, MAIN) == [
        Concession(3, "B", "A", 10.0),
        Concession(5, "B", "A", 5.0),
    ]
    result = reciprocity(unreachable, MAIN, ("A", "B"))
    # neither of B's concessions is answered by a measurable concession: 0 of 2
    assert result.specific == 0.0
    # 1 - |0 - 15| / 15
    assert result.diffuse == 0.0


def test_reciprocity_refuses_a_bad_pair() -> None:
    with pytest.raises(KeyError):
        reciprocity(gatt(), MAIN, ("A", "Z"))
    with pytest.raises(ValueError, match="two different"):
        reciprocity(gatt(), MAIN, ("A", "A"))


def three_countries() -> Scenario:
    """GATT plus a country C whose only member wants (9,9) with reservation 50."""
    data = gatt().to_dict()
    data["slug"] = "three"
    data["countries"].append(
        {
            "key": "C",
            "ratification": {"quota": "1/2", "strict": True},
            "chief": member("C-chief", (9, 9), 0),
            "constituents": [member("C1", (9, 9), 50)],
        }
    )
    return parse_scenario(data)


def test_reciprocity_per_pair_of_three_countries() -> None:
    scenario = three_countries()
    sequence = proposals((A, (2, 9)), ("C-chief", (5, 5)), (A, (4, 7)))
    # A's move concedes 20 to B (m_B -28 -> -8) and 0 to C (C1: d(2,9) = 7 and d(4,7) = 7)
    assert concessions(scenario, sequence) == [
        Concession(2, "A", "B", 20.0),
        Concession(2, "A", "C", 0.0),
    ]
    ab = reciprocity(scenario, sequence, ("A", "B"))
    ac = reciprocity(scenario, sequence, ("A", "C"))
    bc = reciprocity(scenario, sequence, ("B", "C"))
    assert [c.to for c in ab.concessions] == ["B"]
    assert (ab.specific, ab.diffuse) == (0.0, 0.0)  # unanswered; 1 - 20/20
    assert [c.to for c in ac.concessions] == ["C"]
    assert (ac.specific, ac.diffuse) == (None, None)  # a zero move measures nothing
    assert bc.concessions == ()
    assert len(debrief([rules.create_game(scenario)]).reciprocity) == 3


# --------------------------------------------------------------------------------------------
# Outcome labels


def labels(events: Sequence[e.Event], scenario: Scenario) -> list[Outcome]:
    return outcomes(rules.fold(events), Analysis(scenario), events)


def test_harmony_needs_each_best_point_inside_the_others_win_sets() -> None:
    assert Analysis(harmonious()).harmony is True
    assert Analysis(gatt()).harmony is False


def test_a_harmonious_agreement_is_labelled_harmony() -> None:
    scenario = harmonious()
    [outcome] = labels(agreement_game(scenario, (4, 6)), scenario)
    assert outcome.label == HARMONY
    assert outcome.round == 1
    assert "already lay inside the others' win-sets" in outcome.reason
    assert "a_cut 4, b_cut 6" in outcome.reason


def test_side_payments_make_a_harmonious_scenario_cooperation() -> None:
    # (6,4): A1, A2 d = 4, U = 80, not above 80; A3 d = 8: A rejects without transfers.
    # With 1 point each A1 and A2 vote yes (81 > 80); B1 (d 2) and B2 (d 0) carry B.
    scenario = harmonious()
    analysis = Analysis(scenario)
    assert not analysis.contains(analysis.zone, (6, 4))
    [outcome] = labels(agreement_game(scenario, (6, 4), {"A1": 1, "A2": 1}), scenario)
    assert outcome.label == COOPERATION
    assert "side payments" in outcome.reason


def test_gatt_agreement_is_cooperation() -> None:
    [outcome] = labels(agreement_game(gatt(), (5, 5)), gatt())
    assert outcome == Outcome(
        1,
        COOPERATION,
        "The agreement (a_cut 5, b_cut 5) was ratified after mutual adjustment: no country "
        "could have had its best deal ratified abroad.",
    )


def test_cooperation_after_a_failed_ratification_says_so() -> None:
    log = LogBuilder(gatt(), attempts=2).start_round().tentative((4, 7)).fail("B", attempts_left=1)
    events = log.tentative((5, 5)).ratify().end_round("agreement").end_game()
    [outcome] = labels(events, gatt())
    assert outcome.label == COOPERATION
    assert outcome.reason.endswith("It took 2 attempts: B failed to ratify before.")


def test_no_tentative_agreement_is_discord() -> None:
    log = LogBuilder(gatt()).start_round()
    log.propose(A, (2, 9))
    events = log.end_round("no_agreement").end_game()
    [outcome] = labels(events, gatt())
    assert outcome == Outcome(
        1, DISCORD, "The chiefs reached no tentative agreement: no deal went to ratification."
    )


def test_involuntary_defection_when_the_attempts_ran_out() -> None:
    log = LogBuilder(gatt(), attempts=2).start_round()
    log.tentative((8, 4)).fail("A", attempts_left=1)
    log.tentative((2, 9)).fail("A", "B", attempts_left=0)
    events = log.end_round("involuntary_defection").end_game()
    [outcome] = labels(events, gatt())
    assert outcome == Outcome(
        1,
        INVOLUNTARY,
        "The chiefs reached a tentative agreement, but ratification failed: A did not ratify; "
        "A and B did not ratify.",
    )


def test_involuntary_defection_when_level_one_timed_out_after_a_failure() -> None:
    # as rules does when Level I expires after a failed attempt
    log = LogBuilder(gatt(), attempts=3).start_round().tentative((8, 4))
    events = log.fail("A", attempts_left=2).end_round("involuntary_defection").end_game()
    assert [o.label for o in labels(events, gatt())] == [INVOLUNTARY]
    # a record that says no_agreement after a failed ratification is not discord either
    log = LogBuilder(gatt(), attempts=3).start_round().tentative((8, 4))
    events = log.fail("B", attempts_left=2).end_round("no_agreement").end_game()
    [outcome] = labels(events, gatt())
    assert outcome.label == INVOLUNTARY
    assert "B did not ratify" in outcome.reason
    # without the log only the record is known
    [bare] = outcomes(rules.fold(events), Analysis(gatt()))
    assert bare.label == DISCORD


def test_voluntary_defection_names_the_defector() -> None:
    log = LogBuilder(gatt(), compliance=True).start_round().tentative((5, 5)).ratify()
    log.comply({"A": True, "B": False}, {"A": 0.0, "B": 5.0}).end_round("voluntary_defection")
    [outcome] = labels(log.end_game(), gatt())
    assert outcome == Outcome(
        1, VOLUNTARY, "The agreement entered into force, then B chose to defect from it."
    )


def test_every_round_of_a_multi_round_game_is_labelled() -> None:
    result = debrief(multi_round_game())
    assert [o.label for o in result.rounds] == [VOLUNTARY, DISCORD, COOPERATION]
    assert result.outcome == result.rounds[-1]
    assert result.agreement == (6.0, 7.0)


def test_unknown_round_results_are_refused() -> None:
    log = LogBuilder(gatt()).start_round().add(e.RoundEnded(1, "peace", None))
    with pytest.raises(ValueError, match="unknown result 'peace'"):
        debrief(log.events)
    log = LogBuilder(gatt()).start_round().add(e.RoundEnded(1, "agreement", None))
    with pytest.raises(ValueError, match="without its text"):
        debrief(log.events)


# --------------------------------------------------------------------------------------------
# The whole debrief


def test_debrief_of_a_gatt_game() -> None:
    log = LogBuilder(gatt()).start_round()
    for event in MAIN:
        assert isinstance(event, e.ProposalMade)
        log.propose(event.by, event.values)
    events = log.tentative((5, 5)).ratify().end_round("agreement").end_game()
    result = debrief(events)
    assert result.outcome is not None and result.outcome.label == COOPERATION
    assert result.agreement == (5.0, 5.0)
    assert result.share_of_gains == pytest.approx({"A": 5 / 12, "B": 7 / 12})
    assert result.distance_to_nash == 0.0  # (5,5) is GATT's Nash point
    # MAIN, then A proposes (5,5) as the tentative text: m_B -8 -> 7, a concession of 15
    # answering B's last 5 at 3x: still 3 of 5 answered
    [pair] = result.reciprocity
    assert [c.amount for c in pair.concessions] == [10.0, 10.0, 10.0, 5.0, 15.0]
    assert pair.specific == pytest.approx(3 / 5)
    # sum A = 35, sum B = 15: 1 - 20/50
    assert pair.diffuse == pytest.approx(3 / 5)
    data = result.to_dict(gatt())
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["agreement"] == {"a_cut": 5, "b_cut": 5}
    assert data["outcome"]["label"] == COOPERATION
    assert data["reciprocity"] == [
        {"countries": ["A", "B"], "specific": 0.6, "diffuse": 0.6, "concessions": 5}
    ]


def test_debrief_share_counts_the_transfers_paid() -> None:
    # Bonn (3,85), reservations as in test_scoring:
    # DE: SPD (2*1/8 + 15/50)/3 = 0.18333, U 81.667, margin 41.667 (42); FDP (3/8 + 0.3)/2 =
    #   0.3375, U 66.25, margin 6.25 (13); 42 + 13 > 50: m_DE = 6.25
    # USA: producers (5/8 + 2*15/50)/3 = 0.40833, U 59.167, margin 45.833 (30); moderates
    #   (5/8 + 20/50)/2 = 0.5125, U 48.75, + 6 - 45 = 9.75 (25); 30 + 25 > 50: m_USA = 9.75
    # shares 6.25/16 and 9.75/16
    transfers = {"us-consumers": 4, "us-moderates": 6}
    result = debrief(agreement_game(bonn(), (3, 85), transfers))
    assert result.share_of_gains == pytest.approx({"DE": 0.390625, "USA": 0.609375})
    analysis = Analysis(bonn())
    assert analysis.points(analysis.nash_indices).tolist() == [[4.0, 90.0]]
    # from (3,85) to the Nash point (4,90): sqrt((1/8)^2 + (5/50)^2) = sqrt(0.025625)
    assert result.distance_to_nash == pytest.approx(math.sqrt(0.025625))


def test_debrief_winset_sizes() -> None:
    # one issue r 20/20: A ratifies x < 8 (0..7), B x > 2 (3..10): 8 points each
    result = debrief(agreement_game(one_issue(20, 20), (3,)))
    assert result.winset_sizes == {"A": 8, "B": 8}
    assert result.share_of_gains == pytest.approx({"A": 5 / 6, "B": 1 / 6})
    assert result.distance_to_nash == pytest.approx(0.2)  # Nash 5 (products 500, 800, 900)


def test_debrief_without_agreement_or_zone_is_json_safe() -> None:
    unreachable = gatt(b_ratification={"quota": "1", "strict": True})
    log = LogBuilder(unreachable).start_round()
    for event in MAIN:
        assert isinstance(event, e.ProposalMade)
        log.propose(event.by, event.values)
    result = debrief(log.end_round("no_agreement").end_game())
    assert (result.agreement, result.share_of_gains, result.distance_to_nash) == (None, None, None)
    data = result.to_dict(unreachable)
    json.dumps(data, allow_nan=False)
    assert data["winset_sizes"]["B"] == 0 < data["winset_sizes"]["A"]
    # an agreement forced through by hand on a scenario with no zone: still no NaN or inf
    forced = debrief(agreement_game(unreachable, (5, 5)))
    assert forced.share_of_gains is None and forced.distance_to_nash is None
    json.dumps(forced.to_dict(unreachable), allow_nan=False)


def test_debrief_needs_game_created_first() -> None:
    with pytest.raises(ValueError, match="game_created"):
        debrief(MAIN)


def test_debrief_of_an_empty_game() -> None:
    result = debrief([rules.create_game(gatt())])
    assert result == Debrief(
        outcome=None,
        rounds=(),
        agreement=None,
        share_of_gains=None,
        distance_to_nash=None,
        reciprocity=result.reciprocity,
        winset_sizes=result.winset_sizes,
    )
    assert [(r.specific, r.diffuse) for r in result.reciprocity] == [(None, None)]


# --------------------------------------------------------------------------------------------
# Properties (hypothesis)

CHIEF_MOVES = st.one_of(
    st.tuples(st.sampled_from((A, B)), st.sampled_from(GATT_GRID)),
    st.just("|"),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(CHIEF_MOVES, max_size=14))
def test_reciprocity_indices_lie_in_zero_one(moves: list[Any]) -> None:
    sequence = proposals(*moves)
    result = reciprocity(gatt(), sequence, ("A", "B"))
    for index in (result.specific, result.diffuse):
        assert index is None or 0.0 <= index <= 1.0
    amounts = [c.amount for c in result.concessions]
    assert (result.diffuse is None) == all(a == 0 for a in amounts)
    assert (result.specific is None) == all(a <= 0 for a in amounts)
    assert all(round(a, 9) == a for a in amounts)
    # each concession is the rise in the other side's m since the proposer's previous proposal
    for concession in result.concessions:
        assert concession.by != concession.to
    swapped = reciprocity(gatt(), sequence, ("B", "A"))
    assert (swapped.specific, swapped.diffuse) == (result.specific, result.diffuse)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10), max_size=8))
def test_mirrored_concessions_are_perfectly_diffuse(xs: list[int]) -> None:
    # one_issue(20, 20) is symmetric under x -> 10 - x with A and B swapped: if B answers every
    # proposal x of A with 10 - x, each B concession equals A's previous one (m_B(x) = 10x - 20
    # and m_A(10 - x) = 10x - 20), so the sums balance
    moves: list[tuple[str, Point]] = []
    for x in xs:
        moves += [(A, (x,)), (B, (10 - x,))]
    result = reciprocity(one_issue(20, 20), proposals(*moves), ("A", "B"))
    assert result.diffuse is None or result.diffuse == pytest.approx(1.0)
    by_a = [c.amount for c in result.concessions if c.by == "A"]
    by_b = [c.amount for c in result.concessions if c.by == "B"]
    assert by_a == by_b
    # every positive concession of A is answered 1:1, so at least half are answered
    if result.specific is not None:
        assert result.specific >= 0.5


BONN_GRID = [(float(s), float(o)) for s in range(9) for o in range(50, 101, 5)]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(BONN_GRID),
    st.dictionaries(
        st.sampled_from(("de-spd", "de-fdp", "de-cdu", "us-producers", "us-consumers")),
        st.integers(0, 30),
        max_size=3,
    ),
)
def test_shares_sum_to_one(point: Point, transfers: dict[str, int]) -> None:
    shares = share_of_gains(bonn(), point, transfers)
    m = surpluses(bonn(), point, transfers)
    if sum(m.values()) > 0:
        assert shares is not None
        assert math.fsum(shares.values()) == pytest.approx(1.0)
        if all(v > 0 for v in m.values()):
            assert all(0 < s < 1 for s in shares.values())
    else:
        assert shares is None


@settings(max_examples=25, deadline=None)
@given(
    st.lists(round_specs(), min_size=1, max_size=3),
    st.lists(st.integers(1, 60), max_size=12),
    st.lists(st.tuples(st.sampled_from((A, B)), st.sampled_from(GATT_GRID)), max_size=4),
)
def test_debrief_is_a_pure_function_of_the_log(
    specs: list[dict[str, Any]], positions: list[int], moves: list[tuple[str, Point]]
) -> None:
    events = build_game(specs)
    # extra proposals in round 1, right after it opens
    opening = next(i for i, ev in enumerate(events) if isinstance(ev, e.PhaseChanged))
    extra = [e.ProposalMade(100 + i, by, point) for i, (by, point) in enumerate(moves)]
    events = [*events[: opening + 1], *extra, *events[opening + 1 :]]
    analysis = Analysis(gatt())
    first = debrief(events, analysis)
    assert debrief(list(events), analysis) == first
    assert debrief(with_talk(events, positions), analysis) == first
    assert debrief(events) == first
    assert len(first.rounds) == len(specs)
    assert all(o.label in LABELS for o in first.rounds)
    assert [o.label == VOLUNTARY for o in first.rounds] == [
        s["kind"] == "voluntary_defection" for s in specs
    ]
    json.dumps(first.to_dict(gatt()), allow_nan=False)
