"""What each viewer may see: ``visible(scenario, event, viewer)`` and ``view(state, viewer)``.

A viewer is a seat key, ``INSTRUCTOR`` (sees everything) or ``SPECTATOR`` (public view only).
A seat sees its own ideal point, salience, reservation and briefing; other members'
preferences only as the scenario's ``information.preferences`` allows; another member's ballot
or straw-poll answer never before the count. ``visible`` returns None for an event the viewer may
not see: the shell still sends its seq as a placeholder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.rules import CAUCUS_PREFIX, PUBLIC, TABLE
from negotiation.engine.scenario import Member, Scenario, plain_number
from negotiation.engine.state import GameState

SPECTATOR = "spectator"
PRIVATE_MEMBER_FIELDS = ("ideal", "salience", "reservation", "briefing")


def _seat(scenario: Scenario, viewer: str) -> Member | None:
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


def redacted_scenario(scenario: Scenario, viewer: str) -> dict[str, Any]:
    """``Scenario.to_dict()`` without the preferences ``viewer`` may not see."""
    data = scenario.to_dict()
    for country in data["countries"]:
        for member_data in (country["chief"], *country["constituents"]):
            member = scenario.member(member_data["key"])
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


def visible(scenario: Scenario, event: e.Event, viewer: str) -> e.Event | None:
    """The event as ``viewer`` may see it, or None when it must stay hidden."""
    if viewer == INSTRUCTOR:
        return event
    seat = _seat(scenario, viewer)
    if isinstance(event, e.GameCreated):
        return dataclasses.replace(event, scenario=redacted_scenario(scenario, viewer))
    if isinstance(event, e.ChatPosted):
        return event if can_read_channel(scenario, viewer, event.channel) else None
    if isinstance(event, e.StrawPollOpened | e.StrawPollClosed):
        return event if seat is not None and seat.country == event.country else None
    if isinstance(event, e.StrawPollAnswered | e.BallotCast | e.ComplianceChosen):
        return event if viewer == event.by else None
    if isinstance(event, e.SidePaymentOffered):
        return event if viewer in (event.by, event.to) else None
    if isinstance(event, e.AgreementInForce):
        own = {k: v for k, v in event.transfers.items() if k == viewer}
        return dataclasses.replace(event, transfers=own)
    return event


def _point(scenario: Scenario, values: tuple[float, ...] | None) -> dict[str, int | float] | None:
    return None if values is None else scenario.point_dict(values)


def view(state: GameState, viewer: str) -> dict[str, Any]:
    """Everything ``viewer`` may see of the game now, as JSON-ready data (a snapshot)."""
    scenario = state.scenario
    seat = _seat(scenario, viewer)
    instructor = viewer == INSTRUCTOR
    own_country = seat.country if seat is not None else None
    regime = state.settings.regime

    def country_visible(country: str) -> bool:
        return instructor or regime or country == own_country

    proposals = [
        {
            "id": p.proposal_id,
            "by": p.by,
            "values": scenario.point_dict(p.values),
            "replies_to": p.replies_to,
            "accepted_by": sorted(k for k, v in state.acceptances.items() if v == p.proposal_id),
        }
        for p in sorted(state.proposals.values(), key=lambda p: p.proposal_id)
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
            "reservation": plain_number(round(seat.reservation, 9)),
            "briefing": seat.briefing,
        }
    else:
        me = {"seat": None, "role": INSTRUCTOR if instructor else SPECTATOR}
    return {
        "seq": state.seq,
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
            }
            for m in scenario.members
        },
        "proposals": proposals,
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
