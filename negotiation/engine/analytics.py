"""Debrief analytics (DESIGN §5) as pure functions of a game's scenario and event log.

- Share of joint gains of the agreement: each country's pivotal surplus ``m_c`` over their sum,
  with the side payments actually paid on entry into force counted in ``m_c`` (a member's
  surplus is ``U + t - r``, as in its score). Without them a country that ratified only thanks
  to a side payment would show a negative share of a deal it gained from.
- Distance to the Nash point: from the agreement to the nearest Nash point (so a tie between
  several Nash points is resolved in the agreement's favour), each issue scaled by its range:
  0 = on a Nash point, 1 = a whole issue range away. None when the zone of agreement is empty.
- Reciprocity between each pair of chiefs from their consecutive proposals. The concession a
  proposal gives another country is the rise in that country's ``m`` over the proposer's
  previous proposal in the same round. Specific reciprocity is the share of positive
  concessions answered by the partner's next proposal with a concession of 0.5x to 2x (both
  ends included); diffuse reciprocity is ``1 - |sum A - sum B| / (sum|A| + sum|B|)`` over the
  whole game, signed concessions (retreats count against their maker).
- Outcome label of each round (Keohane): harmony, cooperation, discord, involuntary or
  voluntary defection, with the reason in a sentence.

Choices where DESIGN §5 leaves room:

- Only chiefs' proposals count: a ``ProposalMade`` by any other seat is ignored.
- The first proposal a chief makes in a round concedes nothing: each round is a new
  negotiation, so a fresh opening after last round's agreement is not a retreat. Attempts
  within a round (after an involuntary defection) continue the same negotiation.
- A proposal may cross a win-set boundary: ``m`` is continuous across it, so the concession is
  still the plain rise (from -8 to 2 is a concession of 10).
- A country whose quota can never be met (e.g. quota 1, strict) has ``m = -inf`` at every
  point; no concession to it is defined and none is recorded.
- Concessions are rounded to ``CONCESSION_DECIMALS`` decimals, so floating-point noise (two
  points with the same true surplus computed as 55.00000000000001 and 55.0) is neither a
  concession nor pushes an exact 0.5x or 2x reply out of the band.
- Harmony is a property of the scenario (each country's best point already inside the others'
  win-sets) and labels a ratified round only when the agreement itself lies in the zone of
  agreement: a deal ratified only thanks to side payments needed adjustment, so it is
  cooperation even in a harmonious scenario.
- Discord is a round with no tentative agreement. A round that saw a tentative agreement fail
  at home is involuntary defection, whether it ended when the attempts ran out, when Level I
  timed out after a failure, or when the instructor ended it.

Every number in ``Debrief.to_dict`` is finite (or None), so the payload passes
``json.dumps(..., allow_nan=False)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from negotiation.engine import events as e
from negotiation.engine.rules import fold
from negotiation.engine.scenario import Country, Scenario
from negotiation.engine.state import GameState, RoundRecord
from negotiation.engine.winset import Analysis, pivotal_surplus

HARMONY = "harmony"
COOPERATION = "cooperation"
DISCORD = "discord"
INVOLUNTARY = "involuntary_defection"
VOLUNTARY = "voluntary_defection"
LABELS = (HARMONY, COOPERATION, DISCORD, INVOLUNTARY, VOLUNTARY)

#: Concessions are rounded to this many decimals (utilities run 0..100).
CONCESSION_DECIMALS = 9

#: The reply to a concession must lie in this band, as a multiple of the concession.
SPECIFIC_BAND = (0.5, 2.0)


@dataclass(frozen=True, slots=True)
class Outcome:
    round: int
    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class Concession:
    """The ``order``-th chief's proposal (0-based, counting chiefs' proposals only), by
    ``by``'s chief, moved country ``to``'s pivotal surplus by ``amount``."""

    order: int
    by: str
    to: str
    amount: float


@dataclass(frozen=True, slots=True)
class Reciprocity:
    """Both indices for one pair of countries; None when there is nothing to measure
    (``specific``: no positive concession; ``diffuse``: no non-zero concession)."""

    countries: tuple[str, str]
    specific: float | None
    diffuse: float | None
    concessions: tuple[Concession, ...]


def _with_transfers(country: Country, transfers: Mapping[str, float]) -> Country:
    """The country with each paid member's reservation lowered by its transfer, so that its
    margin is ``U + t - r``."""
    if not any(transfers.get(m.key, 0) for m in country.constituents):
        return country
    constituents = tuple(
        dataclasses.replace(m, reservation=m.reservation - transfers.get(m.key, 0))
        for m in country.constituents
    )
    return dataclasses.replace(country, constituents=constituents)


def _row(scenario: Scenario, values: Sequence[float]) -> npt.NDArray[np.float64]:
    if len(values) != len(scenario.issues):
        raise ValueError(
            f"a point has {len(scenario.issues)} values, one per issue; got {len(values)}"
        )
    return np.array([list(values)], dtype=np.float64)


def surpluses(
    scenario: Scenario, values: Sequence[float], transfers: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Each country's pivotal surplus ``m_c`` at a point (``-inf`` where its quota can never be
    met), with ``transfers`` (member key -> side payment) counted in the members' margins.

    Raises ``ValueError`` unless ``values`` has one value per issue.
    """
    row = _row(scenario, values)
    return {
        c.key: float(pivotal_surplus(scenario, _with_transfers(c, transfers or {}), row)[0])
        for c in scenario.countries
    }


def share_of_gains(
    scenario: Scenario, values: Sequence[float], transfers: Mapping[str, float] | None = None
) -> dict[str, float] | None:
    """Each country's ``m_c / sum m`` at ``values`` (the shares sum to 1); None when some
    ``m_c`` is not finite or the sum is not positive. Raises ``ValueError`` unless ``values``
    has one value per issue."""
    m = surpluses(scenario, values, transfers)
    if not all(math.isfinite(v) for v in m.values()):
        return None
    total = sum(m.values())
    if not total > 0:
        return None
    return {k: v / total for k, v in m.items()}


def distance_to_nash(analysis: Analysis, values: Sequence[float]) -> float | None:
    """Range-scaled Euclidean distance to the nearest Nash point; None without a zone (or for
    a point with non-finite coordinates). Raises ``ValueError`` unless ``values`` has one
    value per issue."""
    row = _row(analysis.scenario, values)
    nash = analysis.points(analysis.nash_indices)
    if nash.shape[0] == 0:
        return None
    ranges = np.array(analysis.scenario.ranges)
    scaled = (nash - row) / ranges
    distance = float(np.sqrt((scaled * scaled).sum(axis=1)).min())
    return distance if math.isfinite(distance) else None


def _chief_proposals(
    scenario: Scenario, log: Iterable[e.Event]
) -> list[tuple[int, str, e.ProposalMade]]:
    """``(round, country, proposal)`` for every chief's proposal, in order. The round of a
    proposal is counted from the ``RoundEnded`` events before it."""
    chief_country = {c.chief.key: c.key for c in scenario.countries}
    result: list[tuple[int, str, e.ProposalMade]] = []
    round_number = 0
    for event in log:
        if isinstance(event, e.RoundEnded):
            round_number += 1
        elif isinstance(event, e.ProposalMade):
            country = chief_country.get(event.by)
            if country is not None:
                result.append((round_number, country, event))
    return result


def concessions(scenario: Scenario, proposals: Iterable[e.Event]) -> list[Concession]:
    """Every concession, in the order the proposals were made.

    ``proposals`` may be the proposals alone or a whole log: other events are ignored, except
    that a ``RoundEnded`` starts a new negotiation (the next proposal of each chief concedes
    nothing). Proposals by seats that are not chiefs are skipped.
    """
    previous: dict[str, tuple[int, dict[str, float]]] = {}
    result: list[Concession] = []
    for order, (round_number, country, proposal) in enumerate(
        _chief_proposals(scenario, proposals)
    ):
        m = surpluses(scenario, proposal.values)
        before = previous.get(country)
        if before is not None and before[0] == round_number:
            for other, value in m.items():
                if other == country:
                    continue
                base = before[1][other]
                if math.isfinite(value) and math.isfinite(base):
                    amount = round(value - base, CONCESSION_DECIMALS) + 0.0
                    result.append(Concession(order, country, other, amount))
        previous[country] = (round_number, m)
    return result


def reciprocity(
    scenario: Scenario, proposals: Iterable[e.Event], pair: tuple[str, str]
) -> Reciprocity:
    """Specific and diffuse reciprocity between the chiefs of the countries in ``pair``.

    ``proposals`` as for ``concessions``. Raises ``KeyError`` when ``pair`` names an unknown
    country and ``ValueError`` when both names are the same country.
    """
    a, b = pair
    for key in pair:
        scenario.country(key)
    if a == b:
        raise ValueError("reciprocity needs two different countries")
    log = list(proposals)
    between = [c for c in concessions(scenario, log) if {c.by, c.to} == {a, b}]
    proposal_countries = [country for _, country, _ in _chief_proposals(scenario, log)]
    low, high = SPECIFIC_BAND
    answered = 0
    positive = 0
    for concession in between:
        if concession.amount <= 0:
            continue
        positive += 1
        next_order = next(
            (
                order
                for order in range(concession.order + 1, len(proposal_countries))
                if proposal_countries[order] == concession.to
            ),
            None,
        )
        reply = next((r for r in between if r.order == next_order and r.by == concession.to), None)
        if (
            reply is not None
            and low * concession.amount <= reply.amount <= high * concession.amount
        ):
            answered += 1
    specific = answered / positive if positive else None
    sum_a = math.fsum(c.amount for c in between if c.by == a)
    sum_b = math.fsum(c.amount for c in between if c.by == b)
    spread = math.fsum(abs(c.amount) for c in between)
    diffuse = min(1.0, max(0.0, 1 - abs(sum_a - sum_b) / spread)) if spread > 0 else None
    return Reciprocity(pair, specific, diffuse, tuple(between))


@dataclass(frozen=True, slots=True)
class _RoundFacts:
    tentative: int = 0
    failures: tuple[tuple[str, ...], ...] = ()


def _round_facts(log: Iterable[e.Event]) -> dict[int, _RoundFacts]:
    """Per round (as numbered by ``PhaseChanged``): tentative agreements reached and the
    countries that failed to ratify each failed one."""
    facts: dict[int, _RoundFacts] = {}
    current = 0
    for event in log:
        if isinstance(event, e.PhaseChanged):
            current = event.round
        elif isinstance(event, e.TentativeAgreement):
            old = facts.get(current, _RoundFacts())
            facts[current] = _RoundFacts(old.tentative + 1, old.failures)
        elif isinstance(event, e.InvoluntaryDefection):
            old = facts.get(current, _RoundFacts())
            facts[current] = _RoundFacts(old.tentative, (*old.failures, tuple(event.countries)))
    return facts


def _names(scenario: Scenario, keys: Iterable[str]) -> str:
    """The countries' names, as a person would list them."""
    items = [scenario.country(key).name for key in keys]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _point_text(scenario: Scenario, values: Sequence[float]) -> str:
    return ", ".join(
        f"{issue.label} {value}"
        for issue, value in zip(scenario.issues, scenario.point_dict(values).values(), strict=True)
    )


def _outcome(
    scenario: Scenario, analysis: Analysis, record: RoundRecord, facts: _RoundFacts
) -> Outcome:
    failures = facts.failures
    failed_before = (
        f" It took {len(failures) + 1} attempts: "
        + "; ".join(f"{_names(scenario, countries)} failed to ratify" for countries in failures)
        + " before."
        if failures
        else ""
    )
    if record.result == "agreement":
        if record.values is None:
            raise ValueError(f"round {record.round} ended in an agreement without its text")
        where = _point_text(scenario, record.values)
        in_zone = analysis.contains(analysis.zone, record.values)
        if analysis.harmony and in_zone:
            return Outcome(
                record.round,
                HARMONY,
                "Each country's best deal already lay inside the others' win-sets, and the "
                f"agreement ({where}) was ratified without needing a side payment: no "
                "adjustment was needed.",
            )
        if not in_zone:
            why = "it lies outside the zone of agreement and was ratified only with side payments"
        else:
            why = "no country could have had its best deal ratified abroad"
        return Outcome(
            record.round,
            COOPERATION,
            f"The agreement ({where}) was ratified after mutual adjustment: {why}." + failed_before,
        )
    if record.result == "voluntary_defection":
        defectors = sorted(k for k, v in (record.compliance or {}).items() if not v)
        who = _names(scenario, defectors) if defectors else "a government"
        return Outcome(
            record.round,
            VOLUNTARY,
            f"The agreement entered into force, then {who} chose to defect from it.",
        )
    if record.result == "involuntary_defection" or (record.result == "no_agreement" and failures):
        if failures:
            detail = "; ".join(
                f"{_names(scenario, countries) or 'a country'} did not ratify"
                for countries in failures
            )
            reason = f"The chiefs reached a tentative agreement, but ratification failed: {detail}."
        else:
            reason = "The chiefs reached a tentative agreement, but it was not ratified at home."
        return Outcome(record.round, INVOLUNTARY, reason)
    if record.result == "no_agreement":
        return Outcome(
            record.round,
            DISCORD,
            "The chiefs reached no tentative agreement: no deal went to ratification.",
        )
    raise ValueError(f"round {record.round} ended with an unknown result {record.result!r}")


def outcomes(
    state: GameState, analysis: Analysis, events: Iterable[e.Event] | None = None
) -> list[Outcome]:
    """The label of every round played, with its reason.

    With the game's ``events`` the reasons name the countries that failed to ratify, and a
    round that saw a failed ratification is labelled involuntary defection even if its record
    says ``no_agreement``. Raises ``ValueError`` for a round result it does not know, or an
    ``agreement`` round without the agreed values.
    """
    facts = _round_facts(events) if events is not None else {}
    return [
        _outcome(state.scenario, analysis, record, facts.get(record.round, _RoundFacts()))
        for record in state.rounds
    ]


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


@dataclass(frozen=True, slots=True)
class Debrief:
    outcome: Outcome | None
    rounds: tuple[Outcome, ...]
    agreement: tuple[float, ...] | None
    share_of_gains: dict[str, float] | None
    distance_to_nash: float | None
    reciprocity: tuple[Reciprocity, ...]
    #: Grid points in each country's win-set (the debrief compares shares with them).
    winset_sizes: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self, scenario: Scenario) -> dict[str, Any]:
        """JSON-ready: every number is finite or None."""

        def outcome_dict(o: Outcome) -> dict[str, Any]:
            return {"round": o.round, "label": o.label, "reason": o.reason}

        return {
            "outcome": outcome_dict(self.outcome) if self.outcome else None,
            "rounds": [outcome_dict(o) for o in self.rounds],
            "agreement": (
                scenario.point_dict(self.agreement)
                if self.agreement is not None and all(math.isfinite(v) for v in self.agreement)
                else None
            ),
            "share_of_gains": (
                {k: _finite(v) for k, v in self.share_of_gains.items()}
                if self.share_of_gains
                else None
            ),
            "distance_to_nash": _finite(self.distance_to_nash),
            "winset_sizes": dict(self.winset_sizes),
            "reciprocity": [
                {
                    "countries": list(r.countries),
                    "specific": _finite(r.specific),
                    "diffuse": _finite(r.diffuse),
                    "concessions": len(r.concessions),
                }
                for r in self.reciprocity
            ],
        }


def debrief(events: Iterable[e.Event], analysis: Analysis | None = None) -> Debrief:
    """Analytics of a whole game log (``analysis`` of its scenario may be passed to reuse).

    Raises ``ValueError`` if the log does not start with ``GameCreated`` (``ScenarioError``, a
    ``ValueError``, if its scenario is corrupt) or a round record it cannot classify (see
    ``outcomes``).
    """
    log = list(events)
    state = fold(log)
    scenario = state.scenario
    analysis = analysis if analysis is not None else Analysis(scenario)
    rounds = outcomes(state, analysis, log)
    last = next((r for r in reversed(state.rounds) if r.values is not None), None)
    agreement = last.values if last is not None else None
    transfers = dict(last.transfers) if last is not None else {}
    pairs = combinations([c.key for c in scenario.countries], 2)
    return Debrief(
        outcome=rounds[-1] if rounds else None,
        rounds=tuple(rounds),
        agreement=agreement,
        share_of_gains=(
            share_of_gains(scenario, agreement, transfers) if agreement is not None else None
        ),
        distance_to_nash=distance_to_nash(analysis, agreement) if agreement is not None else None,
        reciprocity=tuple(reciprocity(scenario, log, pair) for pair in pairs),
        winset_sizes={k: int(mask.sum()) for k, mask in analysis.winsets.items()},
    )
