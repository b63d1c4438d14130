"""Bots for empty seats: what a bot holding a seat would do now, as commands.

``bot_commands(state, seat, brain, strategy)`` is a pure function of the state (and, for the
hard bargainer and the prober, of the time): the shell calls it after every change for each seat a bot holds
and submits the commands it returns through ``decide`` like a player's, in order (a command
the game refuses by then is simply dropped). A bot keeps no memory: everything it reacts to is
in the state (the proposals tabled this round, the straw polls, the acceptances).

Strategies (``CHIEF_STRATEGIES``, ``CONSTITUENT_STRATEGIES``; docs/bots.md says more):

- Constituent ``sincere`` (the only one, the default): votes yes iff ``U(x) + t > r + 1e-9``
  with ``t`` the side payments promised to it, on straw polls and on the Level II ballot.
- Chief ``conceder`` (the default, the bots' behaviour before strategies existed): monotone
  concession over the playable zone (the deals every country ratifies and every chief prefers
  to no agreement). It opens with the deal best for its own country (highest pivotal surplus
  ``m_c``, ties to the highest product of all ``m``), concedes in ``CONCESSION_STEPS`` equal
  steps of ``m_c`` towards the Nash point at every counter whatever the others do, and accepts
  any proposal that its country would ratify, its chief prefers to no agreement and gives at
  least its current aspiration. Two conceders therefore meet at the Nash point.
- Chief ``tit_for_tat``: the same ladder, but after its opening and one first concession it
  concedes a step only when every other chief conceded in its last proposal (lowered its own
  country's surplus); otherwise it re-tables its standing text. It accepts what meets its
  aspiration, and also a text tabled without a concession that already gives its country its
  surplus at the Nash point (firmness at a fair deal is not met with firmness).
- Chief ``hard_bargainer``: concedes only in answer to concessions, like ``tit_for_tat`` but
  without its unconditional first concession, in steps half as large (``HARD_STEPS``) and
  never below ``HARD_KEEP`` of the way from the Nash point to its best deal; it accepts only
  what it asks for. When it stands firm and the newest proposal merely re-tables its author's
  text (the talks have stalled), or in the last ``ENDGAME_SHARE`` of Level I (when the caller
  passes ``now``), it takes the best ratifiable deal on the table rather than none.
- Chief ``nash_seeker``: tables the Nash point of the playable zone at once, re-tables it
  when countered and accepts anything at least as good for its country.
- Chief ``prober``: proposes and accepts like the conceder, but before accepting a text it
  opens a straw poll on it in its own country (after promising any side payments it plans)
  and accepts only when the poll's result says its country would ratify; a poll that says no
  is answered with a counter-proposal. It reads the result as a person would, once the poll
  closes (when every member has answered, or when it closes it itself late in Level I).

Common to every chief strategy:

- It answers the newest proposal by another chief once: accepts it, counters it, or re-tables
  its own text to show it stands firm. When its own last proposal was already such a
  re-tabling and every proposal since is one too, nobody has moved: it stays silent and lets
  the phase deadline decide. Every bot proposal is an opening, a concession on a finite ladder
  or such a re-tabling, so bots alone always fall silent or agree.
- A text in its name that its country would not ratify or its chief likes less than no deal
  (tabled by a person who held the seat before the bot) is replaced by its opening.
- When the playable zone has a point, every text it tables lies in it: a person's text
  outside the zone is never re-tabled, nor held as a position to concede from.
- With no playable zone it asks for its own best deal among those its country ratifies and
  accepts only what it can ratify at home, buying the missing votes with side payments when
  its budget allows (the prober polls before accepting here too).
- In the compliance stage it plays tit-for-tat (Axelrod): it complies first, then does what
  the other governments did in the last round with a compliance stage. Compliance is the same
  for every strategy so that a tournament compares negotiating styles only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from negotiation.engine import commands as c
from negotiation.engine.scenario import Country, Member, Scenario
from negotiation.engine.state import (
    COMPLIANCE,
    LEVEL1,
    LEVEL2,
    GameState,
    Point,
    Proposal,
    StrawPoll,
)
from negotiation.engine.utility import TIE_EPSILON, votes_yes
from negotiation.engine.winset import (
    Analysis,
    FloatArray,
    IntArray,
    cheapest_side_payment,
    grid_points,
    pivotal_surplus,
    utility_at_points,
    utility_grid,
)

#: A conceding chief bot goes from its best deal to the Nash point in this many proposals.
CONCESSION_STEPS = 4
#: The hard bargainer's steps: this many would take it from its best deal to the Nash point.
HARD_STEPS = 8
#: The hard bargainer never proposes less than this share of the way from its surplus at the
#: Nash point to its best surplus.
HARD_KEEP = 0.5
#: In this last share of Level I the hard bargainer takes the best ratifiable deal on the table.
ENDGAME_SHARE = 0.2
#: Surplus levels closer than this count as equal.
LEVEL_TOLERANCE = 1e-9

CONCEDER = "conceder"
TIT_FOR_TAT = "tit_for_tat"
HARD_BARGAINER = "hard_bargainer"
NASH_SEEKER = "nash_seeker"
PROBER = "prober"
SINCERE = "sincere"


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """A bot strategy as the instructor sees it: its key, a short label and what it does."""

    key: str
    label: str
    description: str


CHIEF_STRATEGIES: Mapping[str, StrategyInfo] = {
    info.key: info
    for info in (
        StrategyInfo(
            CONCEDER,
            "Steady conceder",
            "Opens with its own best deal and concedes a step towards the Nash point at every "
            "counter-proposal, whatever the others do; accepts any ratifiable deal that gives "
            "its country what it currently asks for.",
        ),
        StrategyInfo(
            TIT_FOR_TAT,
            "Tit-for-tat conceder",
            "Opens with its own best deal and makes one concession; after that it concedes a "
            "step only when the other chiefs conceded in their last proposals, and answers "
            "firmness by re-tabling its own text. Accepts what it asks for, or a firm offer "
            "that already gives its country its share at the Nash point.",
        ),
        StrategyInfo(
            HARD_BARGAINER,
            "Hard bargainer",
            "Opens with its own best deal and concedes in small steps, never below half way "
            "from the Nash point to its best deal; accepts only deals that leave it a large "
            "share, but takes the best ratifiable deal on the table rather than none when the "
            "talks stall or Level I is nearly over.",
        ),
        StrategyInfo(
            NASH_SEEKER,
            "Nash seeker",
            "Proposes the Nash point of the playable zone at once, stands by it, and accepts "
            "anything at least as good for its country.",
        ),
        StrategyInfo(
            PROBER,
            "Prober",
            "Proposes like the steady conceder, but before accepting a deal it runs a straw "
            "poll of its own constituents on it and accepts only if the poll shows that its "
            "country would ratify.",
        ),
    )
}
CONSTITUENT_STRATEGIES: Mapping[str, StrategyInfo] = {
    SINCERE: StrategyInfo(
        SINCERE,
        "Sincere voter",
        "Votes yes, on straw polls and on the ballot, exactly when the deal plus any side "
        "payment promised to it beats its reservation value.",
    )
}
DEFAULT_CHIEF_STRATEGY = CONCEDER
DEFAULT_CONSTITUENT_STRATEGY = SINCERE


def transfers_to(state: GameState, member_key: str) -> int:
    """The side payments every chief has promised ``member_key`` so far this round."""
    return sum(offers.get(member_key, 0) for offers in state.offers.values())


def ratifies(
    scenario: Scenario, country: Country, point: Sequence[float], transfers: Mapping[str, int]
) -> bool:
    """Whether ``country`` ratifies ``point`` if every constituent votes sincerely."""
    yes_weight = sum(
        (
            m.weight
            for m in country.constituents
            if votes_yes(scenario.utility_of(m, point), m.reservation, transfers.get(m.key, 0))
        ),
        start=Fraction(0),
    )
    vetoes_agree = all(
        votes_yes(scenario.utility_of(m, point), m.reservation, transfers.get(m.key, 0))
        for m in country.constituents
        if m.veto
    )
    return vetoes_agree and country.quota_met(yes_weight)


def poll_verdict(scenario: Scenario, poll: StrawPoll) -> bool | None:
    """Whether the poll's answers show that its country would ratify its text: True or False
    once the answers so far settle it (a closed poll always does: a missing answer is a no, as
    on the ballot), None while the members yet to answer could still tip it.

    Raises ``KeyError`` when the poll's country is not in the scenario.
    """
    country = scenario.country(poll.country)
    yes = Fraction(0)
    pending = Fraction(0)
    vetoes_pending = False
    for member in country.constituents:
        answer = poll.answers.get(member.key)
        if answer is None and not poll.closed:
            pending += member.weight
            vetoes_pending |= member.veto
        elif answer:
            yes += member.weight
        elif member.veto:
            return False
    if not country.quota_met(yes + pending):
        return False
    if country.quota_met(yes) and not vetoes_pending:
        return True
    return None


class BotBrain:
    """What chief bots know of a scenario: its playable zone and every country's surplus there.

    Built once per scenario and shared by every bot of every game that plays it. Its only
    mutable part is a memo of surpluses at points, which never changes an answer.
    """

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.scenario = analysis.scenario
        self._surplus_memo: dict[tuple[str, Point], float] = {}

    @cached_property
    def candidates(self) -> IntArray:
        """Flat grid indices of the playable zone, ascending."""
        return np.flatnonzero(self.analysis.playable_zone)

    @cached_property
    def candidate_points(self) -> FloatArray:
        return grid_points(self.scenario, self.candidates)

    @cached_property
    def surplus(self) -> dict[str, FloatArray]:
        """Each country's pivotal surplus at every candidate."""
        return {
            country.key: pivotal_surplus(self.scenario, country, self.candidate_points)
            for country in self.scenario.countries
        }

    @cached_property
    def product(self) -> FloatArray:
        product = np.ones(self.candidates.size, dtype=np.float64)
        for values in self.surplus.values():
            product *= values
        return product

    @property
    def playable(self) -> bool:
        """Whether the playable zone has a point."""
        return bool(self.candidates.size)

    def playable_at(self, point: Sequence[float]) -> bool:
        """Whether ``point`` lies in the playable zone."""
        return self.analysis.contains(self.analysis.playable_zone, point)

    @cached_property
    def nash_position(self) -> int:
        """Position (in ``candidates``) of the Nash point of the playable zone; the first one on
        a tie. Raises ``ValueError`` when the playable zone is empty."""
        if self.candidates.size == 0:
            raise ValueError("the playable zone is empty")
        return int(np.argmax(self.product))

    @cached_property
    def nash_point(self) -> Point:
        """The Nash point of the playable zone. Raises ``ValueError`` when it is empty."""
        return self._point_at(self.nash_position)

    def _point_at(self, position: int) -> Point:
        return tuple(float(v) for v in self.candidate_points[position])

    def levels(self, country: str) -> tuple[float, float]:
        """``country``'s best surplus in the playable zone and its surplus at the Nash point.

        Raises ``ValueError`` when the playable zone is empty.
        """
        own = self.surplus[country]
        nash = float(own[self.nash_position])
        return float(own.max()), nash

    def floor(self, country: str, keep: float = 0.0) -> float:
        """The lowest surplus a bot of ``country`` proposes: ``keep`` of the way from its
        surplus at the Nash point to its best. Raises ``ValueError`` for an empty zone."""
        best, nash = self.levels(country)
        return nash + keep * (best - nash)

    def surplus_at(self, country: Country, point: Sequence[float]) -> float:
        """``country``'s pivotal surplus at ``point`` (``-inf`` where its quota is unreachable)."""
        key = (country.key, tuple(point))
        cached = self._surplus_memo.get(key)
        if cached is None:
            row = np.array([list(point)], dtype=np.float64)
            cached = float(pivotal_surplus(self.scenario, country, row)[0])
            self._surplus_memo[key] = cached
        return cached

    def aspiration(
        self,
        country: Country,
        previous: Point | None,
        steps: int = CONCESSION_STEPS,
        keep: float = 0.0,
    ) -> float:
        """The surplus the country's bot asks for next: its best at first, then one step
        (``1/steps`` of the way from its best to the Nash point) below its previous proposal
        after each of its own proposals, never below its floor (see ``floor``).

        Raises ``ValueError`` when the playable zone is empty.
        """
        best, nash = self.levels(country.key)
        if previous is None:
            return best
        step = (best - nash) / steps
        return max(self.floor(country.key, keep), self.surplus_at(country, previous) - step)

    def offer_for(
        self,
        country: Country,
        previous: Point | None,
        steps: int = CONCESSION_STEPS,
        keep: float = 0.0,
    ) -> Point:
        """The country's bot's next proposal in the playable zone.

        The opening is its best deal (the highest product of surpluses on a tie). Each counter
        concedes: among the deals it likes less than ``previous`` but at least as much as its
        aspiration, the one with the highest product of surpluses; when the step is too small to
        reach another grid point, the smallest concession there is above its floor. With none
        left it stays at ``previous`` when that is at or above its floor and in the playable
        zone, else it asks for the deal with the highest product of surpluses above its floor
        (with ``keep = 0``, the Nash point itself). Every offer lies in the playable zone, even
        when ``previous`` does not (a person who held the seat before the bot tabled it).
        Raises ``ValueError`` when the playable zone is empty.
        """
        own = self.surplus[country.key]
        aspiration = self.aspiration(country, previous, steps, keep)
        eligible = own >= aspiration - LEVEL_TOLERANCE
        if previous is not None:
            floor = self.floor(country.key, keep)
            previous_level = self.surplus_at(country, previous)
            below_previous = own < previous_level - LEVEL_TOLERANCE
            above_floor = own >= floor - LEVEL_TOLERANCE
            eligible &= below_previous
            if not eligible.any():
                fallback = below_previous & above_floor
                if not fallback.any():
                    if keep == 0.0:
                        return self.nash_point
                    if previous_level >= floor - LEVEL_TOLERANCE and self.playable_at(previous):
                        return tuple(previous)
                    eligible = above_floor
                else:
                    eligible = fallback & (own >= own[fallback].max() - LEVEL_TOLERANCE)
        scores = np.where(eligible, self.product, -np.inf)
        return self._point_at(int(np.argmax(scores)))

    @cached_property
    def fallback_offers(self) -> dict[str, Point | None]:
        """Without a playable zone: each chief's best deal for itself among those its own
        country ratifies, else among all it prefers to no agreement; None when it prefers no
        deal at all to every one (a proposal counts as its own acceptance)."""
        offers: dict[str, Point | None] = {}
        for country in self.scenario.countries:
            chief_likes = utility_grid(self.scenario, country.chief, self.analysis.axes) > (
                country.chief.reservation + TIE_EPSILON
            )
            pool = np.flatnonzero(self.analysis.winsets[country.key] & chief_likes)
            if pool.size == 0:
                pool = np.flatnonzero(chief_likes)
            if pool.size == 0:
                offers[country.key] = None
                continue
            points = grid_points(self.scenario, pool)
            utilities = utility_at_points(self.scenario, country.chief, points)
            offers[country.key] = tuple(float(v) for v in points[int(np.argmax(utilities))])
        return offers


def bot_commands(
    state: GameState,
    seat: str,
    brain: BotBrain,
    strategy: str | None = None,
    *,
    now: float | None = None,
) -> list[c.Command]:
    """The commands a bot holding ``seat`` issues now, to be submitted in order; empty when it
    waits.

    ``strategy`` is a key of ``CHIEF_STRATEGIES`` for a chief's seat or of
    ``CONSTITUENT_STRATEGIES`` for a constituent's; None plays the role's default. ``now``
    (seconds, the clock ``decide`` will be given) lets the hard bargainer see the Level I
    deadline coming; without it, it relies on the talks stalling.
    Raises ``KeyError`` when ``seat`` is not a member of the scenario and ``ValueError`` when
    ``strategy`` is not a strategy of the seat's role.
    """
    member = state.scenario.member(seat)
    registry = CHIEF_STRATEGIES if member.role == "chief" else CONSTITUENT_STRATEGIES
    if strategy is not None and strategy not in registry:
        known = ", ".join(registry)
        raise ValueError(f"{strategy!r} is not a {member.role} strategy (known: {known})")
    if state.paused or state.ended:
        return []
    if member.role == "constituent":
        return _sincere_constituent(state, member)
    talks = _Talks.of(state, member, brain, now)
    if state.phase == LEVEL1:
        return _CHIEF_POLICIES[strategy or DEFAULT_CHIEF_STRATEGY].negotiate(talks)
    if state.phase == COMPLIANCE and member.country not in state.compliance_choices:
        return [c.ChooseCompliance(member.key, _tit_for_tat_compliance(state, member.country))]
    return []


def _sincere_constituent(state: GameState, member: Member) -> list[c.Command]:
    scenario = state.scenario
    transfer = transfers_to(state, member.key)
    if state.phase == LEVEL2 and state.tentative is not None and member.key not in state.ballots:
        utility = scenario.utility_of(member, state.tentative.values)
        return [c.CastBallot(member.key, votes_yes(utility, member.reservation, transfer))]
    if state.phase == LEVEL1:
        for poll in sorted(state.polls.values(), key=lambda p: p.poll_id):
            if poll.closed or poll.country != member.country or member.key in poll.answers:
                continue
            utility = scenario.utility_of(member, poll.values)
            return [
                c.AnswerStrawPoll(
                    member.key, poll.poll_id, votes_yes(utility, member.reservation, transfer)
                )
            ]
    return []


def _tit_for_tat_compliance(state: GameState, country: str) -> bool:
    for record in reversed(state.rounds):
        if record.compliance is not None:
            return all(comply for key, comply in record.compliance.items() if key != country)
    return True


# --------------------------------------------------------------------------------------------
# What a chief bot reads from the state


@dataclass(frozen=True)
class _Talks:
    """The Level I talks as one chief bot sees them now."""

    state: GameState
    chief: Member
    country: Country
    brain: BotBrain
    now: float | None
    #: This chief's open proposal, if any.
    own: Proposal | None
    #: The newest open proposal by another chief, if any.
    newest: Proposal | None
    #: Every proposal of the current attempt, in the order tabled (withdrawn ones included).
    history: tuple[Proposal, ...]

    @classmethod
    def of(cls, state: GameState, chief: Member, brain: BotBrain, now: float | None) -> _Talks:
        own = max(
            (p for p in state.proposals.values() if p.by == chief.key),
            key=lambda p: p.proposal_id,
            default=None,
        )
        newest = max(
            (p for p in state.proposals.values() if p.by != chief.key),
            key=lambda p: p.proposal_id,
            default=None,
        )
        history = tuple(p for p in state.round_proposals if p.attempt == state.attempt)
        return cls(
            state=state,
            chief=chief,
            country=state.scenario.country(chief.country),
            brain=brain,
            now=now,
            own=own,
            newest=newest,
            history=history,
        )

    @property
    def scenario(self) -> Scenario:
        return self.state.scenario

    def mine(self, point: Sequence[float]) -> float:
        """This chief's country's pivotal surplus at ``point``."""
        return self.brain.surplus_at(self.country, point)

    def proposals_by(self, seat: str) -> list[Proposal]:
        return [p for p in self.history if p.by == seat]

    def _previous(self, proposal: Proposal) -> Proposal | None:
        earlier = [
            p for p in self.history if p.by == proposal.by and p.proposal_id < proposal.proposal_id
        ]
        return earlier[-1] if earlier else None

    def is_retabling(self, proposal: Proposal) -> bool:
        """Whether ``proposal`` repeats its author's previous text of this attempt."""
        previous = self._previous(proposal)
        return previous is not None and previous.values == proposal.values

    def is_concession(self, proposal: Proposal) -> bool:
        """Whether ``proposal`` lowered its author's own country's surplus below its author's
        previous proposal of this attempt (an opening concedes nothing)."""
        previous = self._previous(proposal)
        if previous is None:
            return False
        author = self.scenario.country(self.scenario.member(proposal.by).country)
        before = self.brain.surplus_at(author, previous.values)
        after = self.brain.surplus_at(author, proposal.values)
        return after < before - LEVEL_TOLERANCE

    def answered(self) -> bool:
        """Whether this chief has already answered the newest proposal by another chief."""
        if self.newest is None:
            return True
        if self.own is not None and self.own.proposal_id > self.newest.proposal_id:
            return True
        return self.accepts_already(self.newest.values)

    def stalemate(self) -> bool:
        """Whether nobody has moved since this chief's own last proposal: it re-tabled its
        text, and every proposal by the others since re-tabled theirs."""
        if self.own is None or not self.is_retabling(self.own):
            return False
        later = [
            p
            for p in self.history
            if p.by != self.chief.key and p.proposal_id > self.own.proposal_id
        ]
        return all(self.is_retabling(p) for p in later)

    def earliest_tabling(self, values: Point) -> int:
        """The id of the earliest open proposal with these values (the one the rules agree on)."""
        return min(p.proposal_id for p in self.state.proposals.values() if p.values == values)

    def accepts_already(self, values: Point) -> bool:
        """Whether this chief's standing acceptance is of a tabling of ``values``."""
        accepted = self.state.proposals.get(self.state.acceptances.get(self.chief.key, 0))
        return accepted is not None and accepted.values == values

    def in_endgame(self) -> bool:
        """Whether Level I is in its last ``ENDGAME_SHARE`` (only when the time is known)."""
        length = self.state.settings.deadlines.level1
        deadline = self.state.deadline
        if self.now is None or deadline is None or not length:
            return False
        return deadline - self.now <= ENDGAME_SHARE * length


# --------------------------------------------------------------------------------------------
# Chief strategies


class _ChiefPolicy:
    """The steady conceder; the other strategies override parts of it."""

    #: Steps from the best deal to the Nash point, and the share of that way always kept.
    steps = CONCESSION_STEPS
    keep = 0.0

    def negotiate(self, talks: _Talks) -> list[c.Command]:
        """Answer the newest proposal by another chief once: accept it, counter it, or re-table
        the standing text."""
        if talks.newest is None or talks.answered():
            if talks.own is None and talks.newest is not None:
                return []
            if talks.own is not None and self.stands_by(talks, talks.own.values):
                return []
            # Nothing on the table yet, or a text it would not accept stands in its name (a
            # person held the seat before the bot): it tables its opening.
            opening = self.opening(talks)
            if opening is None or (talks.own is not None and opening == talks.own.values):
                return []
            return [c.Propose(talks.chief.key, opening)]
        if talks.brain.playable:
            return self._negotiate_in_zone(talks, talks.newest)
        return self._negotiate_without_zone(talks, talks.newest)

    def stands_by(self, talks: _Talks, values: Point) -> bool:
        """Whether its country ratifies ``values`` unpaid and its chief prefers it to no deal."""
        chief = talks.chief
        return votes_yes(talks.scenario.utility_of(chief, values), chief.reservation) and ratifies(
            talks.scenario, talks.country, values, {}
        )

    def opening(self, talks: _Talks) -> Point | None:
        if talks.brain.playable:
            return talks.brain.offer_for(talks.country, None, self.steps, self.keep)
        return talks.brain.fallback_offers[talks.country.key]

    # The playable zone is not empty ---------------------------------------------------------

    def next_offer(self, talks: _Talks) -> Point:
        previous = talks.own.values if talks.own else None
        return talks.brain.offer_for(talks.country, previous, self.steps, self.keep)

    def threshold(self, talks: _Talks, offer: Point) -> float:
        """The least surplus at which it accepts a proposal now."""
        previous = talks.own.values if talks.own else None
        return talks.brain.aspiration(talks.country, previous, self.steps, self.keep)

    def acceptable(self, talks: _Talks, proposal: Proposal, offer: Point) -> bool:
        chief = talks.chief
        if not votes_yes(talks.scenario.utility_of(chief, proposal.values), chief.reservation):
            return False
        surplus = talks.mine(proposal.values)
        # A positive surplus is exactly a text its country ratifies without side payments.
        return surplus > 0 and surplus >= self.threshold(talks, offer) - LEVEL_TOLERANCE

    def settle(self, talks: _Talks) -> list[c.Command] | None:
        """Commands that take a deal on the table although it is below the threshold, or None
        to go on bargaining (the steady conceder always goes on)."""
        return None

    def _negotiate_in_zone(self, talks: _Talks, newest: Proposal) -> list[c.Command]:
        offer = self.next_offer(talks)
        if self.acceptable(talks, newest, offer):
            return self.accept(talks, newest.values, {})
        settled = self.settle(talks)
        if settled is not None:
            return settled
        return self.counter(talks, newest, offer)

    def accept(self, talks: _Talks, values: Point, payments: Mapping[str, int]) -> list[c.Command]:
        """Promise ``payments`` and accept the earliest tabling of ``values``."""
        return [
            *_set_offers(talks.state, talks.chief, payments),
            c.Accept(talks.chief.key, talks.earliest_tabling(values)),
        ]

    def counter(self, talks: _Talks, newest: Proposal, offer: Point) -> list[c.Command]:
        """Table ``offer`` in reply to ``newest``; re-tabling the standing text shows that the
        bot stands firm, unless nobody has moved since it last did so."""
        if talks.own is not None and offer == talks.own.values and talks.stalemate():
            return []
        return [
            *_set_offers(talks.state, talks.chief, {}),
            c.Propose(talks.chief.key, offer, replies_to=newest.proposal_id),
        ]

    # No playable zone -----------------------------------------------------------------------

    def _negotiate_without_zone(self, talks: _Talks, newest: Proposal) -> list[c.Command]:
        payments = _payments_to_ratify(talks, newest.values)
        if payments is not None:
            return self.accept(talks, newest.values, payments)
        fallback = talks.brain.fallback_offers[talks.country.key]
        if fallback is None or (talks.own is not None and talks.own.values == fallback):
            return []
        return [
            *_set_offers(talks.state, talks.chief, {}),
            c.Propose(talks.chief.key, fallback, replies_to=newest.proposal_id),
        ]


class _Reciprocal(_ChiefPolicy):
    """Concedes a step only when every other chief that has proposed this attempt conceded
    in its last proposal; otherwise it re-tables its standing text."""

    #: Whether its first counter concedes whatever the others did.
    first_concession = True

    def concedes_now(self, talks: _Talks) -> bool:
        if self.first_concession and len(talks.proposals_by(talks.chief.key)) <= 1:
            return True
        last_by_others: dict[str, Proposal] = {}
        for proposal in talks.history:
            if proposal.by != talks.chief.key:
                last_by_others[proposal.by] = proposal
        return all(talks.is_concession(p) for p in last_by_others.values())

    def next_offer(self, talks: _Talks) -> Point:
        # A standing text outside the playable zone (tabled by a person who held the seat
        # before the bot) is no position to hold: the bot moves onto its ladder.
        if (
            talks.own is None
            or self.concedes_now(talks)
            or not talks.brain.playable_at(talks.own.values)
        ):
            return super().next_offer(talks)
        return talks.own.values

    def threshold(self, talks: _Talks, offer: Point) -> float:
        if talks.own is not None and offer == talks.own.values:
            return talks.mine(talks.own.values)
        return super().threshold(talks, offer)


class _TitForTat(_Reciprocal):
    def acceptable(self, talks: _Talks, proposal: Proposal, offer: Point) -> bool:
        if super().acceptable(talks, proposal, offer):
            return True
        # A chief that stands firm on a fair deal is not punished with firmness.
        _best, nash = talks.brain.levels(talks.country.key)
        chief = talks.chief
        return (
            not talks.is_concession(proposal)
            and talks.mine(proposal.values) >= nash - LEVEL_TOLERANCE
            and votes_yes(talks.scenario.utility_of(chief, proposal.values), chief.reservation)
        )


class _HardBargainer(_Reciprocal):
    steps = HARD_STEPS
    keep = HARD_KEEP
    first_concession = False

    def settle(self, talks: _Talks) -> list[c.Command] | None:
        """Take the best ratifiable deal on the table when it stands firm and the newest
        proposal re-tables its author's text (the talks have stalled), or when Level I is
        nearly over."""
        assert talks.newest is not None
        standing = talks.own is not None and self.next_offer(talks) == talks.own.values
        stalled = standing and talks.is_retabling(talks.newest)
        if not (stalled or talks.in_endgame()):
            return None
        return _take_best_on_table(self, talks)

    def _negotiate_without_zone(self, talks: _Talks, newest: Proposal) -> list[c.Command]:
        if talks.in_endgame():
            taken = _take_best_on_table(self, talks)
            if taken is not None:
                return taken
        return super()._negotiate_without_zone(talks, newest)


class _NashSeeker(_ChiefPolicy):
    def stands_by(self, talks: _Talks, values: Point) -> bool:
        """Whether its country ratifies ``values`` unpaid and its chief prefers it to no deal."""
        chief = talks.chief
        return votes_yes(talks.scenario.utility_of(chief, values), chief.reservation) and ratifies(
            talks.scenario, talks.country, values, {}
        )

    def opening(self, talks: _Talks) -> Point | None:
        if talks.brain.playable:
            return talks.brain.nash_point
        return super().opening(talks)

    def next_offer(self, talks: _Talks) -> Point:
        return talks.brain.nash_point

    def threshold(self, talks: _Talks, offer: Point) -> float:
        return talks.brain.levels(talks.country.key)[1]


class _Prober(_ChiefPolicy):
    def counter(self, talks: _Talks, newest: Proposal, offer: Point) -> list[c.Command]:
        """Tabling a text another chief has on the table would accept it: poll it first, and
        stand on its own text instead when its poll said no (silently, when that text lies
        outside the playable zone: a person who held the seat before the bot tabled it, and a
        bot tables no text outside the zone)."""
        on_table = any(
            p.values == offer and p.by != talks.chief.key for p in talks.state.proposals.values()
        )
        if on_table and not talks.accepts_already(offer):
            poll = _latest_poll(talks, offer)
            if poll is None or not poll.closed or poll_verdict(talks.scenario, poll):
                return self.accept(talks, offer, {})
            if (
                talks.own is None
                or talks.own.values == offer
                or not talks.brain.playable_at(talks.own.values)
            ):
                return []
            offer = talks.own.values
        return super().counter(talks, newest, offer)

    def accept(self, talks: _Talks, values: Point, payments: Mapping[str, int]) -> list[c.Command]:
        """Accept only after a straw poll of its own country on ``values`` says it ratifies;
        open that poll (after promising ``payments``) when there is none yet, and counter when
        it says no.

        Like a person it reads only the poll's result, once every member has answered (the
        rules then close it); near the end of Level I (when the time is known) it closes the
        poll itself and reads what has come in, a missing answer counting as no."""
        poll = _latest_poll(talks, values)
        if poll is None:
            own_open = [
                p for p in talks.state.polls.values() if p.by == talks.chief.key and not p.closed
            ]
            return [
                *_set_offers(talks.state, talks.chief, payments),
                *(c.CloseStrawPoll(talks.chief.key, p.poll_id) for p in own_open),
                c.OpenStrawPoll(talks.chief.key, values),
            ]
        if not poll.closed:
            if talks.in_endgame():
                return [c.CloseStrawPoll(talks.chief.key, poll.poll_id)]
            return []
        if poll_verdict(talks.scenario, poll):
            return super().accept(talks, values, payments)
        newest = talks.newest
        assert newest is not None
        if talks.brain.playable:
            return self.counter(talks, newest, self.next_offer(talks))
        fallback = talks.brain.fallback_offers[talks.country.key]
        if fallback is None or (talks.own is not None and talks.own.values == fallback):
            return []
        return [
            *_set_offers(talks.state, talks.chief, {}),
            c.Propose(talks.chief.key, fallback, replies_to=newest.proposal_id),
        ]


_CHIEF_POLICIES: dict[str, _ChiefPolicy] = {
    CONCEDER: _ChiefPolicy(),
    TIT_FOR_TAT: _TitForTat(),
    HARD_BARGAINER: _HardBargainer(),
    NASH_SEEKER: _NashSeeker(),
    PROBER: _Prober(),
}
assert set(_CHIEF_POLICIES) == set(CHIEF_STRATEGIES)


def _latest_poll(talks: _Talks, values: Point) -> StrawPoll | None:
    """This chief's latest straw poll of this round on ``values``."""
    polls = [
        p for p in talks.state.polls.values() if p.by == talks.chief.key and p.values == values
    ]
    return max(polls, key=lambda p: p.poll_id, default=None)


def _take_best_on_table(policy: _ChiefPolicy, talks: _Talks) -> list[c.Command] | None:
    """Accept the open proposal by another chief that most chiefs already accept (then the one
    best for this chief's country, then the earliest) among those its country would ratify,
    with side payments it can afford, and its chief prefers to no agreement. Empty when it
    already accepts that text; None when there is none."""
    state = talks.state
    options: list[tuple[int, float, int, Point, dict[str, int]]] = []
    seen: set[Point] = set()
    for proposal in sorted(state.proposals.values(), key=lambda p: p.proposal_id):
        if proposal.by == talks.chief.key or proposal.values in seen:
            continue
        seen.add(proposal.values)
        payments = _payments_to_ratify(talks, proposal.values)
        if payments is None:
            continue
        support = sum(
            1
            for pid in state.acceptances.values()
            if pid in state.proposals and state.proposals[pid].values == proposal.values
        )
        options.append(
            (
                -support,
                -talks.mine(proposal.values),
                proposal.proposal_id,
                proposal.values,
                payments,
            )
        )
    if not options:
        return None
    *_, values, payments = min(options, key=lambda option: option[:3])
    if talks.accepts_already(values):
        return []
    return policy.accept(talks, values, payments)


def _payments_to_ratify(talks: _Talks, point: Point) -> dict[str, int] | None:
    """The side payments (possibly none) under which the chief's country ratifies ``point``,
    if it can afford them and its chief prefers ``point`` to no agreement; else None."""
    scenario = talks.scenario
    chief, country = talks.chief, talks.country
    if not votes_yes(scenario.utility_of(chief, point), chief.reservation):
        return None
    if ratifies(scenario, country, point, {}):
        return {}
    plan = cheapest_side_payment(scenario, country, point)
    if plan is None or plan.total > country.side_payment_budget:
        return None
    return dict(plan.transfers)


def _set_offers(state: GameState, chief: Member, wanted: Mapping[str, int]) -> list[c.Command]:
    """Commands that change the chief's standing offers to exactly ``wanted``: every offer
    that falls (withdrawals included) before any that rises, so the budget never overflows on
    the way to a total within it."""
    current = state.offers.get(chief.key, {})
    members = sorted(set(current) | set(wanted))
    lower = [
        c.OfferSidePayment(chief.key, member, wanted.get(member, 0))
        for member in members
        if wanted.get(member, 0) < current.get(member, 0)
    ]
    higher = [
        c.OfferSidePayment(chief.key, member, wanted[member])
        for member in members
        if wanted.get(member, 0) > current.get(member, 0)
    ]
    return [*lower, *higher]
