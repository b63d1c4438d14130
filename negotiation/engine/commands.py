"""Commands: what a seat, the instructor or the server's clock asks the game to do.

``rules.decide`` checks a command against the state and returns the events it causes, or
raises ``RuleViolation``. ``actor`` is a seat key (a member of the scenario), ``INSTRUCTOR`` or
``SYSTEM`` (the server: seating players and firing deadlines).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

INSTRUCTOR = "instructor"
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Command:
    NAME: ClassVar[str] = ""
    actor: str


@dataclass(frozen=True, slots=True)
class TakeSeat(Command):
    """Seat ``player`` (an opaque id from the shell) at ``seat``; by the server or instructor."""

    NAME: ClassVar[str] = "take_seat"
    seat: str
    player: str
    bot: bool = False
    #: The display name the others see (at most 40 characters).
    name: str = ""


@dataclass(frozen=True, slots=True)
class ReleaseSeat(Command):
    NAME: ClassVar[str] = "release_seat"
    seat: str


@dataclass(frozen=True, slots=True)
class StartGame(Command):
    NAME: ClassVar[str] = "start_game"


@dataclass(frozen=True, slots=True)
class Propose(Command):
    """A full text: one value per issue, in the scenario's issue order, each on the grid."""

    NAME: ClassVar[str] = "propose"
    values: tuple[float, ...]
    replies_to: int | None = None


@dataclass(frozen=True, slots=True)
class Withdraw(Command):
    NAME: ClassVar[str] = "withdraw"
    proposal_id: int


@dataclass(frozen=True, slots=True)
class Accept(Command):
    NAME: ClassVar[str] = "accept"
    proposal_id: int


@dataclass(frozen=True, slots=True)
class Chat(Command):
    """``channel``: ``table`` (chiefs) or ``caucus:<country key>`` (a chief and its members)."""

    NAME: ClassVar[str] = "chat"
    channel: str
    text: str


@dataclass(frozen=True, slots=True)
class MakeStatement(Command):
    NAME: ClassVar[str] = "statement"
    text: str


@dataclass(frozen=True, slots=True)
class OpenStrawPoll(Command):
    NAME: ClassVar[str] = "open_straw_poll"
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class AnswerStrawPoll(Command):
    NAME: ClassVar[str] = "answer_straw_poll"
    poll_id: int
    yes: bool


@dataclass(frozen=True, slots=True)
class CloseStrawPoll(Command):
    NAME: ClassVar[str] = "close_straw_poll"
    poll_id: int


@dataclass(frozen=True, slots=True)
class OfferSidePayment(Command):
    """Promise ``amount`` whole points to constituent ``to``; 0 withdraws the offer."""

    NAME: ClassVar[str] = "offer_side_payment"
    to: str
    amount: int


@dataclass(frozen=True, slots=True)
class CastBallot(Command):
    NAME: ClassVar[str] = "cast_ballot"
    yes: bool


@dataclass(frozen=True, slots=True)
class ChooseCompliance(Command):
    NAME: ClassVar[str] = "choose_compliance"
    comply: bool


@dataclass(frozen=True, slots=True)
class FireDeadline(Command):
    """The server's timer: ``deadline`` is the one it was set for, so a stale timer is refused."""

    NAME: ClassVar[str] = "fire_deadline"
    deadline: float


@dataclass(frozen=True, slots=True)
class AdvancePhase(Command):
    """The instructor ends the current phase now, as if its deadline had passed."""

    NAME: ClassVar[str] = "advance_phase"


@dataclass(frozen=True, slots=True)
class PauseGame(Command):
    NAME: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class ResumeGame(Command):
    NAME: ClassVar[str] = "resume"


@dataclass(frozen=True, slots=True)
class ExtendDeadline(Command):
    NAME: ClassVar[str] = "extend_deadline"
    seconds: int


@dataclass(frozen=True, slots=True)
class Announce(Command):
    """The instructor's announcement to everyone in the game (seats and spectators)."""

    NAME: ClassVar[str] = "announce"
    text: str


@dataclass(frozen=True, slots=True)
class EndGame(Command):
    NAME: ClassVar[str] = "end_game"


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.NAME: cls
    for cls in (
        TakeSeat,
        ReleaseSeat,
        StartGame,
        Propose,
        Withdraw,
        Accept,
        Chat,
        MakeStatement,
        OpenStrawPoll,
        AnswerStrawPoll,
        CloseStrawPoll,
        OfferSidePayment,
        CastBallot,
        ChooseCompliance,
        FireDeadline,
        AdvancePhase,
        PauseGame,
        ResumeGame,
        ExtendDeadline,
        Announce,
        EndGame,
    )
}
