"""Bots: sincere constituents, conceding chiefs, tit-for-tat compliance."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.bots import BotBrain, _set_offers, bot_commands, ratifies, transfers_to
from negotiation.engine.rules import apply, create_game, initial_state
from negotiation.engine.scenario import GameDefaults, Scenario, load_builtin, parse_scenario
from negotiation.engine.state import COMPLIANCE, LEVEL1, LEVEL2, GameState
from negotiation.engine.utility import votes_yes
from negotiation.engine.winset import Analysis
from tests.engine.test_winset import small_scenarios

BUILTINS = ("bonn-1978", "imf-strong", "imf-weak", "gatt", "climate-treaty", "climate-executive")
NOW = 1_000.0


def seated_game(
    scenario: Scenario, settings: GameDefaults | None = None, humans: frozenset[str] = frozenset()
) -> GameState:
    """A started game: bots in every seat except ``humans``."""
    state = initial_state(create_game(scenario, settings))
    for member in scenario.members:
        bot = member.key not in humans
        state, _ = apply(state, c.TakeSeat(c.SYSTEM, member.key, f"p-{member.key}", bot), NOW)
    state, _ = apply(state, c.StartGame(c.INSTRUCTOR), NOW)
    return state


def run_bots(
    state: GameState, brain: BotBrain, *, max_commands: int = 2_000
) -> tuple[GameState, list[e.Event]]:
    """Let every bot act until none wants to; when all wait, fire the phase deadline.

    Fails the test if any command a bot issues is refused.
    """
    log: list[e.Event] = []
    now = NOW
    issued = 0
    while not state.ended:
        moved = False
        for seat, holder in sorted(state.seats.items()):
            if not holder.bot:
                continue
            for command in bot_commands(state, seat, brain):
                state, events = apply(state, command, now)
                log.extend(events)
                moved = True
                issued += 1
                assert issued <= max_commands, "the bots never stop"
        if not moved:
            if state.deadline is None:
                break
            now = max(now, state.deadline)
            state, events = apply(state, c.FireDeadline(c.SYSTEM, state.deadline), now)
            log.extend(events)
    return state, log


@pytest.mark.parametrize("slug", BUILTINS)
def test_bots_ratify_the_nash_point_of_the_playable_zone(slug: str) -> None:
    scenario = load_builtin(slug)
    analysis = Analysis(scenario)
    brain = BotBrain(analysis)
    state, log = run_bots(seated_game(scenario), brain)
    (in_force,) = [event for event in log if isinstance(event, e.AgreementInForce)]
    assert analysis.contains(analysis.playable_zone, in_force.values)
    nash = brain.nash_point
    assert in_force.values == nash
    assert state.rounds[-1].result == "agreement"
    # Sincere voting inside every win-set: nobody needed a side payment.
    assert in_force.transfers == {}


def test_gatt_bots_agree_on_five_five() -> None:
    # GATT's playable zone is small; its Nash point is the symmetric (5, 5).
    scenario = load_builtin("gatt")
    _state, log = run_bots(seated_game(scenario), BotBrain(Analysis(scenario)))
    assert [ev.values for ev in log if isinstance(ev, e.AgreementInForce)] == [(5.0, 5.0)]


def test_chief_bot_opens_with_its_own_best_deal_and_concedes_monotonically() -> None:
    scenario = load_builtin("bonn-1978")
    brain = BotBrain(Analysis(scenario))
    _, log = run_bots(seated_game(scenario), brain)
    for country in scenario.countries:
        own = [
            brain.surplus_at(country, ev.values)
            for ev in log
            if isinstance(ev, e.ProposalMade) and ev.by == country.chief.key
        ]
        best, nash = brain.levels(country.key)
        assert own[0] == pytest.approx(best)
        assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(own))
        assert own[-1] >= nash - 1e-9


def test_constituent_bot_votes_sincerely_with_its_side_payment() -> None:
    scenario = load_builtin("bonn-1978")
    humans = frozenset(m.key for m in scenario.members if m.role == "chief")
    state = seated_game(scenario, humans=humans)
    de, us = (country.chief.key for country in scenario.countries)
    # A text the consumer Democrats dislike; the US chief buys their vote.
    point = (8.0, 90.0)  # U = 100 * (1 - 2 * 40/50 / 3) = 46.7 < r = 53.3: seven points
    consumers = scenario.member("us-consumers")
    utility = scenario.utility_of(consumers, point)
    assert not votes_yes(utility, consumers.reservation)
    needed = 1
    while not votes_yes(utility, consumers.reservation, needed):
        needed += 1
    assert needed <= 10, "the USA's budget of 10 must be enough for this test"
    state, _ = apply(state, c.OfferSidePayment(us, consumers.key, needed), NOW)
    state, _ = apply(state, c.Propose(de, point), NOW)
    state, _ = apply(state, c.Accept(us, state.next_proposal_id - 1), NOW)
    assert state.phase == LEVEL2
    assert transfers_to(state, consumers.key) == needed
    assert bot_commands(state, consumers.key, BotBrain(Analysis(scenario))) == [
        c.CastBallot(consumers.key, True)
    ]


def test_constituent_bot_answers_its_own_countrys_straw_poll_once() -> None:
    scenario = load_builtin("gatt")
    humans = frozenset(m.key for m in scenario.members if m.role == "chief")
    state = seated_game(scenario, humans=humans)
    brain = BotBrain(Analysis(scenario))
    state, _ = apply(state, c.OpenStrawPoll("A-chief", (5.0, 5.0)), NOW)
    a1 = scenario.member("A1")
    expected = votes_yes(scenario.utility_of(a1, (5.0, 5.0)), a1.reservation)
    (answer,) = bot_commands(state, "A1", brain)
    assert answer == c.AnswerStrawPoll("A1", 1, expected)
    assert bot_commands(state, "B1", brain) == []
    state, _ = apply(state, answer, NOW)
    assert bot_commands(state, "A1", brain) == []


def test_chief_bot_accepts_a_human_offer_that_meets_its_aspiration() -> None:
    scenario = load_builtin("gatt")
    brain = BotBrain(Analysis(scenario))
    state = seated_game(scenario, humans=frozenset({"A-chief"}))
    nash = brain.nash_point
    state, _ = apply(state, c.Propose("A-chief", nash), NOW)
    # The Nash point of GATT's playable zone is also B's best there, so B takes it at once.
    assert bot_commands(state, "B-chief", brain) == [c.Accept("B-chief", 1)]


def test_chief_bot_counters_an_offer_its_country_would_not_ratify() -> None:
    scenario = load_builtin("gatt")
    brain = BotBrain(Analysis(scenario))
    state = seated_game(scenario, humans=frozenset({"A-chief"}))
    country_b = scenario.country("B")
    assert not ratifies(scenario, country_b, (0.0, 10.0), {})
    state, _ = apply(state, c.Propose("A-chief", (0.0, 10.0)), NOW)
    (command,) = bot_commands(state, "B-chief", brain)
    assert isinstance(command, c.Propose)
    assert command.replies_to == 1
    assert ratifies(scenario, country_b, command.values, {})


def test_chief_bot_waits_for_an_answer_to_its_own_proposal() -> None:
    scenario = load_builtin("bonn-1978")
    brain = BotBrain(Analysis(scenario))
    state = seated_game(scenario, humans=frozenset({"us-chief"}))
    (opening,) = bot_commands(state, "de-chief", brain)
    state, _ = apply(state, opening, NOW)
    assert bot_commands(state, "de-chief", brain) == []


def compliance_game(humans: frozenset[str]) -> GameState:
    scenario = load_builtin("gatt")
    settings = GameDefaults(rounds=3, compliance=True)
    return seated_game(scenario, settings, humans)


def play_to_compliance(state: GameState, brain: BotBrain) -> GameState:
    while state.phase != COMPLIANCE:
        for seat, holder in sorted(state.seats.items()):
            if holder.bot and state.phase != COMPLIANCE:
                for command in bot_commands(state, seat, brain):
                    state, _ = apply(state, command, NOW)
    return state


def test_chief_bot_plays_tit_for_tat_in_the_compliance_stage() -> None:
    scenario = load_builtin("gatt")
    brain = BotBrain(Analysis(scenario))
    state = compliance_game(frozenset({"A-chief"}))
    # The human A chief accepts whatever B offers, to reach the compliance stage quickly.
    choices: list[bool] = []
    for human_move in (False, True, True):
        while state.phase == LEVEL1 and not any(
            p.by == "B-chief" for p in state.proposals.values()
        ):
            for command in bot_commands(state, "B-chief", brain):
                state, _ = apply(state, command, NOW)
        if state.phase == LEVEL1:
            offer = max(state.proposals)
            state, _ = apply(state, c.Accept("A-chief", offer), NOW)
        state = play_to_compliance(state, brain)
        (choice,) = bot_commands(state, "B-chief", brain)
        assert isinstance(choice, c.ChooseCompliance)
        choices.append(choice.comply)
        state, _ = apply(state, choice, NOW)
        state, _ = apply(state, c.ChooseCompliance("A-chief", human_move), NOW)
    # Round 1: comply first. Round 2: A defected in round 1. Round 3: A complied in round 2.
    assert choices == [True, False, True]


def budget_scenario_data() -> dict[str, Any]:
    """Two countries with no playable zone: A's chief can buy the missing votes at home."""
    return {
        "schema": 1,
        "slug": "budget",
        "title": "Budget",
        "utility": "cityblock",
        "issues": [{"key": "x", "min": 0, "max": 10}],
        "countries": [
            {
                "key": "A",
                "side_payment_budget": 10,
                "chief": {"key": "A-chief", "ideal": {"x": 10}, "reservation": 0},
                "constituents": [
                    {"key": "A1", "name": "A1", "ideal": {"x": 0}, "reservation": 60},
                    {"key": "A2", "name": "A2", "ideal": {"x": 0}, "reservation": 60},
                    {"key": "A3", "name": "A3", "ideal": {"x": 10}, "reservation": 0},
                ],
            },
            {
                "key": "B",
                "chief": {"key": "B-chief", "ideal": {"x": 10}, "reservation": 0},
                "constituents": [
                    {"key": "B1", "name": "B1", "ideal": {"x": 10}, "reservation": 75}
                ],
            },
        ],
    }


def test_without_a_playable_zone_a_chief_bot_buys_votes_within_its_budget() -> None:
    data = budget_scenario_data()
    scenario = parse_scenario(data)
    analysis = Analysis(scenario)
    assert not analysis.playable_zone.any()
    brain = BotBrain(analysis)
    state = seated_game(scenario, humans=frozenset({"B-chief"}))
    # B asks for x = 3: U_A1 = U_A2 = 70 > 60, so A would ratify even unpaid... use x = 5.
    state, _ = apply(state, c.Propose("B-chief", (5.0,)), NOW)
    # At x = 5, A1 and A2 have U = 50 < 60: A needs one of them for a majority, at 11 points:
    # over budget, so the bot refuses and asks for its own best deal instead.
    (command,) = [
        cmd for cmd in bot_commands(state, "A-chief", brain) if isinstance(cmd, c.Propose)
    ]
    assert command.values == brain.fallback_offers["A"]
    state, _ = apply(state, c.Propose("B-chief", (6.0,)), NOW)
    commands = bot_commands(state, "A-chief", brain)
    # At x = 6, U = 40: 21 points each, still over budget.
    assert not any(isinstance(cmd, c.Accept) for cmd in commands)
    state = seated_game(scenario, humans=frozenset({"B-chief"}))
    state, _ = apply(state, c.Propose("B-chief", (4.0,)), NOW)
    # At x = 4, U = 60 = r: a tie is a no, so one point buys a vote: 1 <= 10.
    commands = bot_commands(state, "A-chief", brain)
    assert commands == [c.OfferSidePayment("A-chief", "A1", 1), c.Accept("A-chief", 1)]


def test_bots_do_nothing_while_paused() -> None:
    scenario = load_builtin("gatt")
    state = seated_game(scenario)
    state, _ = apply(state, c.PauseGame(c.INSTRUCTOR), NOW)
    brain = BotBrain(Analysis(scenario))
    assert all(bot_commands(state, m.key, brain) == [] for m in scenario.members)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_scenarios())
def test_bot_games_always_end_without_a_refused_command(data: dict[str, Any]) -> None:
    scenario = parse_scenario(data)
    analysis = Analysis(scenario)
    brain = BotBrain(analysis)
    settings_ = GameDefaults(rounds=2, attempts=2, compliance=True)
    state, log = run_bots(seated_game(scenario, settings_), brain)
    assert state.ended
    agreements = [ev.values for ev in log if isinstance(ev, e.AgreementInForce)]
    if analysis.playable_zone.any():
        nash = brain.nash_point
        assert agreements == [nash, nash]
    for values in agreements:
        assert all(
            scenario.utility_of(chief, values) > chief.reservation for chief in scenario.chiefs
        )
    # Sincere bots never ratify a text outside some country's win-set without payments.
    for event in log:
        if isinstance(event, e.BallotsCounted):
            for member_key, ballot in event.ballots.items():
                member = scenario.member(member_key)
                utility = scenario.utility_of(member, event.values)
                assert ballot is not None
                assert ballot == votes_yes(utility, member.reservation, 0) or any(
                    isinstance(ev, e.SidePaymentOffered) and ev.to == member_key for ev in log
                )


def test_brain_levels_refuse_an_empty_playable_zone() -> None:
    data: dict[str, Any] = {
        "schema": 1,
        "slug": "none",
        "title": "No zone",
        "utility": "cityblock",
        "issues": [{"key": "x", "min": 0, "max": 4}],
        "countries": [
            {
                "key": key,
                "chief": {"key": f"{key}-chief", "ideal": {"x": ideal}, "reservation": 0},
                "constituents": [
                    {"key": f"{key}1", "name": "m", "ideal": {"x": ideal}, "reservation": 90}
                ],
            }
            for key, ideal in (("A", 0), ("B", 4))
        ],
    }
    brain = BotBrain(Analysis(parse_scenario(data)))
    assert brain.candidates.size == 0
    with pytest.raises(ValueError, match="playable zone is empty"):
        brain.levels("A")
    # A's chief (ideal 0, reservation 0) still asks for its best deal; a chief that likes no
    # deal at all tables nothing.
    assert brain.fallback_offers["A"] == (0.0,)
    data["countries"][1]["chief"]["reservation"] = 100
    assert BotBrain(Analysis(parse_scenario(data))).fallback_offers["B"] is None


def test_changing_side_payments_lowers_offers_before_raising_others() -> None:
    scenario = load_builtin("bonn-1978")
    state = seated_game(scenario)
    budget = scenario.country("USA").side_payment_budget
    assert budget == 10
    state, _ = apply(state, c.OfferSidePayment("us-chief", "us-consumers", 5), NOW)
    state, _ = apply(state, c.OfferSidePayment("us-chief", "us-moderates", 5), NOW)
    chief = scenario.member("us-chief")
    wanted = {"us-consumers": 2, "us-producers": 8}
    commands = _set_offers(state, chief, wanted)
    # Raising first would promise 18 of a budget of 10 on the way: the rules would refuse it.
    assert commands == [
        c.OfferSidePayment("us-chief", "us-consumers", 2),
        c.OfferSidePayment("us-chief", "us-moderates", 0),
        c.OfferSidePayment("us-chief", "us-producers", 8),
    ]
    for command in commands:
        state, _ = apply(state, command, NOW)
    assert state.offers["us-chief"] == wanted
    assert _set_offers(state, chief, wanted) == []
