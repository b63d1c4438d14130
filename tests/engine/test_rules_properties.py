"""Properties of ``decide`` and ``evolve`` over random games (hypothesis).

Games are random command sequences over built-in scenarios (GATT, Bonn 1978, the climate
treaty) with random settings (rounds, attempts, compliance, deadlines). Commands are drawn with
an eye on the state (mostly the right actor, mostly open proposal ids, the current deadline) so
that games reach Level II, compliance and later rounds; refused commands are dropped, as a
server would drop them. ``test_random_games_reach_every_event_type`` checks, without
hypothesis, that the same generator really does reach every kind of event.

1. Folding any prefix of the log equals the state ``apply`` reached at that point.
2. ``decide`` raises nothing but ``RuleViolation`` for arbitrary commands, field values, actors
   and clocks, in any phase; what it accepts folds and round-trips.
3. Every event survives ``event_to_dict`` -> JSON -> ``event_from_dict``.
4. ``evolve`` is pure: the state it is given is left equal to a deep copy taken before.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from negotiation.engine import commands as c
from negotiation.engine import events as e
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
from negotiation.engine.scenario import Deadlines, GameDefaults, Scenario
from negotiation.engine.state import COMPLIANCE, ENDED, LEVEL1, LEVEL2, LOBBY, PHASES, GameState
from tests.engine.rules_support import INSTRUCTOR, SYSTEM, T0, load_builtin

T = TypeVar("T")

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

SCENARIOS: dict[str, Scenario] = {
    slug: load_builtin(slug) for slug in ("gatt", "bonn-1978", "climate-treaty")
}
DEADLINE_CHOICES = (
    Deadlines(),
    Deadlines(level1=None, level2=None, compliance=None),
    Deadlines(level1=60, level2=30, compliance=20),
)

# --------------------------------------------------------------------------------------------
# A random game


class Chooser(Protocol):
    """Where a random game gets its choices: hypothesis data or a seeded ``random.Random``."""

    def pick(self, options: Sequence[T]) -> T: ...


class DataChooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def pick(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(options))


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)


# What each phase mostly sees; one command in eight is drawn from ``ANY_KIND`` instead, so that
# deadlines, pauses, seats and commands out of their phase come up too without cutting every
# game short. Repeats weight the choice.
KINDS_BY_PHASE = {
    LOBBY: ("seat", "release", "chat", "start"),
    LEVEL1: (
        *["propose"] * 4,
        *["accept"] * 4,
        *["offer"] * 2,
        *["answer_poll"] * 3,
        "open_poll",
        "close_poll",
        "withdraw",
        "chat",
        "statement",
    ),
    LEVEL2: ("ballot", "ballot", "ballot", "statement"),
    COMPLIANCE: ("comply", "comply", "chat"),
    ENDED: ("chat",),
}
ANY_KIND = (
    *{kind for kinds in KINDS_BY_PHASE.values() for kind in kinds},
    "fire",
    "fire",
    "advance",
    "pause",
    "resume",
    "resume",
    "extend",
    "announce",
    "end",
)


def grid_point(state: GameState, chooser: Chooser) -> tuple[float, ...]:
    """A point on the grid, or now and then one just off it."""
    point = [chooser.pick(issue.values) for issue in state.scenario.issues]
    if chooser.pick(range(12)) == 0:
        point[0] += float(state.scenario.issues[0].step) / 2
    return tuple(point)


def plausible_command(state: GameState, chooser: Chooser, now: float) -> tuple[c.Command, float]:
    """A command for ``state`` and the time to run it: usually well-formed and by the right
    actor, sometimes not."""
    scenario = state.scenario
    chiefs = [m.key for m in scenario.chiefs]
    voters = [m.key for co in scenario.countries for m in co.constituents]
    members = chiefs + voters
    anyone = [*members, INSTRUCTOR, SYSTEM, "spectator"]

    def actor(preferred: Sequence[str]) -> str:
        return chooser.pick(preferred) if chooser.pick(range(6)) else chooser.pick(anyone)

    def proposal_id(chief: str) -> int:
        others = [pid for pid, p in sorted(state.proposals.items()) if p.by != chief]
        return chooser.pick([*others, *others, *sorted(state.proposals), state.next_proposal_id, 0])

    def poll_id() -> int:
        return chooser.pick([*sorted(state.polls), state.next_poll_id])

    now += chooser.pick([0.0, 1.0, 1.0, 7.0, 120.0, 1000.0])
    kind = chooser.pick(ANY_KIND if chooser.pick(range(8)) == 0 else KINDS_BY_PHASE[state.phase])
    if state.paused and chooser.pick([True, False]):
        kind = "resume"
    command: c.Command
    if kind == "propose":
        replies = chooser.pick([None, None, *sorted(state.proposals), 999])
        command = c.Propose(actor(chiefs), grid_point(state, chooser), replies_to=replies)
    elif kind == "accept":
        chief = actor(chiefs)
        command = c.Accept(chief, proposal_id(chief))
    elif kind == "withdraw":
        chief = actor(chiefs)
        command = c.Withdraw(chief, proposal_id(chief))
    elif kind == "chat":
        channels = ["table", *(f"caucus:{co.key}" for co in scenario.countries), "backroom"]
        text = chooser.pick(["Let us talk.", "  ", "x" * 2001])
        command = c.Chat(actor(members), chooser.pick(channels), text)
    elif kind == "statement":
        command = c.MakeStatement(actor(chiefs), "We will not move further.")
    elif kind == "open_poll":
        command = c.OpenStrawPoll(actor(chiefs), grid_point(state, chooser))
    elif kind == "answer_poll":
        command = c.AnswerStrawPoll(actor(voters), poll_id(), chooser.pick([True, False]))
    elif kind == "close_poll":
        command = c.CloseStrawPoll(actor(chiefs), poll_id())
    elif kind == "offer":
        to = chooser.pick([*voters, chiefs[0]])
        command = c.OfferSidePayment(actor(chiefs), to, chooser.pick([-1, 0, 1, 2, 5, 8, 11]))
    elif kind == "ballot":
        waiting = [v for v in voters if v not in state.ballots] or voters
        command = c.CastBallot(actor(waiting), chooser.pick([True, True, False]))
    elif kind == "comply":
        command = c.ChooseCompliance(actor(chiefs), chooser.pick([True, True, False]))
    elif kind == "fire":
        deadline = state.deadline if state.deadline is not None else now
        deadline = chooser.pick([deadline, deadline, deadline - 1.0])
        now = max(now, deadline + chooser.pick([0.0, 0.0, 3.0, -0.5]))
        command = c.FireDeadline(actor([SYSTEM]), deadline)
    elif kind == "advance":
        command = c.AdvancePhase(actor([INSTRUCTOR]))
    elif kind == "pause":
        command = c.PauseGame(actor([INSTRUCTOR]))
    elif kind == "resume":
        command = c.ResumeGame(actor([INSTRUCTOR]))
    elif kind == "extend":
        command = c.ExtendDeadline(actor([INSTRUCTOR]), chooser.pick([1, 60, 0, MAX_EXTENSION + 1]))
    elif kind == "announce":
        command = c.Announce(actor([INSTRUCTOR]), chooser.pick(["Ten minutes left.", "  ", "x"]))
    elif kind == "seat":
        player = chooser.pick(["p1", "p2", "bot", ""])
        seat = chooser.pick([*members, "Z9"])
        command = c.TakeSeat(actor([SYSTEM, INSTRUCTOR]), seat, player, chooser.pick([False, True]))
    elif kind == "release":
        command = c.ReleaseSeat(actor([SYSTEM, INSTRUCTOR]), chooser.pick(members))
    elif kind == "start":
        command = c.StartGame(actor([INSTRUCTOR]))
    else:
        # Ending is rare: usually the instructor's command comes from someone else.
        command = c.EndGame(chooser.pick([INSTRUCTOR, *chiefs, SYSTEM, SYSTEM]))
    return command, now


@dataclass
class Played:
    """A random game: its log, and the state and log length after every accepted command."""

    log: list[e.Event]
    states: list[GameState] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)
    refused: int = 0


def play(chooser: Chooser, steps: int) -> Played:
    scenario = SCENARIOS[chooser.pick(sorted(SCENARIOS))]
    game_settings = GameDefaults(
        rounds=chooser.pick([1, 2, 3]),
        attempts=chooser.pick([1, 2, 3]),
        compliance=chooser.pick([False, True]),
        deadlines=chooser.pick(DEADLINE_CHOICES),
    )
    created = create_game(scenario, game_settings)
    state = initial_state(created)
    played = Played(log=[created], states=[state], marks=[1])
    now = T0
    start: list[c.Command] = [c.TakeSeat(SYSTEM, m.key, f"p-{m.key}") for m in scenario.members]
    if chooser.pick([True, True, True, False]):
        start.append(c.StartGame(INSTRUCTOR))
    for command in start:
        state, events = apply(state, command, now)
        played.log.extend(events)
        played.states.append(state)
        played.marks.append(len(played.log))
    for _ in range(steps):
        if state.ended:
            break
        command, at = plausible_command(state, chooser, now)
        try:
            state, events = apply(state, command, at)
        except RuleViolation:
            played.refused += 1
            continue
        now = at
        played.log.extend(events)
        played.states.append(state)
        played.marks.append(len(played.log))
    return played


@st.composite
def games(draw: st.DrawFn, steps: int = 60) -> Played:
    return play(DataChooser(draw(st.data())), steps)


# --------------------------------------------------------------------------------------------
# Invariants of every state a game passes through


def check_invariants(state: GameState, log: Sequence[e.Event]) -> None:
    scenario = state.scenario
    chiefs = {m.key for m in scenario.chiefs}
    assert state.seq == len(log)
    assert state.phase in PHASES
    # Level I: one open proposal per chief; acceptances name chiefs and open proposals.
    by = [p.by for p in state.proposals.values()]
    assert len(by) == len(set(by)) and set(by) <= chiefs
    assert set(state.acceptances) <= chiefs
    assert set(state.acceptances.values()) <= set(state.proposals)
    assert all(pid < state.next_proposal_id for pid in state.proposals)
    # Straw polls: at most one open per chief, on its own country.
    open_polls = [p.by for p in state.polls.values() if not p.closed]
    assert len(open_polls) == len(set(open_polls))
    for poll in state.polls.values():
        assert scenario.member(poll.by).country == poll.country
        assert all(scenario.member(k).country == poll.country for k in poll.answers)
    # Side payments: positive, whole, within each chief's budget.
    for chief, offers in state.offers.items():
        budget = scenario.country(scenario.member(chief).country).side_payment_budget
        assert all(isinstance(v, int) and v > 0 for v in offers.values())
        assert sum(offers.values()) <= budget
    # Phases.
    if state.phase == LEVEL1:
        assert state.tentative is None and not state.ballots
    if state.phase == LEVEL2:
        assert state.tentative is not None and not state.proposals and not state.acceptances
    if state.phase in (LOBBY, LEVEL1):
        assert not state.ballots
    if state.phase == COMPLIANCE:
        assert state.in_force is not None
    if state.phase in (LEVEL1, LEVEL2, COMPLIANCE):
        assert 1 <= state.round <= state.settings.rounds
        assert state.attempt == state.round_failed_attempts + 1 <= state.settings.attempts
        assert len(state.rounds) == state.round - 1
        assert not state.polls or all(p.poll_id < state.next_poll_id for p in state.polls.values())
    if state.phase == LOBBY:
        assert state.round == 0 and state.rounds == ()
    if state.phase == ENDED:
        assert state.deadline is None and not state.paused
        assert len(state.rounds) == state.round
    if state.paused:
        assert state.deadline is None
    else:
        assert state.paused_remaining is None
    # Records agree with the log.
    assert [r.round for r in state.rounds] == list(range(1, len(state.rounds) + 1))
    assert state.tentative_agreements == sum(isinstance(ev, e.TentativeAgreement) for ev in log)
    involuntary = sum(len(ev.countries) for ev in log if isinstance(ev, e.InvoluntaryDefection))
    assert sum(state.involuntary_defections.values()) == involuntary
    voluntary = sum(
        list(ev.choices.values()).count(False) for ev in log if isinstance(ev, e.ComplianceResolved)
    )
    assert sum(state.voluntary_defections.values()) == voluntary
    for record in state.rounds:
        assert record.result in {
            "agreement",
            "no_agreement",
            "involuntary_defection",
            "voluntary_defection",
        }
        assert (record.values is not None) == (
            record.result in {"agreement", "voluntary_defection"}
        )


# --------------------------------------------------------------------------------------------
# 1. Replay


@PROPERTY_SETTINGS
@given(games(), st.data())
def test_folding_any_prefix_equals_the_state_apply_reached(
    played: Played, data: st.DataObject
) -> None:
    # Every state, by folding event by event ...
    state = initial_state(played.log[0])  # type: ignore[arg-type]
    position = 1
    for mark, expected in zip(played.marks, played.states, strict=True):
        for event in played.log[position:mark]:
            state = evolve(state, event)
        position = mark
        assert state == expected
        check_invariants(expected, played.log[:mark])
    # ... and a few of them by folding the prefix from scratch.
    for index in data.draw(st.lists(st.integers(0, len(played.marks) - 1), min_size=1, max_size=4)):
        assert fold(played.log[: played.marks[index]]) == played.states[index]


# --------------------------------------------------------------------------------------------
# 2. decide raises nothing but RuleViolation


@dataclass(frozen=True, slots=True)
class Shout(c.Command):
    NAME = "shout"
    volume: Any = None


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 0, 1, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=4),
    st.fractions(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
)
WILD = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.tuples(SCALARS, SCALARS),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
    st.just(object()),
    st.just(float),
)
CLOCKS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.sampled_from([10**400, T0, T0 + 1e6]),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.decimals(allow_nan=True),
)


def plausible_values(state: GameState) -> st.SearchStrategy[Any]:
    """Values that could be right for some field of some command in this state."""
    scenario = state.scenario
    keys = [m.key for m in scenario.members]
    points = [
        tuple(issue.values[0] for issue in scenario.issues),
        tuple(issue.values[-1] for issue in scenario.issues),
        [issue.values[len(issue.values) // 2] for issue in scenario.issues],
    ]
    return st.one_of(
        st.sampled_from([*keys, INSTRUCTOR, SYSTEM]),
        st.sampled_from(["table", *(f"caucus:{co.key}" for co in scenario.countries)]),
        st.sampled_from(points),
        st.integers(-2, 12),
        st.sampled_from([state.deadline, True, False, "hello"]),
    )


@st.composite
def wild_commands(draw: st.DrawFn, state: GameState) -> Any:
    kind = draw(st.sampled_from([*c.COMMAND_TYPES.values(), Shout, c.Command, None]))
    if kind is None:
        return draw(WILD)
    values = st.one_of(WILD, plausible_values(state))
    fields = {f.name: draw(values) for f in dataclasses.fields(kind)}
    return kind(**fields)


def check_events_round_trip(events: Sequence[e.Event]) -> None:
    for event in events:
        payload = json.loads(json.dumps(event_to_dict(event), allow_nan=False))
        decoded = event_from_dict(payload)
        assert decoded == event
        assert type(decoded) is type(event)
        assert event_to_dict(decoded) == payload


@PROPERTY_SETTINGS
@given(games(steps=30), st.data())
def test_decide_raises_only_rule_violations_for_anything(
    played: Played, data: st.DataObject
) -> None:
    state = data.draw(st.sampled_from(played.states))
    for _ in range(6):
        command = data.draw(wild_commands(state))
        now = data.draw(st.one_of(CLOCKS, st.just(T0 + 2e6)))
        try:
            events = decide(state, command, now)
        except RuleViolation as violation:
            assert isinstance(violation.code, str) and violation.code
            assert isinstance(violation.message, str) and violation.message
            continue
        assert all(isinstance(ev, e.Event) for ev in events)
        check_events_round_trip(events)
        after = state
        for event in events:
            after = evolve(after, event)
        assert after == apply(state, command, now)[0]


# --------------------------------------------------------------------------------------------
# 3. Events round-trip through JSON


@PROPERTY_SETTINGS
@given(games())
def test_every_event_round_trips_through_json(played: Played) -> None:
    check_events_round_trip(played.log)
    stored = json.dumps([event_to_dict(ev) for ev in played.log])
    replayed = fold(event_from_dict(payload) for payload in json.loads(stored))
    assert replayed == played.states[-1]


# --------------------------------------------------------------------------------------------
# 4. evolve is pure


@PROPERTY_SETTINGS
@given(games(steps=40))
def test_evolve_leaves_its_input_unchanged(played: Played) -> None:
    state = initial_state(played.log[0])  # type: ignore[arg-type]
    for event in played.log[1:]:
        before = copy.deepcopy(state)
        event_before = copy.deepcopy(event)
        after = evolve(state, event)
        assert state == before
        assert event == event_before
        assert after is not state
        assert evolve(state, event) == after
        state = after


# --------------------------------------------------------------------------------------------
# The generator is not vacuous


def test_random_games_reach_every_event_type() -> None:
    seen: set[type[e.Event]] = set()
    phases: set[str] = set()
    for seed in range(40):
        played = play(RandomChooser(seed), 120)
        seen |= {type(ev) for ev in played.log}
        phases |= {s.phase for s in played.states}
        if seen == set(e.EVENT_TYPES.values()) and phases == set(PHASES):
            break
    assert seen == set(e.EVENT_TYPES.values()), set(e.EVENT_TYPES.values()) - seen
    assert phases == set(PHASES)


def test_a_random_game_keeps_its_invariants_and_replays() -> None:
    for seed in range(5):
        played = play(RandomChooser(1000 + seed), 150)
        for mark, state in zip(played.marks, played.states, strict=True):
            check_invariants(state, played.log[:mark])
        assert fold(played.log) == played.states[-1]
        assert played.refused > 0
