"""The rules of a game (DESIGN §4) as ``decide`` and ``evolve``: what each command does.

Each test drives a game through ``rules.apply`` (see ``rules_support.Game``) and checks the
events and the state they lead to. Refusals are in ``test_rules_refusals.py``, whole games with
hand-checked outcomes in ``test_rules_games.py``, properties in ``test_rules_properties.py``.

On GATT every salience is 1 and both ranges are 10, so ``U(x) = 100 - 5 * d`` with ``d`` the
city-block distance from the member's ideal point.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import time
from fractions import Fraction
from pathlib import Path

import pytest

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine import rules
from negotiation.engine.events import event_from_dict, event_to_dict
from negotiation.engine.rules import (
    MAX_EXTENSION,
    RuleViolation,
    apply,
    create_game,
    decide,
    evolve,
    fold,
    initial_state,
)
from negotiation.engine.scenario import Deadlines, Payoffs, parse_scenario
from negotiation.engine.state import (
    COMPLIANCE,
    ENDED,
    LEVEL1,
    LEVEL2,
    LOBBY,
    RECENT_MESSAGES,
    Message,
    SeatHolder,
)
from tests.engine.rules_support import (
    INSTRUCTOR,
    SYSTEM,
    T0,
    Game,
    load_builtin,
    one_issue_scenario,
    scenario_game,
    settings_for,
    started_game,
    three_country_scenario,
)

A_CHIEF, B_CHIEF, C_CHIEF = "A-chief", "B-chief", "C-chief"
NO_DEADLINES = Deadlines(level1=None, level2=None, compliance=None)

# --------------------------------------------------------------------------------------------
# Creating and folding a game


def test_create_game_records_the_scenario_and_the_settings() -> None:
    scenario = load_builtin("gatt")
    settings = settings_for(scenario, rounds=3, compliance=True)
    created = create_game(scenario, settings)
    assert created.scenario == scenario.to_dict()
    assert created.settings["rounds"] == 3
    assert created.settings["compliance"] is True
    state = initial_state(created)
    assert state.scenario == scenario
    assert state.settings == settings
    assert (state.phase, state.round, state.attempt, state.seq) == (LOBBY, 0, 0, 1)


def test_create_game_without_settings_uses_the_scenario_defaults() -> None:
    scenario = load_builtin("bonn-1978")
    assert initial_state(create_game(scenario)).settings == scenario.game


def test_games_of_one_scenario_folded_from_stored_logs_share_it() -> None:
    scenario = load_builtin("gatt")
    stored = [
        json.loads(
            json.dumps(event_to_dict(create_game(scenario, settings_for(scenario, rounds=n))))
        )
        for n in (2, 3)
    ]
    first, second = (fold([event_from_dict(payload)]) for payload in stored)
    assert first.scenario is second.scenario
    assert first.scenario == scenario
    assert (first.settings.rounds, second.settings.rounds) == (2, 3)


def test_fold_replays_the_log_to_the_live_state() -> None:
    game = started_game()
    game.propose(0, (5, 6))
    game.run(c.Chat(B_CHIEF, "table", "Let me think."))
    assert fold(game.log) == game.state
    assert game.state.seq == len(game.log)


def test_fold_continues_from_a_given_state() -> None:
    game = started_game()
    middle = fold(game.log)
    game.propose(0, (5, 6))
    game.propose(1, (6, 5))
    assert fold(game.log[len(game.log) - 2 :], middle) == game.state


def test_fold_refuses_a_log_that_does_not_start_with_game_created() -> None:
    game = started_game()
    with pytest.raises(ValueError, match="game_created"):
        fold(game.log[1:])
    with pytest.raises(ValueError, match="game_created"):
        fold([])


def test_apply_returns_the_events_of_decide_and_the_state_they_lead_to() -> None:
    game = started_game()
    command = c.Propose(A_CHIEF, (5.0, 6.0))
    events = decide(game.state, command, T0 + 100)
    state, applied = apply(game.state, command, T0 + 100)
    assert applied == events
    expected = game.state
    for event in events:
        expected = evolve(expected, event)
    assert state == expected


def test_evolve_counts_events_in_seq_even_when_nothing_else_changes() -> None:
    game = started_game()
    again = evolve(game.state, game.log[0])
    assert again.seq == game.state.seq + 1
    assert again.phase == game.state.phase


def test_rule_violation_carries_a_stable_code_and_a_sentence() -> None:
    error = RuleViolation("wrong_phase", "Not now.")
    assert (error.code, error.message) == ("wrong_phase", "Not now.")
    assert str(error) == "wrong_phase: Not now."


def test_every_command_type_has_a_rule_and_every_event_type_an_evolver() -> None:
    assert set(c.COMMAND_TYPES.values()) == set(rules._DECIDERS)
    assert set(e.EVENT_TYPES.values()) == set(rules._EVOLVERS)
    assert all(name == cls.NAME for name, cls in c.COMMAND_TYPES.items())
    assert all(name == cls.TYPE for name, cls in e.EVENT_TYPES.items())


# --------------------------------------------------------------------------------------------
# Seats and roles


def test_the_server_seats_a_player_and_a_bot() -> None:
    game = Game(load_builtin("gatt"))
    assert game.run(c.TakeSeat(SYSTEM, "A1", "alice")) == [e.SeatTaken("A1", "alice", False)]
    assert game.run(c.TakeSeat(SYSTEM, "B1", "bot-1", bot=True)) == [
        e.SeatTaken("B1", "bot-1", True)
    ]
    assert game.state.seats == {"A1": SeatHolder("alice", False), "B1": SeatHolder("bot-1", True)}


def test_the_instructor_may_give_a_taken_seat_to_someone_else() -> None:
    game = Game(load_builtin("gatt"))
    game.run(c.TakeSeat(SYSTEM, "A1", "alice"))
    game.run(c.TakeSeat(INSTRUCTOR, "A1", "bob"))
    assert game.state.seats["A1"] == SeatHolder("bob", False)
    game.run(c.TakeSeat(INSTRUCTOR, "A1", "bob", bot=True))
    assert game.state.seats["A1"] == SeatHolder("bob", True)


def test_releasing_a_seat_empties_it() -> None:
    game = Game(load_builtin("gatt"))
    game.run(c.TakeSeat(SYSTEM, "A1", "alice"))
    assert game.run(c.ReleaseSeat(INSTRUCTOR, "A1")) == [e.SeatReleased("A1")]
    assert "A1" not in game.state.seats
    game.run(c.TakeSeat(SYSTEM, "A1", "carol"))
    assert game.state.seats["A1"].player == "carol"


def test_seats_change_hands_during_play_and_after_a_pause() -> None:
    game = started_game()
    game.run(c.ReleaseSeat(SYSTEM, "A1"))
    game.run(c.PauseGame(INSTRUCTOR))
    game.run(c.TakeSeat(SYSTEM, "A1", "bot-A1", bot=True))
    assert game.state.seats["A1"] == SeatHolder("bot-A1", True)


def test_each_country_has_one_chief_and_its_constituents() -> None:
    game = started_game("climate-treaty")
    roles = {m.key: (m.role, m.country) for m in game.scenario.members}
    assert roles["us-president"] == ("chief", "USA")
    assert roles["dev-leadership"] == ("constituent", "DEV")
    assert game.state.country_of("us-gop") == "USA"
    with pytest.raises(KeyError):
        game.state.country_of("nobody")


# --------------------------------------------------------------------------------------------
# Starting


def test_starting_opens_level_one_of_round_one_with_its_deadline() -> None:
    game = Game(load_builtin("gatt"))
    events = game.run(c.StartGame(INSTRUCTOR), at=T0 + 5)
    assert events == [e.PhaseChanged(LEVEL1, 1, 1, T0 + 5 + 900, "game_started")]
    assert (game.state.phase, game.state.round, game.state.attempt) == (LEVEL1, 1, 1)
    assert game.state.deadline == T0 + 905


def test_a_game_may_start_with_empty_seats() -> None:
    game = Game(load_builtin("gatt"))
    game.start()
    assert game.state.phase == LEVEL1
    assert game.state.seats == {}


def test_phase_deadlines_come_from_the_settings() -> None:
    game = started_game(deadlines=Deadlines(level1=60, level2=30, compliance=20))
    assert game.state.deadline == game.now + 60
    game.agree((5, 6))
    assert game.state.deadline == game.now + 30


def test_a_phase_without_a_deadline_has_none() -> None:
    game = started_game(deadlines=NO_DEADLINES)
    assert game.state.deadline is None
    game.agree((5, 6))
    assert game.state.deadline is None


# --------------------------------------------------------------------------------------------
# Level I: proposals, counter-proposals, withdrawal, acceptance


def test_a_proposal_is_a_full_text_on_the_grid_and_counts_as_its_chiefs_acceptance() -> None:
    game = started_game()
    events = game.run(c.Propose(A_CHIEF, (5, 6)))
    assert events == [e.ProposalMade(1, A_CHIEF, (5.0, 6.0), None)]
    assert all(isinstance(v, float) for v in game.state.proposals[1].values)
    assert game.state.acceptances == {A_CHIEF: 1}
    assert game.state.next_proposal_id == 2


def test_proposal_values_may_come_as_a_list_and_are_snapped_to_the_exact_grid() -> None:
    game = started_game("bonn-1978")
    events = game.run(c.Propose("de-chief", [3, 90.00000000001]))  # type: ignore[arg-type]
    assert events == [e.ProposalMade(1, "de-chief", (3.0, 90.0), None)]
    made = events[0]
    assert isinstance(made, e.ProposalMade) and isinstance(made.values, tuple)


def test_a_fractional_step_accepts_values_between_whole_numbers() -> None:
    data = load_builtin("gatt").to_dict()
    data["issues"][0]["step"] = "1/2"
    game = scenario_game(parse_scenario(data))
    proposal_id = game.propose(0, (2.5, 3))
    assert game.state.proposals[proposal_id].values == (2.5, 3.0)
    assert game.code(c.Propose(A_CHIEF, (2.25, 3))) == "bad_values"


def test_a_counter_proposal_names_the_proposal_it_answers() -> None:
    game = started_game()
    first = game.propose(0, (4, 8))
    events = game.run(c.Propose(B_CHIEF, (8, 4), replies_to=first))
    assert events == [e.ProposalMade(2, B_CHIEF, (8.0, 4.0), first)]
    assert game.state.proposals[2].replies_to == first
    assert set(game.state.proposals) == {1, 2}


def test_a_new_proposal_supersedes_the_chiefs_previous_one_and_its_acceptances() -> None:
    game = scenario_game(three_country_scenario())
    first = game.propose(0, (4,))
    other = game.propose(1, (8,))
    game.run(c.Accept(C_CHIEF, first))
    assert game.state.acceptances == {A_CHIEF: first, B_CHIEF: other, C_CHIEF: first}
    second = game.propose(0, (5,))
    assert set(game.state.proposals) == {other, second}
    assert game.state.acceptances == {A_CHIEF: second, B_CHIEF: other}
    assert game.code(c.Accept(B_CHIEF, first)) == "unknown_proposal"
    # C's stale acceptance of ``first`` must not count towards ``second``.
    events = game.run(c.Accept(B_CHIEF, second))
    assert not any(isinstance(ev, e.TentativeAgreement) for ev in events)
    assert game.state.phase == LEVEL1


def test_withdrawing_a_proposal_removes_it_and_every_acceptance_of_it() -> None:
    game = scenario_game(three_country_scenario())
    first = game.propose(0, (4,))
    game.run(c.Accept(B_CHIEF, first))
    assert game.run(c.Withdraw(A_CHIEF, first)) == [e.ProposalWithdrawn(first, A_CHIEF)]
    assert game.state.proposals == {}
    assert game.state.acceptances == {}


def test_a_withdrawn_proposal_can_no_longer_be_accepted_or_answered_as_open() -> None:
    game = started_game()
    first = game.propose(0, (4, 8))
    game.run(c.Withdraw(A_CHIEF, first))
    assert game.code(c.Accept(B_CHIEF, first)) == "unknown_proposal"
    assert game.code(c.Accept(A_CHIEF, first)) == "unknown_proposal"
    assert game.code(c.Withdraw(A_CHIEF, first)) == "unknown_proposal"
    # A counter-proposal may still cite it: the record of the exchange stays.
    game.run(c.Propose(B_CHIEF, (7, 5), replies_to=first))


def test_accepting_the_other_chiefs_proposal_closes_the_deal() -> None:
    game = started_game()
    own = game.propose(0, (4, 8))
    theirs = game.propose(1, (8, 4))
    events = game.run(c.Accept(A_CHIEF, theirs))
    # B proposed ``theirs`` and so accepts it; A's acceptance completes the pair.
    assert [type(ev) for ev in events] == [
        e.ProposalAccepted,
        e.TentativeAgreement,
        e.PhaseChanged,
    ]
    assert game.state.phase == LEVEL2
    assert game.state.tentative is not None and game.state.tentative.proposal_id == theirs
    assert own not in game.state.proposals


def test_a_chief_holds_one_acceptance_at_a_time_and_may_go_back() -> None:
    game = scenario_game(three_country_scenario())
    own = game.propose(0, (4,))
    theirs = game.propose(1, (6,))
    game.run(c.Accept(A_CHIEF, theirs))
    assert game.state.acceptances == {A_CHIEF: theirs, B_CHIEF: theirs}
    assert set(game.state.proposals) == {own, theirs}
    game.run(c.Accept(A_CHIEF, own))
    assert game.state.acceptances == {A_CHIEF: own, B_CHIEF: theirs}
    game.run(c.Accept(C_CHIEF, own))
    assert game.state.phase == LEVEL1
    events = game.run(c.Accept(B_CHIEF, own))
    assert [type(ev) for ev in events] == [
        e.ProposalAccepted,
        e.TentativeAgreement,
        e.PhaseChanged,
    ]


def test_every_chief_accepting_the_identical_proposal_is_a_tentative_agreement() -> None:
    game = started_game()
    proposal_id = game.propose(0, (5, 6))
    events = game.run(c.Accept(B_CHIEF, proposal_id), at=T0 + 500)
    assert events == [
        e.ProposalAccepted(proposal_id, B_CHIEF),
        e.TentativeAgreement(proposal_id, (5.0, 6.0)),
        e.PhaseChanged(LEVEL2, 1, 1, T0 + 500 + 180, "tentative_agreement"),
    ]
    state = game.state
    assert state.phase == LEVEL2
    assert state.tentative is not None and state.tentative.values == (5.0, 6.0)
    assert state.proposals == {} and state.acceptances == {}
    assert state.tentative_agreements == 1


def test_tabling_the_identical_text_is_an_agreement_on_its_earliest_tabling() -> None:
    # Every chief has accepted the identical text (tabling it counts as accepting it), so the
    # chiefs agree, on the text as first tabled.
    game = started_game()
    first = game.propose(0, (5, 6))
    events = game.run(c.Propose(B_CHIEF, (5, 6)))
    second = first + 1
    assert events[0] == e.ProposalMade(second, B_CHIEF, (5.0, 6.0))
    assert events[1] == e.TentativeAgreement(first, (5.0, 6.0))
    assert game.state.phase == LEVEL2


def test_accepting_another_tabling_of_the_same_text_is_an_agreement() -> None:
    game = started_game("bonn-1978")
    chiefs = [country.chief.key for country in game.state.scenario.countries]
    first = game.propose(0, (3, 80))
    game.propose(1, (4, 90))
    # The US chief tables the German text again, then the German chief accepts that copy.
    events = game.run(c.Propose(chiefs[1], (3, 80)))
    assert e.TentativeAgreement(first, (3.0, 80.0)) in events


def test_different_texts_accepted_by_different_chiefs_are_no_agreement() -> None:
    game = started_game()
    game.propose(0, (5, 6))
    game.propose(1, (6, 5))
    assert game.state.phase == LEVEL1
    assert game.state.tentative is None


def test_the_tentative_text_is_frozen_for_ratification() -> None:
    game = started_game()
    game.agree((5, 6))
    assert game.code(c.Propose(A_CHIEF, (6, 6))) == "wrong_phase"
    assert game.code(c.Accept(B_CHIEF, 1)) == "wrong_phase"
    assert game.code(c.Withdraw(A_CHIEF, 1)) == "wrong_phase"
    assert game.state.tentative is not None and game.state.tentative.values == (5.0, 6.0)


# --------------------------------------------------------------------------------------------
# Straw polls


def test_a_chief_polls_its_own_constituents_and_gets_the_aggregate_only() -> None:
    game = started_game("bonn-1978")
    events = game.run(c.OpenStrawPoll("de-chief", (3, 90)))
    assert events == [e.StrawPollOpened(1, "de-chief", "DE", (3.0, 90.0))]
    game.run(c.AnswerStrawPoll("de-spd", 1, True))
    game.run(c.AnswerStrawPoll("de-fdp", 1, True))
    events = game.run(c.CloseStrawPoll("de-chief", 1))
    assert events == [
        e.StrawPollClosed(
            poll_id=1,
            country="DE",
            yes=2,
            no=0,
            unanswered=1,
            yes_weight=55.0,
            total_weight=100.0,
            quota_met=True,
            would_ratify=True,
        )
    ]
    poll = game.state.polls[1]
    assert poll.closed and poll.result is not None and poll.result["quota_met"] is True


def test_a_straw_poll_would_not_ratify_without_the_veto_player() -> None:
    # Climate: the developing bloc's leadership is a veto player. Industry and reformers (80 of
    # 100) meet the majority, but the leadership does not answer: the quota is met, the country
    # would still not ratify.
    game = started_game("climate-treaty")
    game.run(c.OpenStrawPoll("dev-chief", (5, 5)))
    game.run(c.AnswerStrawPoll("dev-industry", 1, True))
    game.run(c.AnswerStrawPoll("dev-reformers", 1, True))
    (closed,) = game.run(c.CloseStrawPoll("dev-chief", 1))
    assert isinstance(closed, e.StrawPollClosed)
    assert (closed.quota_met, closed.would_ratify) == (True, False)


def test_the_closing_result_names_nobody() -> None:
    names = {f.name for f in dataclasses.fields(e.StrawPollClosed)}
    assert names == {
        "poll_id",
        "country",
        "yes",
        "no",
        "unanswered",
        "yes_weight",
        "total_weight",
        "quota_met",
        "would_ratify",
    }


def test_a_straw_poll_closes_itself_when_every_constituent_has_answered() -> None:
    game = started_game("bonn-1978")
    game.run(c.OpenStrawPoll("de-chief", (3, 90)))
    game.run(c.AnswerStrawPoll("de-spd", 1, True))
    game.run(c.AnswerStrawPoll("de-cdu", 1, False))
    events = game.run(c.AnswerStrawPoll("de-fdp", 1, False))
    assert events == [
        e.StrawPollAnswered(1, "de-fdp", False),
        e.StrawPollClosed(1, "DE", 1, 2, 0, 42.0, 100.0, False),
    ]
    assert game.state.polls[1].closed


def test_a_straw_poll_uses_the_countrys_quota_exactly() -> None:
    # Two members of weight 1 under an inclusive majority: one yes meets the quota.
    game = scenario_game(one_issue_scenario([1, 1], strict=False))
    game.run(c.OpenStrawPoll(A_CHIEF, (6,)))
    game.run(c.AnswerStrawPoll("A1", 1, True))
    closed = game.run(c.AnswerStrawPoll("A2", 1, False))[-1]
    assert isinstance(closed, e.StrawPollClosed) and closed.quota_met is True


def test_a_chief_may_open_a_new_poll_once_its_last_is_closed() -> None:
    game = started_game()
    game.run(c.OpenStrawPoll(A_CHIEF, (5, 6)))
    game.run(c.OpenStrawPoll(B_CHIEF, (6, 5)))
    game.run(c.CloseStrawPoll(A_CHIEF, 1))
    events = game.run(c.OpenStrawPoll(A_CHIEF, (5, 7)))
    assert events == [e.StrawPollOpened(3, A_CHIEF, "A", (5.0, 7.0))]


def test_a_tentative_agreement_closes_every_open_straw_poll_first() -> None:
    game = started_game()
    game.run(c.OpenStrawPoll(A_CHIEF, (5, 6)))
    game.run(c.AnswerStrawPoll("A1", 1, True))
    proposal_id = game.propose(0, (5, 6))
    events = game.run(c.Accept(B_CHIEF, proposal_id))
    assert [type(ev) for ev in events] == [
        e.ProposalAccepted,
        e.StrawPollClosed,
        e.TentativeAgreement,
        e.PhaseChanged,
    ]
    assert events[1] == e.StrawPollClosed(1, "A", 1, 0, 2, 1.0, 3.0, False)


# --------------------------------------------------------------------------------------------
# Chat and public statements


def test_a_chief_makes_a_public_statement() -> None:
    game = started_game()
    events = game.run(c.MakeStatement(B_CHIEF, "  Borduria will match every cut.  "))
    assert events == [e.StatementMade(B_CHIEF, "Borduria will match every cut.")]
    assert game.state.messages[-1] == Message("public", B_CHIEF, "Borduria will match every cut.")


def test_the_instructor_announces_to_everyone_even_while_paused() -> None:
    game = started_game()
    game.run(c.PauseGame(INSTRUCTOR))
    events = game.run(c.Announce(INSTRUCTOR, "  Five minutes to the vote.  "))
    assert events == [e.AnnouncementMade("Five minutes to the vote.")]
    assert game.state.messages[-1] == Message("public", INSTRUCTOR, "Five minutes to the vote.")


def test_only_the_instructor_announces_and_never_an_empty_or_overlong_text() -> None:
    game = started_game()
    with pytest.raises(RuleViolation) as refused:
        game.run(c.Announce(A_CHIEF, "I am the teacher now"))
    assert refused.value.code == "not_instructor"
    with pytest.raises(RuleViolation) as refused:
        game.run(c.Announce(INSTRUCTOR, "   "))
    assert refused.value.code == "empty_text"
    with pytest.raises(RuleViolation) as refused:
        game.run(c.Announce(INSTRUCTOR, "x" * (rules.MAX_ANNOUNCEMENT + 1)))
    assert refused.value.code == "text_too_long"


def test_statements_may_be_made_during_ratification_to_reach_the_other_side() -> None:
    game = started_game()
    game.agree((5, 6))
    game.run(c.MakeStatement(A_CHIEF, "Vote for jobs."))
    assert game.state.messages[-1].channel == "public"


def test_chiefs_chat_at_the_table_and_each_country_in_its_caucus() -> None:
    game = started_game()
    assert game.run(c.Chat(A_CHIEF, "table", "Hello")) == [e.ChatPosted("table", A_CHIEF, "Hello")]
    assert game.run(c.Chat("A2", "caucus:A", "Not so deep")) == [
        e.ChatPosted("caucus:A", "A2", "Not so deep")
    ]
    assert game.run(c.Chat(B_CHIEF, "caucus:B", "Hold firm")) == [
        e.ChatPosted("caucus:B", B_CHIEF, "Hold firm")
    ]
    assert [m.channel for m in game.state.messages] == ["table", "caucus:A", "caucus:B"]


def test_the_state_keeps_the_most_recent_messages_only() -> None:
    game = started_game()
    for n in range(RECENT_MESSAGES + 5):
        game.run(c.Chat(A_CHIEF, "table", f"line {n}"))
    assert len(game.state.messages) == RECENT_MESSAGES
    assert game.state.messages[0].text == "line 5"
    assert game.state.messages[-1].text == f"line {RECENT_MESSAGES + 4}"


def test_a_message_of_the_maximum_length_is_accepted() -> None:
    game = started_game()
    game.run(c.Chat(A_CHIEF, "table", "x" * rules.MAX_TEXT))
    assert len(game.state.messages[-1].text) == rules.MAX_TEXT


# --------------------------------------------------------------------------------------------
# Side payments


def test_a_chief_offers_side_payments_within_its_budget() -> None:
    game = started_game("bonn-1978")
    assert game.run(c.OfferSidePayment("us-chief", "us-moderates", 2)) == [
        e.SidePaymentOffered("us-chief", "us-moderates", 2)
    ]
    game.run(c.OfferSidePayment("us-chief", "us-consumers", 8))
    assert game.state.offers == {"us-chief": {"us-moderates": 2, "us-consumers": 8}}
    assert game.code(c.OfferSidePayment("us-chief", "us-consumers", 9)) == "over_budget"


def test_revising_an_offer_replaces_it_and_zero_withdraws_it() -> None:
    game = started_game("bonn-1978")
    game.run(c.OfferSidePayment("us-chief", "us-consumers", 10))
    game.run(c.OfferSidePayment("us-chief", "us-consumers", 4))
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 6))
    assert game.state.offers["us-chief"] == {"us-consumers": 4, "us-moderates": 6}
    game.run(c.OfferSidePayment("us-chief", "us-consumers", 0))
    assert game.state.offers["us-chief"] == {"us-moderates": 6}
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 10))
    assert game.state.offers["us-chief"] == {"us-moderates": 10}


def test_a_chief_may_court_the_other_countrys_constituents() -> None:
    game = started_game("bonn-1978")
    game.run(c.OfferSidePayment("us-chief", "de-fdp", 3))
    assert game.state.offers == {"us-chief": {"de-fdp": 3}}


def test_a_side_payment_is_not_paid_when_offered() -> None:
    game = started_game("bonn-1978")
    events = game.run(c.OfferSidePayment("us-chief", "us-moderates", 2))
    assert not any(isinstance(ev, e.AgreementInForce) for ev in events)
    assert game.state.in_force_transfers == {}


# --------------------------------------------------------------------------------------------
# Level II: the secret ballot and the count


def test_each_constituent_votes_once_and_the_last_ballot_counts_the_vote() -> None:
    game = started_game()
    game.agree((5, 6))
    ballots = {"A1": True, "A2": True, "A3": False, "B1": True, "B2": True}
    for member, yes in ballots.items():
        assert game.run(c.CastBallot(member, yes)) == [e.BallotCast(member, yes)]
    assert game.state.ballots == ballots
    events = game.run(c.CastBallot("B3", False))
    assert [type(ev) for ev in events[:3]] == [e.BallotCast, e.BallotsCounted, e.AgreementInForce]
    counted = events[1]
    assert isinstance(counted, e.BallotsCounted)
    assert counted.ballots == {**ballots, "B3": False}
    assert counted.results == (
        e.CountryResult("A", True, 2.0, 3.0, ()),
        e.CountryResult("B", True, 2.0, 3.0, ()),
    )
    assert game.state.last_count is not None
    assert game.state.last_count["results"]["A"]["ratified"] is True


def test_missing_ballots_count_as_no_when_the_level_two_deadline_fires() -> None:
    game = started_game()
    game.agree((5, 6))
    game.vote({"A1": True, "B1": True, "B2": True})
    deadline = game.state.deadline
    assert deadline is not None
    events = game.run(c.FireDeadline(SYSTEM, deadline), at=deadline)
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
    assert counted.results == (
        e.CountryResult("A", False, 1.0, 3.0, ()),
        e.CountryResult("B", True, 2.0, 3.0, ()),
    )
    assert events[1] == e.InvoluntaryDefection(1, ("A",), 1)


COUNTING_CASES = [
    # weights, quota, strict, vetoes, A's yes voters, ratified, yes weight, vetoed by
    pytest.param([1, 1], "1/2", True, None, ["A1"], False, 1.0, (), id="strict-half-tie-fails"),
    pytest.param([1, 1], "1/2", False, None, ["A1"], True, 1.0, (), id="inclusive-half-tie"),
    pytest.param([1, 1, 1], "2/3", True, None, ["A1", "A2"], False, 2.0, (), id="strict-2/3"),
    pytest.param([1, 1, 1], "2/3", False, None, ["A1", "A2"], True, 2.0, (), id="incl-2/3"),
    pytest.param([1, 1, 1], "1", False, None, ["A1", "A2"], False, 2.0, (), id="unanimity-no"),
    pytest.param(
        [1, 1, 1], "1", False, None, ["A1", "A2", "A3"], True, 3.0, (), id="unanimity-yes"
    ),
    pytest.param([3, 1, 1, 1], "1/2", True, None, ["A1"], False, 3.0, (), id="heavy-alone"),
    pytest.param([3, 1, 1, 1], "1/2", True, None, ["A1", "A4"], True, 4.0, (), id="heavy+1"),
    pytest.param(
        [3, 1, 1, 1], "1/2", True, None, ["A2", "A3", "A4"], False, 3.0, (), id="light-three"
    ),
    # Ten members of weight 1/10 and a strict quota of 3/10: three yes votes are exactly the
    # quota, so they fail; in floats 0.1 + 0.1 + 0.1 > 0.3 would pass them.
    pytest.param(
        ["1/10"] * 10,
        "3/10",
        True,
        None,
        ["A1", "A2", "A3"],
        False,
        0.30000000000000004,
        (),
        id="exact-fractions-strict",
    ),
    pytest.param(
        [0.1] * 10,
        "3/10",
        False,
        None,
        ["A1", "A2", "A3"],
        True,
        0.30000000000000004,
        (),
        id="exact-fractions-inclusive",
    ),
    pytest.param(
        [1, 1, 1],
        "1/2",
        True,
        [True, False, False],
        ["A2", "A3"],
        False,
        2.0,
        ("A1",),
        id="veto-no-sinks-a-majority",
    ),
    pytest.param(
        [1, 1, 1],
        "1/2",
        True,
        [True, False, True],
        ["A1", "A2"],
        False,
        2.0,
        ("A3",),
        id="second-veto-player",
    ),
    pytest.param(
        [1, 1, 1],
        "1/2",
        True,
        [True, False, False],
        ["A1", "A2"],
        True,
        2.0,
        (),
        id="veto-yes-with-a-majority",
    ),
    pytest.param(
        [1, 1, 1], "1/2", True, [True, False, False], ["A1"], False, 1.0, (), id="veto-yes-alone"
    ),
]


@pytest.mark.parametrize(
    ("weights", "quota", "strict", "vetoes", "yes_voters", "ratified", "yes_weight", "vetoed_by"),
    COUNTING_CASES,
)
def test_ratification_follows_the_countrys_rule(
    weights: list[str | int | float],
    quota: str,
    strict: bool,
    vetoes: list[bool] | None,
    yes_voters: list[str],
    ratified: bool,
    yes_weight: float,
    vetoed_by: tuple[str, ...],
) -> None:
    game = scenario_game(
        one_issue_scenario(weights, quota=quota, strict=strict, veto_a=vetoes),
        deadlines=NO_DEADLINES,
    )
    game.agree((6,))
    ballots = {m: m in yes_voters for m in game.constituents(0)}
    events = game.vote({**ballots, "B1": True})
    counted = next(ev for ev in events if isinstance(ev, e.BallotsCounted))
    result = counted.results[0]
    assert result.country == "A"
    assert result.ratified is ratified
    assert result.yes_weight == pytest.approx(yes_weight, abs=1e-12)
    assert result.total_weight == pytest.approx(float(sum(Fraction(str(w)) for w in weights)))
    assert result.vetoed_by == vetoed_by
    assert any(isinstance(ev, e.AgreementInForce) for ev in events) is ratified


def test_a_veto_players_missing_ballot_is_a_veto() -> None:
    game = scenario_game(one_issue_scenario([1, 1, 1], veto_a=[True, False, False]))
    game.agree((6,))
    game.vote({"A2": True, "A3": True, "B1": True})
    deadline = game.state.deadline
    assert deadline is not None
    counted = game.run(c.FireDeadline(SYSTEM, deadline), at=deadline)[0]
    assert isinstance(counted, e.BallotsCounted)
    assert counted.results[0] == e.CountryResult("A", False, 2.0, 3.0, ("A1",))


def test_every_country_must_ratify_for_the_agreement_to_enter_into_force() -> None:
    game = started_game(attempts=1)
    game.agree((5, 6))
    events = game.vote({"A1": True, "A2": True, "A3": True, "B1": False, "B2": False, "B3": True})
    assert e.InvoluntaryDefection(1, ("B",), 0) in events
    assert not any(isinstance(ev, e.AgreementInForce) for ev in events)


# --------------------------------------------------------------------------------------------
# In force, involuntary defection, attempts


def test_ratification_by_all_puts_the_agreement_in_force_and_ends_the_round() -> None:
    game = started_game()
    game.agree((5, 6))
    events = game.vote(game.sincere_ballots((5, 6)))
    kinds = [type(ev) for ev in events]
    assert kinds[-4:] == [e.BallotsCounted, e.AgreementInForce, e.RoundEnded, e.GameEnded]
    assert events[-3] == e.AgreementInForce(1, (5.0, 6.0), {})
    assert events[-2] == e.RoundEnded(1, "agreement", (5.0, 6.0))
    assert events[-1] == e.GameEnded("all_rounds_played")
    assert game.state.in_force is not None and game.state.in_force.values == (5.0, 6.0)
    assert game.state.phase == ENDED and game.state.ended
    assert game.state.end_reason == "all_rounds_played"


def test_a_failed_ratification_is_an_involuntary_defection_and_reopens_level_one() -> None:
    game = started_game("bonn-1978")
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 2))
    game.run(c.OpenStrawPoll("de-chief", (3, 90)))
    game.run(c.CloseStrawPoll("de-chief", 1))
    game.propose(1, (6, 100))
    game.agree((3, 90))
    events = game.vote({m: False for m in game.all_constituents()})
    assert events[-2] == e.InvoluntaryDefection(2, ("DE", "USA"), 1)
    assert events[-1] == e.PhaseChanged(LEVEL1, 1, 2, game.now + 900, "involuntary_defection")
    state = game.state
    assert (state.phase, state.round, state.attempt) == (LEVEL1, 1, 2)
    assert state.proposals == {} and state.acceptances == {} and state.ballots == {}
    assert state.tentative is None
    assert state.involuntary_defections == {"DE": 1, "USA": 1}
    assert state.round_failed_attempts == 1
    # The round goes on: standing offers and the round's straw polls stay.
    assert state.offers == {"us-chief": {"us-moderates": 2}}
    assert set(state.polls) == {1}
    assert state.in_force_transfers == {}


def test_when_no_attempt_is_left_the_round_ends_in_involuntary_defection() -> None:
    game = started_game(attempts=1, rounds=2)
    game.agree((5, 6))
    events = game.vote({m: False for m in game.all_constituents()})
    assert [type(ev) for ev in events[-4:]] == [
        e.BallotsCounted,
        e.InvoluntaryDefection,
        e.RoundEnded,
        e.PhaseChanged,
    ]
    assert events[-3] == e.InvoluntaryDefection(1, ("A", "B"), 0)
    assert events[-2] == e.RoundEnded(1, "involuntary_defection", None)
    assert events[-1] == e.PhaseChanged(LEVEL1, 2, 1, game.now + 900, "next_round")
    assert game.state.rounds[-1].result == "involuntary_defection"


# --------------------------------------------------------------------------------------------
# Compliance: the Prisoner's Dilemma after entry into force


@pytest.mark.parametrize(
    ("a_complies", "b_complies", "a_payoff", "b_payoff", "result"),
    [
        (True, True, 3.0, 3.0, "agreement"),
        (True, False, 0.0, 5.0, "voluntary_defection"),
        (False, True, 5.0, 0.0, "voluntary_defection"),
        (False, False, 1.0, 1.0, "voluntary_defection"),
    ],
)
def test_compliance_pays_the_prisoners_dilemma(
    a_complies: bool, b_complies: bool, a_payoff: float, b_payoff: float, result: str
) -> None:
    game = started_game(compliance=True)
    game.agree((5, 6))
    events = game.vote(game.sincere_ballots((5, 6)))
    assert events[-1] == e.PhaseChanged(COMPLIANCE, 1, 1, game.now + 120, "agreement_in_force")
    assert game.run(c.ChooseCompliance(A_CHIEF, a_complies)) == [
        e.ComplianceChosen(A_CHIEF, a_complies)
    ]
    assert game.state.compliance_choices == {"A": a_complies}
    events = game.run(c.ChooseCompliance(B_CHIEF, b_complies))
    assert events[1] == e.ComplianceResolved(
        {"A": a_complies, "B": b_complies}, {"A": a_payoff, "B": b_payoff}
    )
    assert events[2] == e.RoundEnded(1, result, (5.0, 6.0))
    record = game.state.rounds[-1]
    assert record.compliance == {"A": a_complies, "B": b_complies}
    assert record.payoffs == {"A": a_payoff, "B": b_payoff}
    defectors = {k: 1 for k, v in {"A": a_complies, "B": b_complies}.items() if not v}
    assert game.state.voluntary_defections == defectors


def test_the_default_payoffs_form_a_prisoners_dilemma() -> None:
    payoffs = load_builtin("gatt").game.payoffs
    assert (payoffs.temptation, payoffs.reward, payoffs.punishment, payoffs.sucker) == (5, 3, 1, 0)
    assert payoffs.temptation > payoffs.reward > payoffs.punishment > payoffs.sucker


def test_compliance_uses_the_games_own_payoffs() -> None:
    game = started_game(compliance=True, payoffs=Payoffs(10, 6, 2, -1))
    game.agree((5, 6))
    game.vote(game.sincere_ballots((5, 6)))
    game.run(c.ChooseCompliance(A_CHIEF, False))
    events = game.run(c.ChooseCompliance(B_CHIEF, True))
    assert events[1] == e.ComplianceResolved({"A": False, "B": True}, {"A": 10, "B": -1})


def test_a_government_that_does_not_choose_by_the_deadline_complies() -> None:
    game = started_game(compliance=True)
    game.agree((5, 6))
    game.vote(game.sincere_ballots((5, 6)))
    game.run(c.ChooseCompliance(B_CHIEF, False))
    deadline = game.state.deadline
    assert deadline is not None
    events = game.run(c.FireDeadline(SYSTEM, deadline), at=deadline + 3)
    assert events[0] == e.ComplianceResolved({"A": True, "B": False}, {"A": 0, "B": 5})


# --------------------------------------------------------------------------------------------
# Rounds


def test_a_new_round_starts_afresh_but_keeps_the_history() -> None:
    game = started_game("bonn-1978", rounds=2)
    game.run(c.OfferSidePayment("us-chief", "us-moderates", 2))
    game.run(c.OpenStrawPoll("us-chief", (3, 90)))
    game.run(c.Chat("us-chief", "table", "Round one"))
    game.agree((3, 90))
    events = game.vote(game.sincere_ballots((3, 90), {"us-moderates": 2}))
    assert events[-2] == e.RoundEnded(1, "agreement", (3.0, 90.0))
    assert events[-1] == e.PhaseChanged(LEVEL1, 2, 1, game.now + 900, "next_round")
    state = game.state
    assert (state.phase, state.round, state.attempt) == (LEVEL1, 2, 1)
    assert state.offers == {} and state.polls == {} and state.proposals == {}
    assert state.in_force is None and state.in_force_transfers == {}
    assert state.last_count is None and state.round_failed_attempts == 0
    assert len(state.rounds) == 1 and state.rounds[0].transfers == {"us-moderates": 2}
    assert state.tentative_agreements == 1
    assert state.messages[-1].text == "Round one"
    # Ids keep counting across rounds.
    assert game.propose(0, (4, 95)) == 2
    game.run(c.OpenStrawPoll("us-chief", (3, 90)))
    assert set(game.state.polls) == {2}


def test_the_last_round_ends_the_game() -> None:
    game = started_game(rounds=2, deadlines=NO_DEADLINES)
    game.run(c.AdvancePhase(INSTRUCTOR))
    assert game.state.round == 2
    events = game.run(c.AdvancePhase(INSTRUCTOR))
    assert events == [e.RoundEnded(2, "no_agreement", None), e.GameEnded("all_rounds_played")]
    assert [r.result for r in game.state.rounds] == ["no_agreement", "no_agreement"]


# --------------------------------------------------------------------------------------------
# Deadlines: fired by the server's clock


def test_the_level_one_deadline_ends_the_round_without_agreement() -> None:
    game = started_game(rounds=2)
    game.run(c.OpenStrawPoll(A_CHIEF, (5, 6)))
    deadline = game.state.deadline
    assert deadline is not None
    events = game.run(c.FireDeadline(SYSTEM, deadline), at=deadline)
    assert events == [
        e.StrawPollClosed(1, "A", 0, 0, 3, 0.0, 3.0, False),
        e.RoundEnded(1, "no_agreement", None),
        e.PhaseChanged(LEVEL1, 2, 1, deadline + 900, "next_round"),
    ]


def test_the_level_one_deadline_after_a_failed_attempt_records_involuntary_defection() -> None:
    game = started_game()
    game.agree((5, 6))
    game.vote({m: False for m in game.all_constituents()})
    assert game.state.attempt == 2
    deadline = game.state.deadline
    assert deadline is not None
    events = game.run(c.FireDeadline(SYSTEM, deadline), at=deadline)
    assert events == [
        e.RoundEnded(1, "involuntary_defection", None),
        e.GameEnded("all_rounds_played"),
    ]


def test_a_deadline_fires_at_or_after_its_time_only() -> None:
    game = started_game()
    deadline = game.state.deadline
    assert deadline is not None
    assert game.code(c.FireDeadline(SYSTEM, deadline), at=deadline - 0.5) == "deadline_not_reached"
    game.run(c.FireDeadline(SYSTEM, deadline), at=deadline)
    assert game.state.ended


def test_a_timer_from_an_earlier_phase_is_stale() -> None:
    game = started_game()
    level1_deadline = game.state.deadline
    assert level1_deadline is not None
    game.agree((5, 6))
    assert (
        game.code(c.FireDeadline(SYSTEM, level1_deadline), at=level1_deadline + 1000)
        == "stale_deadline"
    )


def test_a_deadline_moved_by_one_second_makes_the_old_timer_stale() -> None:
    # At epoch times a relative tolerance of 1e-9 would be 1.7 s: the old timer must not pass.
    game = started_game()
    old = game.state.deadline
    assert old is not None
    game.run(c.ExtendDeadline(INSTRUCTOR, 1))
    assert game.state.deadline == old + 1
    assert game.code(c.FireDeadline(SYSTEM, old), at=old + 1.5) == "stale_deadline"
    game.run(c.FireDeadline(SYSTEM, old + 1), at=old + 1.5)
    assert game.state.ended


def test_a_timer_read_back_through_json_is_still_current() -> None:
    game = started_game()
    deadline = game.state.deadline
    assert deadline is not None
    read_back = json.loads(json.dumps(deadline))
    game.run(c.FireDeadline(SYSTEM, read_back), at=deadline)
    assert game.state.ended


def test_the_engine_never_reads_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clock() -> float:
        raise AssertionError("the engine read the clock")

    for name in ("time", "monotonic", "perf_counter", "time_ns"):
        monkeypatch.setattr(time, name, no_clock)
    game = started_game(compliance=True)
    game.agree((5, 6))
    game.vote(game.sincere_ballots((5, 6)))
    game.run(c.PauseGame(INSTRUCTOR))
    game.run(c.ResumeGame(INSTRUCTOR))
    deadline = game.state.deadline
    assert deadline is not None
    game.run(c.FireDeadline(SYSTEM, deadline), at=deadline)
    assert game.state.ended


def test_the_rules_import_no_clock() -> None:
    source = Path(rules.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"time", "datetime", "calendar"}


def test_the_same_command_at_the_same_time_decides_the_same_events() -> None:
    game = started_game()
    proposal_id = game.propose(0, (5, 6))
    command = c.Accept(B_CHIEF, proposal_id)
    assert decide(game.state, command, T0 + 50) == decide(game.state, command, T0 + 50)
    later = decide(game.state, command, T0 + 60)
    assert later[-1] == e.PhaseChanged(LEVEL2, 1, 1, T0 + 60 + 180, "tentative_agreement")


# --------------------------------------------------------------------------------------------
# Pause, resume, extend, advance, end: the instructor's controls


def test_pausing_carries_the_time_left_and_resuming_restores_it() -> None:
    game = started_game()
    deadline = game.state.deadline
    assert deadline is not None
    assert game.run(c.PauseGame(INSTRUCTOR), at=deadline - 300) == [e.GamePaused(300.0)]
    assert game.state.paused and game.state.deadline is None
    assert game.state.paused_remaining == 300.0
    resumed_at = deadline + 5000
    assert game.run(c.ResumeGame(INSTRUCTOR), at=resumed_at) == [e.GameResumed(resumed_at + 300)]
    assert not game.state.paused and game.state.paused_remaining is None
    assert game.state.deadline == resumed_at + 300
    assert game.code(c.FireDeadline(SYSTEM, deadline), at=resumed_at + 1) == "stale_deadline"
    assert (
        game.code(c.FireDeadline(SYSTEM, resumed_at + 300), at=resumed_at + 299)
        == "deadline_not_reached"
    )
    game.run(c.FireDeadline(SYSTEM, resumed_at + 300), at=resumed_at + 300)
    assert game.state.ended


def test_a_pause_after_the_deadline_passed_leaves_no_time() -> None:
    game = started_game()
    deadline = game.state.deadline
    assert deadline is not None
    assert game.run(c.PauseGame(INSTRUCTOR), at=deadline + 10) == [e.GamePaused(0.0)]
    assert game.run(c.ResumeGame(INSTRUCTOR), at=deadline + 20) == [e.GameResumed(deadline + 20)]


def test_a_pause_without_a_deadline_resumes_without_one() -> None:
    game = Game(load_builtin("gatt"))
    assert game.run(c.PauseGame(INSTRUCTOR)) == [e.GamePaused(None)]
    assert game.run(c.ResumeGame(INSTRUCTOR)) == [e.GameResumed(None)]
    assert game.state.deadline is None
    game.start()


def test_a_paused_game_survives_a_replay() -> None:
    game = started_game()
    deadline = game.state.deadline
    assert deadline is not None
    game.run(c.PauseGame(INSTRUCTOR), at=deadline - 100)
    replayed = fold(game.log)
    assert replayed.paused and replayed.paused_remaining == 100.0


PAUSED_REFUSED = [
    c.Propose(A_CHIEF, (5, 6)),
    c.Accept(B_CHIEF, 1),
    c.Withdraw(A_CHIEF, 1),
    c.OpenStrawPoll(A_CHIEF, (5, 6)),
    c.AnswerStrawPoll("A1", 1, True),
    c.CloseStrawPoll(A_CHIEF, 1),
    c.OfferSidePayment(A_CHIEF, "A1", 0),
    c.CastBallot("A1", True),
    c.ChooseCompliance(A_CHIEF, True),
    c.FireDeadline(SYSTEM, T0),
    c.AdvancePhase(INSTRUCTOR),
    c.StartGame(INSTRUCTOR),
]


@pytest.mark.parametrize("command", PAUSED_REFUSED, ids=lambda cmd: type(cmd).__name__)
def test_a_paused_game_refuses_play(command: c.Command) -> None:
    game = started_game()
    game.propose(0, (5, 6))
    game.run(c.OpenStrawPoll(A_CHIEF, (5, 6)))
    game.run(c.PauseGame(INSTRUCTOR))
    assert game.code(command) == "game_paused"


def test_a_paused_game_still_talks_seats_extends_and_ends() -> None:
    game = started_game()
    game.run(c.PauseGame(INSTRUCTOR))
    game.run(c.Chat(A_CHIEF, "table", "While we wait"))
    game.run(c.MakeStatement(B_CHIEF, "We are patient."))
    game.run(c.ReleaseSeat(SYSTEM, "A1"))
    game.run(c.TakeSeat(SYSTEM, "A1", "dave"))
    game.run(c.ExtendDeadline(INSTRUCTOR, 60))
    game.run(c.EndGame(INSTRUCTOR))
    assert game.state.ended and not game.state.paused


def test_extending_moves_the_deadline_and_while_paused_the_time_left() -> None:
    game = started_game()
    deadline = game.state.deadline
    assert deadline is not None
    assert game.run(c.ExtendDeadline(INSTRUCTOR, 120)) == [e.DeadlineExtended(120)]
    assert game.state.deadline == deadline + 120
    game.run(c.PauseGame(INSTRUCTOR), at=deadline)
    assert game.state.paused_remaining == 120.0
    game.run(c.ExtendDeadline(INSTRUCTOR, MAX_EXTENSION))
    assert game.state.paused_remaining == 120.0 + MAX_EXTENSION
    game.run(c.ResumeGame(INSTRUCTOR), at=deadline + 1)
    assert game.state.deadline == deadline + 1 + 120 + MAX_EXTENSION


def test_extending_a_level_two_deadline() -> None:
    game = started_game()
    game.agree((5, 6))
    deadline = game.state.deadline
    assert deadline is not None
    game.run(c.ExtendDeadline(INSTRUCTOR, 1))
    assert game.state.deadline == deadline + 1


def test_advancing_from_the_lobby_starts_the_game() -> None:
    game = Game(load_builtin("gatt"))
    events = game.run(c.AdvancePhase(INSTRUCTOR), at=T0 + 3)
    assert events == [e.PhaseChanged(LEVEL1, 1, 1, T0 + 3 + 900, "game_started")]


def test_advancing_level_one_ends_the_round() -> None:
    game = started_game()
    events = game.run(c.AdvancePhase(INSTRUCTOR))
    assert events == [e.RoundEnded(1, "no_agreement", None), e.GameEnded("all_rounds_played")]


def test_advancing_level_two_counts_the_ballots_cast() -> None:
    game = started_game()
    game.agree((5, 6))
    game.vote({"A1": True, "A2": True, "B1": True, "B2": True})
    events = game.run(c.AdvancePhase(INSTRUCTOR))
    assert [type(ev) for ev in events] == [
        e.BallotsCounted,
        e.AgreementInForce,
        e.RoundEnded,
        e.GameEnded,
    ]


def test_advancing_compliance_resolves_it() -> None:
    game = started_game(compliance=True)
    game.agree((5, 6))
    game.vote(game.sincere_ballots((5, 6)))
    game.run(c.ChooseCompliance(A_CHIEF, False))
    events = game.run(c.AdvancePhase(INSTRUCTOR))
    assert events[0] == e.ComplianceResolved({"A": False, "B": True}, {"A": 5, "B": 0})
    assert events[1] == e.RoundEnded(1, "voluntary_defection", (5.0, 6.0))


def test_ending_in_the_lobby_just_ends_the_game() -> None:
    game = Game(load_builtin("gatt"))
    assert game.run(c.EndGame(INSTRUCTOR)) == [e.GameEnded("ended_by_instructor")]
    assert game.state.ended and game.state.rounds == ()


def test_ending_during_level_one_closes_polls_and_the_round() -> None:
    game = started_game(rounds=3)
    game.run(c.OpenStrawPoll(A_CHIEF, (5, 6)))
    events = game.run(c.EndGame(INSTRUCTOR))
    assert [type(ev) for ev in events] == [e.StrawPollClosed, e.RoundEnded, e.GameEnded]
    assert events[1] == e.RoundEnded(1, "no_agreement", None)
    assert game.state.deadline is None and game.state.end_reason == "ended_by_instructor"


def test_ending_after_a_failed_attempt_records_involuntary_defection() -> None:
    game = started_game()
    game.agree((5, 6))
    game.vote({m: False for m in game.all_constituents()})
    events = game.run(c.EndGame(INSTRUCTOR))
    assert events[0] == e.RoundEnded(1, "involuntary_defection", None)


def test_ending_during_compliance_keeps_the_agreement_in_force() -> None:
    game = started_game(compliance=True)
    game.agree((5, 6))
    game.vote(game.sincere_ballots((5, 6)))
    events = game.run(c.EndGame(INSTRUCTOR))
    assert events == [
        e.ComplianceResolved({"A": True, "B": True}, {"A": 3.0, "B": 3.0}),
        e.RoundEnded(1, "agreement", (5.0, 6.0)),
        e.GameEnded("ended_by_instructor"),
    ]


def test_ending_during_compliance_counts_a_defection_already_chosen() -> None:
    # A government that chose to defect before the instructor ended the game has defected.
    game = started_game(compliance=True)
    game.agree((5, 6))
    game.vote(game.sincere_ballots((5, 6)))
    game.run(c.ChooseCompliance(B_CHIEF, False))
    events = game.run(c.EndGame(INSTRUCTOR))
    assert events == [
        e.ComplianceResolved({"A": True, "B": False}, {"A": 0.0, "B": 5.0}),
        e.RoundEnded(1, "voluntary_defection", (5.0, 6.0)),
        e.GameEnded("ended_by_instructor"),
    ]
    assert game.state.voluntary_defections == {"B": 1}


def test_ending_while_paused_clears_the_pause() -> None:
    game = started_game()
    game.run(c.PauseGame(INSTRUCTOR))
    game.run(c.EndGame(INSTRUCTOR))
    assert not game.state.paused and game.state.paused_remaining is None


@pytest.mark.parametrize(
    "command",
    [
        c.TakeSeat(SYSTEM, "A1", "eve"),
        c.ReleaseSeat(SYSTEM, "A1"),
        c.StartGame(INSTRUCTOR),
        c.Chat(A_CHIEF, "table", "hello?"),
        c.MakeStatement(A_CHIEF, "hello?"),
        c.PauseGame(INSTRUCTOR),
        c.ResumeGame(INSTRUCTOR),
        c.EndGame(INSTRUCTOR),
        c.AdvancePhase(INSTRUCTOR),
    ],
    ids=lambda cmd: type(cmd).__name__,
)
def test_an_ended_game_refuses_everything(command: c.Command) -> None:
    game = started_game()
    game.run(c.EndGame(INSTRUCTOR))
    assert game.code(command) == "game_over"


# --------------------------------------------------------------------------------------------
# Event payloads (events.event_to_dict / event_from_dict)


def test_an_event_payload_is_plain_json_with_its_type() -> None:
    event = e.ProposalMade(3, A_CHIEF, (5.0, 6.5), replies_to=1)
    assert event_to_dict(event) == {
        "type": "proposal_made",
        "proposal_id": 3,
        "by": A_CHIEF,
        "values": [5, 6.5],
        "replies_to": 1,
    }
    decoded = event_from_dict(json.loads(json.dumps(event_to_dict(event))))
    assert decoded == event
    assert isinstance(decoded, e.ProposalMade)
    assert all(isinstance(v, float) for v in decoded.values)


def test_a_ballot_count_round_trips_with_its_missing_ballots() -> None:
    event = e.BallotsCounted(
        proposal_id=1,
        values=(5.0, 6.0),
        ballots={"A1": True, "A2": None},
        results=(e.CountryResult("A", False, 1.0, 2.0, ("A2",)),),
    )
    payload = json.loads(json.dumps(event_to_dict(event)))
    assert payload["ballots"] == {"A1": True, "A2": None}
    assert event_from_dict(payload) == event


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "nonsense"},
        {"type": None},
        {"type": ["proposal_made"]},
        {"no_type": 1},
        {"type": "proposal_withdrawn", "proposal_id": 1},
        {"type": "proposal_withdrawn", "proposal_id": 1, "by": "A", "extra": 2},
        {"type": "proposal_made", "proposal_id": 1, "by": "A", "values": ["x", 1]},
        {"type": "proposal_made", "proposal_id": 1, "by": "A", "values": 5},
        {"type": "proposal_made", "proposal_id": 1, "by": "A", "values": [10**400, 1]},
        {"type": "ballots_counted", "proposal_id": 1, "values": [1], "ballots": {}, "results": 3},
        {
            "type": "ballots_counted",
            "proposal_id": 1,
            "values": [1],
            "ballots": {},
            "results": [{}],
        },
        {"type": "involuntary_defection", "proposal_id": 1, "countries": 7, "attempts_left": 0},
    ],
)
def test_a_payload_that_is_no_event_is_refused_with_event_decode_error(
    payload: dict[str, object],
) -> None:
    with pytest.raises(e.EventDecodeError):
        event_from_dict(payload)


@pytest.mark.parametrize("payload", [None, 7, "proposal_made", [("type", "x", "y")]])
def test_a_payload_that_is_no_mapping_is_refused_with_event_decode_error(payload: object) -> None:
    with pytest.raises(e.EventDecodeError):
        event_from_dict(payload)  # type: ignore[arg-type]
