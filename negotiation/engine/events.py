"""Events: the facts of a game, appended to its log and folded into state by ``rules.evolve``.

Every event is a frozen dataclass with a stable ``TYPE`` name. ``event_to_dict`` and
``event_from_dict`` convert to and from the plain JSON payload stored in the log.
Points are tuples of issue values in the scenario's issue order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

Point = tuple[float, ...]

#: Version of the event payloads; bump it and add an upcaster when a payload changes shape.
EVENT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Event:
    TYPE: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class GameCreated(Event):
    """The first event of every log: the full scenario (``Scenario.to_dict()``) and settings."""

    TYPE: ClassVar[str] = "game_created"
    scenario: Mapping[str, Any]
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SeatTaken(Event):
    TYPE: ClassVar[str] = "seat_taken"
    seat: str
    player: str
    bot: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True)
class SeatReleased(Event):
    TYPE: ClassVar[str] = "seat_released"
    seat: str


@dataclass(frozen=True, slots=True)
class PhaseChanged(Event):
    """A phase began: ``level1``, ``level2``, ``compliance``; ``deadline`` is absolute time."""

    TYPE: ClassVar[str] = "phase_changed"
    phase: str
    round: int
    attempt: int
    deadline: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class ProposalMade(Event):
    """A chief tables a full text; it supersedes that chief's previous open proposal and counts
    as that chief's acceptance."""

    TYPE: ClassVar[str] = "proposal_made"
    proposal_id: int
    by: str
    values: Point
    replies_to: int | None = None


@dataclass(frozen=True, slots=True)
class ProposalWithdrawn(Event):
    TYPE: ClassVar[str] = "proposal_withdrawn"
    proposal_id: int
    by: str


@dataclass(frozen=True, slots=True)
class ProposalAccepted(Event):
    TYPE: ClassVar[str] = "proposal_accepted"
    proposal_id: int
    by: str


@dataclass(frozen=True, slots=True)
class TentativeAgreement(Event):
    """Every chief accepted the identical text: it is frozen for ratification."""

    TYPE: ClassVar[str] = "tentative_agreement"
    proposal_id: int
    values: Point


@dataclass(frozen=True, slots=True)
class ChatPosted(Event):
    """A chat line: ``table`` (the chiefs) or ``caucus:<country>`` (a chief and its members)."""

    TYPE: ClassVar[str] = "chat_posted"
    channel: str
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class StatementMade(Event):
    """A chief's public statement, read by every seat (reverberation)."""

    TYPE: ClassVar[str] = "statement_made"
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class StrawPollOpened(Event):
    TYPE: ClassVar[str] = "straw_poll_opened"
    poll_id: int
    by: str
    country: str
    values: Point


@dataclass(frozen=True, slots=True)
class StrawPollAnswered(Event):
    TYPE: ClassVar[str] = "straw_poll_answered"
    poll_id: int
    by: str
    #: None only in the redacted copy the polled country receives (``visibility``).
    yes: bool | None


@dataclass(frozen=True, slots=True)
class StrawPollClosed(Event):
    """The aggregate result only: who answered what stays private."""

    TYPE: ClassVar[str] = "straw_poll_closed"
    poll_id: int
    country: str
    yes: int
    no: int
    unanswered: int
    yes_weight: float
    total_weight: float
    quota_met: bool
    #: The quota is met and every veto player answered yes: the country would ratify.
    would_ratify: bool = False


@dataclass(frozen=True, slots=True)
class SidePaymentOffered(Event):
    """A chief promises ``amount`` points to a constituent if the agreement enters into force.

    An amount of 0 withdraws the offer.
    """

    TYPE: ClassVar[str] = "side_payment_offered"
    by: str
    to: str
    amount: int


@dataclass(frozen=True, slots=True)
class BallotCast(Event):
    TYPE: ClassVar[str] = "ballot_cast"
    by: str
    #: None only in the redacted copy others receive (``visibility``): a ballot was cast.
    yes: bool | None


@dataclass(frozen=True, slots=True)
class CountryResult:
    country: str
    ratified: bool
    yes_weight: float
    total_weight: float
    vetoed_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BallotsCounted(Event):
    """Level II is over: every ballot is revealed; a missing ballot counts as no (``None``)."""

    TYPE: ClassVar[str] = "ballots_counted"
    proposal_id: int
    values: Point
    ballots: Mapping[str, bool | None]
    results: tuple[CountryResult, ...]


@dataclass(frozen=True, slots=True)
class AgreementInForce(Event):
    TYPE: ClassVar[str] = "agreement_in_force"
    proposal_id: int
    values: Point
    transfers: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class InvoluntaryDefection(Event):
    """The chiefs agreed but ``countries`` failed to ratify."""

    TYPE: ClassVar[str] = "involuntary_defection"
    proposal_id: int
    countries: tuple[str, ...]
    attempts_left: int


@dataclass(frozen=True, slots=True)
class ComplianceChosen(Event):
    TYPE: ClassVar[str] = "compliance_chosen"
    by: str
    comply: bool


@dataclass(frozen=True, slots=True)
class ComplianceResolved(Event):
    """Each government's choice (a missing choice counts as comply) and its PD payoff."""

    TYPE: ClassVar[str] = "compliance_resolved"
    choices: Mapping[str, bool]
    payoffs: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class RoundEnded(Event):
    """``result``: agreement, no_agreement, involuntary_defection or voluntary_defection."""

    TYPE: ClassVar[str] = "round_ended"
    round: int
    result: str
    values: Point | None


@dataclass(frozen=True, slots=True)
class AnnouncementMade(Event):
    """The instructor's announcement, read by every seat and spectator."""

    TYPE: ClassVar[str] = "announcement_made"
    text: str


@dataclass(frozen=True, slots=True)
class GamePaused(Event):
    TYPE: ClassVar[str] = "game_paused"
    remaining: float | None


@dataclass(frozen=True, slots=True)
class GameResumed(Event):
    TYPE: ClassVar[str] = "game_resumed"
    deadline: float | None


@dataclass(frozen=True, slots=True)
class DeadlineExtended(Event):
    """The current phase's deadline (or, while paused, its remaining time) grows by
    ``seconds``."""

    TYPE: ClassVar[str] = "deadline_extended"
    seconds: int


@dataclass(frozen=True, slots=True)
class GameEnded(Event):
    TYPE: ClassVar[str] = "game_ended"
    reason: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        GameCreated,
        SeatTaken,
        SeatReleased,
        PhaseChanged,
        ProposalMade,
        ProposalWithdrawn,
        ProposalAccepted,
        TentativeAgreement,
        ChatPosted,
        StatementMade,
        AnnouncementMade,
        StrawPollOpened,
        StrawPollAnswered,
        StrawPollClosed,
        SidePaymentOffered,
        BallotCast,
        BallotsCounted,
        AgreementInForce,
        InvoluntaryDefection,
        ComplianceChosen,
        ComplianceResolved,
        RoundEnded,
        GamePaused,
        GameResumed,
        DeadlineExtended,
        GameEnded,
    )
}


class EventDecodeError(ValueError):
    """A stored payload does not describe a known event."""


#: Field names of each dataclass met by ``_plain`` (``dataclasses.fields`` rebuilds its tuple
#: at every call, and every event written or sent is converted).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
#: Values that are their own JSON form.
_AS_IS = frozenset({str, int, bool, type(None)})


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plain(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready payload of an event, with its ``type``."""
    payload: dict[str, Any] = {"type": event.TYPE}
    for name in _field_names(type(event)):
        payload[name] = _plain(getattr(event, name))
    return payload


def _point(value: Any) -> Point:
    return tuple(float(v) for v in value)


def event_from_dict(payload: Mapping[str, Any]) -> Event:
    """Rebuild an event from ``event_to_dict`` output. Raises ``EventDecodeError``."""
    try:
        data = dict(payload)
    except (TypeError, ValueError):
        raise EventDecodeError(
            f"an event payload is a mapping, not {type(payload).__name__}"
        ) from None
    kind = data.pop("type", None)
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventDecodeError(f"unknown event type {kind!r}")
    try:
        for name in ("values",):
            if name in data and data[name] is not None:
                data[name] = _point(data[name])
        if cls is BallotsCounted:
            data["results"] = tuple(
                CountryResult(**{**r, "vetoed_by": tuple(r["vetoed_by"])}) for r in data["results"]
            )
        if cls is InvoluntaryDefection:
            data["countries"] = tuple(data["countries"])
        return cls(**data)
    except (TypeError, KeyError, ValueError, ArithmeticError) as error:
        raise EventDecodeError(f"bad {kind} payload: {error}") from None
