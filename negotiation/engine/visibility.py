"""What each viewer may see: ``visible(scenario, event, viewer, settings=...)`` and
``view(state, viewer)``.

A viewer is a seat key, ``INSTRUCTOR`` (sees everything) or ``SPECTATOR`` (public view only; any
other string that is not a seat is treated as a spectator).

- A seat sees its own ideal point, salience, reservation and briefing; other members'
  preferences only as the scenario's ``information.preferences`` allows (``self``,
  ``own_country`` or ``all``); win-sets as ``information.winsets`` allows.
- Ballots are secret until the count: a seat sees its own ``BallotCast``; everyone else sees
  that a ballot was cast (``by`` empty, ``yes`` null), so turnout is public; the count
  (``BallotsCounted``, member by member) is public.
- Straw polls belong to the polling country: its seats see the poll, that answers come in (an
  answer with ``by`` empty and ``yes`` null) and the aggregate result, a constituent its own
  answer, nobody else anyone's answer.
- A side-payment offer is seen by the chief who made it and the constituent it is made to; the
  transfers paid on entry into force only by their recipient.
- Chat: the table is for the chiefs, a caucus for its country; statements are public.
- Compliance: a government's choice is seen by its own country; the resolved choices and payoffs
  of other countries only when the game runs under a regime (``settings.regime``).
- Spectators see the public record only: seats (without player ids), phase changes, statements,
  the tentative agreement, count results, entry into force, defections and round ends; not the
  Level I proposals.
- Player ids (``SeatTaken.player``) are seen by the instructor and by the seat itself.

``visible`` returns a new event (never the original, which it does not mutate), or None for an
event the viewer may not see: the shell still sends its seq as a placeholder.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any

from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.rules import CAUCUS_PREFIX, PUBLIC, TABLE
from negotiation.engine.scenario import (
    GameDefaults,
    Member,
    Scenario,
    game_settings_to_dict,
    plain_number,
)
from negotiation.engine.state import GameState

SPECTATOR = "spectator"
#: Another's ballot as a viewer sees it: turnout, not the vote. One object for every viewer,
#: so that a server encodes its frame once.
HIDDEN_BALLOT = e.BallotCast(by="", yes=None)
PRIVATE_MEMBER_FIELDS = ("ideal", "salience", "reservation", "briefing")


def _seat(scenario: Scenario, viewer: str) -> Member | None:
    if viewer in (INSTRUCTOR, SPECTATOR):
        return None
    try:
        return scenario.member(viewer)
    except KeyError:
        return None


def sees_preferences_of(scenario: Scenario, viewer: str, member: Member) -> bool:
    """Whether ``viewer`` may see ``member``'s ideal point, salience, reservation and briefing."""
    if viewer == INSTRUCTOR or viewer == member.key:
        return True
    seat = _seat(scenario, viewer)
    if seat is None:
        return False
    setting = scenario.information.preferences
    return setting == "all" or (setting == "own_country" and seat.country == member.country)


def winsets_visible_to(scenario: Scenario, viewer: str) -> list[str]:
    """The country keys whose win-sets ``viewer`` may be shown."""
    if viewer == INSTRUCTOR:
        return [c.key for c in scenario.countries]
    seat = _seat(scenario, viewer)
    setting = scenario.information.winsets
    if seat is None or setting == "none":
        return []
    if setting == "all":
        return [c.key for c in scenario.countries]
    return [seat.country]


@functools.lru_cache(maxsize=32)
def _scenario_json(scenario: Scenario) -> str:
    return json.dumps(scenario.to_dict())


def _scenario_data(scenario: Scenario) -> dict[str, Any]:
    """A fresh ``scenario.to_dict()``. Scenarios are immutable and a snapshot is built for every
    viewer, so the data is made once, kept as JSON text, and parsed (fast) for each use."""
    try:
        text = _scenario_json(scenario)
    except TypeError:  # a scenario built by hand with unhashable parts: no cache
        text = json.dumps(scenario.to_dict())
    data: dict[str, Any] = json.loads(text)
    return data


def redacted_scenario(scenario: Scenario, viewer: str) -> dict[str, Any]:
    """``Scenario.to_dict()`` without the preferences ``viewer`` may not see (a fresh dict)."""
    data = _scenario_data(scenario)
    for country, country_data in zip(scenario.countries, data["countries"], strict=True):
        members_data = (country_data["chief"], *country_data["constituents"])
        for member, member_data in zip(country.members, members_data, strict=True):
            if not sees_preferences_of(scenario, viewer, member):
                for name in PRIVATE_MEMBER_FIELDS:
                    member_data.pop(name, None)
    return data


def can_read_channel(scenario: Scenario, viewer: str, channel: str) -> bool:
    if viewer == INSTRUCTOR or channel == PUBLIC:
        return True
    seat = _seat(scenario, viewer)
    if seat is None:
        return False
    if channel == TABLE:
        return seat.role == "chief"
    if channel.startswith(CAUCUS_PREFIX):
        return seat.country == channel[len(CAUCUS_PREFIX) :]
    return False


def compliance_visible_to(
    scenario: Scenario, viewer: str, country: str, *, regime: bool = False
) -> bool:
    """Whether ``viewer`` may see ``country``'s compliance choices, payoffs and defection
    record: its own country always, every country under a regime."""
    if viewer == INSTRUCTOR or regime:
        return True
    seat = _seat(scenario, viewer)
    return seat is not None and seat.country == country


def visible(
    scenario: Scenario,
    event: e.Event,
    viewer: str,
    *,
    settings: GameDefaults | None = None,
) -> e.Event | None:
    """The event as ``viewer`` may see it (a new event), or None when it must stay hidden.

    ``settings`` are the game's settings (``GameState.settings``); only ``regime`` matters
    here. Without them the game is taken to run without a regime, which shows less, never more.
    """
    if viewer == INSTRUCTOR:
        return copy.deepcopy(event)
    shown = _visible(scenario, event, viewer, regime=settings is not None and settings.regime)
    return None if shown is None else copy.deepcopy(shown)


def visible_shared(
    scenario: Scenario,
    event: e.Event,
    viewer: str,
    *,
    settings: GameDefaults | None = None,
) -> e.Event | None:
    """``visible`` without the copy: ``event`` itself when ``viewer`` sees it unchanged, so
    that a server sending one event to many viewers encodes it once. The result must not be
    mutated."""
    if viewer == INSTRUCTOR:
        return event
    return _visible(scenario, event, viewer, regime=settings is not None and settings.regime)


def _visible(scenario: Scenario, event: e.Event, viewer: str, *, regime: bool) -> e.Event | None:
    """``visible`` for a viewer other than the instructor; may return ``event`` itself."""
    seat = _seat(scenario, viewer)
    own_country = seat.country if seat is not None else None
    if isinstance(event, e.GameCreated):
        return dataclasses.replace(event, scenario=redacted_scenario(scenario, viewer))
    if isinstance(event, e.SeatTaken):
        return event if viewer == event.seat else dataclasses.replace(event, player="")
    if isinstance(event, (e.ProposalMade, e.ProposalWithdrawn, e.ProposalAccepted)):
        return event if seat is not None else None
    if isinstance(event, e.ChatPosted):
        return event if can_read_channel(scenario, viewer, event.channel) else None
    if isinstance(event, (e.StrawPollOpened, e.StrawPollClosed)):
        return event if own_country is not None and own_country == event.country else None
    if isinstance(event, e.BallotCast):
        return event if viewer == event.by else HIDDEN_BALLOT
    if isinstance(event, e.StrawPollAnswered):
        if viewer == event.by:
            return event
        polled = own_country is not None and _country_of(scenario, event.by) == own_country
        return e.StrawPollAnswered(poll_id=event.poll_id, by="", yes=None) if polled else None
    if isinstance(event, e.SidePaymentOffered):
        return event if viewer in (event.by, event.to) else None
    if isinstance(event, e.AgreementInForce):
        own = {k: v for k, v in event.transfers.items() if k == viewer}
        return dataclasses.replace(event, transfers=own)
    if isinstance(event, e.ComplianceChosen):
        return (
            event
            if own_country is not None and _country_of(scenario, event.by) == own_country
            else None
        )
    if isinstance(event, e.ComplianceResolved):

        def shown(country: str) -> bool:
            return compliance_visible_to(scenario, viewer, country, regime=regime)

        return dataclasses.replace(
            event,
            choices={k: v for k, v in event.choices.items() if shown(k)},
            payoffs={k: v for k, v in event.payoffs.items() if shown(k)},
        )
    return event


def _country_of(scenario: Scenario, key: str) -> str | None:
    member = _seat(scenario, key)
    return member.country if member is not None else None


def _point(scenario: Scenario, values: tuple[float, ...] | None) -> dict[str, int | float] | None:
    return None if values is None else scenario.point_dict(values)


def view(state: GameState, viewer: str) -> dict[str, Any]:
    """Everything ``viewer`` may see of the game now, as JSON-ready data (a snapshot).

    For a seat, ``me`` holds its own ideal point, salience, reservation and briefing; ``offers``
    the side payments it made (a chief) or was offered (a constituent); ``transfers`` what it is
    paid by the agreement in force; ``ballots.mine`` its own ballot. The instructor also gets
    every ballot, poll answer, offer, transfer and player id; a spectator the public record.
    """
    scenario = state.scenario
    seat = _seat(scenario, viewer)
    instructor = viewer == INSTRUCTOR
    own_country = seat.country if seat is not None else None
    regime = state.settings.regime

    def country_visible(country: str) -> bool:
        return compliance_visible_to(scenario, viewer, country, regime=regime)

    def status(proposal_id: int) -> str:
        agreed = {p.proposal_id for p in (state.tentative, state.in_force) if p is not None}
        if proposal_id in agreed:
            return "agreed"
        if proposal_id in state.proposals:
            return "open"
        return "withdrawn" if proposal_id in state.withdrawn else "closed"

    proposal_history = [
        {
            "id": p.proposal_id,
            "by": p.by,
            "values": scenario.point_dict(p.values),
            "replies_to": p.replies_to,
            "attempt": p.attempt,
            "status": status(p.proposal_id),
        }
        for p in state.round_proposals
        if instructor or seat is not None
    ]
    proposals = [
        {
            "id": p.proposal_id,
            "by": p.by,
            "values": scenario.point_dict(p.values),
            "replies_to": p.replies_to,
            "accepted_by": sorted(k for k, v in state.acceptances.items() if v == p.proposal_id),
        }
        for p in sorted(state.proposals.values(), key=lambda p: p.proposal_id)
        if instructor or seat is not None
    ]
    polls = [
        {
            "id": poll.poll_id,
            "by": poll.by,
            "country": poll.country,
            "values": scenario.point_dict(poll.values),
            "closed": poll.closed,
            "result": dict(poll.result) if poll.result is not None else None,
            "answered": len(poll.answers),
            **({"answers": dict(poll.answers)} if instructor else {}),
            **(
                {"my_answer": poll.answers.get(viewer)}
                if seat is not None and seat.role == "constituent"
                else {}
            ),
        }
        for poll in sorted(state.polls.values(), key=lambda p: p.poll_id)
        if instructor or poll.country == own_country
    ]
    if instructor:
        offers: dict[str, Any] = {k: dict(v) for k, v in state.offers.items()}
    elif seat is not None and seat.role == "chief":
        offers = {"made": dict(state.offers.get(viewer, {}))}
    elif seat is not None:
        offers = {
            "received": {
                payer: amounts[viewer]
                for payer, amounts in state.offers.items()
                if viewer in amounts
            }
        }
    else:
        offers = {}
    ballots: dict[str, Any] = {"cast": len(state.ballots)}
    if instructor:
        ballots["ballots"] = dict(state.ballots)
    elif seat is not None:
        ballots["mine"] = state.ballots.get(viewer)
    history = [
        {
            "round": record.round,
            "result": record.result,
            "values": _point(scenario, record.values),
            "compliance": (
                {k: v for k, v in record.compliance.items() if country_visible(k)}
                if record.compliance is not None
                else None
            ),
            "payoffs": (
                {k: v for k, v in record.payoffs.items() if country_visible(k)}
                if record.payoffs is not None
                else None
            ),
            "transfer": record.transfers.get(viewer) if not instructor else dict(record.transfers),
        }
        for record in state.rounds
    ]
    records = {
        country.key: {
            "involuntary_defections": state.involuntary_defections.get(country.key, 0),
            "voluntary_defections": state.voluntary_defections.get(country.key, 0),
        }
        for country in scenario.countries
        if country_visible(country.key)
    }
    me: dict[str, Any]
    if seat is not None:
        me = {
            "seat": seat.key,
            "role": seat.role,
            "country": seat.country,
            "name": seat.name,
            "title": seat.title,
            "ideal": scenario.point_dict(seat.ideal),
            "salience": {
                k: plain_number(v) for k, v in zip(scenario.issue_keys, seat.salience, strict=True)
            },
            "reservation": plain_number(round(seat.reservation, 9)),
            "briefing": seat.briefing,
        }
    else:
        me = {"seat": None, "role": INSTRUCTOR if instructor else SPECTATOR}
    return {
        "seq": state.seq,
        "settings": game_settings_to_dict(state.settings),
        "phase": state.phase,
        "round": state.round,
        "rounds": state.settings.rounds,
        "attempt": state.attempt,
        "attempts": state.settings.attempts,
        "deadline": state.deadline,
        "paused": state.paused,
        "paused_remaining": state.paused_remaining,
        "end_reason": state.end_reason,
        "me": me,
        "scenario": redacted_scenario(scenario, viewer),
        "winsets_visible": winsets_visible_to(scenario, viewer),
        "seats": {
            m.key: {
                "occupied": m.key in state.seats,
                "bot": state.seats[m.key].bot if m.key in state.seats else False,
                "name": state.seats[m.key].name if m.key in state.seats else "",
                **(
                    {"player": state.seats[m.key].player if m.key in state.seats else None}
                    if instructor or m.key == viewer
                    else {}
                ),
            }
            for m in scenario.members
        },
        "proposals": proposals,
        "proposal_history": proposal_history,
        "tentative": (
            {
                "id": state.tentative.proposal_id,
                "values": scenario.point_dict(state.tentative.values),
            }
            if state.tentative is not None
            else None
        ),
        "ballots": ballots,
        "last_count": _public_count(state.last_count, scenario),
        "in_force": _point(scenario, state.in_force.values) if state.in_force else None,
        "transfers": (
            dict(state.in_force_transfers)
            if instructor
            else {k: v for k, v in state.in_force_transfers.items() if k == viewer}
        ),
        "offers": offers,
        "polls": polls,
        "compliance": (
            dict(state.compliance_choices)
            if instructor
            else {k: v for k, v in state.compliance_choices.items() if k == own_country}
        ),
        "history": history,
        "records": records,
        "tentative_agreements": state.tentative_agreements,
        "messages": [
            {"channel": m.channel, "by": m.by, "text": m.text}
            for m in state.messages
            if can_read_channel(scenario, viewer, m.channel)
        ],
    }


def _public_count(count: Mapping[str, Any] | None, scenario: Scenario) -> dict[str, Any] | None:
    if count is None:
        return None
    return {
        "proposal_id": count["proposal_id"],
        "values": scenario.point_dict(count["values"]),
        "ballots": dict(count["ballots"]),
        "results": {k: dict(v) for k, v in count["results"].items()},
    }
