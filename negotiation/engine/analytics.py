"""Debrief analytics (DESIGN §5) as pure functions of a game's event log.

- Share of joint gains of the agreement: each country's pivotal surplus ``m_c`` over their sum.
- Distance to the Nash point: from the agreement to the nearest Nash point, each issue scaled
  by its range (0 = on a Nash point, 1 = a whole issue range away).
- Reciprocity between each pair of chiefs from their consecutive proposals: the concession a
  proposal gives the other side is the rise in the other side's ``m`` over the proposer's
  previous proposal. Specific reciprocity is the share of concessions answered by the
  partner's next proposal with a concession of 0.5x to 2x; diffuse reciprocity is
  ``1 - |sum A - sum B| / (sum|A| + sum|B|)``.
- Outcome label of each round (Keohane): harmony, cooperation, discord, involuntary or
  voluntary defection, with the reason in a sentence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from negotiation.engine import events as e
from negotiation.engine.rules import fold
from negotiation.engine.scenario import Scenario
from negotiation.engine.state import GameState
from negotiation.engine.winset import Analysis, pivotal_surplus

HARMONY = "harmony"
COOPERATION = "cooperation"
DISCORD = "discord"
INVOLUNTARY = "involuntary_defection"
VOLUNTARY = "voluntary_defection"


@dataclass(frozen=True, slots=True)
class Outcome:
    round: int
    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class Concession:
    """A proposal by ``by`` that moved ``to``'s pivotal surplus by ``amount``."""

    order: int
    by: str
    to: str
    amount: float


@dataclass(frozen=True, slots=True)
class Reciprocity:
    countries: tuple[str, str]
    specific: float | None
    diffuse: float | None
    concessions: tuple[Concession, ...]


def surpluses(scenario: Scenario, values: Sequence[float]) -> dict[str, float]:
    """Each country's pivotal surplus ``m_c`` at a point."""
    row = np.array([list(values)], dtype=np.float64)
    return {c.key: float(pivotal_surplus(scenario, c, row)[0]) for c in scenario.countries}


def share_of_gains(scenario: Scenario, values: Sequence[float]) -> dict[str, float] | None:
    """Each country's ``m_c / sum m`` at ``values``; None when the sum is not positive."""
    m = surpluses(scenario, values)
    if not all(math.isfinite(v) for v in m.values()):
        return None
    total = sum(m.values())
    if total <= 0:
        return None
    return {k: v / total for k, v in m.items()}


def distance_to_nash(analysis: Analysis, values: Sequence[float]) -> float | None:
    """Range-scaled Euclidean distance to the nearest Nash point; None without a zone."""
    nash = analysis.points(analysis.nash_indices)
    if nash.shape[0] == 0:
        return None
    ranges = np.array(analysis.scenario.ranges)
    scaled = (nash - np.array(values, dtype=np.float64)) / ranges
    return float(np.sqrt((scaled * scaled).sum(axis=1)).min())


def concessions(scenario: Scenario, proposals: Sequence[e.ProposalMade]) -> list[Concession]:
    """Every concession in the order the proposals were made."""
    chief_country = {c.chief.key: c.key for c in scenario.countries}
    previous: dict[str, dict[str, float]] = {}
    result: list[Concession] = []
    for order, proposal in enumerate(proposals):
        country = chief_country.get(proposal.by)
        if country is None:
            continue
        m = surpluses(scenario, proposal.values)
        before = previous.get(country)
        if before is not None:
            for other, value in m.items():
                if other == country:
                    continue
                if math.isfinite(value) and math.isfinite(before[other]):
                    result.append(Concession(order, country, other, value - before[other]))
        previous[country] = m
    return result


def reciprocity(
    scenario: Scenario, proposals: Sequence[e.ProposalMade], pair: tuple[str, str]
) -> Reciprocity:
    a, b = pair
    between = [c for c in concessions(scenario, proposals) if {c.by, c.to} == {a, b}]
    chief_country = {c.chief.key: c.key for c in scenario.countries}
    proposal_countries = [chief_country.get(p.by) for p in proposals]
    answered = 0
    positive = 0
    for concession in between:
        if concession.amount <= 0:
            continue
        positive += 1
        next_order = next(
            (
                order
                for order in range(concession.order + 1, len(proposals))
                if proposal_countries[order] == concession.to
            ),
            None,
        )
        reply = next((r for r in between if r.order == next_order and r.by == concession.to), None)
        if reply is not None and 0.5 * concession.amount <= reply.amount <= 2 * concession.amount:
            answered += 1
    specific = answered / positive if positive else None
    sum_a = sum(c.amount for c in between if c.by == a)
    sum_b = sum(c.amount for c in between if c.by == b)
    spread = sum(abs(c.amount) for c in between)
    diffuse = 1 - abs(sum_a - sum_b) / spread if spread > 0 else None
    return Reciprocity(pair, specific, diffuse, tuple(between))


def outcomes(state: GameState, analysis: Analysis) -> list[Outcome]:
    """The label of every round played, with its reason."""
    labels: list[Outcome] = []
    for record in state.rounds:
        if record.result == "agreement":
            if analysis.harmony:
                labels.append(
                    Outcome(
                        record.round,
                        HARMONY,
                        "Each country's best deal already lay inside the others' win-sets: "
                        "no adjustment was needed.",
                    )
                )
            else:
                labels.append(
                    Outcome(
                        record.round,
                        COOPERATION,
                        "The agreement was ratified after mutual adjustment: no country could "
                        "have had its best deal ratified abroad.",
                    )
                )
        elif record.result == "voluntary_defection":
            defectors = sorted(k for k, v in (record.compliance or {}).items() if not v)
            labels.append(
                Outcome(
                    record.round,
                    VOLUNTARY,
                    "The agreement entered into force, then "
                    + ", ".join(defectors)
                    + " chose to defect.",
                )
            )
        elif record.result == "involuntary_defection":
            labels.append(
                Outcome(
                    record.round,
                    INVOLUNTARY,
                    "The chiefs reached a tentative agreement but it was not ratified at home.",
                )
            )
        else:
            labels.append(
                Outcome(record.round, DISCORD, "The chiefs reached no agreement to ratify.")
            )
    return labels


@dataclass(frozen=True, slots=True)
class Debrief:
    outcome: Outcome | None
    rounds: tuple[Outcome, ...]
    agreement: tuple[float, ...] | None
    share_of_gains: dict[str, float] | None
    distance_to_nash: float | None
    reciprocity: tuple[Reciprocity, ...]

    def to_dict(self, scenario: Scenario) -> dict[str, Any]:
        def outcome_dict(o: Outcome) -> dict[str, Any]:
            return {"round": o.round, "label": o.label, "reason": o.reason}

        return {
            "outcome": outcome_dict(self.outcome) if self.outcome else None,
            "rounds": [outcome_dict(o) for o in self.rounds],
            "agreement": scenario.point_dict(self.agreement) if self.agreement else None,
            "share_of_gains": (
                {k: round(v, 6) for k, v in self.share_of_gains.items()}
                if self.share_of_gains
                else None
            ),
            "distance_to_nash": (
                round(self.distance_to_nash, 6) if self.distance_to_nash is not None else None
            ),
            "reciprocity": [
                {
                    "countries": list(r.countries),
                    "specific": round(r.specific, 6) if r.specific is not None else None,
                    "diffuse": round(r.diffuse, 6) if r.diffuse is not None else None,
                    "concessions": len(r.concessions),
                }
                for r in self.reciprocity
            ],
        }


def debrief(events: Iterable[e.Event], analysis: Analysis | None = None) -> Debrief:
    """Analytics of a whole game log. Raises ``ValueError`` if it does not start with
    ``GameCreated``."""
    log = list(events)
    state = fold(log)
    scenario = state.scenario
    analysis = analysis if analysis is not None else Analysis(scenario)
    rounds = outcomes(state, analysis)
    agreement = next((r.values for r in reversed(state.rounds) if r.values is not None), None)
    proposals = [event for event in log if isinstance(event, e.ProposalMade)]
    pairs = combinations([c.key for c in scenario.countries], 2)
    return Debrief(
        outcome=rounds[-1] if rounds else None,
        rounds=tuple(rounds),
        agreement=agreement,
        share_of_gains=share_of_gains(scenario, agreement) if agreement else None,
        distance_to_nash=distance_to_nash(analysis, agreement) if agreement else None,
        reciprocity=tuple(reciprocity(scenario, proposals, pair) for pair in pairs),
    )
