"""Visibility (DESIGN §4 "Information", §7): what each viewer of a game receives.

The shell sends each viewer ``view(state, viewer)`` as its snapshot and every event of the log
through ``visible`` (a placeholder with the seq when it returns None). Viewers are the seats of
the scenario, the instructor (sees everything) and the spectator (the public record only).

The property tests play random games on every built-in scenario (commands applied with
``rules.apply``) and serialise, for every viewer, everything it would receive: the snapshot after
each command and every event. Two properties are checked:

- leak searches: no other member's briefing, ideal point, salience or reservation; no other
  member's ballot before the count; no other constituent's straw-poll answer, ever; no side
  payment the viewer neither made nor received; no chat of a channel the viewer is not in;
- non-interference: changing, in the log, every secret the viewer may not know changes nothing
  the viewer receives.

What may be seen is written out here (``may_see_preferences``, ``may_read``), independently of
``negotiation.engine.visibility``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine import rules
from negotiation.engine.commands import INSTRUCTOR, SYSTEM
from negotiation.engine.rules import CAUCUS_PREFIX, PUBLIC, TABLE, RuleViolation
from negotiation.engine.scenario import (
    GameDefaults,
    Information,
    Member,
    PreferenceVisibility,
    Scenario,
    WinsetVisibility,
    load_builtin,
    plain_number,
)
from negotiation.engine.state import COMPLIANCE, LEVEL1, LEVEL2, LOBBY, GameState
from negotiation.engine.visibility import (
    SPECTATOR,
    can_read_channel,
    compliance_visible_to,
    redacted_scenario,
    sees_preferences_of,
    view,
    visible,
    winsets_visible_to,
)

SLUGS = ("bonn-1978", "imf-strong", "imf-weak", "gatt", "climate-treaty", "climate-executive")
PREFERENCES: tuple[PreferenceVisibility, ...] = ("self", "own_country", "all")
WINSETS: tuple[WinsetVisibility, ...] = ("none", "own", "all")
PRIVATE_FIELDS = ("ideal", "salience", "reservation", "briefing")
#: The events a spectator may receive: the public record of the game.
SPECTATOR_EVENTS = frozenset(
    {
        "game_created",
        "seat_taken",
        "seat_released",
        "phase_changed",
        "statement_made",
        "tentative_agreement",
        "ballot_cast",
        "ballots_counted",
        "agreement_in_force",
        "involuntary_defection",
        "compliance_resolved",
        "round_ended",
        "game_paused",
        "game_resumed",
        "deadline_extended",
        "game_ended",
    }
)
T0 = 1_000_000.0

PROPERTY = settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

Json = Any

# --------------------------------------------------------------------------------------------
# Scenarios and the rules of who sees what, written out independently


@functools.cache
def builtin(slug: str) -> Scenario:
    return load_builtin(slug)


def configured(
    slug: str,
    preferences: PreferenceVisibility = "self",
    winsets: WinsetVisibility = "own",
    budget: int = 10,
) -> Scenario:
    """A built-in scenario with these information settings and a side-payment budget for every
    country (so every game can exercise offers)."""
    base = builtin(slug)
    countries = tuple(
        dataclasses.replace(country, side_payment_budget=max(country.side_payment_budget, budget))
        for country in base.countries
    )
    return dataclasses.replace(
        base, countries=countries, information=Information(preferences, winsets)
    )


def seat_of(scenario: Scenario, viewer: str) -> Member | None:
    return next((m for m in scenario.members if m.key == viewer), None)


def viewers(scenario: Scenario) -> list[str]:
    return [*(m.key for m in scenario.members), INSTRUCTOR, SPECTATOR]


def may_see_preferences(scenario: Scenario, viewer: str, member: Member) -> bool:
    if viewer == INSTRUCTOR or viewer == member.key:
        return True
    seat = seat_of(scenario, viewer)
    if seat is None:
        return False
    setting = scenario.information.preferences
    if setting == "all":
        return True
    return setting == "own_country" and seat.country == member.country


def may_read(scenario: Scenario, viewer: str, channel: str) -> bool:
    if viewer == INSTRUCTOR or channel == PUBLIC:
        return True
    seat = seat_of(scenario, viewer)
    if seat is None:
        return False
    if channel == TABLE:
        return seat.role == "chief"
    return channel == CAUCUS_PREFIX + seat.country


def country_of(scenario: Scenario, viewer: str) -> str | None:
    seat = seat_of(scenario, viewer)
    return None if seat is None else seat.country


def member_dicts(scenario_data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        member["key"]: member
        for country in scenario_data["countries"]
        for member in (country["chief"], *country["constituents"])
    }


# --------------------------------------------------------------------------------------------
# Playing random games


@dataclass
class Game:
    scenario: Scenario
    settings: GameDefaults
    log: list[e.Event]
    #: After each applied command: how many events the log held (the first mark is 1, the lobby).
    marks: list[int]


def random_point(scenario: Scenario, rng: random.Random) -> tuple[float, ...]:
    return tuple(rng.choice(issue.values) for issue in scenario.issues)


def options(state: GameState, rng: random.Random, step: int) -> list[tuple[float, c.Command]]:
    """Weighted commands worth trying now; some will be refused, which is fine."""
    scenario = state.scenario
    members = scenario.members
    chiefs = scenario.chiefs
    found: list[tuple[float, c.Command]] = []

    def add(weight: float, command: c.Command) -> None:
        found.append((weight, command))

    speaker = rng.choice(members)
    channel = TABLE if speaker.role == "chief" and rng.random() < 0.5 else ""
    channel = channel or CAUCUS_PREFIX + speaker.country
    add(1.5, c.Chat(speaker.key, channel, f"chat#{step}@{channel}/{speaker.key}"))
    add(0.7, c.MakeStatement(rng.choice(chiefs).key, f"statement#{step}"))
    if state.paused:
        add(4, c.ResumeGame(INSTRUCTOR))
        add(0.5, c.ExtendDeadline(INSTRUCTOR, rng.randint(1, 100)))
        return found
    add(0.2, c.PauseGame(INSTRUCTOR))
    add(0.2, c.ExtendDeadline(INSTRUCTOR, rng.randint(1, 100)))
    add(0.15, c.ReleaseSeat(SYSTEM, rng.choice(members).key))
    seat = rng.choice(members)
    add(0.3 if state.phase != LOBBY else 2, c.TakeSeat(SYSTEM, seat.key, f"player:{seat.key}"))
    if state.deadline is not None:
        add(0.3, c.FireDeadline(SYSTEM, state.deadline))
    if state.phase == LOBBY:
        add(1, c.StartGame(INSTRUCTOR))
        return found
    add(0.25, c.AdvancePhase(INSTRUCTOR))
    if state.phase == LEVEL1:
        chief = rng.choice(chiefs)
        on_table = list(state.proposals.values())
        if on_table and rng.random() < 0.5:
            values = rng.choice(on_table).values
        else:
            values = random_point(scenario, rng)
        add(2.5, c.Propose(chief.key, values))
        for proposal in on_table:
            add(0.3, c.Withdraw(proposal.by, proposal.proposal_id))
            for other in chiefs:
                if state.acceptances.get(other.key) != proposal.proposal_id:
                    add(2, c.Accept(other.key, proposal.proposal_id))
        add(1, c.OpenStrawPoll(chief.key, random_point(scenario, rng)))
        for poll in state.polls.values():
            if poll.closed:
                continue
            add(0.3, c.CloseStrawPoll(poll.by, poll.poll_id))
            for member in scenario.country(poll.country).constituents:
                if member.key not in poll.answers:
                    add(1.5, c.AnswerStrawPoll(member.key, poll.poll_id, rng.random() < 0.5))
        recipient = rng.choice([m for m in members if m.role == "constituent"])
        add(1.5, c.OfferSidePayment(chief.key, recipient.key, rng.randint(0, 6)))
    elif state.phase == LEVEL2:
        for member in members:
            if member.role == "constituent" and member.key not in state.ballots:
                add(2, c.CastBallot(member.key, rng.random() < 0.7))
    elif state.phase == COMPLIANCE:
        for chief in chiefs:
            if chief.country not in state.compliance_choices:
                add(3, c.ChooseCompliance(chief.key, rng.random() < 0.6))
    return found


def play(scenario: Scenario, game_settings: GameDefaults, choices: Sequence[int]) -> Game:
    created = rules.create_game(scenario, game_settings)
    state = rules.initial_state(created)
    log: list[e.Event] = [created]
    marks = [1]
    now = T0
    for step, choice in enumerate(choices):
        if state.ended:
            break
        rng = random.Random(choice)
        weighted = options(state, rng, step)
        command = rng.choices([cmd for _, cmd in weighted], [w for w, _ in weighted])[0]
        now += 1.0
        at = command.deadline if isinstance(command, c.FireDeadline) else now
        try:
            state, emitted = rules.apply(state, command, at)
        except RuleViolation:
            continue
        now = max(now, at)
        log.extend(emitted)
        marks.append(len(log))
    return Game(scenario, game_settings, log, marks)


def states_at(log: Sequence[e.Event], marks: Sequence[int]) -> list[GameState]:
    """The state at every mark, by folding the log (as a replay would)."""
    first = log[0]
    assert isinstance(first, e.GameCreated)
    state = rules.initial_state(first)
    states: list[GameState] = []
    folded = 1
    for mark in marks:
        while folded < mark:
            state = rules.evolve(state, log[folded])
            folded += 1
        states.append(state)
    return states


@dataclass
class Received:
    """Everything one viewer receives in a game: snapshots, events, and all of it as JSON."""

    snapshots: list[Json]  # view() at every mark
    events: list[Json]  # event_to_dict of what visible returned; None for a placeholder
    texts: list[str]  # each snapshot, then each event, as JSON text
    text: str  # all of it


def receive(
    log: Sequence[e.Event], states: Sequence[GameState], viewer: str, game_settings: GameDefaults
) -> Received:
    scenario = states[0].scenario
    events: list[Json] = []
    for event in log:
        shown = visible(scenario, event, viewer, settings=game_settings)
        events.append(None if shown is None else e.event_to_dict(shown))
    snapshots = [view(state, viewer) for state in states]
    texts = [json.dumps(payload, allow_nan=False) for payload in (*snapshots, *events)]
    return Received(snapshots, events, texts, "\n".join(texts))


game_configs = st.fixed_dictionaries(
    {
        "preferences": st.sampled_from(PREFERENCES),
        "winsets": st.sampled_from(WINSETS),
        "rounds": st.integers(1, 3),
        "attempts": st.integers(1, 2),
        "compliance": st.booleans(),
        "regime": st.booleans(),
    }
)
command_choices = st.lists(st.integers(0, 2**32 - 1), min_size=80, max_size=200)


def random_game(slug: str, config: Mapping[str, Any], choices: Sequence[int]) -> Game:
    scenario = configured(slug, config["preferences"], config["winsets"])
    game_settings = dataclasses.replace(
        scenario.game,
        rounds=config["rounds"],
        attempts=config["attempts"],
        compliance=config["compliance"],
        regime=config["regime"],
    )
    return play(scenario, game_settings, choices)


# --------------------------------------------------------------------------------------------
# Leak searches


Path = tuple[Any, ...]


def objects(data: Json, path: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every JSON object inside ``data``, with its path."""
    if isinstance(data, dict):
        yield path, data
        for key, value in data.items():
            yield from objects(value, (*path, key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from objects(value, (*path, index))


def received_objects(got: Received) -> list[tuple[str, Json, Path, dict[str, Any]]]:
    """(where, payload, path, object) for every object a viewer receives. The scenario, the same
    in every snapshot (checked), is walked once."""
    found: list[tuple[str, Json, Path, dict[str, Any]]] = []
    first = got.snapshots[0]
    for index, snapshot in enumerate(got.snapshots):
        payload = snapshot
        if index:
            assert snapshot["scenario"] == first["scenario"]
            payload = {k: v for k, v in snapshot.items() if k != "scenario"}
        found.extend(("snapshot", snapshot, path, obj) for path, obj in objects(payload))
    for event in got.events:
        if event is not None:
            found.extend(("event", event, path, obj) for path, obj in objects(event))
    return found


def fragment(name: str, value: Json) -> str:
    """How ``"name": value`` prints inside a JSON object (default separators)."""
    return json.dumps({name: value}, allow_nan=False)[1:-1]


def check_preferences(
    scenario: Scenario, viewer: str, got: Received, found: Sequence[tuple[str, Json, Path, Any]]
) -> None:
    """No hidden member's briefing, ideal, salience or reservation reaches ``viewer``."""
    full = member_dicts(scenario.to_dict())
    seen = {m.key for m in scenario.members if may_see_preferences(scenario, viewer, m)}
    hidden = [m for m in scenario.members if m.key not in seen]
    for member in hidden:
        assert member.briefing, f"{member.key} has no briefing to search for"
        assert json.dumps(member.briefing)[1:-1] not in got.text, (
            f"{viewer} receives the briefing of {member.key}"
        )
        for name in ("ideal", "salience", "reservation"):
            text = fragment(name, full[member.key][name])
            shared = any(fragment(name, full[key][name]) == text for key in seen)
            if not shared:
                assert text not in got.text, f"{viewer} receives {member.key}'s {text}"
    # Every object that carries a private field names a member the viewer may see.
    for where, _, path, data in found:
        if any(name in data for name in PRIVATE_FIELDS):
            owner = data.get("key", data.get("seat"))
            assert owner in seen, f"{viewer} receives private fields of {owner} in {where} {path}"


def check_ballots_and_polls(
    scenario: Scenario,
    viewer: str,
    got: Received,
    found: Sequence[tuple[str, Json, Path, Any]],
    states: Sequence[GameState],
) -> None:
    """Another member's ballot only in a count; another constituent's poll answer never."""
    others = {m.key for m in scenario.members if m.key != viewer}
    for payload in got.events:
        if payload is not None and payload["type"] in ("ballot_cast", "straw_poll_answered"):
            # Its own, or the bare fact that someone voted or answered (turnout is public).
            redacted = payload["by"] == "" and payload["yes"] is None
            assert payload["by"] == viewer or redacted, f"{viewer} receives {payload}"
    # Wherever another member's key maps to a yes or no, it is a count (ballots are public
    # once counted).
    for where, payload, path, data in found:
        for key, value in data.items():
            if key in others and isinstance(value, bool):
                if where == "event":
                    allowed = payload["type"] == "ballots_counted" and path == ("ballots",)
                else:
                    allowed = path == ("last_count", "ballots")
                assert allowed, f"{viewer} receives {key}'s yes/no in {where} {path}"
    for snapshot, state in zip(got.snapshots, states, strict=True):
        count = snapshot["last_count"]
        if state.phase == LEVEL2 and count is not None:
            # A count shown during a vote is the count of an earlier text, never this one.
            assert state.tentative is not None
            assert count["proposal_id"] != state.tentative.proposal_id


def check_offers(viewer: str, got: Received, states: Sequence[GameState]) -> None:
    """Side payments: only those the viewer made or received."""
    for payload in got.events:
        if payload is None:
            continue
        if payload["type"] == "side_payment_offered":
            assert viewer in (payload["by"], payload["to"]), f"{viewer} receives {payload}"
        if payload["type"] == "agreement_in_force":
            assert set(payload["transfers"]) <= {viewer}, f"{viewer} receives {payload}"
    for snapshot, state in zip(got.snapshots, states, strict=True):
        known = {
            (payer, recipient, amount)
            for payer, amounts in state.offers.items()
            for recipient, amount in amounts.items()
            if viewer in (payer, recipient)
        }
        offers = snapshot["offers"]
        shown = {(viewer, to, amount) for to, amount in offers.get("made", {}).items()}
        shown |= {(payer, viewer, amount) for payer, amount in offers.get("received", {}).items()}
        assert set(offers) <= {"made", "received"}
        assert shown == known
        assert snapshot["transfers"] == {
            k: v for k, v in state.in_force_transfers.items() if k == viewer
        }
        for entry, record in zip(snapshot["history"], state.rounds, strict=True):
            assert entry["transfer"] == record.transfers.get(viewer)


def check_chat(scenario: Scenario, viewer: str, got: Received, log: Sequence[e.Event]) -> None:
    """Chat of another channel never arrives; every statement does."""
    for event in log:
        if isinstance(event, e.ChatPosted):
            if may_read(scenario, viewer, event.channel):
                assert event.text in got.text
            else:
                assert event.text not in got.text, f"{viewer} reads {event.channel}"
        if isinstance(event, e.StatementMade):
            assert any(
                p is not None and p["type"] == "statement_made" and p["text"] == event.text
                for p in got.events
            )


def check_spectator(got: Received) -> None:
    kinds = {p["type"] for p in got.events if p is not None}
    assert kinds <= SPECTATOR_EVENTS, kinds - SPECTATOR_EVENTS
    for payload in got.events:
        if payload is not None and payload["type"] == "seat_taken":
            assert payload["player"] == ""
    for snapshot in got.snapshots:
        assert snapshot["me"] == {"seat": None, "role": SPECTATOR}
        assert snapshot["proposals"] == []
        assert snapshot["polls"] == []
        assert snapshot["offers"] == {}
        assert snapshot["transfers"] == {}
        assert snapshot["compliance"] == {}
        assert set(snapshot["ballots"]) == {"cast"}
        assert all(m["channel"] == PUBLIC for m in snapshot["messages"])
        assert all("player" not in s for s in snapshot["seats"].values())


def check_instructor(game: Game, got: Received, states: Sequence[GameState]) -> None:
    """The instructor receives every event unchanged and a snapshot with every secret."""
    for event, payload in zip(game.log, got.events, strict=True):
        assert payload == e.event_to_dict(event)
    full = game.scenario.to_dict()
    for snapshot, state in zip(got.snapshots, states, strict=True):
        assert snapshot["scenario"] == full
        assert snapshot["winsets_visible"] == [co.key for co in game.scenario.countries]
        assert snapshot["ballots"]["ballots"] == dict(state.ballots)
        assert snapshot["offers"] == {k: dict(v) for k, v in state.offers.items()}
        assert snapshot["transfers"] == dict(state.in_force_transfers)
        assert snapshot["compliance"] == dict(state.compliance_choices)
        assert len(snapshot["messages"]) == len(state.messages)
        assert {p["id"]: p["answers"] for p in snapshot["polls"]} == {
            pid: dict(poll.answers) for pid, poll in state.polls.items()
        }
        assert len(snapshot["proposals"]) == len(state.proposals)
        assert set(snapshot["records"]) == {co.key for co in game.scenario.countries}
        for key, holder in state.seats.items():
            assert snapshot["seats"][key]["player"] == holder.player


@pytest.mark.parametrize("slug", SLUGS)
@PROPERTY
@given(config=game_configs, choices=command_choices)
def test_no_viewer_receives_what_it_may_not_see(
    slug: str, config: dict[str, Any], choices: list[int]
) -> None:
    game = random_game(slug, config, choices)
    scenario = game.scenario
    states = states_at(game.log, game.marks)
    originals = [copy.deepcopy(event) for event in game.log]
    for viewer in viewers(scenario):
        got = receive(game.log, states, viewer, game.settings)
        if viewer == INSTRUCTOR:
            check_instructor(game, got, states)
            continue
        found = received_objects(got)
        check_preferences(scenario, viewer, got, found)
        check_ballots_and_polls(scenario, viewer, got, found, states)
        check_offers(viewer, got, states)
        check_chat(scenario, viewer, got, game.log)
        if viewer == SPECTATOR:
            check_spectator(got)
    # ``visible`` never mutated an event of the log.
    assert game.log == originals


# --------------------------------------------------------------------------------------------
# Non-interference: what a viewer may not know cannot change what it receives


def other_value(issue_min: float, issue_max: float, value: float) -> int | float:
    return plain_number(issue_max if value == issue_min else issue_min)


def perturbed_scenario(
    scenario: Scenario, data: Mapping[str, Any], hidden: set[str]
) -> dict[str, Any]:
    changed = copy.deepcopy(dict(data))
    bounds = {i.key: (float(i.min), float(i.max)) for i in scenario.issues}
    for key, member in member_dicts(changed).items():
        if key not in hidden:
            continue
        member["ideal"] = {k: other_value(*bounds[k], v) for k, v in member["ideal"].items()}
        member["salience"] = {k: v + 1 for k, v in member["salience"].items()}
        member["reservation"] = member["reservation"] - 11.5
        member["briefing"] = f"Another briefing for {key}."
    return changed


def perturbed_log(game: Game, viewer: str) -> tuple[list[e.Event], int]:
    """The log with every secret ``viewer`` may not know changed, and how many events changed.

    The log stays foldable; derived public facts (counts, poll results, round results) are kept
    as they were, since the viewer may see those.
    """
    scenario = game.scenario
    own = country_of(scenario, viewer)
    is_seat = seat_of(scenario, viewer) is not None
    hidden = {m.key for m in scenario.members if not may_see_preferences(scenario, viewer, m)}
    constituents = [m.key for m in scenario.members if m.role == "constituent"]
    tentative = {ev.proposal_id for ev in game.log if isinstance(ev, e.TentativeAgreement)}
    other_point = tuple(float(issue.max) for issue in scenario.issues)
    low_point = tuple(float(issue.min) for issue in scenario.issues)
    replace = dataclasses.replace
    out: list[e.Event] = []
    for ev in game.log:
        new: e.Event = ev
        if isinstance(ev, e.GameCreated) and hidden:
            new = replace(ev, scenario=perturbed_scenario(scenario, ev.scenario, hidden))
        elif isinstance(ev, e.SeatTaken) and ev.seat != viewer:
            new = replace(ev, player=f"someone else than {ev.player}")
        elif isinstance(ev, e.ProposalMade) and not is_seat and ev.proposal_id not in tentative:
            new = replace(ev, values=other_point if ev.values != other_point else low_point)
        elif isinstance(ev, e.ChatPosted) and not may_read(scenario, viewer, ev.channel):
            new = replace(ev, text=f"something else than {ev.text}")
        elif isinstance(ev, e.StrawPollOpened) and ev.country != own:
            new = replace(ev, values=tuple(v + 0.5 for v in ev.values))
        elif isinstance(ev, e.StrawPollClosed) and ev.country != own:
            new = replace(
                ev,
                yes=ev.no,
                no=ev.yes,
                yes_weight=ev.total_weight - ev.yes_weight,
                quota_met=not ev.quota_met,
            )
        elif isinstance(ev, e.StrawPollAnswered | e.BallotCast) and ev.by != viewer:
            new = replace(ev, yes=not ev.yes)
        elif isinstance(ev, e.SidePaymentOffered) and viewer not in (ev.by, ev.to):
            new = replace(ev, amount=ev.amount + 1000)
        elif isinstance(ev, e.AgreementInForce):
            transfers = {k: ev.transfers.get(k, 0) + 1000 for k in constituents if k != viewer}
            if viewer in ev.transfers:
                transfers[viewer] = ev.transfers[viewer]
            new = replace(ev, transfers=transfers)
        elif isinstance(ev, e.ComplianceChosen) and country_of(scenario, ev.by) != own:
            new = replace(ev, comply=not ev.comply)
        elif isinstance(ev, e.ComplianceResolved) and not game.settings.regime:
            new = replace(
                ev,
                choices={k: v if k == own else not v for k, v in ev.choices.items()},
                payoffs={k: v if k == own else v + 10 for k, v in ev.payoffs.items()},
            )
        out.append(new)
    return out, sum(1 for a, b in zip(game.log, out, strict=True) if a != b)


@pytest.mark.parametrize("slug", SLUGS)
@PROPERTY
@given(config=game_configs, choices=command_choices)
def test_secrets_do_not_change_what_a_viewer_receives(
    slug: str, config: dict[str, Any], choices: list[int]
) -> None:
    game = random_game(slug, config, choices)
    states = states_at(game.log, game.marks)
    for viewer in viewers(game.scenario):
        if viewer == INSTRUCTOR:
            continue
        log, changed = perturbed_log(game, viewer)
        if config["preferences"] != "all" or viewer == SPECTATOR:
            assert changed >= 1  # at least the scenario's hidden preferences
        if not changed:
            continue
        other_states = states_at(log, game.marks)
        expected = receive(game.log, states, viewer, game.settings)
        got = receive(log, other_states, viewer, game.settings)
        assert len(got.texts) == len(expected.texts)
        pairs = zip(got.texts, expected.texts, strict=True)
        differ = [k for k, (a, b) in enumerate(pairs) if a != b]
        assert not differ, (
            f"{viewer} receives a secret: {got.texts[differ[0]]} != {expected.texts[differ[0]]}"
        )


# --------------------------------------------------------------------------------------------
# Scripted games


class Driver:
    """Applies commands one by one (each must be allowed) and keeps the log."""

    def __init__(self, scenario: Scenario, game_settings: GameDefaults | None = None) -> None:
        self.scenario = scenario
        self.settings = game_settings if game_settings is not None else scenario.game
        created = rules.create_game(scenario, self.settings)
        self.state = rules.initial_state(created)
        self.log: list[e.Event] = [created]
        self.now = T0

    def do(self, command: c.Command) -> list[e.Event]:
        self.now += 1.0
        self.state, emitted = rules.apply(self.state, command, self.now)
        self.log.extend(emitted)
        return emitted

    def start(self) -> None:
        for member in self.scenario.members:
            self.do(c.TakeSeat(SYSTEM, member.key, f"player:{member.key}"))
        self.do(c.StartGame(INSTRUCTOR))

    def agree(self, values: tuple[float, ...]) -> int:
        """Every chief accepts ``values``: a tentative agreement; returns its proposal id."""
        first, *others = self.scenario.chiefs
        self.do(c.Propose(first.key, values))
        pid = max(self.state.proposals)
        for chief in others:
            self.do(c.Accept(chief.key, pid))
        assert self.state.phase == LEVEL2
        return pid

    def received(self, viewer: str) -> list[e.Event]:
        shown = (visible(self.scenario, ev, viewer, settings=self.settings) for ev in self.log)
        return [ev for ev in shown if ev is not None]


def first_point(scenario: Scenario) -> tuple[float, ...]:
    return tuple(issue.values[0] for issue in scenario.issues)


@pytest.mark.parametrize("slug", SLUGS)
def test_the_snapshot_holds_what_a_seat_needs_to_play(slug: str) -> None:
    scenario = configured(slug)
    game = Driver(scenario)
    game.start()
    chief = scenario.chiefs[0]
    other_chief = scenario.chiefs[1]
    country = scenario.country(chief.country)
    voter, *rest = country.constituents
    point = first_point(scenario)

    game.do(c.OpenStrawPoll(chief.key, point))
    for k, member in enumerate(country.constituents):
        game.do(c.AnswerStrawPoll(member.key, 1, k % 2 == 0))
    game.do(c.OfferSidePayment(chief.key, voter.key, 3))
    game.do(c.OfferSidePayment(other_chief.key, voter.key, 2))
    game.do(c.Propose(other_chief.key, point))
    poll = game.state.polls[1]
    assert poll.closed and poll.result is not None

    for member in scenario.members:
        snapshot = view(game.state, member.key)
        me = snapshot["me"]
        assert me["seat"] == member.key and me["country"] == member.country
        assert me["ideal"] == scenario.point_dict(member.ideal)
        assert me["salience"] == dict(
            zip(scenario.issue_keys, (plain_number(s) for s in member.salience), strict=True)
        )
        assert me["reservation"] == pytest.approx(member.reservation, abs=1e-9)
        assert me["briefing"] == member.briefing
        assert snapshot["phase"] == LEVEL1 and snapshot["round"] == 1
        assert game.state.deadline is not None
        assert snapshot["deadline"] == game.state.deadline
        assert [p["values"] for p in snapshot["proposals"]] == [scenario.point_dict(point)]
        polls = snapshot["polls"]
        if member.country == chief.country:
            assert [(p["id"], p["closed"], p["result"]) for p in polls] == [
                (1, True, dict(poll.result))
            ]
        else:
            assert polls == []
    assert view(game.state, chief.key)["offers"] == {"made": {voter.key: 3}}
    assert view(game.state, other_chief.key)["offers"] == {"made": {voter.key: 2}}
    assert view(game.state, voter.key)["offers"] == {"received": {chief.key: 3, other_chief.key: 2}}
    assert all(view(game.state, m.key)["offers"] == {"received": {}} for m in rest)
    assert view(game.state, voter.key)["polls"][0]["my_answer"] is True

    for other in scenario.chiefs:
        if other.key != other_chief.key:
            game.do(c.Accept(other.key, 1))
    game.do(c.CastBallot(voter.key, False))
    snapshot = view(game.state, voter.key)
    assert snapshot["phase"] == LEVEL2
    assert snapshot["tentative"] == {"id": 1, "values": scenario.point_dict(point)}
    assert snapshot["ballots"] == {"cast": 1, "mine": False}
    assert view(game.state, rest[0].key)["ballots"] == {"cast": 1, "mine": None}
    assert view(game.state, chief.key)["ballots"] == {"cast": 1, "mine": None}
    assert view(game.state, INSTRUCTOR)["ballots"] == {"cast": 1, "ballots": {voter.key: False}}


def test_ballots_are_secret_until_the_count_and_public_after() -> None:
    scenario = configured("gatt")
    game = Driver(scenario)
    game.start()
    game.agree((6.0, 6.0))
    a1, a2, a3 = scenario.country("A").constituents
    game.do(c.CastBallot(a1.key, True))
    cast = game.log[-1]
    assert isinstance(cast, e.BallotCast)
    for viewer in viewers(scenario):
        seen = visible(scenario, cast, viewer)
        if viewer in (a1.key, INSTRUCTOR):
            assert seen == cast, viewer
        else:
            # That a ballot was cast is public (turnout); whose and which way is not.
            assert seen == e.BallotCast(by="", yes=None), viewer
            assert a1.key not in json.dumps(view(game.state, viewer)["ballots"]), viewer
            assert view(game.state, viewer)["ballots"]["cast"] == 1
    game.do(c.AdvancePhase(INSTRUCTOR))  # the timer ends: missing votes count as no
    counted = next(ev for ev in game.log if isinstance(ev, e.BallotsCounted))
    for viewer in viewers(scenario):
        seen = visible(scenario, counted, viewer)
        assert seen == counted
        assert view(game.state, viewer)["last_count"]["ballots"] == {
            a1.key: True,
            a2.key: None,
            a3.key: None,
            **{m.key: None for m in scenario.country("B").constituents},
        }


def test_a_spectator_sees_the_public_record() -> None:
    scenario = configured("gatt")
    game = Driver(scenario)
    game.start()
    game.do(c.MakeStatement("A-chief", "Atlantis wants a fair round."))
    game.do(c.Chat("A-chief", TABLE, "between chiefs"))
    game.do(c.Chat("A1", "caucus:A", "inside Atlantis"))
    game.do(c.OpenStrawPoll("A-chief", (4.0, 8.0)))
    game.do(c.OfferSidePayment("A-chief", "A2", 4))
    pid = game.agree((5.0, 5.0))
    for member in scenario.members:
        if member.role == "constituent":
            game.do(c.CastBallot(member.key, True))
    kinds = [ev.TYPE for ev in game.received(SPECTATOR)]
    for kind in ("statement_made", "phase_changed", "tentative_agreement", "ballots_counted"):
        assert kind in kinds
    for kind in ("chat_posted", "proposal_made", "proposal_accepted", "straw_poll_opened"):
        assert kind not in kinds
    assert "side_payment_offered" not in kinds
    assert all(
        ev == e.BallotCast(by="", yes=None)
        for ev in game.received(SPECTATOR)
        if isinstance(ev, e.BallotCast)
    )
    tentative = next(ev for ev in game.received(SPECTATOR) if ev.TYPE == "tentative_agreement")
    assert tentative == e.TentativeAgreement(proposal_id=pid, values=(5.0, 5.0))
    in_force = next(ev for ev in game.received(SPECTATOR) if ev.TYPE == "agreement_in_force")
    assert isinstance(in_force, e.AgreementInForce) and in_force.transfers == {}
    snapshot = view(game.state, SPECTATOR)
    assert snapshot["messages"] == [
        {"channel": PUBLIC, "by": "A-chief", "text": "Atlantis wants a fair round."}
    ]
    assert snapshot["history"][0]["result"] == "agreement"
    assert snapshot["history"][0]["values"] == {"a_cut": 5, "b_cut": 5}
    assert snapshot["history"][0]["transfer"] is None
    for data in member_dicts(snapshot["scenario"]).values():
        assert not set(PRIVATE_FIELDS) & set(data)
    # A viewer that is no seat at all is a spectator.
    assert view(game.state, "nobody") == {**snapshot, "me": {"seat": None, "role": SPECTATOR}}
    # The recipient of the side payment, and only it, learns its transfer.
    assert view(game.state, "A2")["history"][0]["transfer"] == 4
    assert view(game.state, "A1")["history"][0]["transfer"] is None
    assert view(game.state, "A-chief")["history"][0]["transfer"] is None


def test_seat_holders_are_shown_to_the_instructor_and_the_seat_only() -> None:
    scenario = configured("gatt")
    game = Driver(scenario)
    game.start()
    taken = next(ev for ev in game.log if isinstance(ev, e.SeatTaken) and ev.seat == "A1")
    for viewer in viewers(scenario):
        seen = visible(scenario, taken, viewer)
        assert isinstance(seen, e.SeatTaken) and seen.seat == "A1"
        expected = "player:A1" if viewer in ("A1", INSTRUCTOR) else ""
        assert seen.player == expected, viewer
        seats = view(game.state, viewer)["seats"]
        assert seats["A1"]["occupied"] is True
        assert seats["A1"].get("player", "") == expected


@pytest.mark.parametrize("regime", [False, True])
def test_compliance_choices_and_records_follow_the_regime(regime: bool) -> None:
    scenario = configured("gatt")
    game_settings = dataclasses.replace(scenario.game, compliance=True, regime=regime)
    game = Driver(scenario, game_settings)
    game.start()
    game.agree((6.0, 6.0))
    for member in scenario.members:
        if member.role == "constituent":
            game.do(c.CastBallot(member.key, True))
    assert game.state.phase == COMPLIANCE
    (chosen,) = game.do(c.ChooseCompliance("A-chief", False))
    for viewer in viewers(scenario):
        seen = visible(scenario, chosen, viewer, settings=game_settings)
        own = viewer == INSTRUCTOR or country_of(scenario, viewer) == "A"
        assert (seen == chosen) if own else (seen is None), viewer
        assert view(game.state, viewer)["compliance"] == ({"A": False} if own else {}), viewer
    game.do(c.ChooseCompliance("B-chief", True))
    resolved = next(ev for ev in game.log if isinstance(ev, e.ComplianceResolved))
    assert resolved.choices == {"A": False, "B": True}
    for viewer in viewers(scenario):
        seen = visible(scenario, resolved, viewer, settings=game_settings)
        assert isinstance(seen, e.ComplianceResolved)
        shown = {
            k
            for k in ("A", "B")
            if regime or viewer == INSTRUCTOR or country_of(scenario, viewer) == k
        }
        assert set(seen.choices) == set(seen.payoffs) == shown, viewer
        assert all(compliance_visible_to(scenario, viewer, k, regime=regime) for k in shown)
        snapshot = view(game.state, viewer)
        assert set(snapshot["history"][0]["compliance"]) == shown
        assert set(snapshot["history"][0]["payoffs"]) == shown
        assert set(snapshot["records"]) == shown
        assert snapshot["history"][0]["result"] == "voluntary_defection"
    # Without the game's settings, ``visible`` shows what a game without a regime shows.
    bare = visible(scenario, resolved, "B1")
    assert isinstance(bare, e.ComplianceResolved) and set(bare.choices) == {"B"}


def test_straw_polls_stay_in_their_country() -> None:
    scenario = configured("gatt")
    game = Driver(scenario)
    game.start()
    opened, *_ = game.do(c.OpenStrawPoll("B-chief", (7.0, 4.0)))
    (answer,) = game.do(c.AnswerStrawPoll("B1", 1, True))
    closed, *_ = game.do(c.CloseStrawPoll("B-chief", 1))
    assert isinstance(closed, e.StrawPollClosed) and closed.yes == 1 and closed.unanswered == 2
    for viewer in viewers(scenario):
        in_b = viewer == INSTRUCTOR or country_of(scenario, viewer) == "B"
        assert (visible(scenario, opened, viewer) is not None) == in_b, viewer
        assert (visible(scenario, closed, viewer) is not None) == in_b, viewer
        shown = visible(scenario, answer, viewer)
        if viewer in ("B1", INSTRUCTOR):
            assert shown == answer, viewer
        elif in_b:
            # B's other members learn that an answer came in, not whose or which.
            assert shown == e.StrawPollAnswered(poll_id=1, by="", yes=None), viewer
        else:
            assert shown is None, viewer
        polls = view(game.state, viewer)["polls"]
        assert len(polls) == (1 if in_b else 0), viewer
        if in_b and viewer != INSTRUCTOR:
            assert "answers" not in polls[0]
            assert polls[0]["result"]["yes"] == 1
    assert view(game.state, "B1")["polls"][0]["my_answer"] is True
    assert view(game.state, "B2")["polls"][0]["my_answer"] is None
    assert "my_answer" not in view(game.state, "B-chief")["polls"][0]


# --------------------------------------------------------------------------------------------
# Information settings


@pytest.mark.parametrize("preferences", PREFERENCES)
@pytest.mark.parametrize("slug", SLUGS)
def test_each_preference_setting_shows_exactly_its_members(
    slug: str, preferences: PreferenceVisibility
) -> None:
    scenario = configured(slug, preferences)
    created = rules.create_game(scenario)
    state = rules.initial_state(created)
    full = member_dicts(scenario.to_dict())
    for viewer in viewers(scenario):
        seat = seat_of(scenario, viewer)
        expected = {
            m.key
            for m in scenario.members
            if viewer == INSTRUCTOR
            or m.key == viewer
            or (seat is not None and preferences == "all")
            or (seat is not None and preferences == "own_country" and m.country == seat.country)
        }
        if seat is not None:
            country = scenario.country(seat.country)
            sizes = {"self": 1, "own_country": len(country.members), "all": len(full)}
            assert len(expected) == sizes[preferences]
        seen_event = visible(scenario, created, viewer)
        assert isinstance(seen_event, e.GameCreated)
        assert seen_event.settings == created.settings
        for source in (
            view(state, viewer)["scenario"],
            seen_event.scenario,
            redacted_scenario(scenario, viewer),
        ):
            shown = member_dicts(source)
            assert set(shown) == set(full)
            for key, data in shown.items():
                if key in expected:
                    assert data == full[key], (viewer, key)
                else:
                    assert data == {
                        k: v for k, v in full[key].items() if k not in PRIVATE_FIELDS
                    }, (viewer, key)
            assert {k: v for k, v in source.items() if k != "countries"} == {
                k: v for k, v in scenario.to_dict().items() if k != "countries"
            }
        for member in scenario.members:
            assert sees_preferences_of(scenario, viewer, member) == (member.key in expected)


@pytest.mark.parametrize("winsets", WINSETS)
@pytest.mark.parametrize("slug", SLUGS)
def test_each_winset_setting_shows_exactly_its_countries(
    slug: str, winsets: WinsetVisibility
) -> None:
    scenario = configured(slug, winsets=winsets)
    state = rules.initial_state(rules.create_game(scenario))
    everyone = [co.key for co in scenario.countries]
    for viewer in viewers(scenario):
        seat = seat_of(scenario, viewer)
        if viewer == INSTRUCTOR:
            expected = everyone
        elif seat is None or winsets == "none":
            expected = []
        elif winsets == "own":
            expected = [seat.country]
        else:
            expected = everyone
        assert winsets_visible_to(scenario, viewer) == expected, viewer
        assert view(state, viewer)["winsets_visible"] == expected, viewer


@pytest.mark.parametrize("slug", SLUGS)
def test_chat_channels(slug: str) -> None:
    scenario = configured(slug)
    channels = [TABLE, PUBLIC, *(CAUCUS_PREFIX + co.key for co in scenario.countries)]
    channels += ["caucus:nowhere", "somewhere"]
    for viewer in [*viewers(scenario), "nobody"]:
        for channel in channels:
            expected = may_read(scenario, viewer, channel)
            assert can_read_channel(scenario, viewer, channel) == expected, (viewer, channel)


# --------------------------------------------------------------------------------------------
# visible copies; view is plain JSON


@pytest.mark.parametrize("slug", ["gatt", "climate-treaty"])
@settings(max_examples=4, deadline=None, database=None)
@given(config=game_configs, choices=command_choices)
def test_visible_returns_a_new_event_and_leaves_the_original_alone(
    slug: str, config: dict[str, Any], choices: list[int]
) -> None:
    game = random_game(slug, config, choices)
    for event in game.log:
        before = copy.deepcopy(event)
        for viewer in viewers(game.scenario):
            seen = visible(game.scenario, event, viewer, settings=game.settings)
            assert event == before
            if seen is None:
                continue
            assert seen is not event
            assert type(seen) is type(event)
            for f in dataclasses.fields(event):
                value = getattr(event, f.name)
                if isinstance(value, Mapping):
                    assert getattr(seen, f.name) is not value, (viewer, event.TYPE, f.name)
            if viewer == INSTRUCTOR:
                assert seen == event
    for state in states_at(game.log, game.marks):
        for viewer in viewers(game.scenario):
            snapshot = view(state, viewer)
            assert json.loads(json.dumps(snapshot, allow_nan=False)) == snapshot


def test_redacted_scenario_is_a_fresh_copy_every_time() -> None:
    scenario = configured("gatt", "all")
    first = redacted_scenario(scenario, "A1")
    first["countries"][0]["chief"]["briefing"] = "changed"
    first["title"] = "changed"
    assert redacted_scenario(scenario, "A1") == scenario.to_dict()
    assert redacted_scenario(scenario, INSTRUCTOR) == scenario.to_dict()
    by_hand = dataclasses.replace(scenario, no_agreement=cast(Any, [0.0, 0.0]))  # unhashable
    assert redacted_scenario(by_hand, "A1") == by_hand.to_dict()
    assert redacted_scenario(by_hand, "A1")["no_agreement"] == {"a_cut": 0, "b_cut": 0}


def test_every_viewer_sees_the_display_names_of_seat_holders() -> None:
    scenario = configured("gatt")
    game = Driver(scenario)
    game.do(c.TakeSeat(SYSTEM, "A1", "player-1", name="  Ana   Lopez "))
    game.do(c.TakeSeat(INSTRUCTOR, "B2", "bot", bot=True, name="Bot"))
    for viewer in viewers(scenario):
        seats = view(game.state, viewer)["seats"]
        assert seats["A1"]["name"] == "Ana Lopez"
        assert (seats["B2"]["name"], seats["B2"]["bot"]) == ("Bot", True)
        assert seats["A2"]["name"] == ""
        taken = visible(scenario, game.log[1], viewer)
        assert isinstance(taken, e.SeatTaken) and taken.name == "Ana Lopez"


def test_the_proposal_history_of_the_round_with_each_status() -> None:
    scenario = configured("gatt")
    game = Driver(scenario, GameDefaults(attempts=2))
    game.start()
    game.do(c.Propose("A-chief", (4, 8)))  # 1: superseded by 3: closed
    game.do(c.Propose("B-chief", (8, 4)))  # 2: withdrawn
    game.do(c.Propose("A-chief", (5, 7)))  # 3: still open when 4 is agreed
    game.do(c.Withdraw("B-chief", 2))
    game.do(c.Propose("B-chief", (5, 5)))  # 4
    game.do(c.Accept("A-chief", 4))
    expected = {1: "closed", 2: "withdrawn", 3: "closed", 4: "agreed"}
    for viewer in (INSTRUCTOR, "A1", "B-chief"):
        history = view(game.state, viewer)["proposal_history"]
        assert [(p["id"], p["status"]) for p in history] == sorted(expected.items())
        assert history[3] == {
            "id": 4,
            "by": "B-chief",
            "values": {"a_cut": 5, "b_cut": 5},
            "replies_to": None,
            "attempt": 1,
            "status": "agreed",
        }
    # Spectators see no Level I proposals, nor their history.
    assert view(game.state, SPECTATOR)["proposal_history"] == []


def test_the_proposal_history_starts_again_each_round() -> None:
    scenario = configured("gatt")
    game = Driver(scenario, GameDefaults(rounds=2))
    game.start()
    game.agree((5, 5))
    for member in (m for m in scenario.members if m.role == "constituent"):
        game.do(c.CastBallot(member.key, True))
    assert game.state.round == 2
    assert view(game.state, "A1")["proposal_history"] == []
    game.do(c.Propose("A-chief", (6, 6)))
    assert [p["id"] for p in view(game.state, "A1")["proposal_history"]] == [2]
