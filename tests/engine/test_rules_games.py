"""Whole games played by hand, with outcomes checked by hand against DESIGN §3-4.

Ballots are each constituent's sincere vote (``U + t > r + 1e-9``) unless a test says a member
votes otherwise; the expected votes are written out and checked against ``sincere_ballots``.

GATT (every salience 1, both ranges 10): ``U(x) = 100 - 5 * d`` with ``d`` the city-block
distance from the member's ideal point.
"""

from __future__ import annotations

import json

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.events import event_from_dict, event_to_dict
from negotiation.engine.rules import fold
from negotiation.engine.state import COMPLIANCE, ENDED, LEVEL1, LEVEL2, RoundRecord
from tests.engine.rules_support import INSTRUCTOR, SYSTEM, Game, started_game

A_CHIEF, B_CHIEF = "A-chief", "B-chief"

# At (5, 6) in GATT:
#   A1 (6,9) d=4 U=80 > 70 yes;  A2 (2,8) d=5 U=75 > 70 yes;  A3 (1,5) d=5 U=75, not > 75: no
#   B1 (9,5) d=5 U=75 > 66 yes;  B2 (8,3) d=6 U=70 > 68 yes;  B3 (5,0) d=6 U=70 < 73 no
GATT_DEAL = (5.0, 6.0)
GATT_DEAL_VOTES = {"A1": True, "A2": True, "A3": False, "B1": True, "B2": True, "B3": False}

# At (8, 4), B's chief's ideal point:
#   A1 d=7 U=65 no;  A2 d=10 U=50 no;  A3 d=8 U=60 no         -> Atlantis 0 of 3
#   B1 d=2 U=90 yes; B2 d=1 U=95 yes;  B3 d=7 U=65 no         -> Borduria 2 of 3
GATT_B_IDEAL = (8.0, 4.0)
GATT_B_IDEAL_VOTES = {"A1": False, "A2": False, "A3": False, "B1": True, "B2": True, "B3": False}


def check_replay(game: Game) -> None:
    """The log replays to the live state, also after a trip through JSON."""
    assert fold(game.log) == game.state
    stored = [json.loads(json.dumps(event_to_dict(ev))) for ev in game.log]
    assert fold(event_from_dict(d) for d in stored) == game.state


def test_gatt_negotiated_and_ratified() -> None:
    game = started_game("gatt")
    # Level I: each chief opens at its ideal point, then they meet in the middle.
    opening = game.propose(0, (4, 8))
    counter = game.run(c.Propose(B_CHIEF, (8, 4), replies_to=opening))[0]
    assert isinstance(counter, e.ProposalMade) and counter.replies_to == opening
    game.run(c.MakeStatement(B_CHIEF, "Borduria's farmers will not accept more."))
    # Atlantis polls its legislature on the compromise before committing.
    game.run(c.OpenStrawPoll(A_CHIEF, GATT_DEAL))
    for member in ("A1", "A2", "A3"):
        game.run(c.AnswerStrawPoll(member, 1, GATT_DEAL_VOTES[member]))
    poll = game.state.polls[1]
    assert poll.result == {
        "yes": 2,
        "no": 1,
        "unanswered": 0,
        "yes_weight": 2.0,
        "total_weight": 3.0,
        "quota_met": True,
    }
    deal = game.propose(0, GATT_DEAL)
    events = game.run(c.Accept(B_CHIEF, deal))
    assert events[1] == e.TentativeAgreement(deal, GATT_DEAL)
    assert game.state.phase == LEVEL2
    # Level II: the sincere votes are the hand-computed ones.
    assert game.sincere_ballots(GATT_DEAL) == GATT_DEAL_VOTES
    events = game.vote(GATT_DEAL_VOTES)
    counted = next(ev for ev in events if isinstance(ev, e.BallotsCounted))
    assert counted.results == (
        e.CountryResult("A", True, 2.0, 3.0, ()),
        e.CountryResult("B", True, 2.0, 3.0, ()),
    )
    assert events[-3:] == [
        e.AgreementInForce(deal, GATT_DEAL, {}),
        e.RoundEnded(1, "agreement", GATT_DEAL),
        e.GameEnded("all_rounds_played"),
    ]
    assert game.state.rounds == (RoundRecord(1, "agreement", GATT_DEAL, {}, None, None),)
    assert game.state.tentative_agreements == 1
    assert game.state.involuntary_defections == {}
    check_replay(game)


def test_gatt_voted_down_then_ratified_on_the_second_attempt() -> None:
    game = started_game("gatt")
    game.agree(GATT_B_IDEAL)
    assert game.sincere_ballots(GATT_B_IDEAL) == GATT_B_IDEAL_VOTES
    events = game.vote(GATT_B_IDEAL_VOTES)
    counted = next(ev for ev in events if isinstance(ev, e.BallotsCounted))
    assert counted.results == (
        e.CountryResult("A", False, 0.0, 3.0, ()),
        e.CountryResult("B", True, 2.0, 3.0, ()),
    )
    # Atlantis's legislature sinks the deal: an involuntary defection, back to Level I.
    assert events[-2:] == [
        e.InvoluntaryDefection(1, ("A",), 1),
        e.PhaseChanged(LEVEL1, 1, 2, game.now + 900, "involuntary_defection"),
    ]
    assert game.state.involuntary_defections == {"A": 1}
    # Second attempt: the compromise ratifies.
    game.agree(GATT_DEAL)
    assert game.state.attempt == 2
    events = game.vote(GATT_DEAL_VOTES)
    assert events[-2:] == [
        e.RoundEnded(1, "agreement", GATT_DEAL),
        e.GameEnded("all_rounds_played"),
    ]
    assert game.state.tentative_agreements == 2
    assert game.state.involuntary_defections == {"A": 1}
    assert [r.result for r in game.state.rounds] == ["agreement"]
    check_replay(game)


def test_gatt_attempts_exhausted_end_the_round_in_involuntary_defection() -> None:
    game = started_game("gatt", attempts=2, rounds=1)
    for attempt in (1, 2):
        assert game.state.attempt == attempt
        game.agree(GATT_B_IDEAL)
        events = game.vote(GATT_B_IDEAL_VOTES)
    assert events[-3:] == [
        e.InvoluntaryDefection(2, ("A",), 0),
        e.RoundEnded(1, "involuntary_defection", None),
        e.GameEnded("all_rounds_played"),
    ]
    assert game.state.phase == ENDED
    assert game.state.involuntary_defections == {"A": 2}
    assert game.state.tentative_agreements == 2
    assert game.state.rounds[-1] == RoundRecord(1, "involuntary_defection", None, {}, None, None)
    check_replay(game)


def test_missing_ballots_sink_a_deal_at_the_level_two_deadline() -> None:
    game = started_game("gatt", attempts=1)
    game.agree(GATT_DEAL)
    # Only A1, B1 and B2 vote before time runs out; A2's yes never arrives.
    game.vote({"A1": True, "B1": True, "B2": True})
    deadline = game.state.deadline
    assert deadline is not None
    events = game.run(c.FireDeadline(SYSTEM, deadline), at=deadline + 0.25)
    counted = events[0]
    assert isinstance(counted, e.BallotsCounted)
    assert counted.ballots == {
        "A1": True,
        "A2": None,
        "A3": None,
        "B1": True,
        "B2": True,
        "B3": None,
    }
    # Atlantis: 1 of 3 is not more than half; Borduria: 2 of 3 is.
    assert counted.results == (
        e.CountryResult("A", False, 1.0, 3.0, ()),
        e.CountryResult("B", True, 2.0, 3.0, ()),
    )
    assert events[1:] == [
        e.InvoluntaryDefection(1, ("A",), 0),
        e.RoundEnded(1, "involuntary_defection", None),
        e.GameEnded("all_rounds_played"),
    ]
    check_replay(game)


def test_climate_treaty_needs_two_thirds_of_the_senate() -> None:
    # USA weights: greens 40, coal-state Democrats 15, Republicans 45; more than 2/3 of 100.
    game = started_game("climate-treaty", attempts=2)
    game.agree((4, 6))
    events = game.vote(
        {
            "us-greens": True,
            "us-coal": True,
            "us-gop": False,
            "dev-leadership": True,
            "dev-industry": False,
            "dev-reformers": True,
        }
    )
    counted = next(ev for ev in events if isinstance(ev, e.BallotsCounted))
    # 55 of 100 is not more than 2/3; the bloc's 20 + 35 = 55 is more than half.
    assert counted.results == (
        e.CountryResult("USA", False, 55.0, 100.0, ()),
        e.CountryResult("DEV", True, 55.0, 100.0, ()),
    )
    assert e.InvoluntaryDefection(1, ("USA",), 1) in events


def test_climate_treaty_veto_player_sinks_a_deal_its_majority_wants() -> None:
    # At (4, 6) all three Senate blocs gain (greens 80 > 55, coal 66.7 > 65, Republicans
    # 64 > 62), so the Senate ratifies by 100 of 100.
    game = started_game("climate-treaty", attempts=1)
    sincere = game.sincere_ballots((4, 6))
    assert sincere == {
        "us-greens": True,
        "us-coal": True,
        "us-gop": True,
        "dev-leadership": True,
        "dev-industry": False,
        "dev-reformers": True,
    }
    game.agree((4, 6))
    # In the bloc, industry and reformers vote yes (45 + 35 = 80 of 100, a clear majority) but
    # the leadership, a veto player, holds out and votes no.
    ballots = {**sincere, "dev-industry": True, "dev-leadership": False}
    events = game.vote(ballots)
    counted = next(ev for ev in events if isinstance(ev, e.BallotsCounted))
    assert counted.results == (
        e.CountryResult("USA", True, 100.0, 100.0, ()),
        e.CountryResult("DEV", False, 80.0, 100.0, ("dev-leadership",)),
    )
    assert events[-3:] == [
        e.InvoluntaryDefection(1, ("DEV",), 0),
        e.RoundEnded(1, "involuntary_defection", None),
        e.GameEnded("all_rounds_played"),
    ]
    assert game.state.involuntary_defections == {"DEV": 1}
    check_replay(game)


def test_two_rounds_with_compliance_where_borduria_defects_first() -> None:
    game = started_game("gatt", rounds=2, compliance=True)
    # Round 1: the deal ratifies and enters into force; Borduria then reneges.
    game.agree(GATT_DEAL)
    events = game.vote(GATT_DEAL_VOTES)
    assert events[-2:] == [
        e.AgreementInForce(1, GATT_DEAL, {}),
        e.PhaseChanged(COMPLIANCE, 1, 1, game.now + 120, "agreement_in_force"),
    ]
    game.run(c.ChooseCompliance(B_CHIEF, False))
    events = game.run(c.ChooseCompliance(A_CHIEF, True))
    # Borduria defects on a complying Atlantis: T = 5 for Borduria, S = 0 for Atlantis.
    assert events[1:] == [
        e.ComplianceResolved({"A": True, "B": False}, {"A": 0, "B": 5}),
        e.RoundEnded(1, "voluntary_defection", GATT_DEAL),
        e.PhaseChanged(LEVEL1, 2, 1, game.now + 900, "next_round"),
    ]
    assert game.state.voluntary_defections == {"B": 1}
    assert game.state.rounds[0] == RoundRecord(
        1, "voluntary_defection", GATT_DEAL, {}, {"A": True, "B": False}, {"A": 0, "B": 5}
    )
    # Round 2: the same deal again; this time both comply and earn R = 3 each.
    game.agree(GATT_DEAL)
    assert game.state.tentative is not None and game.state.tentative.proposal_id == 2
    game.vote(GATT_DEAL_VOTES)
    assert game.state.phase == COMPLIANCE and game.state.round == 2
    assert game.state.compliance_choices == {}
    game.run(c.ChooseCompliance(A_CHIEF, True))
    events = game.run(c.ChooseCompliance(B_CHIEF, True))
    assert events[1:] == [
        e.ComplianceResolved({"A": True, "B": True}, {"A": 3, "B": 3}),
        e.RoundEnded(2, "agreement", GATT_DEAL),
        e.GameEnded("all_rounds_played"),
    ]
    assert [r.result for r in game.state.rounds] == ["voluntary_defection", "agreement"]
    assert [r.payoffs for r in game.state.rounds] == [{"A": 0, "B": 5}, {"A": 3, "B": 3}]
    assert game.state.voluntary_defections == {"B": 1}
    assert game.state.tentative_agreements == 2
    check_replay(game)


# Bonn 1978 at (3, 90): stimulus 3 of 0..8, oil at 90% of the world price (50..100).
# Germany: SPD (4,100) s(2,1): U = 100 * (1 - (2*1/8 + 10/50) / 3) = 85 > r 40, yes;
#   FDP (0,100): U = 100 * (1 - (3/8 + 10/50) / 2) = 71.25 > 60, yes;
#   CDU (0,100) s(3,1): U = 100 * (1 - (3*3/8 + 10/50) / 4) = 66.875 < 80, no.
#   Yes weight 42 + 13 = 55 of 100: ratified.
# USA: producers (8,100) s(1,2): U = 100 * (1 - (5/8 + 2*10/50) / 3) = 65.83 > 13.33, yes;
#   consumers (8,50) s(1,2): U = 100 * (1 - (5/8 + 2*40/50) / 3) = 25.83 < 53.33, no;
#   moderates (8,65): U = 100 * (1 - (5/8 + 25/50) / 2) = 43.75 < 45, no, unless paid:
#   43.75 + 2 = 45.75 > 45. Yes weight 30 alone fails; 30 + 25 = 55 with the payment.
BONN_DEAL = (3.0, 90.0)


def test_bonn_side_payment_within_the_budget_is_paid_on_entry_into_force() -> None:
    game = started_game("bonn-1978")
    assert game.sincere_ballots(BONN_DEAL)["us-moderates"] is False
    assert game.sincere_ballots(BONN_DEAL, {"us-moderates": 1})["us-moderates"] is False
    assert game.sincere_ballots(BONN_DEAL, {"us-moderates": 2})["us-moderates"] is True
    # Carter's budget is 10: 2 to the moderates leaves 8, not 9, for the consumers.
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 2))
    assert game.code(c.OfferSidePayment("us-chief", "us-consumers", 9)) == "over_budget"
    game.run(c.OfferSidePayment("us-chief", "us-consumers", 8))
    game.run(c.OfferSidePayment("us-chief", "us-consumers", 0))
    assert game.state.offers == {"us-chief": {"us-moderates": 2}}
    game.agree(BONN_DEAL)
    ballots = game.sincere_ballots(BONN_DEAL, {"us-moderates": 2})
    assert ballots == {
        "de-spd": True,
        "de-fdp": True,
        "de-cdu": False,
        "us-producers": True,
        "us-consumers": False,
        "us-moderates": True,
    }
    events = game.vote(ballots)
    # Nothing was paid before the last ballot put the agreement in force.
    assert not any(isinstance(ev, e.AgreementInForce) for ev in game.log[: -len(events)])
    counted = next(ev for ev in events if isinstance(ev, e.BallotsCounted))
    assert counted.results == (
        e.CountryResult("DE", True, 55.0, 100.0, ()),
        e.CountryResult("USA", True, 55.0, 100.0, ()),
    )
    in_force = next(ev for ev in events if isinstance(ev, e.AgreementInForce))
    assert in_force.transfers == {"us-moderates": 2}
    assert game.state.rounds[-1].transfers == {"us-moderates": 2}
    check_replay(game)


def test_bonn_side_payment_is_not_paid_when_ratification_fails() -> None:
    game = started_game("bonn-1978", attempts=1)
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 2))
    game.agree(BONN_DEAL)
    # The CDU persuades the FDP in caucus: the FDP votes no and the Bundestag's yes weight is
    # the SPD's 42 of 100.
    ballots = {**game.sincere_ballots(BONN_DEAL, {"us-moderates": 2}), "de-fdp": False}
    events = game.vote(ballots)
    counted = next(ev for ev in events if isinstance(ev, e.BallotsCounted))
    assert counted.results[0] == e.CountryResult("DE", False, 42.0, 100.0, ())
    assert counted.results[1].ratified
    assert not any(isinstance(ev, e.AgreementInForce) for ev in game.log)
    assert events[-2:] == [
        e.RoundEnded(1, "involuntary_defection", None),
        e.GameEnded("all_rounds_played"),
    ]
    assert game.state.rounds[-1].transfers == {}
    assert game.state.in_force_transfers == {}
    check_replay(game)


def test_bonn_standing_offer_is_paid_when_the_second_attempt_ratifies() -> None:
    game = started_game("bonn-1978", attempts=2)
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 2))
    game.agree(BONN_DEAL)
    game.vote({**game.sincere_ballots(BONN_DEAL, {"us-moderates": 2}), "de-fdp": False})
    assert game.state.attempt == 2
    # The offer still stands in the second attempt and is paid only now.
    assert game.state.offers == {"us-chief": {"us-moderates": 2}}
    game.agree(BONN_DEAL)
    events = game.vote(game.sincere_ballots(BONN_DEAL, {"us-moderates": 2}))
    assert e.AgreementInForce(2, BONN_DEAL, {"us-moderates": 2}) in events
    assert [ev.transfers for ev in game.events_of(e.AgreementInForce)] == [{"us-moderates": 2}]
    check_replay(game)


def test_a_game_paused_and_resumed_keeps_its_deadline_across_a_replay() -> None:
    game = started_game("gatt")
    deadline = game.state.deadline
    assert deadline is not None
    game.propose(0, GATT_DEAL)
    game.run(c.PauseGame(INSTRUCTOR), at=deadline - 600)
    paused = fold(game.log)
    assert paused.paused_remaining == 600.0
    game.run(c.ExtendDeadline(INSTRUCTOR, 60), at=deadline + 3600)
    game.run(c.ResumeGame(INSTRUCTOR), at=deadline + 7200)
    assert game.state.deadline == deadline + 7200 + 660
    assert fold(game.log).deadline == deadline + 7200 + 660
    game.run(c.Accept(B_CHIEF, 1), at=deadline + 7300)
    assert game.state.phase == LEVEL2
    check_replay(game)
