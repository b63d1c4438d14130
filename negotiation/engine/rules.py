"""The rules of the two-level game (DESIGN §4) as ``decide`` and ``evolve``.

``decide(state, command, now)`` checks a command and returns the events it causes, including
every consequence (the last ballot counts the vote, which may put the agreement in force, end
the round and open the next one). It raises ``RuleViolation`` and nothing else. ``evolve`` folds
one event into the state; it is pure and never refuses. The engine never reads the clock: ``now``
(seconds since the epoch) comes from the caller and deadlines are stored in events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any, NoReturn

from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.scenario import (
    GameDefaults,
    Member,
    Scenario,
    ScenarioError,
    game_settings_from_dict,
    game_settings_to_dict,
    scenario_from_dict,
)
from negotiation.engine.state import (
    COMPLIANCE,
    ENDED,
    LEVEL1,
    LEVEL2,
    LOBBY,
    RECENT_MESSAGES,
    GameState,
    Message,
    Proposal,
    RoundRecord,
    SeatHolder,
    StrawPoll,
    changed,
)

MAX_TEXT = 2000
#: An instructor's announcement may be longer than a chat line.
MAX_ANNOUNCEMENT = 4000
MAX_PLAYER_ID = 200
MAX_DISPLAY_NAME = 40
MAX_EXTENSION = 86_400
#: Seconds by which a timer's deadline may differ from the state's and still be current.
DEADLINE_TOLERANCE = 1e-6

TABLE = "table"
CAUCUS_PREFIX = "caucus:"
PUBLIC = "public"


class RuleViolation(Exception):
    """A command broke a rule. ``code`` is stable (for clients and tests); ``message`` is a
    plain sentence for the player."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _refuse(code: str, message: str) -> NoReturn:
    raise RuleViolation(code, message)


# --------------------------------------------------------------------------------------------
# Creating and folding


def create_game(scenario: Scenario, settings: GameDefaults | None = None) -> e.GameCreated:
    """The first event of a new game's log."""
    return e.GameCreated(
        scenario=scenario.to_dict(),
        settings=game_settings_to_dict(settings if settings is not None else scenario.game),
    )


def initial_state(created: e.GameCreated) -> GameState:
    """The state right after ``GameCreated``. Raises ``ScenarioError`` for a corrupt payload."""
    return GameState(
        scenario=scenario_from_dict(created.scenario),
        settings=game_settings_from_dict(created.settings),
    )


def fold(events: Iterable[e.Event], state: GameState | None = None) -> GameState:
    """Replay: fold events into a state. Without ``state`` the first event must be
    ``GameCreated``. Raises ``ValueError`` when it is not, ``ScenarioError`` for a corrupt one."""
    iterator = iter(events)
    if state is None:
        first = next(iterator, None)
        if not isinstance(first, e.GameCreated):
            raise ValueError("a game's log must start with game_created")
        state = initial_state(first)
    for event in iterator:
        state = evolve(state, event)
    return state


# --------------------------------------------------------------------------------------------
# evolve


def _without(mapping: Mapping[Any, Any], *keys: Any) -> dict[Any, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def _with(mapping: Mapping[Any, Any], key: Any, value: Any) -> dict[Any, Any]:
    updated = dict(mapping)
    updated[key] = value
    return updated


def _seat_taken(s: GameState, ev: e.SeatTaken) -> GameState:
    return changed(s, seats=_with(s.seats, ev.seat, SeatHolder(ev.player, ev.bot, ev.name)))


def _seat_released(s: GameState, ev: e.SeatReleased) -> GameState:
    return changed(s, seats=_without(s.seats, ev.seat))


def _phase_changed(s: GameState, ev: e.PhaseChanged) -> GameState:
    updates: dict[str, Any] = {
        "phase": ev.phase,
        "round": ev.round,
        "attempt": ev.attempt,
        "deadline": ev.deadline,
    }
    if ev.round != s.round:
        updates.update(
            offers={},
            polls={},
            in_force=None,
            in_force_transfers={},
            round_failed_attempts=0,
            compliance_choices={},
            round_compliance=None,
            round_payoffs=None,
            last_count=None,
            round_proposals=(),
            withdrawn=frozenset(),
        )
    if ev.phase == LEVEL1:
        updates.update(proposals={}, acceptances={}, tentative=None, ballots={})
    elif ev.phase == LEVEL2:
        updates.update(ballots={})
    elif ev.phase == COMPLIANCE:
        updates.update(compliance_choices={})
    return changed(s, **updates)


def _proposal_made(s: GameState, ev: e.ProposalMade) -> GameState:
    superseded = [pid for pid, p in s.proposals.items() if p.by == ev.by]
    proposals = _without(s.proposals, *superseded)
    proposal = Proposal(ev.proposal_id, ev.by, ev.values, ev.replies_to, s.attempt)
    proposals[ev.proposal_id] = proposal
    acceptances = {k: v for k, v in s.acceptances.items() if v not in superseded}
    acceptances[ev.by] = ev.proposal_id
    return changed(
        s,
        proposals=proposals,
        acceptances=acceptances,
        next_proposal_id=max(s.next_proposal_id, ev.proposal_id + 1),
        round_proposals=(*s.round_proposals, proposal),
    )


def _proposal_withdrawn(s: GameState, ev: e.ProposalWithdrawn) -> GameState:
    return changed(
        s,
        proposals=_without(s.proposals, ev.proposal_id),
        acceptances={k: v for k, v in s.acceptances.items() if v != ev.proposal_id},
        withdrawn=s.withdrawn | {ev.proposal_id},
    )


def _proposal_accepted(s: GameState, ev: e.ProposalAccepted) -> GameState:
    return changed(s, acceptances=_with(s.acceptances, ev.by, ev.proposal_id))


def _tentative(s: GameState, ev: e.TentativeAgreement) -> GameState:
    proposal = s.proposals.get(ev.proposal_id) or Proposal(ev.proposal_id, "", ev.values, None)
    return changed(
        s,
        tentative=proposal,
        proposals={},
        acceptances={},
        tentative_agreements=s.tentative_agreements + 1,
    )


def _message(s: GameState, channel: str, by: str, text: str) -> GameState:
    messages = (*s.messages[-(RECENT_MESSAGES - 1) :], Message(channel, by, text))
    return changed(s, messages=messages)


def _chat(s: GameState, ev: e.ChatPosted) -> GameState:
    return _message(s, ev.channel, ev.by, ev.text)


def _statement(s: GameState, ev: e.StatementMade) -> GameState:
    return _message(s, PUBLIC, ev.by, ev.text)


def _announcement(s: GameState, ev: e.AnnouncementMade) -> GameState:
    return _message(s, PUBLIC, c.INSTRUCTOR, ev.text)


def _poll_opened(s: GameState, ev: e.StrawPollOpened) -> GameState:
    poll = StrawPoll(ev.poll_id, ev.by, ev.country, ev.values, {})
    return changed(
        s,
        polls=_with(s.polls, ev.poll_id, poll),
        next_poll_id=max(s.next_poll_id, ev.poll_id + 1),
    )


def _poll_answered(s: GameState, ev: e.StrawPollAnswered) -> GameState:
    poll = s.polls[ev.poll_id]
    updated = StrawPoll(
        poll.poll_id, poll.by, poll.country, poll.values, _with(poll.answers, ev.by, ev.yes)
    )
    return changed(s, polls=_with(s.polls, ev.poll_id, updated))


def _poll_closed(s: GameState, ev: e.StrawPollClosed) -> GameState:
    poll = s.polls[ev.poll_id]
    result = {
        "yes": ev.yes,
        "no": ev.no,
        "unanswered": ev.unanswered,
        "yes_weight": ev.yes_weight,
        "total_weight": ev.total_weight,
        "quota_met": ev.quota_met,
    }
    closed = StrawPoll(poll.poll_id, poll.by, poll.country, poll.values, poll.answers, True, result)
    return changed(s, polls=_with(s.polls, ev.poll_id, closed))


def _side_payment(s: GameState, ev: e.SidePaymentOffered) -> GameState:
    own = dict(s.offers.get(ev.by, {}))
    if ev.amount:
        own[ev.to] = ev.amount
    else:
        own.pop(ev.to, None)
    return changed(s, offers=_with(s.offers, ev.by, own))


def _ballot(s: GameState, ev: e.BallotCast) -> GameState:
    return changed(s, ballots=_with(s.ballots, ev.by, ev.yes))


def _counted(s: GameState, ev: e.BallotsCounted) -> GameState:
    count = {
        "proposal_id": ev.proposal_id,
        "values": ev.values,
        "ballots": dict(ev.ballots),
        "results": {
            r.country: {
                "ratified": r.ratified,
                "yes_weight": r.yes_weight,
                "total_weight": r.total_weight,
                "vetoed_by": list(r.vetoed_by),
            }
            for r in ev.results
        },
    }
    return changed(s, last_count=count)


def _in_force(s: GameState, ev: e.AgreementInForce) -> GameState:
    proposal = s.tentative or Proposal(ev.proposal_id, "", ev.values, None)
    return changed(s, in_force=proposal, in_force_transfers=dict(ev.transfers))


def _involuntary(s: GameState, ev: e.InvoluntaryDefection) -> GameState:
    counts = dict(s.involuntary_defections)
    for country in ev.countries:
        counts[country] = counts.get(country, 0) + 1
    return changed(
        s, involuntary_defections=counts, round_failed_attempts=s.round_failed_attempts + 1
    )


def _compliance_chosen(s: GameState, ev: e.ComplianceChosen) -> GameState:
    country = s.country_of(ev.by)
    return changed(s, compliance_choices=_with(s.compliance_choices, country, ev.comply))


def _compliance_resolved(s: GameState, ev: e.ComplianceResolved) -> GameState:
    counts = dict(s.voluntary_defections)
    for country, comply in ev.choices.items():
        if not comply:
            counts[country] = counts.get(country, 0) + 1
    return changed(
        s,
        round_compliance=dict(ev.choices),
        round_payoffs=dict(ev.payoffs),
        voluntary_defections=counts,
    )


def _round_ended(s: GameState, ev: e.RoundEnded) -> GameState:
    record = RoundRecord(
        round=ev.round,
        result=ev.result,
        values=ev.values,
        transfers=dict(s.in_force_transfers) if s.in_force is not None else {},
        compliance=s.round_compliance,
        payoffs=s.round_payoffs,
    )
    return changed(s, rounds=(*s.rounds, record), deadline=None, tentative=None)


def _paused(s: GameState, ev: e.GamePaused) -> GameState:
    return changed(s, paused=True, paused_remaining=ev.remaining, deadline=None)


def _resumed(s: GameState, ev: e.GameResumed) -> GameState:
    return changed(s, paused=False, paused_remaining=None, deadline=ev.deadline)


def _extended(s: GameState, ev: e.DeadlineExtended) -> GameState:
    if s.paused:
        remaining = (s.paused_remaining or 0.0) + ev.seconds
        return changed(s, paused_remaining=remaining)
    if s.deadline is None:
        return s
    return changed(s, deadline=s.deadline + ev.seconds)


def _ended(s: GameState, ev: e.GameEnded) -> GameState:
    return changed(
        s, phase=ENDED, deadline=None, paused=False, paused_remaining=None, end_reason=ev.reason
    )


def _created(s: GameState, ev: e.GameCreated) -> GameState:
    return s


_EVOLVERS: dict[type[e.Event], Callable[[GameState, Any], GameState]] = {
    e.GameCreated: _created,
    e.SeatTaken: _seat_taken,
    e.SeatReleased: _seat_released,
    e.PhaseChanged: _phase_changed,
    e.ProposalMade: _proposal_made,
    e.ProposalWithdrawn: _proposal_withdrawn,
    e.ProposalAccepted: _proposal_accepted,
    e.TentativeAgreement: _tentative,
    e.ChatPosted: _chat,
    e.StatementMade: _statement,
    e.AnnouncementMade: _announcement,
    e.StrawPollOpened: _poll_opened,
    e.StrawPollAnswered: _poll_answered,
    e.StrawPollClosed: _poll_closed,
    e.SidePaymentOffered: _side_payment,
    e.BallotCast: _ballot,
    e.BallotsCounted: _counted,
    e.AgreementInForce: _in_force,
    e.InvoluntaryDefection: _involuntary,
    e.ComplianceChosen: _compliance_chosen,
    e.ComplianceResolved: _compliance_resolved,
    e.RoundEnded: _round_ended,
    e.GamePaused: _paused,
    e.GameResumed: _resumed,
    e.DeadlineExtended: _extended,
    e.GameEnded: _ended,
}


def evolve(state: GameState, event: e.Event) -> GameState:
    """The state after ``event``; its ``seq`` counts the events folded so far.

    Raises ``KeyError`` only for an event type the engine does not know.
    """
    next_state = _EVOLVERS[type(event)](state, event)
    if next_state is state:
        next_state = changed(state)
    object.__setattr__(next_state, "seq", state.seq + 1)
    return next_state


# --------------------------------------------------------------------------------------------
# decide: checks shared by several commands


def _member(state: GameState, key: object) -> Member:
    if not isinstance(key, str):
        _refuse("unknown_seat", "That seat does not exist in this game.")
    try:
        return state.scenario.member(key)
    except KeyError:
        _refuse("unknown_seat", f"There is no seat {key!r} in this game.")


def _chief(state: GameState, command: c.Command) -> Member:
    member = _member(state, command.actor)
    if member.role != "chief":
        _refuse("not_a_chief", "Only a chief negotiator may do that.")
    return member


def _constituent(state: GameState, command: c.Command) -> Member:
    member = _member(state, command.actor)
    if member.role != "constituent":
        _refuse("not_a_constituent", "Only a constituent may do that.")
    return member


def _instructor(command: c.Command) -> None:
    if command.actor != c.INSTRUCTOR:
        _refuse("not_instructor", "Only the instructor may do that.")


def _phase(state: GameState, phase: str, what: str) -> None:
    if state.phase != phase:
        names = {LOBBY: "the lobby", LEVEL1: "Level I", LEVEL2: "Level II"}
        _refuse(
            "wrong_phase",
            f"You can {what} only during {names.get(phase, phase)}; the game is in "
            f"{names.get(state.phase, state.phase)}.",
        )


def _whole(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _refuse("bad_command", f"{name} must be a whole number.")
    return value


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        _refuse("bad_command", f"{name} must be true or false.")
    return value


def _text(value: object, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        _refuse("bad_command", "The text must be a string.")
    # A lone surrogate is not text (it becomes U+FFFD, and a pair its character), and NUL carries
    # no meaning; neither can be stored by every database.
    text = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.replace("\x00", "").strip()
    if not text:
        _refuse("empty_text", "Write something first.")
    if len(text) > limit:
        _refuse("text_too_long", f"Messages are at most {limit} characters.")
    return text


def _finite(value: object) -> float | None:
    """``value`` as a finite float; None for a bool, a non-number, NaN, an infinity or an int
    too large for a float (``float()`` would raise ``OverflowError``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _point(state: GameState, values: object) -> tuple[float, ...]:
    """The exact grid point for a proposed text. Raises ``RuleViolation`` (bad_values)."""
    issues = state.scenario.issues
    if not isinstance(values, tuple | list) or len(values) != len(issues):
        _refuse(
            "bad_values", f"A text gives exactly one value for each of the {len(issues)} issues."
        )
    numbers: list[float] = []
    for issue, value in zip(issues, values, strict=True):
        number = _finite(value)
        if number is None:
            _refuse("bad_values", f"{issue.label}: the value must be a finite number.")
        if issue.index_of(number) is None:
            _refuse(
                "bad_values",
                f"{issue.label}: {value} is not one of the allowed values "
                f"({_num(issue.min)} to {_num(issue.max)} in steps of {_num(issue.step)}).",
            )
        numbers.append(number)
    snapped = state.scenario.snap(numbers)
    assert snapped is not None
    return snapped


def _num(value: Fraction | float) -> str:
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else repr(as_float)


def _deadline(state: GameState, phase: str, now: float) -> float | None:
    seconds = {
        LEVEL1: state.settings.deadlines.level1,
        LEVEL2: state.settings.deadlines.level2,
        COMPLIANCE: state.settings.deadlines.compliance,
    }.get(phase)
    return None if seconds is None else now + seconds


class _Chain:
    """Events decided so far, and the state they lead to, so consequences can follow."""

    def __init__(self, state: GameState) -> None:
        self.state = state
        self.events: list[e.Event] = []

    def emit(self, event: e.Event) -> None:
        self.events.append(event)
        self.state = evolve(self.state, event)


def _close_open_polls(chain: _Chain) -> None:
    for poll in list(chain.state.polls.values()):
        if not poll.closed:
            chain.emit(_poll_result(chain.state, poll))


def _poll_result(state: GameState, poll: StrawPoll) -> e.StrawPollClosed:
    country = state.scenario.country(poll.country)
    yes_weight = sum(
        (m.weight for m in country.constituents if poll.answers.get(m.key)), Fraction(0)
    )
    yes = sum(1 for m in country.constituents if poll.answers.get(m.key) is True)
    no = sum(1 for m in country.constituents if poll.answers.get(m.key) is False)
    quota_met = country.quota_met(yes_weight)
    vetoes_agree = all(poll.answers.get(m.key) is True for m in country.constituents if m.veto)
    return e.StrawPollClosed(
        poll_id=poll.poll_id,
        country=poll.country,
        yes=yes,
        no=no,
        unanswered=len(country.constituents) - yes - no,
        yes_weight=float(yes_weight),
        total_weight=float(country.total_weight),
        quota_met=quota_met,
        would_ratify=quota_met and vetoes_agree,
    )


def _open_phase(chain: _Chain, phase: str, round_: int, attempt: int, now: float, why: str) -> None:
    chain.emit(
        e.PhaseChanged(
            phase=phase,
            round=round_,
            attempt=attempt,
            deadline=_deadline(chain.state, phase, now),
            reason=why,
        )
    )


def _end_round(chain: _Chain, now: float, result: str) -> None:
    state = chain.state
    _close_open_polls(chain)
    values = state.in_force.values if state.in_force is not None else None
    chain.emit(e.RoundEnded(round=state.round, result=result, values=values))
    if state.round < state.settings.rounds:
        _open_phase(chain, LEVEL1, state.round + 1, 1, now, "next_round")
    else:
        chain.emit(e.GameEnded(reason="all_rounds_played"))


def _reach_tentative_agreement(chain: _Chain, proposal: Proposal, now: float) -> None:
    _close_open_polls(chain)
    chain.emit(e.TentativeAgreement(proposal_id=proposal.proposal_id, values=proposal.values))
    _open_phase(chain, LEVEL2, chain.state.round, chain.state.attempt, now, "tentative_agreement")


def _count_ballots(chain: _Chain, now: float) -> None:
    state = chain.state
    assert state.tentative is not None
    text = state.tentative
    ballots: dict[str, bool | None] = {}
    results: list[e.CountryResult] = []
    for country in state.scenario.countries:
        yes_weight = Fraction(0)
        vetoed_by: list[str] = []
        for member in country.constituents:
            ballot = state.ballots.get(member.key)
            ballots[member.key] = ballot
            if ballot:
                yes_weight += member.weight
            elif member.veto:
                vetoed_by.append(member.key)
        results.append(
            e.CountryResult(
                country=country.key,
                ratified=country.quota_met(yes_weight) and not vetoed_by,
                yes_weight=float(yes_weight),
                total_weight=float(country.total_weight),
                vetoed_by=tuple(vetoed_by),
            )
        )
    chain.emit(
        e.BallotsCounted(
            proposal_id=text.proposal_id,
            values=text.values,
            ballots=ballots,
            results=tuple(results),
        )
    )
    failed = tuple(r.country for r in results if not r.ratified)
    if not failed:
        transfers: dict[str, int] = {}
        for offers in state.offers.values():
            for recipient, amount in offers.items():
                transfers[recipient] = transfers.get(recipient, 0) + amount
        chain.emit(
            e.AgreementInForce(
                proposal_id=text.proposal_id, values=text.values, transfers=transfers
            )
        )
        if state.settings.compliance:
            _open_phase(chain, COMPLIANCE, state.round, state.attempt, now, "agreement_in_force")
        else:
            _end_round(chain, now, "agreement")
        return
    attempts_left = state.settings.attempts - state.round_failed_attempts - 1
    chain.emit(
        e.InvoluntaryDefection(
            proposal_id=text.proposal_id, countries=failed, attempts_left=attempts_left
        )
    )
    if attempts_left > 0:
        _open_phase(chain, LEVEL1, state.round, state.attempt + 1, now, "involuntary_defection")
    else:
        _end_round(chain, now, "involuntary_defection")


def _resolve_compliance(chain: _Chain, now: float) -> None:
    _end_round(chain, now, _compliance_result(chain))


def _compliance_result(chain: _Chain) -> str:
    """Resolve the compliance stage (a missing choice counts as comply) and return the round's
    result: ``agreement`` or ``voluntary_defection``."""
    state = chain.state
    payoffs = state.settings.payoffs
    choices = {
        country.key: state.compliance_choices.get(country.key, True)
        for country in state.scenario.countries
    }
    results: dict[str, float] = {}
    for key, comply in choices.items():
        others_comply = all(v for k, v in choices.items() if k != key)
        if comply:
            results[key] = payoffs.reward if others_comply else payoffs.sucker
        else:
            results[key] = payoffs.temptation if others_comply else payoffs.punishment
    chain.emit(e.ComplianceResolved(choices=choices, payoffs=results))
    return "agreement" if all(choices.values()) else "voluntary_defection"


def _expire_phase(chain: _Chain, now: float) -> None:
    """What happens when the current phase's time is up."""
    state = chain.state
    if state.phase == LEVEL1:
        result = "involuntary_defection" if state.round_failed_attempts else "no_agreement"
        _end_round(chain, now, result)
    elif state.phase == LEVEL2:
        _count_ballots(chain, now)
    elif state.phase == COMPLIANCE:
        _resolve_compliance(chain, now)


# --------------------------------------------------------------------------------------------
# decide: one function per command


def _take_seat(state: GameState, cmd: c.TakeSeat, now: float, chain: _Chain) -> None:
    if cmd.actor not in (c.SYSTEM, c.INSTRUCTOR):
        _refuse("not_allowed", "Seats are assigned by the server or the instructor.")
    member = _member(state, cmd.seat)
    if not isinstance(cmd.player, str) or not cmd.player or len(cmd.player) > MAX_PLAYER_ID:
        _refuse("bad_command", "A player id is a non-empty string of at most 200 characters.")
    bot = _flag(cmd.bot, "bot")
    if not isinstance(cmd.name, str) or len(cmd.name.strip()) > MAX_DISPLAY_NAME:
        _refuse("bad_command", f"A display name is text of at most {MAX_DISPLAY_NAME} characters.")
    holder = state.seats.get(member.key)
    if holder is not None and holder.player == cmd.player and holder.bot == bot:
        _refuse("already_seated", "That player already holds this seat.")
    if holder is not None and cmd.actor != c.INSTRUCTOR:
        _refuse("seat_taken", "Someone else holds this seat.")
    chain.emit(
        e.SeatTaken(seat=member.key, player=cmd.player, bot=bot, name=" ".join(cmd.name.split()))
    )


def _release_seat(state: GameState, cmd: c.ReleaseSeat, now: float, chain: _Chain) -> None:
    if cmd.actor not in (c.SYSTEM, c.INSTRUCTOR):
        _refuse("not_allowed", "Seats are released by the server or the instructor.")
    member = _member(state, cmd.seat)
    if member.key not in state.seats:
        _refuse("seat_empty", "Nobody holds that seat.")
    chain.emit(e.SeatReleased(seat=member.key))


def _start(state: GameState, cmd: c.StartGame, now: float, chain: _Chain) -> None:
    _instructor(cmd)
    _phase(state, LOBBY, "start the game")
    _open_phase(chain, LEVEL1, 1, 1, now, "game_started")


def _propose(state: GameState, cmd: c.Propose, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    _phase(state, LEVEL1, "make proposals")
    values = _point(state, cmd.values)
    replies_to = cmd.replies_to
    if replies_to is not None:
        replies_to = _whole(replies_to, "replies_to")
        if not 1 <= replies_to < state.next_proposal_id:
            _refuse("unknown_proposal", "The proposal you are answering does not exist.")
    chain.emit(
        e.ProposalMade(
            proposal_id=state.next_proposal_id, by=chief.key, values=values, replies_to=replies_to
        )
    )
    _agree_if_every_chief_accepts_one_text(chain, now)


def _open_proposal(state: GameState, proposal_id: object) -> Proposal:
    pid = _whole(proposal_id, "proposal_id")
    proposal = state.proposals.get(pid)
    if proposal is None:
        _refuse("unknown_proposal", "That proposal is not on the table.")
    return proposal


def _withdraw(state: GameState, cmd: c.Withdraw, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    _phase(state, LEVEL1, "withdraw proposals")
    proposal = _open_proposal(state, cmd.proposal_id)
    if proposal.by != chief.key:
        _refuse("not_your_proposal", "You can withdraw only your own proposals.")
    chain.emit(e.ProposalWithdrawn(proposal_id=proposal.proposal_id, by=chief.key))


def _accept(state: GameState, cmd: c.Accept, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    _phase(state, LEVEL1, "accept proposals")
    proposal = _open_proposal(state, cmd.proposal_id)
    if state.acceptances.get(chief.key) == proposal.proposal_id:
        _refuse("already_accepted", "You have already accepted this proposal.")
    chain.emit(e.ProposalAccepted(proposal_id=proposal.proposal_id, by=chief.key))
    _agree_if_every_chief_accepts_one_text(chain, now)


def _agree_if_every_chief_accepts_one_text(chain: _Chain, now: float) -> None:
    """A tentative agreement when every chief has accepted the identical text, whichever of
    its tablings each accepted (tabling a text counts as accepting it). The agreement is on
    the text's earliest tabling still on the table."""
    state = chain.state
    texts = set()
    for chief in state.scenario.chiefs:
        accepted = state.acceptances.get(chief.key)
        proposal = state.proposals.get(accepted) if accepted is not None else None
        if proposal is None:
            return
        texts.add(proposal.values)
    if len(texts) != 1:
        return
    (text,) = texts
    earliest = min(
        (p for p in state.proposals.values() if p.values == text), key=lambda p: p.proposal_id
    )
    _reach_tentative_agreement(chain, earliest, now)


def _post_chat(state: GameState, cmd: c.Chat, now: float, chain: _Chain) -> None:
    member = _member(state, cmd.actor)
    if not isinstance(cmd.channel, str):
        _refuse("unknown_channel", "There is no such chat channel.")
    if cmd.channel == TABLE:
        if member.role != "chief":
            _refuse("not_in_channel", "Only the chief negotiators sit at the table.")
    elif cmd.channel.startswith(CAUCUS_PREFIX):
        country = cmd.channel[len(CAUCUS_PREFIX) :]
        if country not in {co.key for co in state.scenario.countries}:
            _refuse("unknown_channel", "There is no such chat channel.")
        if member.country != country:
            _refuse("not_in_channel", "You may speak only in your own country's caucus.")
    else:
        _refuse("unknown_channel", "There is no such chat channel.")
    chain.emit(e.ChatPosted(channel=cmd.channel, by=member.key, text=_text(cmd.text)))


def _make_statement(state: GameState, cmd: c.MakeStatement, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    chain.emit(e.StatementMade(by=chief.key, text=_text(cmd.text)))


def _open_poll(state: GameState, cmd: c.OpenStrawPoll, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    _phase(state, LEVEL1, "run straw polls")
    values = _point(state, cmd.values)
    if any(p.by == chief.key and not p.closed for p in state.polls.values()):
        _refuse("poll_already_open", "Close your open straw poll before starting another.")
    chain.emit(
        e.StrawPollOpened(
            poll_id=state.next_poll_id, by=chief.key, country=chief.country, values=values
        )
    )


def _poll(state: GameState, poll_id: object) -> StrawPoll:
    pid = _whole(poll_id, "poll_id")
    poll = state.polls.get(pid)
    if poll is None:
        _refuse("unknown_poll", "There is no such straw poll.")
    if poll.closed:
        _refuse("poll_closed", "That straw poll is closed.")
    return poll


def _answer_poll(state: GameState, cmd: c.AnswerStrawPoll, now: float, chain: _Chain) -> None:
    member = _constituent(state, cmd)
    _phase(state, LEVEL1, "answer straw polls")
    poll = _poll(state, cmd.poll_id)
    yes = _flag(cmd.yes, "yes")
    if member.country != poll.country:
        _refuse("not_polled", "That straw poll is for another country's constituents.")
    if member.key in poll.answers:
        _refuse("already_answered", "You have already answered this straw poll.")
    chain.emit(e.StrawPollAnswered(poll_id=poll.poll_id, by=member.key, yes=yes))
    updated = chain.state.polls[poll.poll_id]
    country = state.scenario.country(poll.country)
    if len(updated.answers) == len(country.constituents):
        chain.emit(_poll_result(chain.state, updated))


def _close_poll(state: GameState, cmd: c.CloseStrawPoll, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    _phase(state, LEVEL1, "close straw polls")
    poll = _poll(state, cmd.poll_id)
    if poll.by != chief.key:
        _refuse("not_your_poll", "You can close only your own straw polls.")
    chain.emit(_poll_result(state, poll))


def _offer(state: GameState, cmd: c.OfferSidePayment, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    _phase(state, LEVEL1, "offer side payments")
    recipient = _member(state, cmd.to)
    if recipient.role != "constituent":
        _refuse("not_a_recipient", "Side payments go to constituents, not to chiefs.")
    amount = _whole(cmd.amount, "amount")
    if amount < 0:
        _refuse("bad_amount", "A side payment cannot be negative.")
    own = state.offers.get(chief.key, {})
    if own.get(recipient.key, 0) == amount:
        _refuse("no_change", "That offer is already standing.")
    budget = state.scenario.country(chief.country).side_payment_budget
    committed = sum(v for k, v in own.items() if k != recipient.key)
    if committed + amount > budget:
        _refuse(
            "over_budget",
            f"Your side-payment budget is {budget} points; {committed} are already promised.",
        )
    chain.emit(e.SidePaymentOffered(by=chief.key, to=recipient.key, amount=amount))


def _cast_ballot(state: GameState, cmd: c.CastBallot, now: float, chain: _Chain) -> None:
    member = _constituent(state, cmd)
    _phase(state, LEVEL2, "vote")
    yes = _flag(cmd.yes, "yes")
    if member.key in state.ballots:
        _refuse("already_voted", "You have already voted; the ballot is final.")
    chain.emit(e.BallotCast(by=member.key, yes=yes))
    voters = sum(len(co.constituents) for co in state.scenario.countries)
    if len(chain.state.ballots) == voters:
        _count_ballots(chain, now)


def _comply(state: GameState, cmd: c.ChooseCompliance, now: float, chain: _Chain) -> None:
    chief = _chief(state, cmd)
    if state.phase != COMPLIANCE:
        _refuse("wrong_phase", "Compliance is chosen only after an agreement enters into force.")
    comply = _flag(cmd.comply, "comply")
    if chief.country in state.compliance_choices:
        _refuse("already_chosen", "Your government has already chosen.")
    chain.emit(e.ComplianceChosen(by=chief.key, comply=comply))
    if len(chain.state.compliance_choices) == len(state.scenario.countries):
        _resolve_compliance(chain, now)


def _fire(state: GameState, cmd: c.FireDeadline, now: float, chain: _Chain) -> None:
    if cmd.actor != c.SYSTEM:
        _refuse("not_allowed", "Deadlines are fired by the server's clock.")
    deadline = _finite(cmd.deadline)
    if deadline is None:
        _refuse("bad_command", "deadline must be a finite number.")
    # An absolute tolerance only: a relative one would treat a deadline moved by a second
    # (an extension, a pause) as the same deadline at today's epoch times.
    if state.deadline is None or abs(state.deadline - deadline) > DEADLINE_TOLERANCE:
        _refuse("stale_deadline", "That deadline is no longer current.")
    if now < state.deadline:
        _refuse("deadline_not_reached", "The deadline has not passed yet.")
    _expire_phase(chain, now)


def _advance(state: GameState, cmd: c.AdvancePhase, now: float, chain: _Chain) -> None:
    _instructor(cmd)
    if state.phase == LOBBY:
        _open_phase(chain, LEVEL1, 1, 1, now, "game_started")
    else:
        _expire_phase(chain, now)


def _pause(state: GameState, cmd: c.PauseGame, now: float, chain: _Chain) -> None:
    _instructor(cmd)
    if state.paused:
        _refuse("already_paused", "The game is already paused.")
    remaining = None if state.deadline is None else max(0.0, state.deadline - now)
    chain.emit(e.GamePaused(remaining=remaining))


def _resume(state: GameState, cmd: c.ResumeGame, now: float, chain: _Chain) -> None:
    _instructor(cmd)
    if not state.paused:
        _refuse("not_paused", "The game is not paused.")
    remaining = state.paused_remaining
    chain.emit(e.GameResumed(deadline=None if remaining is None else now + remaining))


def _extend(state: GameState, cmd: c.ExtendDeadline, now: float, chain: _Chain) -> None:
    _instructor(cmd)
    seconds = _whole(cmd.seconds, "seconds")
    if not 1 <= seconds <= MAX_EXTENSION:
        _refuse("bad_duration", f"Extend by 1 to {MAX_EXTENSION} seconds.")
    current = state.paused_remaining if state.paused else state.deadline
    if current is None:
        _refuse("no_deadline", "This phase has no deadline to extend.")
    chain.emit(e.DeadlineExtended(seconds=seconds))


def _announce(state: GameState, cmd: c.Announce, now: float, chain: _Chain) -> None:
    _instructor(cmd)
    chain.emit(e.AnnouncementMade(text=_text(cmd.text, MAX_ANNOUNCEMENT)))


def _end(state: GameState, cmd: c.EndGame, now: float, chain: _Chain) -> None:
    _instructor(cmd)
    if state.phase in (LEVEL1, LEVEL2, COMPLIANCE):
        _close_open_polls(chain)
        if state.phase == COMPLIANCE:
            # The choices already made count, as they would at the deadline.
            result = _compliance_result(chain)
        elif state.in_force is not None:
            result = "agreement"
        elif state.round_failed_attempts:
            result = "involuntary_defection"
        else:
            result = "no_agreement"
        values = state.in_force.values if state.in_force is not None else None
        chain.emit(e.RoundEnded(round=state.round, result=result, values=values))
    chain.emit(e.GameEnded(reason="ended_by_instructor"))


_DECIDERS: dict[type[c.Command], Callable[[GameState, Any, float, _Chain], None]] = {
    c.TakeSeat: _take_seat,
    c.ReleaseSeat: _release_seat,
    c.StartGame: _start,
    c.Propose: _propose,
    c.Withdraw: _withdraw,
    c.Accept: _accept,
    c.Chat: _post_chat,
    c.MakeStatement: _make_statement,
    c.OpenStrawPoll: _open_poll,
    c.AnswerStrawPoll: _answer_poll,
    c.CloseStrawPoll: _close_poll,
    c.OfferSidePayment: _offer,
    c.CastBallot: _cast_ballot,
    c.ChooseCompliance: _comply,
    c.FireDeadline: _fire,
    c.AdvancePhase: _advance,
    c.PauseGame: _pause,
    c.ResumeGame: _resume,
    c.ExtendDeadline: _extend,
    c.Announce: _announce,
    c.EndGame: _end,
}

#: Commands accepted while the game is paused (a second pause is refused as already_paused).
_ALLOWED_WHILE_PAUSED = (
    c.PauseGame,
    c.ResumeGame,
    c.EndGame,
    c.ExtendDeadline,
    c.Announce,
    c.TakeSeat,
    c.ReleaseSeat,
    c.Chat,
    c.MakeStatement,
)


def _run(state: GameState, command: c.Command, now: float) -> _Chain:
    handler = _DECIDERS.get(type(command))
    if handler is None:
        _refuse("unknown_command", "The game does not know that command.")
    clock = _finite(now)
    if clock is None:
        _refuse("bad_command", "The server's clock gave no valid time.")
    if state.phase == ENDED:
        _refuse("game_over", "The game is over.")
    if state.paused and not isinstance(command, _ALLOWED_WHILE_PAUSED):
        _refuse("game_paused", "The instructor has paused the game.")
    if not isinstance(getattr(command, "actor", None), str):
        _refuse("unknown_seat", "The command names no actor.")
    chain = _Chain(state)
    try:
        handler(state, command, clock, chain)
    except RuleViolation:
        raise
    except (
        TypeError,
        ValueError,
        KeyError,
        AttributeError,
        ArithmeticError,
        ScenarioError,
    ) as error:
        raise RuleViolation("bad_command", f"The command could not be read: {error}") from None
    return chain


def decide(state: GameState, command: c.Command, now: float) -> list[e.Event]:
    """The events ``command`` causes at time ``now``, consequences included.

    Raises ``RuleViolation`` (and nothing else) when the command breaks a rule.
    """
    return _run(state, command, now).events


def apply(state: GameState, command: c.Command, now: float) -> tuple[GameState, list[e.Event]]:
    """``decide`` and the state its events lead to. Raises ``RuleViolation``."""
    chain = _run(state, command, now)
    return chain.state, chain.events
