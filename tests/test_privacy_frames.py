"""Privacy of every frame: a whole recorded game is played with a connection bound to every
seat, the host and a spectator, and every frame each of them receives (snapshots and replays
at several moments, live events, fresh connections) is searched for what it may not see.

What may be seen is taken from the documentation (docs/protocol.md, docs/rules.md, DESIGN
§4), not from ``visibility``: other members' ideal points, salience, reservations and
briefings only as the scenario's ``information.preferences`` allows; nobody else's ballot
before the count; another country's caucus, polls and compliance choices (no regime); side
payments only between the chief who offers and the constituent offered; player ids only to
their own seat; Level I proposals not to spectators. The scenario is GATT with every secret
made unique (fractional ideal points, odd reservations and salience, marked briefings), so
that the secrets are also searched for as text in every frame.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from accounts.models import Player
from negotiation import services
from negotiation.engine.scenario import Deadlines, GameDefaults
from negotiation.models import GameEvent, Scenario
from negotiation.runtime import runtime
from negotiation.selectors import HOST_SESSION_KEY
from tests.fault_support import Frame, InProcessClient, new_session

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("fresh_server"),
]

SEATS = ("A-chief", "A1", "A2", "A3", "B-chief", "B1", "B2", "B3")
CONSTITUENTS = ("A1", "A2", "A3", "B1", "B2", "B3")
COUNTRY = {seat: seat[0] for seat in SEATS}
HOST = "host"
SPECTATOR = "spectator"
VIEWERS = (*SEATS, HOST, SPECTATOR)
PRIVATE = ("ideal", "salience", "reservation", "briefing")
#: Keys whose values are clocks: left out of the text searched (a clock may spell anything).
CLOCKS = frozenset({"now", "deadline", "t"})


# --------------------------------------------------------------------------------------------
# The scenario: GATT with unique secrets


@dataclass
class Secrets:
    """What only some may see, per member, as the text it takes in a frame."""

    texts: dict[str, list[str]] = field(default_factory=dict)


def _secret_scenario(preferences: str) -> tuple[Scenario, Secrets]:
    call_command("load_scenarios", verbosity=0)
    definition = json.loads(json.dumps(Scenario.objects.get(slug="gatt").definition))
    definition["slug"] = f"gatt-secrets-{preferences.replace('_', '-')}"
    definition["information"] = {"preferences": preferences, "winsets": "own"}
    secrets = Secrets()
    index = 0
    for country in definition["countries"]:
        country["side_payment_budget"] = 10
        for member in (country["chief"], *country["constituents"]):
            index += 1
            # Off-grid ideal points and odd reservations and salience nobody else has.
            member["ideal"] = {
                k: round(v * 0.9 + 0.0137 * index, 4) for k, v in member["ideal"].items()
            }
            member["salience"] = {"a_cut": round(1 + 0.0371 * index, 4), "b_cut": 1.5}
            member["reservation"] = round(55 + 0.2718 * index, 4)
            member["briefing"] = f"BRIEFING-{member['key']}-{uuid.uuid4().hex}"
            secrets.texts[member["key"]] = [
                member["briefing"],
                json.dumps(member["reservation"]),
                json.dumps(member["salience"]["a_cut"]),
                *(json.dumps(v) for v in member["ideal"].values()),
            ]
    scenario = Scenario.objects.create(
        slug=definition["slug"], title=definition["title"], definition=definition
    )
    return scenario, secrets


@dataclass
class Game:
    code: str
    game_id: int
    sessions: dict[str, str]
    players: dict[str, str]
    secrets: Secrets
    preferences: str


def _new_game(preferences: str) -> Game:
    scenario, secrets = _secret_scenario(preferences)
    settings = GameDefaults(
        rounds=2, attempts=2, compliance=True, regime=False, deadlines=Deadlines(None, None, None)
    )
    game = services.create_game(scenario=scenario, settings=settings)
    sessions = {HOST: new_session(**{HOST_SESSION_KEY: [game.code]}), SPECTATOR: new_session()}
    players: dict[str, str] = {}
    for seat in SEATS:
        player = Player.objects.create(display_name=f"Player {seat}")
        assert services.take_seat(game=game, player=player, seat_key=seat).accepted
        sessions[seat] = new_session(**{Player.SESSION_KEY: str(player.pk)})
        players[seat] = str(player.pk)
    return Game(game.code, game.pk, sessions, players, secrets, preferences)


# --------------------------------------------------------------------------------------------
# Playing it


class Table:
    """A connection per viewer, and every frame each viewer received on any connection."""

    def __init__(self, game: Game) -> None:
        self.game = game
        self.clients: dict[str, InProcessClient] = {}
        self.retired: dict[str, list[InProcessClient]] = {v: [] for v in VIEWERS}
        self.chats: dict[str, str] = {}

    async def open(self) -> None:
        for viewer in VIEWERS:
            self.clients[viewer] = await self._connect(viewer)

    async def _connect(self, viewer: str) -> InProcessClient:
        client = await InProcessClient.open(
            self.game.code, self.game.sessions[viewer], viewer, host=viewer == HOST
        )
        await client.hello()
        return client

    def frames(self, viewer: str) -> list[Frame]:
        clients = [*self.retired[viewer], self.clients[viewer]]
        return [frame for client in clients for frame in client.frames]

    async def ok(self, viewer: str, name: str, **args: Any) -> Frame:
        answer = await self.clients[viewer].command(name, **args)
        assert answer["type"] == "ack", (viewer, name, args, answer)
        return answer

    async def chat(self, viewer: str, channel: str) -> None:
        text = f"CHAT-{viewer}-{channel}-{uuid.uuid4().hex[:10]}"
        self.chats[text] = channel
        await self.ok(viewer, "chat", channel=channel, text=text)

    async def made(self, viewer: str, ack: Frame, field_name: str) -> int:
        """A field of the event ``ack`` ends with, as ``viewer`` received it."""
        frame = await self.clients[viewer].wait_for(
            lambda f: f["type"] == "event" and f["seq"] == ack["seq"]
        )
        value: int = frame["event"][field_name]
        return value

    async def moment(self, *, fresh: bool = False, replay: bool = False) -> None:
        """Every viewer asks for a snapshot (on a new connection when ``fresh``), or for the
        whole log again (``replay``)."""
        for viewer in VIEWERS:
            if fresh:
                self.retired[viewer].append(self.clients[viewer])
                self.clients[viewer] = await self._connect(viewer)
            await self.clients[viewer].hello(0 if replay else None)

    async def settle(self) -> None:
        for client in self.clients.values():
            await client.quiet(0.1)

    async def close(self) -> None:
        for clients in [*self.retired.values(), list(self.clients.values())]:
            for client in clients:
                await client.close()


async def play(table: Table) -> None:
    """Two rounds: polls, offers, chat in every channel, an agreement in force, a secret
    compliance choice, a failed ratification, and the instructor ending the game."""
    await table.ok(HOST, "start_game")
    for viewer, channel in [
        ("A-chief", "table"),
        ("B-chief", "table"),
        ("A-chief", "caucus:A"),
        ("A1", "caucus:A"),
        ("A2", "caucus:A"),
        ("B-chief", "caucus:B"),
        ("B3", "caucus:B"),
    ]:
        await table.chat(viewer, channel)
    await table.ok("A-chief", "statement", text="STATEMENT-A public")
    await table.ok(HOST, "announce", text="ANNOUNCEMENT public")

    opened = await table.ok("A-chief", "open_straw_poll", values=[5, 5])
    poll_a = await table.made("A-chief", opened, "poll_id")
    for voter, yes in (("A1", True), ("A2", False), ("A3", True)):
        await table.ok(voter, "answer_straw_poll", poll_id=poll_a, yes=yes)
    opened = await table.ok("B-chief", "open_straw_poll", values=[6, 4])
    poll_b = await table.made("B-chief", opened, "poll_id")
    await table.ok("B1", "answer_straw_poll", poll_id=poll_b, yes=True)
    await table.ok("B2", "answer_straw_poll", poll_id=poll_b, yes=False)
    await table.ok("B-chief", "close_straw_poll", poll_id=poll_b)
    opened = await table.ok("B-chief", "open_straw_poll", values=[5, 5])
    await table.ok(
        "B1", "answer_straw_poll", poll_id=await table.made("B-chief", opened, "poll_id"), yes=True
    )

    for chief, to, amount in (
        ("A-chief", "A3", 3),
        ("B-chief", "A2", 2),
        ("B-chief", "B3", 4),
        ("A-chief", "B1", 1),
    ):
        await table.ok(chief, "offer_side_payment", to=to, amount=amount)
    first = await table.ok("A-chief", "propose", values=[4, 8])
    await table.ok("B-chief", "propose", values=[6, 5])
    await table.ok(
        "A-chief", "withdraw", proposal_id=await table.made("A-chief", first, "proposal_id")
    )
    agreed = await table.ok("A-chief", "propose", values=[5, 5])
    await table.settle()
    await table.moment()  # Level I: polls, offers, proposals, caucus talk
    await table.ok(
        "B-chief", "accept", proposal_id=await table.made("B-chief", agreed, "proposal_id")
    )

    await table.ok("A1", "cast_ballot", yes=True)
    await table.ok("A2", "cast_ballot", yes=True)
    await table.settle()
    await table.moment()  # Level II, two ballots in, not counted
    for voter in ("A3", "B1", "B2", "B3"):
        await table.ok(voter, "cast_ballot", yes=True)

    await table.ok("A-chief", "choose_compliance", comply=True)
    await table.settle()
    await table.moment()  # compliance: A chose, B not yet
    await table.ok("B-chief", "choose_compliance", comply=False)

    await table.chat("B2", "caucus:B")
    await table.chat("A-chief", "table")
    proposal = await table.ok("A-chief", "propose", values=[3, 7])
    await table.ok(
        "B-chief", "accept", proposal_id=await table.made("B-chief", proposal, "proposal_id")
    )
    for voter, yes in (("A1", False), ("A2", False), ("A3", False), ("B1", True), ("B2", True)):
        await table.ok(voter, "cast_ballot", yes=yes)
    await table.settle()
    await table.moment(fresh=True)  # round 2, Level II, on new connections
    await table.ok("B3", "cast_ballot", yes=False)
    await table.ok(HOST, "end_game")
    await table.settle()
    await table.moment()
    await table.moment(replay=True)
    await table.settle()


# --------------------------------------------------------------------------------------------
# What a viewer may see


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _without_clocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_clocks(v) for k, v in value.items() if k not in CLOCKS}
    if isinstance(value, list):
        return [_without_clocks(v) for v in value]
    return value


def sees_preferences(viewer: str, member: str, preferences: str) -> bool:
    if viewer in (HOST, member):
        return True
    if viewer == SPECTATOR:
        return False
    return preferences == "all" or (
        preferences == "own_country" and COUNTRY[viewer] == COUNTRY[member]
    )


def reads(viewer: str, channel: str) -> bool:
    if viewer == HOST or channel == "public":
        return True
    if viewer == SPECTATOR:
        return False
    if channel == "table":
        return viewer.endswith("chief")
    return channel == f"caucus:{COUNTRY[viewer]}"


def own_countries(viewer: str) -> set[str]:
    return {"A", "B"} if viewer == HOST else {COUNTRY[viewer]} if viewer in COUNTRY else set()


@dataclass
class Log:
    """What the whole log holds, for the checks: every transfer paid."""

    transfers: dict[str, int]


def leaks(viewer: str, frames: list[Frame], game: Game, table: Table, log: Log) -> list[str]:
    """Everything in ``frames`` that ``viewer`` may not see."""
    found: list[str] = []
    host = viewer == HOST
    members = set(SEATS)
    countries = own_countries(viewer)
    for frame in frames:
        for path, node in _walk(frame):
            where = f"{frame['type']} {frame.get('seq')} {path}"
            member = node.get("key")
            private = isinstance(member, str) and member in members
            private = private and any(k in node for k in PRIVATE)
            if private and not sees_preferences(viewer, str(member), game.preferences):
                found.append(f"{where}: preferences of {member}")
        if frame["type"] == "event" and frame["event"] is not None:
            found += _event_leaks(viewer, frame["seq"], frame["event"], countries)
        if frame["type"] == "snapshot" and not host:
            found += _snapshot_leaks(viewer, frame["seq"], frame["state"], countries, log)
    text = json.dumps([_without_clocks(frame) for frame in frames])
    for member, secrets in game.secrets.texts.items():
        if not sees_preferences(viewer, member, game.preferences):
            found += [f"the secret {s!r} of {member}" for s in secrets if s in text]
    for chat, channel in table.chats.items():
        if not reads(viewer, channel) and chat in text:
            found.append(f"the {channel} line {chat!r}")
    for seat, player in game.players.items():
        if seat != viewer and not host and player in text:
            found.append(f"the player id of {seat}")
    return found


def _event_leaks(viewer: str, seq: int, event: dict[str, Any], countries: set[str]) -> list[str]:
    if viewer == HOST:
        return []
    kind = event["type"]
    where = f"event {seq} {kind}"
    seat = viewer if viewer in COUNTRY else None
    problems: list[str] = []
    if kind in ("proposal_made", "proposal_withdrawn", "proposal_accepted") and seat is None:
        problems.append(f"{where}: Level I proposals shown to a spectator")
    elif kind == "chat_posted" and not reads(viewer, event["channel"]):
        problems.append(f"{where}: a line of {event['channel']}")
    elif kind in ("ballot_cast", "straw_poll_answered") and event["by"] != viewer:
        if (event["by"], event["yes"]) != ("", None):
            problems.append(f"{where}: how {event['by']} answered")
    elif kind in ("straw_poll_opened", "straw_poll_closed") and event["country"] not in countries:
        problems.append(f"{where}: a poll of {event['country']}")
    elif kind == "side_payment_offered" and viewer not in (event["by"], event["to"]):
        problems.append(f"{where}: an offer of {event['by']} to {event['to']}")
    elif kind == "agreement_in_force" and set(event["transfers"]) - {viewer}:
        problems.append(f"{where}: the transfers {event['transfers']}")
    elif kind == "compliance_chosen" and COUNTRY[event["by"]] not in countries:
        problems.append(f"{where}: {event['by']}'s compliance choice")
    elif kind == "compliance_resolved":
        for name in ("choices", "payoffs"):
            if set(event[name]) - countries:
                problems.append(f"{where}: the {name} {event[name]}")
    elif kind == "seat_taken" and event["seat"] != viewer and event["player"]:
        problems.append(f"{where}: the player of {event['seat']}")
    return problems


def _snapshot_leaks(
    viewer: str, seq: int, state: dict[str, Any], countries: set[str], log: Log
) -> list[str]:
    where = f"snapshot {seq}"
    seat = viewer if viewer in COUNTRY else None
    problems: list[str] = []
    me = state["me"]
    if me.get("seat") != seat or (seat is None and any(k in me for k in PRIVATE)):
        problems.append(f"{where}: me is {me.get('seat')}")
    if set(state["ballots"]) - {"cast", "mine"}:
        problems.append(f"{where}: the ballots {state['ballots']}")
    for message in state["messages"]:
        if not reads(viewer, message["channel"]):
            problems.append(f"{where}: a line of {message['channel']}")
    for poll in state["polls"]:
        if poll["country"] not in countries or "answers" in poll:
            problems.append(f"{where}: the poll {poll}")
        if "my_answer" in poll and (seat is None or seat.endswith("chief")):
            problems.append(f"{where}: an answer in {poll}")
    offers = state["offers"]
    if seat is None and offers:
        problems.append(f"{where}: offers {offers}")
    if seat is not None and seat.endswith("chief") and set(offers) - {"made"}:
        problems.append(f"{where}: offers {offers}")
    if seat is not None and not seat.endswith("chief") and set(offers) - {"received"}:
        problems.append(f"{where}: offers {offers}")
    if set(state["transfers"]) - {viewer}:
        problems.append(f"{where}: transfers {state['transfers']}")
    for key in ("compliance", "records"):
        if set(state[key]) - countries:
            problems.append(f"{where}: {key} {state[key]}")
    for record in state["history"]:
        for key in ("compliance", "payoffs"):
            if record[key] is not None and set(record[key]) - countries:
                problems.append(f"{where}: history {key} {record[key]}")
        if record["transfer"] not in (None, log.transfers.get(viewer)):
            problems.append(f"{where}: history transfer {record['transfer']}")
    if seat is None and (state["proposals"] or state["proposal_history"]):
        problems.append(f"{where}: Level I proposals shown to a spectator")
    for key, info in state["seats"].items():
        if key != viewer and "player" in info:
            problems.append(f"{where}: the player of {key}")
    return problems


def _log(game_id: int) -> Log:
    transfers: dict[str, int] = {}
    for payload in GameEvent.objects.filter(game_id=game_id, type="agreement_in_force").values_list(
        "payload", flat=True
    ):
        for member, amount in payload["transfers"].items():
            transfers[member] = transfers.get(member, 0) + amount
    return Log(transfers)


# --------------------------------------------------------------------------------------------
# The test


@pytest.fixture(params=["self", "own_country"])
async def played(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Game, Table, Log]]:
    game = await sync_to_async(_new_game)(str(request.param))
    table = Table(game)
    try:
        await table.open()
        await play(table)
        yield game, table, await sync_to_async(_log)(game.game_id)
    finally:
        await table.close()
        await runtime.settle()
        await runtime.idle()


async def test_no_frame_shows_a_viewer_what_it_may_not_see(
    played: tuple[Game, Table, Log],
) -> None:
    game, table, log = played
    # First, that the searches can fail: what a viewer may see is there to be found.
    texts = {v: json.dumps([_without_clocks(f) for f in table.frames(v)]) for v in VIEWERS}
    for secrets in game.secrets.texts.values():
        assert all(secret in texts[HOST] for secret in secrets)
    assert all(chat in texts[HOST] for chat in table.chats)
    assert all(player in texts[HOST] for player in game.players.values())
    for seat in SEATS:
        assert all(secret in texts[seat] for secret in game.secrets.texts[seat]), seat
        assert game.players[seat] in texts[seat], seat
        for member in SEATS:
            if game.preferences == "own_country" and COUNTRY[member] == COUNTRY[seat]:
                assert game.secrets.texts[member][0] in texts[seat], (seat, member)
        readable = [chat for chat, channel in table.chats.items() if reads(seat, channel)]
        assert readable and all(chat in texts[seat] for chat in readable), seat
    assert _events(table, "A1", "ballot_cast")[0] == {
        "type": "ballot_cast",
        "by": "A1",
        "yes": True,
    }
    assert _events(table, "B3", "ballots_counted")[0]["ballots"]["A1"] is True
    assert log.transfers == {"A3": 3, "A2": 2, "B3": 4, "B1": 1}
    assert "STATEMENT-A public" in texts[SPECTATOR] and "ANNOUNCEMENT public" in texts[SPECTATOR]

    found = {viewer: leaks(viewer, table.frames(viewer), game, table, log) for viewer in VIEWERS}
    assert found == {viewer: [] for viewer in VIEWERS}
    frames = sum(len(table.frames(viewer)) for viewer in VIEWERS)
    print(f"\n[privacy] {game.preferences}: {frames} frames to {len(VIEWERS)} viewers, 0 leaks")


def _events(table: Table, viewer: str, kind: str) -> list[dict[str, Any]]:
    return [
        f["event"]
        for f in table.frames(viewer)
        if f["type"] == "event" and f["event"] is not None and f["event"]["type"] == kind
    ]
