"""Bots for empty seats: what a bot holding a seat would do now, as commands.

``bot_commands(state, seat, brain)`` is a pure function of the state: the shell calls it after
every change for each seat a bot holds and submits the commands it returns through ``decide``
like a player's (a command the game refuses by then is simply dropped).

- A constituent bot votes sincerely: yes iff ``U(x) + t > r + 1e-9`` with ``t`` the side
  payments promised to it, on straw polls and on the Level II ballot.
- A chief bot negotiates by monotone concession over the playable zone (the deals every country
  ratifies and every chief prefers to no agreement). It opens with the deal best for its own
  country (highest pivotal surplus ``m_c``, ties to the highest product of all ``m``), then
  concedes in ``CONCESSION_STEPS`` equal steps of ``m_c`` towards the Nash point, and accepts any
  proposal that its country would ratify, its chief prefers to no agreement and gives at least
  its current aspiration. Two bot chiefs therefore meet at the Nash point of the playable zone.
  With no playable zone it asks for its own best deal and accepts only what it can ratify at
  home, buying the missing votes with side payments when its budget allows.
- In the compliance stage a chief bot plays tit-for-tat (Axelrod): it complies first, then
  does what the other governments did in the last round with a compliance stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import cached_property

import numpy as np

from negotiation.engine import commands as c
from negotiation.engine.scenario import Country, Member, Scenario
from negotiation.engine.state import COMPLIANCE, LEVEL1, LEVEL2, GameState, Point, Proposal
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

#: A chief bot goes from its best deal to the Nash point in this many proposals.
CONCESSION_STEPS = 4
#: Surplus levels closer than this count as equal.
LEVEL_TOLERANCE = 1e-9


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


class BotBrain:
    """What chief bots know of a scenario: its playable zone and every country's surplus there.

    Built once per scenario and shared by every bot of every game that plays it.
    """

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.scenario = analysis.scenario

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
        return tuple(float(v) for v in self.candidate_points[self.nash_position])

    def levels(self, country: str) -> tuple[float, float]:
        """``country``'s best surplus in the playable zone and its surplus at the Nash point.

        Raises ``ValueError`` when the playable zone is empty.
        """
        own = self.surplus[country]
        nash = float(own[self.nash_position])
        return float(own.max()), nash

    def surplus_at(self, country: Country, point: Sequence[float]) -> float:
        row = np.array([list(point)], dtype=np.float64)
        return float(pivotal_surplus(self.scenario, country, row)[0])

    def aspiration(self, country: Country, previous: Point | None) -> float:
        """The surplus the country's bot asks for next: its best at first, then one step
        nearer the Nash point after each of its own proposals, never below the Nash point.

        Raises ``ValueError`` when the playable zone is empty.
        """
        best, nash = self.levels(country.key)
        if previous is None:
            return best
        step = (best - nash) / CONCESSION_STEPS
        return max(nash, self.surplus_at(country, previous) - step)

    def offer_for(self, country: Country, previous: Point | None) -> Point:
        """The country's bot's next proposal in the playable zone.

        The opening is its best deal (the highest product of surpluses on a tie). Each counter
        concedes: among the deals it likes less than ``previous`` but at least as much as its
        aspiration, the one with the highest product of surpluses; when the step is too small to
        reach another grid point, the smallest concession there is; with none left, the Nash
        point itself.
        Raises ``ValueError`` when the playable zone is empty.
        """
        own = self.surplus[country.key]
        aspiration = self.aspiration(country, previous)
        eligible = own >= aspiration - LEVEL_TOLERANCE
        if previous is not None:
            below_previous = own < self.surplus_at(country, previous) - LEVEL_TOLERANCE
            above_nash = own >= self.levels(country.key)[1] - LEVEL_TOLERANCE
            eligible &= below_previous
            if not eligible.any():
                fallback = below_previous & above_nash
                if not fallback.any():
                    return self.nash_point
                eligible = fallback & (own >= own[fallback].max() - LEVEL_TOLERANCE)
        scores = np.where(eligible, self.product, -np.inf)
        position = int(np.argmax(scores))
        return tuple(float(v) for v in self.candidate_points[position])

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


def bot_commands(state: GameState, seat: str, brain: BotBrain) -> list[c.Command]:
    """The commands a bot holding ``seat`` issues now; empty when it waits.

    Raises ``KeyError`` when ``seat`` is not a member of the scenario.
    """
    if state.paused or state.ended:
        return []
    member = state.scenario.member(seat)
    if member.role == "constituent":
        return _constituent(state, member)
    return _chief(state, member, brain)


def _constituent(state: GameState, member: Member) -> list[c.Command]:
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


def _chief(state: GameState, chief: Member, brain: BotBrain) -> list[c.Command]:
    if state.phase == LEVEL1:
        return _negotiate(state, chief, brain)
    if state.phase == COMPLIANCE and chief.country not in state.compliance_choices:
        return [c.ChooseCompliance(chief.key, _tit_for_tat(state, chief.country))]
    return []


def _tit_for_tat(state: GameState, country: str) -> bool:
    for record in reversed(state.rounds):
        if record.compliance is not None:
            return all(comply for key, comply in record.compliance.items() if key != country)
    return True


def _negotiate(state: GameState, chief: Member, brain: BotBrain) -> list[c.Command]:
    """Answer the newest proposal by another chief once: accept it, or counter it."""
    scenario = state.scenario
    country = scenario.country(chief.country)
    own: Proposal | None = max(
        (p for p in state.proposals.values() if p.by == chief.key),
        key=lambda p: p.proposal_id,
        default=None,
    )
    newest: Proposal | None = max(
        (p for p in state.proposals.values() if p.by != chief.key),
        key=lambda p: p.proposal_id,
        default=None,
    )
    playable = brain.candidates.size > 0
    if newest is None:
        if own is not None:
            return []
        opening = brain.offer_for(country, None) if playable else brain.fallback_offers[country.key]
        return [] if opening is None else [c.Propose(chief.key, opening)]
    accepted = state.proposals.get(state.acceptances.get(chief.key, 0))
    answered = (own is not None and own.proposal_id > newest.proposal_id) or (
        accepted is not None and accepted.values == newest.values
    )
    if answered:
        return []
    aspiration = brain.aspiration(country, own.values if own else None) if playable else None
    payments = _payments_to_accept(state, chief, country, newest.values, aspiration, brain)
    if payments is not None:
        # The same text may be on the table twice; accept its earliest tabling.
        earliest = min(p.proposal_id for p in state.proposals.values() if p.values == newest.values)
        return [*_set_offers(state, chief, payments), c.Accept(chief.key, earliest)]
    if playable:
        offer = brain.offer_for(country, own.values if own else None)
    else:
        fallback = brain.fallback_offers[country.key]
        if fallback is None or (own is not None and own.values == fallback):
            return []
        offer = fallback
    # A bot at the Nash point that is countered re-tables it: its offer stands, and the turn
    # passes to the others, whose concessions end there too.
    return [
        *_set_offers(state, chief, {}),
        c.Propose(chief.key, offer, replies_to=newest.proposal_id),
    ]


def _payments_to_accept(
    state: GameState,
    chief: Member,
    country: Country,
    point: Point,
    aspiration: float | None,
    brain: BotBrain,
) -> dict[str, int] | None:
    """The side payments (possibly none) under which the bot accepts ``point``, or None."""
    scenario = state.scenario
    if not votes_yes(scenario.utility_of(chief, point), chief.reservation):
        return None
    if aspiration is not None:
        if brain.surplus_at(country, point) < aspiration - LEVEL_TOLERANCE:
            return None
        return {}
    if ratifies(scenario, country, point, {}):
        return {}
    plan = cheapest_side_payment(scenario, country, point)
    if plan is None or plan.total > country.side_payment_budget:
        return None
    return dict(plan.transfers)


def _set_offers(state: GameState, chief: Member, wanted: Mapping[str, int]) -> list[c.Command]:
    """Commands that change the chief's standing offers to exactly ``wanted``; withdrawals
    first, so the budget is free before new promises are made."""
    current = state.offers.get(chief.key, {})
    withdraw = [
        c.OfferSidePayment(chief.key, member, 0)
        for member in sorted(current)
        if member not in wanted
    ]
    promise = [
        c.OfferSidePayment(chief.key, member, amount)
        for member, amount in sorted(wanted.items())
        if current.get(member) != amount
    ]
    return [*withdraw, *promise]
