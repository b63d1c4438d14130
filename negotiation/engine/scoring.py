"""Scores (DESIGN §5) as pure functions of a game's event log.

- Member, per round: ``U(agreement) + t - r`` when an agreement entered into force that round,
  else 0 (``t`` is the side payment the member received on entry into force). A game's member
  score is the mean over the rounds played (rounds that ended with ``RoundEnded``), so scores
  of games with different numbers of rounds stay on one scale; 0 when no round was played.
- Country welfare: the weight-averaged score of its constituents (weights may be fractions).
- Reputation of a country: ``100 * (1 - (involuntary + 2 * voluntary) / tentative agreements)``,
  floored at 0; 100 when no tentative agreement was reached. Involuntary counts the tentative
  agreements the country failed to ratify; voluntary the times it defected at compliance.
- Chief: ``0.5 * welfare + 0.3 * own surplus + 0.2 * reputation``, the own surplus being the
  chief's ``U - r`` averaged like a member's (a chief receives no side payment).
- Compliance payoffs (the Prisoner's Dilemma of the compliance stage) are reported beside the
  scores, summed over rounds.

Voluntary defection: the agreement entered into force, then a government reneged. Its members
still score ``U(agreement) + t - r`` for that round, in every country: the agreement was
ratified and the side payments were paid on entry into force, and member utilities are defined
over the agreed text, not over who honours which part of it. The defection is priced where the
theory puts it: in the Prisoner's Dilemma payoffs of the compliance stage (temptation for the
defector, sucker for a partner who complied) and in the defector's reputation, which falls
twice as fast as for an involuntary defection, lowering its chief's score.

``Scores.to_dict`` is JSON-ready: every number is finite (or None), so it passes
``json.dumps(..., allow_nan=False)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from negotiation.engine.events import Event
from negotiation.engine.rules import fold
from negotiation.engine.scenario import Member, Scenario
from negotiation.engine.state import GameState, RoundRecord

IN_FORCE_RESULTS = ("agreement", "voluntary_defection")


def _json_number(value: float) -> float | None:
    """``value`` rounded to 6 decimals, or None when it is not finite."""
    return round(value, 6) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class CountryScore:
    country: str
    welfare: float
    reputation: float
    involuntary_defections: int
    voluntary_defections: int
    compliance_payoff: float


@dataclass(frozen=True, slots=True)
class Scores:
    members: dict[str, float]
    chiefs: dict[str, float]
    countries: dict[str, CountryScore]
    rounds_played: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers rounded to 6 decimals, a non-finite one as None."""
        return {
            "rounds_played": self.rounds_played,
            "members": {k: _json_number(v) for k, v in self.members.items()},
            "chiefs": {k: _json_number(v) for k, v in self.chiefs.items()},
            "countries": {
                k: {
                    "welfare": _json_number(c.welfare),
                    "reputation": _json_number(c.reputation),
                    "involuntary_defections": c.involuntary_defections,
                    "voluntary_defections": c.voluntary_defections,
                    "compliance_payoff": _json_number(c.compliance_payoff),
                }
                for k, c in self.countries.items()
            },
        }


def member_round_score(scenario: Scenario, member: Member, record: RoundRecord) -> float:
    """``U(x) + t - r`` for an agreement in force that round, else 0."""
    if record.result not in IN_FORCE_RESULTS or record.values is None:
        return 0.0
    transfer = record.transfers.get(member.key, 0)
    return scenario.utility_of(member, record.values) + transfer - member.reservation


def reputation(state: GameState, country: str) -> float:
    """The country's reputation, 0..100 (see the module docstring)."""
    agreements = state.tentative_agreements
    if agreements == 0:
        return 100.0
    defections = state.involuntary_defections.get(country, 0) + 2 * state.voluntary_defections.get(
        country, 0
    )
    return max(0.0, 100.0 * (1.0 - defections / agreements))


def score_state(state: GameState) -> Scores:
    """Scores from a folded state (its round records and defection counts)."""
    scenario = state.scenario
    records = state.rounds
    played = len(records)

    def mean_score(member: Member) -> float:
        if not played:
            return 0.0
        return sum(member_round_score(scenario, member, r) for r in records) / played

    members = {m.key: mean_score(m) for m in scenario.members if m.role == "constituent"}
    countries: dict[str, CountryScore] = {}
    chiefs: dict[str, float] = {}
    for country in scenario.countries:
        total = country.total_weight
        welfare = sum(float(m.weight / total) * members[m.key] for m in country.constituents)
        country_reputation = reputation(state, country.key)
        chiefs[country.chief.key] = (
            0.5 * welfare + 0.3 * mean_score(country.chief) + 0.2 * country_reputation
        )
        countries[country.key] = CountryScore(
            country=country.key,
            welfare=welfare,
            reputation=country_reputation,
            involuntary_defections=state.involuntary_defections.get(country.key, 0),
            voluntary_defections=state.voluntary_defections.get(country.key, 0),
            compliance_payoff=sum(
                (r.payoffs or {}).get(country.key, 0.0) for r in records if r.payoffs
            ),
        )
    return Scores(members=members, chiefs=chiefs, countries=countries, rounds_played=played)


def score_game(events: Iterable[Event]) -> Scores:
    """Scores of a game from its whole log (which starts with ``GameCreated``).

    Raises ``ValueError`` when the log does not start with ``GameCreated`` (``ScenarioError``,
    a ``ValueError``, when its scenario is corrupt).
    """
    return score_state(fold(events))
