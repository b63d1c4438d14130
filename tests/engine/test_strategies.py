"""Bot strategies: the registry, legality on any scenario, and what each strategy promises.

Games are played with ``tournament.play_game`` (the live runtime's loop on a simulated clock)
in ``strict`` mode, so a single refused bot command fails the test.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.bots import (
    CHIEF_STRATEGIES,
    CONSTITUENT_STRATEGIES,
    DEFAULT_CHIEF_STRATEGY,
    DEFAULT_CONSTITUENT_STRATEGY,
    ENDGAME_SHARE,
    HARD_BARGAINER,
    HARD_KEEP,
    HARD_STEPS,
    NASH_SEEKER,
    PROBER,
    TIT_FOR_TAT,
    BotBrain,
    bot_commands,
    poll_verdict,
    ratifies,
)
from negotiation.engine.rules import _poll_result, apply, evolve, initial_state
from negotiation.engine.scenario import Deadlines, GameDefaults, Scenario, load_builtin
from negotiation.engine.scenario import parse_scenario as parse
from negotiation.engine.state import LEVEL1, GameState, StrawPoll
from negotiation.engine.tournament import (
    BotRuleViolation,
    GameRecord,
    play_game,
    play_tournament,
)
from negotiation.engine.utility import utility
from negotiation.engine.winset import Analysis
from tests.engine.test_bots import BUILTINS, NOW, budget_scenario_data, seated_game
from tests.engine.test_winset import issue_values, small_scenarios

STRATEGIES = tuple(CHIEF_STRATEGIES)
GAME_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def bot_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random small scenario (2-3 countries) whose countries may pay side payments."""
    data = draw(small_scenarios())
    for country in data["countries"]:
        country["side_payment_budget"] = draw(st.sampled_from((0, 0, 5, 30)))
    return data


@st.composite
def zone_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random scenario with a playable zone: every member's reservation lies below its
    utility at one grid point (by a random margin), so that point is playable."""
    data = draw(bot_scenarios())
    issues = data["issues"]
    anchor = [draw(st.sampled_from(issue_values(issue))) for issue in issues]
    ranges = [issue["max"] - issue["min"] for issue in issues]
    for country in data["countries"]:
        # "More than all the votes" can never be met.
        country["ratification"]["strict"] &= country["ratification"]["quota"] != "1"
        for member in [country["chief"], *country["constituents"]]:
            ideal = [member["ideal"][issue["key"]] for issue in issues]
            salience = [member["salience"][issue["key"]] for issue in issues]
            at_anchor = utility(data["utility"], ideal, salience, ranges, anchor)
            member["reservation"] = at_anchor - draw(st.sampled_from((0.5, 3, 10, 30)))
    return data


game_settings = st.builds(
    GameDefaults,
    rounds=st.integers(1, 2),
    attempts=st.integers(1, 2),
    compliance=st.booleans(),
    deadlines=st.sampled_from(
        (Deadlines(), Deadlines(level1=60, level2=30, compliance=20), Deadlines(None, None, None))
    ),
)


def strategies_for(scenario: Scenario, draw: st.DataObject) -> dict[str, str]:
    return {chief.key: draw.draw(st.sampled_from(STRATEGIES)) for chief in scenario.chiefs}


def states_before(record: GameRecord) -> list[tuple[GameState, e.Event]]:
    """Every event of a game with the state just before it."""
    created = record.events[0]
    assert isinstance(created, e.GameCreated)
    state = initial_state(created)
    pairs = []
    for event in record.events[1:]:
        pairs.append((state, event))
        state = evolve(state, event)
    return pairs


def own_surplus(brain: BotBrain, seat: str, values: tuple[float, ...]) -> float:
    scenario = brain.scenario
    return brain.surplus_at(scenario.country(scenario.member(seat).country), values)


# --------------------------------------------------------------------------------------------
# The registry and the call


def test_registry_lists_every_strategy_with_a_label_and_a_description() -> None:
    assert list(CHIEF_STRATEGIES) == [
        "conceder",
        "tit_for_tat",
        "hard_bargainer",
        "nash_seeker",
        "prober",
    ]
    assert list(CONSTITUENT_STRATEGIES) == ["sincere"]
    assert DEFAULT_CHIEF_STRATEGY == "conceder"
    assert DEFAULT_CONSTITUENT_STRATEGY == "sincere"
    for registry in (CHIEF_STRATEGIES, CONSTITUENT_STRATEGIES):
        for key, info in registry.items():
            assert info.key == key
            assert info.label and info.description.endswith(".")


def test_an_unknown_or_misplaced_strategy_is_refused() -> None:
    scenario = load_builtin("gatt")
    brain = BotBrain(Analysis(scenario))
    state = seated_game(scenario)
    with pytest.raises(ValueError, match="not a chief strategy"):
        bot_commands(state, "A-chief", brain, "sincere")
    with pytest.raises(ValueError, match="not a constituent strategy"):
        bot_commands(state, "A1", brain, "tit_for_tat")
    with pytest.raises(ValueError, match="not a chief strategy"):
        bot_commands(state, "A-chief", brain, "greedy")
    assert bot_commands(state, "A1", brain, "sincere") == []


@pytest.mark.parametrize("slug", BUILTINS)
def test_the_three_argument_call_plays_the_default_strategies(slug: str) -> None:
    scenario = load_builtin(slug)
    brain = BotBrain(Analysis(scenario))
    strategies = dict.fromkeys((chief.key for chief in scenario.chiefs), DEFAULT_CHIEF_STRATEGY)
    record = play_game(brain, strategies, rng=random.Random(3), strict=True)
    for state, _ in states_before(record):
        for member in scenario.members:
            default = (
                DEFAULT_CHIEF_STRATEGY if member.role == "chief" else DEFAULT_CONSTITUENT_STRATEGY
            )
            assert bot_commands(state, member.key, brain) == bot_commands(
                state, member.key, brain, default
            )


# --------------------------------------------------------------------------------------------
# Every strategy is legal everywhere


@GAME_SETTINGS
@given(
    st.one_of(bot_scenarios(), zone_scenarios()),
    game_settings,
    st.sampled_from((0.0, 1.0, 7.0)),
    st.data(),
)
def test_no_strategy_issues_a_command_the_rules_refuse(
    data: dict[str, Any], game: GameDefaults, move_seconds: float, draw: st.DataObject
) -> None:
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    strategies = strategies_for(scenario, draw)
    record = play_game(
        brain,
        strategies,
        rng=random.Random(0),
        settings=game,
        move_seconds=move_seconds,
        strict=True,
    )
    assert record.state.ended
    assert record.refusals == ()
    assert len(record.outcomes) == game.rounds
    # Tit-for-tat compliance among bots: every government complies first, so always.
    assert all(event.comply for event in record.events if isinstance(event, e.ComplianceChosen))


@pytest.mark.parametrize("slug", BUILTINS)
@pytest.mark.parametrize("pair", list(itertools.product(STRATEGIES, repeat=2)))
def test_every_pair_of_strategies_agrees_on_every_builtin_scenario(
    slug: str, pair: tuple[str, str]
) -> None:
    scenario = load_builtin(slug)
    brain = _builtin_brain(slug)
    strategies = dict(zip((chief.key for chief in scenario.chiefs), pair, strict=True))
    record = play_game(
        brain,
        strategies,
        rng=random.Random(1),
        settings=GameDefaults(rounds=2, compliance=True),
        strict=True,
    )
    assert [r.result for r in record.state.rounds] == ["agreement", "agreement"]
    for values in (r.values for r in record.state.rounds):
        assert values is not None
        assert brain.analysis.contains(brain.analysis.playable_zone, values)


_BRAINS: dict[str, BotBrain] = {}


def _builtin_brain(slug: str) -> BotBrain:
    if slug not in _BRAINS:
        _BRAINS[slug] = BotBrain(Analysis(load_builtin(slug)))
    return _BRAINS[slug]


def play_on(
    state: GameState, brain: BotBrain, strategies: dict[str, str]
) -> tuple[GameState, list[e.Event]]:
    """Let the bots finish a started game on a clock that only jumps to deadlines (the loop of
    ``tournament.play_game``); any refused command raises."""
    log: list[e.Event] = []
    now = NOW
    while not state.ended:
        moved = False
        for seat in sorted(state.seats):
            if state.seats[seat].bot:
                commands = bot_commands(state, seat, brain, strategies.get(seat), now=now)
                for command in commands:
                    state, events = apply(state, command, now)
                    log.extend(events)
                if commands:
                    moved = True
                    break
        if not moved:
            assert state.deadline is not None
            now = max(now, state.deadline)
            state, events = apply(state, c.FireDeadline(c.SYSTEM, state.deadline), now)
            log.extend(events)
    return state, log


def check_a_takeover_after_a_person_tabled(
    data: dict[str, Any], strategy: str, index: int, others_answer_first: bool
) -> None:
    """A person in the first chief's seat tables the grid point ``index``, the other chiefs'
    bots answer it once or not, and a bot playing ``strategy`` takes the seat over: it tables
    only texts in the playable zone, accepts only what its country ratifies, and replaces at
    once a text in its name that it would not accept."""
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    person = scenario.chiefs[0]
    state = seated_game(scenario, humans=frozenset({person.key}))
    text = tuple(float(v) for v in brain.analysis.points(np.array([index]))[0])
    state, _ = apply(state, c.Propose(person.key, text), NOW)
    others = [chief.key for chief in scenario.chiefs[1:]]
    if others_answer_first:
        for seat in others:
            for command in bot_commands(state, seat, brain):
                state, _ = apply(state, command, NOW)
    state, _ = apply(state, c.TakeSeat(c.INSTRUCTOR, person.key, "bot", bot=True), NOW)
    state_after_takeover = state
    state, log = play_on(state, brain, {person.key: strategy})
    assert state.ended
    country = scenario.country(person.country)
    analysis = brain.analysis
    tabled = [ev.values for ev in log if isinstance(ev, e.ProposalMade) and ev.by == person.key]
    assert all(analysis.contains(analysis.playable_zone, values) for values in tabled)
    replayed = state_after_takeover
    for event in log:
        if isinstance(event, e.ProposalAccepted) and event.by == person.key:
            values = replayed.proposals[event.proposal_id].values
            assert ratifies(scenario, country, values, {})
        replayed = evolve(replayed, event)
    # A text it would not accept does not stay on the table in its name: with nothing else
    # to answer, its first move replaces it.
    others_tabled = any(p.by != person.key for p in state_after_takeover.proposals.values())
    if state_after_takeover.phase == LEVEL1 and not others_tabled:
        first = bot_commands(state_after_takeover, person.key, brain, strategy, now=NOW)
        if ratifies(scenario, country, text, {}):
            chief_likes = scenario.utility_of(person, text) > person.reservation + 1e-9
            assert first == [] or not chief_likes
        else:
            (replacement,) = first
            assert isinstance(replacement, c.Propose)
            assert analysis.contains(analysis.playable_zone, replacement.values)


@GAME_SETTINGS
@given(zone_scenarios(), st.sampled_from(STRATEGIES), st.data())
def test_a_bot_takes_over_a_chiefs_seat_after_a_person_tabled_any_text(
    data: dict[str, Any], strategy: str, draw: st.DataObject
) -> None:
    scenario = parse(data)
    index = draw.draw(st.integers(0, scenario.grid_size - 1))
    check_a_takeover_after_a_person_tabled(data, strategy, index, draw.draw(st.booleans()))


def _member_data(
    key: str, ideal: tuple[float, float, float], salience: tuple[int, int, int], reservation: float
) -> dict[str, Any]:
    return {
        "key": key,
        "name": key,
        "ideal": dict(zip(("i0", "i1", "i2"), ideal, strict=True)),
        "salience": dict(zip(("i0", "i1", "i2"), salience, strict=True)),
        "reservation": reservation,
    }


def _constituent_data(
    key: str, ideal: tuple[float, float, float], salience: tuple[int, int, int], reservation: float
) -> dict[str, Any]:
    return {**_member_data(key, ideal, salience, reservation), "weight": 1, "veto": True}


#: A scenario hypothesis found: the person's text (5, 0, 0) at grid index 80 lies outside the
#: playable zone, its own country C0 ratifies it, and C0's surplus there equals the hard
#: bargainer's floor exactly, with no zone point between the floor and that surplus.
TAKEOVER_AT_THE_FLOOR = {
    "schema": 1,
    "slug": "random",
    "title": "Random",
    "utility": "cityblock",
    "issues": [
        {"key": "i0", "min": -3, "max": 5, "step": 2},
        {"key": "i1", "min": 0, "max": 3, "step": 1},
        {"key": "i2", "min": 0, "max": 4, "step": 1},
    ],
    "countries": [
        {
            "key": "C0",
            "ratification": {"quota": "1/2", "strict": False},
            "chief": _member_data("C0chief", (0.0, 0.0, 0.0), (0, 0, 1), 74.5),
            "constituents": [
                _constituent_data("C0M0", (3.5, 0.0, 0.0), (1, 0, 1), 83.875),
                _constituent_data("C0M1", (0.0, 0.0, 0.0), (0, 0, 1), 74.5),
            ],
            "side_payment_budget": 0,
        },
        {
            "key": "C1",
            "ratification": {"quota": "1/2", "strict": False},
            "chief": _member_data("C1chief", (0.0, 0.0, 0.0), (0, 0, 1), 74.5),
            "constituents": [
                _constituent_data("C1M0", (0.0, 0.0, 0.0), (0, 0, 1), 74.5),
                _constituent_data("C1M1", (0.0, 0.0, 0.0), (0, 0, 1), 74.5),
                _constituent_data("C1M2", (0.0, 0.0, 0.0), (1, 0, 0), 62.0),
            ],
            "side_payment_budget": 0,
        },
    ],
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_bot_taking_over_at_its_floor_tables_no_text_outside_the_zone(strategy: str) -> None:
    scenario = parse(TAKEOVER_AT_THE_FLOOR)
    brain = BotBrain(Analysis(scenario))
    text = tuple(float(v) for v in brain.analysis.points(np.array([80]))[0])
    home = scenario.country("C0")
    assert text == (5.0, 0.0, 0.0)
    assert not brain.playable_at(text) and ratifies(scenario, home, text, {})
    assert brain.surplus_at(home, text) == pytest.approx(brain.floor("C0", HARD_KEEP))
    check_a_takeover_after_a_person_tabled(TAKEOVER_AT_THE_FLOOR, strategy, 80, False)


def test_a_hard_bargainers_offer_after_a_text_outside_the_zone_lies_in_the_zone() -> None:
    scenario = parse(TAKEOVER_AT_THE_FLOOR)
    brain = BotBrain(Analysis(scenario))
    home = scenario.country("C0")
    offer = brain.offer_for(home, (5.0, 0.0, 0.0), HARD_STEPS, HARD_KEEP)
    assert brain.playable_at(offer)
    assert brain.surplus_at(home, offer) >= brain.floor("C0", HARD_KEEP) - 1e-9


# --------------------------------------------------------------------------------------------
# What each strategy promises


@GAME_SETTINGS
@given(
    zone_scenarios(), st.sampled_from((DEFAULT_CHIEF_STRATEGY, TIT_FOR_TAT, NASH_SEEKER, PROBER))
)
def test_chiefs_playing_the_same_fair_strategy_agree_on_the_nash_point(
    data: dict[str, Any], strategy: str
) -> None:
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    strategies = dict.fromkeys((chief.key for chief in scenario.chiefs), strategy)
    record = play_game(brain, strategies, rng=random.Random(0), strict=True)
    in_force = [ev.values for ev in record.events if isinstance(ev, e.AgreementInForce)]
    assert in_force == [brain.nash_point]


@GAME_SETTINGS
@given(zone_scenarios())
def test_nash_seekers_agree_on_the_nash_point_of_the_playable_zone(data: dict[str, Any]) -> None:
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    assert brain.playable
    strategies = dict.fromkeys((chief.key for chief in scenario.chiefs), NASH_SEEKER)
    record = play_game(
        brain, strategies, rng=random.Random(0), settings=GameDefaults(rounds=2), strict=True
    )
    in_force = [ev.values for ev in record.events if isinstance(ev, e.AgreementInForce)]
    assert in_force == [brain.nash_point, brain.nash_point]
    proposals = [ev.values for ev in record.events if isinstance(ev, e.ProposalMade)]
    assert proposals and set(proposals) == {brain.nash_point}


@GAME_SETTINGS
@given(zone_scenarios(), st.data())
def test_a_hard_bargainer_never_proposes_less_for_itself_than_tit_for_tat_would(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    assert brain.playable
    record = play_game(brain, strategies_for(scenario, draw), rng=random.Random(0), strict=True)
    compared = 0
    for state, _ in states_before(record):
        if state.phase != LEVEL1:
            continue
        for chief in scenario.chiefs:
            hard = bot_commands(state, chief.key, brain, HARD_BARGAINER)
            reciprocal = bot_commands(state, chief.key, brain, TIT_FOR_TAT)
            hard_offers = [cmd.values for cmd in hard if isinstance(cmd, c.Propose)]
            tft_offers = [cmd.values for cmd in reciprocal if isinstance(cmd, c.Propose)]
            if hard_offers and tft_offers:
                compared += 1
                assert own_surplus(brain, chief.key, hard_offers[0]) >= (
                    own_surplus(brain, chief.key, tft_offers[0]) - 1e-9
                )
    assert compared > 0


@GAME_SETTINGS
@given(zone_scenarios(), st.data())
def test_a_hard_bargainer_keeps_at_least_its_floor_in_every_proposal(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    assert brain.playable
    strategies = strategies_for(scenario, draw)
    hard_seat = draw.draw(st.sampled_from(sorted(strategies)))
    strategies[hard_seat] = HARD_BARGAINER
    record = play_game(brain, strategies, rng=random.Random(0), strict=True)
    country = scenario.member(hard_seat).country
    best, nash = brain.levels(country)
    floor = nash + HARD_KEEP * (best - nash)
    offers = [
        own_surplus(brain, hard_seat, ev.values)
        for ev in record.events
        if isinstance(ev, e.ProposalMade) and ev.by == hard_seat
    ]
    assert all(offer >= floor - 1e-9 for offer in offers)


@pytest.mark.parametrize("slug", ["bonn-1978", "imf-strong"])
def test_a_hard_bargainer_concedes_less_than_tit_for_tat_against_the_same_partner(
    slug: str,
) -> None:
    scenario = load_builtin(slug)
    brain = _builtin_brain(slug)
    first, second = (chief.key for chief in scenario.chiefs)

    def concession(strategy: str) -> float:
        record = play_game(
            brain, {first: TIT_FOR_TAT, second: strategy}, rng=random.Random(0), strict=True
        )
        offers = [
            own_surplus(brain, second, ev.values)
            for ev in record.events
            if isinstance(ev, e.ProposalMade) and ev.by == second
        ]
        return offers[0] - min(offers)

    assert concession(HARD_BARGAINER) < concession(TIT_FOR_TAT)


def _conceded(brain: BotBrain, history: list[tuple[str, tuple[float, ...]]], seat: str) -> bool:
    """Whether ``seat``'s last proposal in ``history`` lowered its own surplus."""
    own = [values for by, values in history if by == seat]
    if len(own) < 2:
        return False
    return own_surplus(brain, seat, own[-1]) < own_surplus(brain, seat, own[-2]) - 1e-9


@GAME_SETTINGS
@given(zone_scenarios(), st.data())
def test_tit_for_tat_concedes_again_only_after_every_other_chief_conceded(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    assert brain.playable
    strategies = strategies_for(scenario, draw)
    seat = draw.draw(st.sampled_from(sorted(strategies)))
    strategies[seat] = TIT_FOR_TAT
    record = play_game(
        brain, strategies, rng=random.Random(0), settings=GameDefaults(attempts=2), strict=True
    )
    for state, event in states_before(record):
        if not (isinstance(event, e.ProposalMade) and event.by == seat):
            continue
        history = [(p.by, p.values) for p in state.round_proposals if p.attempt == state.attempt]
        own = [values for by, values in history if by == seat]
        if len(own) < 2:
            continue  # its opening, or its one unconditional first concession
        if own_surplus(brain, seat, event.values) < own_surplus(brain, seat, own[-1]) - 1e-9:
            others = {by for by, _ in history if by != seat}
            assert others and all(_conceded(brain, history, other) for other in others)


def test_tit_for_tat_meets_a_firm_chief_with_firmness_then_falls_silent() -> None:
    scenario = load_builtin("bonn-1978")
    brain = _builtin_brain("bonn-1978")
    state = seated_game(scenario, humans=frozenset({"us-chief"}))
    firm = (3.0, 80.0)  # the USA's best deal in the playable zone
    state, _ = apply(state, c.Propose("us-chief", firm), NOW)
    offers = []
    for _ in range(6):
        commands = bot_commands(state, "de-chief", brain, TIT_FOR_TAT)
        if not commands:
            break
        (command,) = commands
        assert isinstance(command, c.Propose)
        offers.append(own_surplus(brain, "de-chief", command.values))
        state, _ = apply(state, command, NOW)
        state, _ = apply(state, c.Propose("us-chief", firm), NOW)
    best, _nash = brain.levels("DE")
    # Its opening, its one first concession, then its standing text once more; then nothing.
    assert len(offers) == 3
    assert offers[0] == pytest.approx(best)
    assert offers[1] < offers[0]
    assert offers[2] == offers[1]


def test_tit_for_tat_accepts_a_firm_offer_at_the_nash_point() -> None:
    scenario = load_builtin("bonn-1978")
    brain = _builtin_brain("bonn-1978")
    state = seated_game(scenario, humans=frozenset({"us-chief"}))
    state, _ = apply(state, c.Propose("us-chief", brain.nash_point), NOW)
    assert bot_commands(state, "de-chief", brain, TIT_FOR_TAT) == [c.Accept("de-chief", 1)]
    # The steady conceder asks for more first.
    (command,) = bot_commands(state, "de-chief", brain, DEFAULT_CHIEF_STRATEGY)
    assert isinstance(command, c.Propose)


def test_a_hard_bargainer_settles_for_a_ratifiable_deal_when_the_other_stands_firm() -> None:
    scenario = load_builtin("bonn-1978")
    brain = _builtin_brain("bonn-1978")
    state = seated_game(scenario, humans=frozenset({"us-chief"}))
    poor = (1.0, 70.0)  # ratified by both, below Germany's surplus at the Nash point
    germany = scenario.country("DE")
    assert ratifies(scenario, germany, poor, {})
    assert brain.surplus_at(germany, poor) < brain.levels("DE")[1]
    state, _ = apply(state, c.Propose("us-chief", poor), NOW)
    (opening,) = bot_commands(state, "de-chief", brain, HARD_BARGAINER)
    assert isinstance(opening, c.Propose)
    state, _ = apply(state, opening, NOW)
    state, _ = apply(state, c.Propose("us-chief", poor), NOW)
    assert bot_commands(state, "de-chief", brain, HARD_BARGAINER) == [c.Accept("de-chief", 3)]


def test_a_hard_bargainer_takes_a_ratifiable_deal_near_the_level1_deadline() -> None:
    scenario = load_builtin("bonn-1978")
    brain = _builtin_brain("bonn-1978")
    state = seated_game(scenario, humans=frozenset({"us-chief"}))
    state, _ = apply(state, c.Propose("us-chief", (1.0, 70.0)), NOW)
    assert state.deadline is not None
    length = state.settings.deadlines.level1
    assert length is not None
    early = state.deadline - length / 2
    late = state.deadline - ENDGAME_SHARE * length / 2
    (command,) = bot_commands(state, "de-chief", brain, HARD_BARGAINER, now=early)
    assert isinstance(command, c.Propose)
    assert bot_commands(state, "de-chief", brain, HARD_BARGAINER) == [command]
    assert bot_commands(state, "de-chief", brain, HARD_BARGAINER, now=late) == [
        c.Accept("de-chief", 1)
    ]


def test_a_hard_bargainer_tables_no_deal_its_country_would_reject_near_the_deadline() -> None:
    scenario = load_builtin("bonn-1978")
    brain = _builtin_brain("bonn-1978")
    state = seated_game(scenario, humans=frozenset({"us-chief"}))
    outside = (0.0, 50.0)
    assert not ratifies(scenario, scenario.country("USA"), outside, {})
    state, _ = apply(state, c.Propose("us-chief", outside), NOW)
    assert state.deadline is not None
    commands = bot_commands(state, "de-chief", brain, HARD_BARGAINER, now=state.deadline - 1)
    assert not any(isinstance(cmd, c.Accept) for cmd in commands)


@GAME_SETTINGS
@given(st.one_of(bot_scenarios(), zone_scenarios()), st.data())
def test_a_prober_accepts_only_what_its_own_straw_poll_says_its_country_ratifies(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    strategies = strategies_for(scenario, draw)
    seat = draw.draw(st.sampled_from(sorted(strategies)))
    strategies[seat] = PROBER
    record = play_game(
        brain, strategies, rng=random.Random(0), settings=GameDefaults(attempts=2), strict=True
    )
    for state, event in states_before(record):
        if isinstance(event, e.ProposalAccepted) and event.by == seat:
            values = state.proposals[event.proposal_id].values
            polls = [p for p in state.polls.values() if p.by == seat and p.values == values]
            assert polls, "the prober accepted without polling"
            latest = max(polls, key=lambda p: p.poll_id)
            assert latest.closed
            assert poll_verdict(scenario, latest) is True


def test_a_prober_polls_then_accepts_once_the_poll_says_its_country_ratifies() -> None:
    scenario = load_builtin("gatt")
    brain = _builtin_brain("gatt")
    humans = frozenset({"A-chief", "B1", "B2", "B3"})
    state = seated_game(scenario, humans=humans)
    state, _ = apply(state, c.Propose("A-chief", (5.0, 5.0)), NOW)
    assert bot_commands(state, "B-chief", brain, PROBER) == [c.OpenStrawPoll("B-chief", (5.0, 5.0))]
    state, _ = apply(state, c.OpenStrawPoll("B-chief", (5.0, 5.0)), NOW)
    assert bot_commands(state, "B-chief", brain, PROBER) == []
    state, _ = apply(state, c.AnswerStrawPoll("B1", 1, True), NOW)
    state, _ = apply(state, c.AnswerStrawPoll("B2", 1, True), NOW)
    # Like a person, it sees only the result: it waits for the poll to close.
    assert bot_commands(state, "B-chief", brain, PROBER) == []
    state, _ = apply(state, c.AnswerStrawPoll("B3", 1, False), NOW)
    assert state.polls[1].closed
    assert bot_commands(state, "B-chief", brain, PROBER) == [c.Accept("B-chief", 1)]


def test_a_prober_closes_its_poll_near_the_deadline_and_reads_what_came_in() -> None:
    scenario = load_builtin("gatt")
    brain = _builtin_brain("gatt")
    humans = frozenset({"A-chief", "B1", "B2", "B3"})
    state = seated_game(scenario, humans=humans)
    state, _ = apply(state, c.Propose("A-chief", (5.0, 5.0)), NOW)
    state, _ = apply(state, c.OpenStrawPoll("B-chief", (5.0, 5.0)), NOW)
    state, _ = apply(state, c.AnswerStrawPoll("B1", 1, True), NOW)
    assert state.deadline is not None
    late = state.deadline - 1
    assert bot_commands(state, "B-chief", brain, PROBER, now=state.deadline - 600) == []
    (close,) = bot_commands(state, "B-chief", brain, PROBER, now=late)
    assert close == c.CloseStrawPoll("B-chief", 1)
    state, _ = apply(state, close, late)
    # One yes of three: Borduria would not ratify, so the prober does not accept.
    commands = bot_commands(state, "B-chief", brain, PROBER, now=late)
    assert not any(isinstance(cmd, c.Accept) for cmd in commands)


def test_a_prober_does_not_accept_when_its_poll_says_no() -> None:
    scenario = load_builtin("gatt")
    brain = _builtin_brain("gatt")
    humans = frozenset({"A-chief", "B1", "B2", "B3"})
    state = seated_game(scenario, humans=humans)
    state, _ = apply(state, c.Propose("A-chief", (5.0, 5.0)), NOW)
    state, _ = apply(state, c.OpenStrawPoll("B-chief", (5.0, 5.0)), NOW)
    # Sincere members would say yes here (the model says B ratifies); these humans do not.
    assert ratifies(scenario, scenario.country("B"), (5.0, 5.0), {})
    state, _ = apply(state, c.AnswerStrawPoll("B1", 1, False), NOW)
    state, _ = apply(state, c.AnswerStrawPoll("B2", 1, False), NOW)
    state, _ = apply(state, c.AnswerStrawPoll("B3", 1, True), NOW)
    assert state.polls[1].closed
    # In GATT the only text Borduria's bot would table is (5, 5) itself: it stays silent.
    assert bot_commands(state, "B-chief", brain, PROBER) == []
    assert bot_commands(state, "B-chief", brain, DEFAULT_CHIEF_STRATEGY) == [c.Accept("B-chief", 1)]


def test_a_prober_whose_poll_says_no_does_not_retable_a_persons_text_outside_the_zone() -> None:
    scenario = load_builtin("gatt")
    brain = _builtin_brain("gatt")
    humans = frozenset({"A-chief", "B-chief", "B1", "B2", "B3"})
    state = seated_game(scenario, humans=humans)
    persons_text = (3.0, 3.0)
    assert not brain.playable_at(persons_text)
    assert ratifies(scenario, scenario.country("B"), persons_text, {})
    state, _ = apply(state, c.Propose("B-chief", persons_text), NOW)
    state, _ = apply(state, c.Propose("A-chief", (5.0, 5.0)), NOW)
    state, _ = apply(state, c.TakeSeat(c.INSTRUCTOR, "B-chief", "bot", bot=True), NOW)
    assert bot_commands(state, "B-chief", brain, PROBER) == [c.OpenStrawPoll("B-chief", (5.0, 5.0))]
    state, _ = apply(state, c.OpenStrawPoll("B-chief", (5.0, 5.0)), NOW)
    for member in ("B1", "B2", "B3"):
        state, _ = apply(state, c.AnswerStrawPoll(member, 1, False), NOW)
    # (5, 5), the only text in the zone it would table, is on the table and its poll said no;
    # re-tabling the person's text would put a text outside the zone in its name.
    assert bot_commands(state, "B-chief", brain, PROBER) == []


def test_a_prober_promises_side_payments_before_it_polls() -> None:
    data = budget_scenario_data()
    scenario = parse(data)
    brain = BotBrain(Analysis(scenario))
    assert not brain.playable
    state = seated_game(scenario, humans=frozenset({"B-chief"}))
    state, _ = apply(state, c.Propose("B-chief", (4.0,)), NOW)
    commands = bot_commands(state, "A-chief", brain, PROBER)
    assert commands == [
        c.OfferSidePayment("A-chief", "A1", 1),
        c.OpenStrawPoll("A-chief", (4.0,)),
    ]
    for command in commands:
        state, _ = apply(state, command, NOW)
    for member in ("A1", "A2", "A3"):
        (answer,) = bot_commands(state, member, brain)
        state, _ = apply(state, answer, NOW)
    assert bot_commands(state, "A-chief", brain, PROBER) == [c.Accept("A-chief", 1)]


def test_a_steady_conceder_falls_silent_when_nobody_moves() -> None:
    scenario = load_builtin("bonn-1978")
    brain = _builtin_brain("bonn-1978")
    state = seated_game(scenario, humans=frozenset({"us-chief"}))
    firm = (3.0, 80.0)
    state, _ = apply(state, c.Propose("us-chief", firm), NOW)
    tabled = []
    for _ in range(20):
        commands = bot_commands(state, "de-chief", brain)
        if not commands:
            break
        (command,) = commands
        assert isinstance(command, c.Propose)
        tabled.append(command.values)
        state, _ = apply(state, command, NOW)
        state, _ = apply(state, c.Propose("us-chief", firm), NOW)
    assert bot_commands(state, "de-chief", brain) == []
    # It conceded all the way to the Nash point, said so once more, and then waited.
    assert tabled[-2:] == [brain.nash_point, brain.nash_point]


# --------------------------------------------------------------------------------------------
# Straw-poll verdicts


@settings(max_examples=150, deadline=None)
@given(bot_scenarios(), st.data())
def test_a_poll_verdict_is_what_every_way_of_finishing_the_poll_would_give(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    scenario = parse(data)
    country = scenario.countries[0]
    keys = [m.key for m in country.constituents]
    answers = {
        key: answer
        for key in keys
        if (answer := draw.draw(st.sampled_from((True, False, None)))) is not None
    }
    poll = StrawPoll(1, country.chief.key, country.key, (0.0,), answers)
    state = GameState(scenario=scenario, settings=GameDefaults())
    missing = [key for key in keys if key not in answers]
    finished = set()
    for completion in itertools.product((True, False), repeat=len(missing)):
        full = {**answers, **dict(zip(missing, completion, strict=True))}
        result = _poll_result(state, StrawPoll(1, poll.by, poll.country, poll.values, full))
        finished.add(result.would_ratify)
    verdict = poll_verdict(scenario, poll)
    if verdict is None:
        assert finished == {True, False}
    else:
        assert finished == {verdict}
    closed = StrawPoll(1, poll.by, poll.country, poll.values, answers, closed=True)
    assert poll_verdict(scenario, closed) == _poll_result(state, closed).would_ratify


def test_a_veto_members_no_settles_a_poll_at_once() -> None:
    scenario = load_builtin("climate-treaty")
    developing = next(co for co in scenario.countries if any(m.veto for m in co.constituents))
    veto = next(m for m in developing.constituents if m.veto)
    others = {m.key: True for m in developing.constituents if not m.veto}
    assert sum((m.weight for m in developing.constituents if not m.veto), Fraction(0)) > 0
    poll = StrawPoll(1, developing.chief.key, developing.key, (5.0, 5.0), {veto.key: False})
    assert poll_verdict(scenario, poll) is False
    waiting = StrawPoll(1, developing.chief.key, developing.key, (5.0, 5.0), others)
    assert poll_verdict(scenario, waiting) is None


# --------------------------------------------------------------------------------------------
# Tournaments


def test_a_tournament_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    brain = _builtin_brain("bonn-1978")
    first = play_tournament(brain, 12, seed=5)
    again = play_tournament(brain, 12, seed=5)
    other = play_tournament(brain, 12, seed=6)
    assert first.summary() == again.summary()
    assert [g.events for g in first.games] == [g.events for g in again.games]
    assert [g.seed for g in first.games] != [g.seed for g in other.games]
    summary = first.summary()
    assert summary["rule_violations"] == 0
    assert sum(summary["outcomes"].values()) == summary["rounds_played"] == 12
    assert sum(row["plays"] for row in summary["chief_strategies"].values()) == 24


def test_pinned_strategies_are_played_and_the_rest_drawn_from_the_pool() -> None:
    scenario = load_builtin("imf-weak")
    brain = _builtin_brain("imf-weak")
    first, second = (chief.key for chief in scenario.chiefs)
    tournament = play_tournament(
        brain, 10, seed=1, pinned={first: HARD_BARGAINER}, pool=[NASH_SEEKER, PROBER]
    )
    assert {g.strategies[first] for g in tournament.games} == {HARD_BARGAINER}
    assert {g.strategies[second] for g in tournament.games} <= {NASH_SEEKER, PROBER}
    with pytest.raises(ValueError, match="unknown chief strategy"):
        play_tournament(brain, 1, seed=1, pool=["greedy"])
    with pytest.raises(ValueError, match="not a chief seat"):
        play_tournament(brain, 1, seed=1, pinned={"mer-unions": PROBER})


def test_a_refused_bot_command_is_recorded_or_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    brain = _builtin_brain("gatt")
    strategies = {"A-chief": TIT_FOR_TAT, "B-chief": TIT_FOR_TAT}
    real = bot_commands
    sabotaged: list[int] = []

    def one_bad_move(
        state: GameState, seat: str, brain: BotBrain, strategy: str | None = None, **kw: Any
    ) -> list[c.Command]:
        commands = real(state, seat, brain, strategy, **kw)
        if seat == "B-chief" and commands and not sabotaged:
            sabotaged.append(state.seq)
            return [c.Withdraw(seat, 999), *commands]
        return commands

    monkeypatch.setattr("negotiation.engine.tournament.bot_commands", one_bad_move)
    record = play_game(brain, strategies, rng=random.Random(0))
    (refusal,) = record.refusals
    assert (refusal.seat, refusal.strategy, refusal.code) == (
        "B-chief",
        TIT_FOR_TAT,
        "unknown_proposal",
    )
    assert refusal.command == c.Withdraw("B-chief", 999)
    assert refusal.to_dict()["command"] == {
        "type": "withdraw",
        "actor": "B-chief",
        "proposal_id": 999,
    }
    assert record.state.ended
    sabotaged.clear()
    with pytest.raises(BotRuleViolation, match="unknown_proposal") as raised:
        play_game(brain, strategies, rng=random.Random(0), strict=True)
    assert raised.value.refusal.seat == "B-chief"
