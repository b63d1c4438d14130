"""The state of a game: what folding its events so far has established.

States are frozen; ``rules.evolve`` returns a new one for every event. Mappings held here are
never mutated after construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from negotiation.engine.scenario import GameDefaults, Scenario

Point = tuple[float, ...]

LOBBY = "lobby"
LEVEL1 = "level1"
LEVEL2 = "level2"
COMPLIANCE = "compliance"
ENDED = "ended"
PHASES = (LOBBY, LEVEL1, LEVEL2, COMPLIANCE, ENDED)

#: How many chat lines and statements the state keeps for snapshots; the log keeps them all.
RECENT_MESSAGES = 200


@dataclass(frozen=True, slots=True)
class SeatHolder:
    player: str
    bot: bool
    #: The holder's display name, shown to everyone in the game.
    name: str = ""


@dataclass(frozen=True, slots=True)
class Proposal:
    proposal_id: int
    by: str
    values: Point
    replies_to: int | None
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class StrawPoll:
    poll_id: int
    by: str
    country: str
    values: Point
    answers: Mapping[str, bool]
    closed: bool = False
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A chat line (``channel`` table or caucus:<country>) or a statement (``public``)."""

    channel: str
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class RoundRecord:
    round: int
    result: str
    values: Point | None
    transfers: Mapping[str, int]
    compliance: Mapping[str, bool] | None
    payoffs: Mapping[str, float] | None


@dataclass(frozen=True)
class GameState:
    scenario: Scenario
    settings: GameDefaults
    seq: int = 1
    phase: str = LOBBY
    round: int = 0
    attempt: int = 0
    deadline: float | None = None
    paused: bool = False
    paused_remaining: float | None = None
    seats: Mapping[str, SeatHolder] = field(default_factory=dict)
    proposals: Mapping[int, Proposal] = field(default_factory=dict)
    next_proposal_id: int = 1
    acceptances: Mapping[str, int] = field(default_factory=dict)
    tentative: Proposal | None = None
    #: Every proposal tabled this round, in order (the table's history); ``withdrawn`` holds
    #: the ids of those withdrawn.
    round_proposals: tuple[Proposal, ...] = ()
    withdrawn: frozenset[int] = frozenset()
    ballots: Mapping[str, bool] = field(default_factory=dict)
    last_count: Mapping[str, Any] | None = None
    offers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    polls: Mapping[int, StrawPoll] = field(default_factory=dict)
    next_poll_id: int = 1
    in_force: Proposal | None = None
    in_force_transfers: Mapping[str, int] = field(default_factory=dict)
    round_failed_attempts: int = 0
    compliance_choices: Mapping[str, bool] = field(default_factory=dict)
    round_compliance: Mapping[str, bool] | None = None
    round_payoffs: Mapping[str, float] | None = None
    rounds: tuple[RoundRecord, ...] = ()
    tentative_agreements: int = 0
    involuntary_defections: Mapping[str, int] = field(default_factory=dict)
    voluntary_defections: Mapping[str, int] = field(default_factory=dict)
    messages: tuple[Message, ...] = ()
    end_reason: str | None = None

    @property
    def ended(self) -> bool:
        return self.phase == ENDED

    def country_of(self, seat: str) -> str:
        """Raises ``KeyError`` for an unknown seat."""
        return self.scenario.member(seat).country


def changed(state: GameState, **changes: Any) -> GameState:
    """A copy of ``state`` with ``changes``: ``dataclasses.replace`` without re-running
    ``__init__``, since folding a long log calls this once per event."""
    new = object.__new__(GameState)
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new
