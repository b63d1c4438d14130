"""Who may do what: every command against every kind of connection, and the instructor's pages.

The policy is written out below from the rules (docs/rules.md, docs/protocol.md,
docs/classroom.md, docs/replay.md), not read from the code: for each command, the kinds of
connection allowed to send it. Every other kind must be refused.

Commands go over the real websocket consumer (Channels' ``WebsocketCommunicator`` on the
project's ASGI application, bound by session cookie as a browser is), so binding, protocol,
``services`` and the engine are all exercised. For each command the game is first brought to
a state where the command is valid for an allowed actor. Then:

- an allowed kind, on a game of its own in that state, gets an ``ack`` and the log grows by
  events naming its own seat (never another);
- a refused kind gets an ``error`` frame with an authorization code and the log does not grow.

The kinds: each role of country A (its chief, a plain constituent, a veto player), country B's
chief and constituent acting on A's things (A's proposal, poll, caucus), a player seated only in
another game of the class, a spectator (a player with no seat), an anonymous browser (no
session), the game's instructor, a browser holding the game's host link, the instructor of
another class session, and A's chief asking for the host's view (``?role=host``).

The whole matrix runs once per module (one event loop, one database, a fresh game per allowed
case and one per command for the refused ones, each a copy of the log of a game brought to that
state once by the real commands); each (command, kind) is then a test case of its own, checked
against the policy. The instructor's pages and the class dashboard's socket get the same
treatment, and the other instructor tries to reach this session's games from their own
dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client, override_settings

from accounts.models import Player
from negotiation import class_sessions, protocol, services
from negotiation.charts import charts_for
from negotiation.engine import commands as c
from negotiation.engine.scenario import Deadlines, GameDefaults, load_builtin, scenario_from_dict
from negotiation.models import ClassSession, Game, GameEvent, Scenario, Seat, SessionMember
from negotiation.runtime import runtime
from negotiation.selectors import HOST_SESSION_KEY
from tests.fault_support import ORIGIN, InProcessClient, new_session

pytestmark = pytest.mark.timeout(120)

# --------------------------------------------------------------------------------------------
# Kinds of connection

CHIEF = "chief"
CONSTITUENT = "constituent"
VETO_CONSTITUENT = "veto_constituent"
OTHER_CHIEF = "other_chief"
OTHER_MEMBER = "other_member"
OTHER_GAME_PLAYER = "other_game_player"
SPECTATOR = "spectator"
ANONYMOUS = "anonymous"
INSTRUCTOR = "instructor"
HOST_LINK = "host_link"
OTHER_INSTRUCTOR = "other_instructor"
CHIEF_AS_HOST = "chief_as_host"

#: Every kind of websocket connection, and the seat of those who hold one in the game.
KINDS = (
    CHIEF,
    CONSTITUENT,
    VETO_CONSTITUENT,
    OTHER_CHIEF,
    OTHER_MEMBER,
    OTHER_GAME_PLAYER,
    SPECTATOR,
    ANONYMOUS,
    INSTRUCTOR,
    HOST_LINK,
    OTHER_INSTRUCTOR,
    CHIEF_AS_HOST,
)
SEAT_OF = {
    CHIEF: "A-chief",
    CONSTITUENT: "A1",
    VETO_CONSTITUENT: "A2",
    OTHER_CHIEF: "B-chief",
    OTHER_MEMBER: "B1",
    CHIEF_AS_HOST: "A-chief",
}
#: The kinds that connect asking for the host's view.
AS_HOST = frozenset({INSTRUCTOR, HOST_LINK, OTHER_INSTRUCTOR, CHIEF_AS_HOST})
#: Over HTTP there is no "as host" request: the chief asking for it is the chief.
HTTP_KINDS = tuple(kind for kind in KINDS if kind != CHIEF_AS_HOST)

# --------------------------------------------------------------------------------------------
# The policy (docs/rules.md: a round; docs/protocol.md: commands; docs/classroom.md)

ANY_CHIEF = frozenset({CHIEF, CHIEF_AS_HOST, OTHER_CHIEF})
A_CHIEF = frozenset({CHIEF, CHIEF_AS_HOST})
A_COUNTRY = frozenset({CHIEF, CHIEF_AS_HOST, CONSTITUENT, VETO_CONSTITUENT})
A_CONSTITUENTS = frozenset({CONSTITUENT, VETO_CONSTITUENT})
ANY_CONSTITUENT = frozenset({CONSTITUENT, VETO_CONSTITUENT, OTHER_MEMBER})
RUNS_THE_GAME = frozenset({INSTRUCTOR, HOST_LINK})
NOBODY: frozenset[str] = frozenset()

#: The codes a refusal for want of the right may carry: the consumer's (a connection without
#: a seat, a player sending the instructor's commands or the reverse) and the engine's (a
#: seat acting outside its role or its country).
AUTHORIZATION_REFUSALS = frozenset(
    {
        "forbidden",
        "unknown_command",  # commands the server's clock and the seating code alone issue
        "not_a_chief",
        "not_a_constituent",
        "not_instructor",
        "not_allowed",
        "not_in_channel",
        "not_polled",
        "not_your_poll",
        "not_your_proposal",
    }
)


@dataclass(frozen=True)
class Rule:
    """Who may send ``command`` with ``args``, tried in the game state ``state``."""

    case: str
    command: str
    args: dict[str, Any]
    allowed: frozenset[str]
    state: str
    why: str


RULES = (
    Rule("propose", "propose", {"values": [5, 5]}, ANY_CHIEF, "level1", "chiefs table texts"),
    Rule(
        "withdraw",
        "withdraw",
        {"proposal_id": 1},
        A_CHIEF,
        "a_proposal",
        "a chief withdraws only its own proposal (#1 is A's)",
    ),
    Rule(
        "accept",
        "accept",
        {"proposal_id": 1},
        ANY_CHIEF,
        "c_proposal",
        "any chief accepts another's proposal (#1 is C's)",
    ),
    Rule(
        "chat-table",
        "chat",
        {"channel": "table", "text": "at the table"},
        ANY_CHIEF,
        "level1",
        "chiefs talk at the table",
    ),
    Rule(
        "chat-caucus",
        "chat",
        {"channel": "caucus:A", "text": "in A's caucus"},
        A_COUNTRY,
        "level1",
        "a country's caucus is its chief and constituents",
    ),
    Rule(
        "statement",
        "statement",
        {"text": "to everyone"},
        ANY_CHIEF,
        "level1",
        "chiefs make public statements",
    ),
    Rule(
        "open_straw_poll",
        "open_straw_poll",
        {"values": [5, 5]},
        ANY_CHIEF,
        "level1",
        "a chief polls its own constituents",
    ),
    Rule(
        "answer_straw_poll",
        "answer_straw_poll",
        {"poll_id": 1, "yes": True},
        A_CONSTITUENTS,
        "a_poll",
        "only the polled country's constituents answer (#1 is A's)",
    ),
    Rule(
        "close_straw_poll",
        "close_straw_poll",
        {"poll_id": 1},
        A_CHIEF,
        "a_poll",
        "only the chief who opened a poll closes it",
    ),
    Rule(
        "offer_side_payment",
        "offer_side_payment",
        {"to": "A1", "amount": 3},
        ANY_CHIEF,
        "level1",
        "a chief promises side payments to constituents, its own or the other side's",
    ),
    Rule(
        "cast_ballot",
        "cast_ballot",
        {"yes": True},
        ANY_CONSTITUENT,
        "level2",
        "every constituent of every country votes",
    ),
    Rule(
        "choose_compliance",
        "choose_compliance",
        {"comply": True},
        ANY_CHIEF,
        "compliance",
        "each government (its chief) chooses",
    ),
    Rule("start_game", "start_game", {}, RUNS_THE_GAME, "lobby", "the instructor runs the game"),
    Rule("advance_phase", "advance_phase", {}, RUNS_THE_GAME, "level1", "instructor only"),
    Rule("pause", "pause", {}, RUNS_THE_GAME, "level1", "instructor only"),
    Rule("resume", "resume", {}, RUNS_THE_GAME, "paused", "instructor only"),
    Rule(
        "extend_deadline",
        "extend_deadline",
        {"seconds": 60},
        RUNS_THE_GAME,
        "level1",
        "instructor only",
    ),
    Rule("announce", "announce", {"text": "Ten minutes left."}, RUNS_THE_GAME, "level1", "ibid."),
    Rule("end_game", "end_game", {}, RUNS_THE_GAME, "level1", "instructor only"),
    Rule(
        "seat_bot",
        "seat_bot",
        {"seat": "A3"},
        RUNS_THE_GAME,
        "level1",
        "the instructor seats bots",
    ),
    Rule(
        "release_seat",
        "release_seat",
        {"seat": "B1"},
        RUNS_THE_GAME,
        "level1",
        "the instructor empties seats",
    ),
    Rule(
        "take_seat",
        "take_seat",
        {"seat": "A3", "player": "someone", "bot": False, "name": "Mallory"},
        NOBODY,
        "level1",
        "seats are taken through the seat pages, never over the socket",
    ),
    Rule(
        "fire_deadline",
        "fire_deadline",
        {"deadline": 0},
        NOBODY,
        "level1",
        "deadlines are fired by the server's clock alone",
    ),
)
RULE_BY_CASE = {rule.case: rule for rule in RULES}

#: Cases where the code does not follow the policy, each with why; they are expected to fail
#: (strictly: fixing the code makes them pass, and then the mark must go).
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def test_the_policy_covers_every_command_of_the_protocol_and_the_engine() -> None:
    covered = {rule.command for rule in RULES}
    assert set(protocol.ALL_COMMANDS) <= covered
    assert set(c.COMMAND_TYPES) <= covered
    assert covered <= set(protocol.ALL_COMMANDS) | set(c.COMMAND_TYPES)
    assert len({rule.case for rule in RULES}) == len(RULES)


# --------------------------------------------------------------------------------------------
# The game: GATT with a third country C, a veto player in A and side-payment budgets

SETTINGS = GameDefaults(
    rounds=1,
    attempts=2,
    compliance=True,
    deadlines=Deadlines(level1=3600, level2=3600, compliance=3600),
)
A_CONSTITUENT_KEYS = ("A1", "A2", "A3")
ALL_CONSTITUENTS = (*A_CONSTITUENT_KEYS, "B1", "B2", "B3", "C1", "C2", "C3")


def _three_countries() -> dict[str, Any]:
    definition = load_builtin("gatt").to_dict()
    definition["slug"] = "gatt-three"
    a, b = definition["countries"]
    a["constituents"][1]["veto"] = True
    third = json.loads(json.dumps(b).replace('"B-chief"', '"C-chief"'))
    third.update(key="C", name="Carpania")
    for number, member in enumerate(third["constituents"], start=1):
        member["key"] = f"C{number}"
    definition["countries"].append(third)
    for country in definition["countries"]:
        country["side_payment_budget"] = 10
    scenario_from_dict(definition)  # valid, or the test's setup is wrong
    return definition


def _before(state: str) -> list[c.Command]:
    """The commands that bring a new game (players seated, in the lobby) to ``state``."""
    level1: list[c.Command] = [c.StartGame(c.INSTRUCTOR)]
    level2 = [
        *level1,
        c.Propose("A-chief", (5.0, 5.0)),
        c.Accept("B-chief", 1),
        c.Accept("C-chief", 1),
    ]
    return {
        "lobby": [],
        "level1": level1,
        "a_proposal": [*level1, c.Propose("A-chief", (4.0, 8.0))],
        "c_proposal": [*level1, c.Propose("C-chief", (3.0, 7.0))],
        "a_poll": [*level1, c.OpenStrawPoll("A-chief", (4.0, 8.0))],
        "paused": [*level1, c.PauseGame(c.INSTRUCTOR)],
        "level2": level2,
        "compliance": [*level2, *(c.CastBallot(key, True) for key in ALL_CONSTITUENTS)],
    }[state]


EXPECTED_PHASE = {
    "lobby": "lobby",
    "level2": "level2",
    "compliance": "compliance",
}


@dataclass
class World:
    """Everything the matrix needs: the scenario, the people and their session cookies, the
    instructor's class session and the other instructor's."""

    scenario: Scenario
    session: ClassSession
    players: dict[str, Player]
    cookies: dict[str, str | None]
    rivals: ClassSession
    student: SessionMember | None = None
    running: Game | None = None
    ended: Game | None = None
    chart: str = ""
    #: A game brought to each state by its commands, copied for each case (``_game_in``).
    templates: dict[str, Game] = field(default_factory=dict)


def _login_session(user: Any) -> str:
    return new_session(
        **{
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )


def _build_world() -> World:
    call_command("load_scenarios", verbosity=0)
    users = get_user_model().objects
    teacher = users.create(username="teacher")
    rival = users.create(username="rival")
    for user in (teacher, rival):
        user.set_unusable_password()
        user.save()
    definition = _three_countries()
    scenario = Scenario.objects.create(
        slug=definition["slug"], title="GATT, three countries", definition=definition, owner=teacher
    )
    session = class_sessions.create_session(
        owner=teacher, title="Tuesday", scenario=scenario, games=1, settings=SETTINGS
    )
    rivals = class_sessions.create_session(
        owner=rival, title="Thursday", scenario=scenario, games=1, settings=SETTINGS
    )
    players = {
        kind: Player.objects.create(display_name=f"Player {kind}")
        for kind in (*SEAT_OF, OTHER_GAME_PLAYER, SPECTATOR)
        if kind != CHIEF_AS_HOST
    }
    players[CHIEF_AS_HOST] = players[CHIEF]
    # The other game's player holds A's chief seat in the session's other game.
    other_game = class_sessions.session_games(session)[0]
    assert services.take_seat(
        game=other_game, player=players[OTHER_GAME_PLAYER], seat_key="A-chief"
    ).accepted
    cookies: dict[str, str | None] = {
        kind: new_session(**{Player.SESSION_KEY: str(players[kind].pk)})
        for kind in (CHIEF, CONSTITUENT, VETO_CONSTITUENT, OTHER_CHIEF, OTHER_MEMBER)
    }
    cookies[CHIEF_AS_HOST] = cookies[CHIEF]
    cookies[OTHER_GAME_PLAYER] = new_session(
        **{Player.SESSION_KEY: str(players[OTHER_GAME_PLAYER].pk)}
    )
    cookies[SPECTATOR] = new_session(**{Player.SESSION_KEY: str(players[SPECTATOR].pk)})
    cookies[ANONYMOUS] = None
    cookies[INSTRUCTOR] = _login_session(teacher)
    cookies[OTHER_INSTRUCTOR] = _login_session(rival)
    world = World(scenario, session, players, cookies, rivals)
    world.student = SessionMember.objects.create(session=session, name="Zoe")
    world.chart = charts_for(scenario_from_dict(definition))[0]
    return world


def _new_game(world: World, state: str) -> Game:
    """A game of the world's session in ``state``, A's and B's seats held by their players;
    the host-link cookie is made for it."""
    game = services.create_game(
        scenario=world.scenario, settings=SETTINGS, created_by=world.session.owner
    )
    Game.objects.filter(pk=game.pk).update(session=world.session)
    for kind, seat in SEAT_OF.items():
        if kind == CHIEF_AS_HOST:
            continue
        assert services.take_seat(game=game, player=world.players[kind], seat_key=seat).accepted
    for command in _before(state):
        outcome = services.submit(game_id=game.pk, command=command, issuer="setup")
        assert outcome.accepted, (state, command, outcome)
    after = services.load_state(game.pk)
    assert after.phase == EXPECTED_PHASE.get(state, "level1"), (state, after.phase)
    assert after.paused == (state == "paused")
    game.refresh_from_db()
    return game


def _game_in(world: World, state: str) -> Game:
    """A new game in ``state``: a copy of the log (and of the seats) of the first game brought
    to that state by ``_new_game``, so each state's commands run once, not once per case."""
    template = world.templates.get(state)
    if template is None:
        template = world.templates[state] = _new_game(world, state)
    with transaction.atomic():
        game = Game.objects.create(
            code=services.new_code(),
            scenario=template.scenario,
            status=template.status,
            phase=template.phase,
            deadline=template.deadline,
            last_seq=template.last_seq,
            host_token=secrets.token_urlsafe(24),
            created_by=template.created_by,
            session=template.session,
        )
        Seat.objects.bulk_create(
            [
                Seat(
                    game=game,
                    key=seat.key,
                    role=seat.role,
                    country=seat.country,
                    order=seat.order,
                    player_id=seat.player_id,
                    display_name=seat.display_name,
                )
                for seat in Seat.objects.filter(game=template)
            ]
        )
        GameEvent.objects.bulk_create(
            [
                GameEvent(game=game, seq=event.seq, type=event.type, payload=event.payload)
                for event in GameEvent.objects.filter(game=template).order_by("seq")
            ]
        )
    assert services.load_state(game.pk) == services.load_state(template.pk)
    return game


def _log_length(game_id: int) -> int:
    return GameEvent.objects.filter(game_id=game_id).count()


def _events_after(game_id: int, seq: int) -> list[dict[str, Any]]:
    return list(
        GameEvent.objects.filter(game_id=game_id, seq__gt=seq)
        .order_by("seq")
        .values_list("payload", flat=True)
    )


# --------------------------------------------------------------------------------------------
# Running the matrix


@dataclass
class Attempt:
    """What became of one command from one kind of connection."""

    answer: dict[str, Any]
    log_before: int
    log_after: int
    appended: list[dict[str, Any]]
    events_received: list[dict[str, Any]]


@dataclass
class Matrix:
    commands: dict[tuple[str, str], Attempt] = field(default_factory=dict)
    http: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    across: dict[str, Attempt] = field(default_factory=dict)
    #: Whether the instructor's student got a seat or a game after the other's attempts.
    student_assigned: bool | None = None


async def _attempt(world: World, game: Game, rule: Rule, kind: str) -> Attempt:
    cookie: str | None
    if kind == HOST_LINK:
        cookie = await sync_to_async(new_session)(**{HOST_SESSION_KEY: [game.code]})
    else:
        cookie = world.cookies[kind]
    client = await InProcessClient.open(game.code, cookie, kind, host=kind in AS_HOST)
    try:
        await client.hello()
        before = await sync_to_async(_log_length)(game.pk)
        start = len(client.frames)
        command_id = f"{rule.case}-{kind}"
        await client.send(
            {"type": "command", "id": command_id, "name": rule.command, "args": rule.args}
        )
        answer = await client.wait_for(
            lambda f: f["type"] in ("ack", "error") and f.get("id") == command_id, start=start
        )
        received = [f for f in client.frames[start:] if f["type"] == "event"]
        after = await sync_to_async(_log_length)(game.pk)
        appended = await sync_to_async(_events_after)(game.pk, before)
    finally:
        await client.close()
    return Attempt(answer, before, after, appended, received)


async def _run_commands(world: World, matrix: Matrix) -> None:
    new_game = sync_to_async(_game_in)
    for rule in RULES:
        # The refused kinds one after the other on one game (a refusal changes nothing)...
        shared = await new_game(world, rule.state)
        for kind in KINDS:
            if kind not in rule.allowed:
                matrix.commands[rule.case, kind] = await _attempt(world, shared, rule, kind)
        # ...and each allowed kind on a game of its own, in the same state.
        for kind in KINDS:
            if kind in rule.allowed:
                game = await new_game(world, rule.state)
                matrix.commands[rule.case, kind] = await _attempt(world, game, rule, kind)


@dataclass(frozen=True)
class Endpoint:
    """An instructor's page (or a player's after the game), and who may open it."""

    case: str
    method: str
    path: str
    allowed: frozenset[str]
    why: str
    data: dict[str, str] = field(default_factory=dict)


SEATED = frozenset({CHIEF, CONSTITUENT, VETO_CONSTITUENT, OTHER_CHIEF, OTHER_MEMBER})
SESSION_OWNER = frozenset({INSTRUCTOR})

ENDPOINTS = (
    Endpoint("host_console", "GET", "/g/{running}/host/", RUNS_THE_GAME, "the host console"),
    Endpoint("session_dashboard", "GET", "/sessions/{session}/", SESSION_OWNER, "its owner only"),
    Endpoint("session_qr", "GET", "/sessions/{session}/qr.svg", SESSION_OWNER, "its owner only"),
    Endpoint(
        "session_debrief", "GET", "/sessions/{session}/debrief/", SESSION_OWNER, "its owner only"
    ),
    Endpoint(
        "session_debrief_chart",
        "GET",
        "/sessions/{session}/debrief/chart/agreement-times.svg",
        SESSION_OWNER,
        "its owner only",
    ),
    Endpoint(
        "session_debrief_json",
        "GET",
        "/sessions/{session}/debrief.json",
        SESSION_OWNER,
        "its owner only",
    ),
    Endpoint(
        "session_dashboard_socket",
        "WS",
        "/ws/sessions/{session}/",
        SESSION_OWNER,
        "the dashboard's controls, its owner only",
    ),
    Endpoint(
        "replay_of_a_running_game", "GET", "/g/{running}/replay/", RUNS_THE_GAME, "not over yet"
    ),
    Endpoint(
        "replay_data_of_a_running_game",
        "GET",
        "/g/{running}/replay/data/",
        RUNS_THE_GAME,
        "not over yet",
    ),
    Endpoint(
        "replay_view_of_a_running_game",
        "GET",
        "/g/{running}/replay/view/?seq=1",
        RUNS_THE_GAME,
        "not over yet",
    ),
    Endpoint(
        "chart_download_of_a_running_game",
        "GET",
        "/g/{running}/replay/chart/{chart}.svg?download=1",
        RUNS_THE_GAME,
        "the SVG export of a chart; not over yet",
    ),
    Endpoint(
        "replay_note_on_a_running_game",
        "POST",
        "/g/{running}/replay/annotations/",
        RUNS_THE_GAME,
        "only the instructor writes notes",
        {"seq": "1", "text": "Watch the opening."},
    ),
    Endpoint(
        "replay_of_an_ended_game",
        "GET",
        "/g/{ended}/replay/",
        SEATED | RUNS_THE_GAME,
        "its players once it is over, from their own seat",
    ),
    Endpoint(
        "replay_data_of_an_ended_game",
        "GET",
        "/g/{ended}/replay/data/",
        SEATED | RUNS_THE_GAME,
        "its players once it is over, from their own seat",
    ),
    Endpoint(
        "replay_data_of_an_ended_game_as_another_seat",
        "GET",
        "/g/{ended}/replay/data/?viewer=B3",
        RUNS_THE_GAME,
        "a player only from their own seat",
    ),
    Endpoint(
        "replay_view_of_an_ended_game_as_another_seat",
        "GET",
        "/g/{ended}/replay/view/?viewer=A3",
        RUNS_THE_GAME,
        "a player only from their own seat",
    ),
    Endpoint(
        "chart_of_an_ended_game_as_another_seat",
        "GET",
        "/g/{ended}/replay/chart/{chart}.svg?viewer=B3",
        RUNS_THE_GAME,
        "a player only from their own seat",
    ),
    Endpoint(
        "replay_data_of_an_ended_game_as_the_instructor",
        "GET",
        "/g/{ended}/replay/data/?viewer=instructor",
        RUNS_THE_GAME,
        "the omniscient view is the instructor's",
    ),
    Endpoint(
        "replay_note_on_an_ended_game",
        "POST",
        "/g/{ended}/replay/annotations/",
        RUNS_THE_GAME,
        "only the instructor writes notes, even after the game",
        {"seq": "1", "text": "Well played."},
    ),
)


def _path(world: World, endpoint: Endpoint) -> str:
    assert world.running is not None and world.ended is not None
    return endpoint.path.format(
        running=world.running.code,
        ended=world.ended.code,
        session=world.session.code,
        chart=world.chart,
    )


def _http_cookie(world: World, kind: str) -> str | None:
    if kind == HOST_LINK:
        assert world.running is not None and world.ended is not None
        return new_session(**{HOST_SESSION_KEY: [world.running.code, world.ended.code]})
    return world.cookies[kind]


def _prepare_pages(world: World) -> None:
    world.running = _new_game(world, "level1")
    world.ended = _new_game(world, "level1")
    outcome = services.submit(
        game_id=world.ended.pk, command=c.EndGame(c.INSTRUCTOR), issuer="setup"
    )
    assert outcome.accepted


def _run_http(world: World, matrix: Matrix) -> None:
    for endpoint in ENDPOINTS:
        if endpoint.method == "WS":
            continue
        for kind in HTTP_KINDS:
            client = Client()
            cookie = _http_cookie(world, kind)
            if cookie is not None:
                client.cookies["sessionid"] = cookie
            path = _path(world, endpoint)
            if endpoint.method == "GET":
                response = client.get(path)
            else:
                response = client.post(path, endpoint.data)
            record: dict[str, Any] = {
                "status": response.status_code,
                "location": response.get("Location", ""),
            }
            if response.get("Content-Type", "").startswith("application/json"):
                record["json"] = json.loads(response.content)
            matrix.http[endpoint.case, kind] = record


async def _run_sockets(world: World, matrix: Matrix) -> None:
    from config.asgi import application

    for endpoint in ENDPOINTS:
        if endpoint.method != "WS":
            continue
        for kind in HTTP_KINDS:
            cookie = await sync_to_async(_http_cookie)(world, kind)
            headers = [(b"origin", ORIGIN)]
            if cookie is not None:
                headers.append((b"cookie", f"sessionid={cookie}".encode()))
            socket = WebsocketCommunicator(application, _path(world, endpoint), headers=headers)
            connected, close_code = await socket.connect(timeout=10)
            record: dict[str, Any] = {"connected": connected, "close_code": close_code}
            if connected:
                record["first"] = await socket.receive_json_from(timeout=10)
                await socket.disconnect()
            matrix.http[endpoint.case, kind] = record


#: Frames the other instructor sends from the dashboard of their own session, aimed at the
#: instructor's session: its running game, a seat in it, one of its students.
ACROSS_SESSIONS: dict[str, dict[str, Any]] = {
    "pause_their_game": {"action": "control", "game": "{running}", "name": "pause"},
    "end_their_game": {"action": "control", "game": "{running}", "name": "end_game"},
    "announce_in_their_game": {"action": "announce", "game": "{running}", "text": "Hello"},
    "hand_their_seat_to_a_bot": {"action": "to_bot", "game": "{running}", "seat": "A-chief"},
    "give_back_their_seat": {"action": "give_back", "game": "{running}", "seat": "A-chief"},
    "seat_their_student": {
        "action": "assign",
        "member": "{student}",
        "game": "{rival_game}",
        "seat": "A3",
    },
}


def _across_frame(world: World, name: str) -> dict[str, Any]:
    assert world.running is not None and world.student is not None
    values = {
        "{running}": world.running.code,
        "{rival_game}": class_sessions.session_games(world.rivals)[0].code,
        "{student}": world.student.pk,
    }
    frame = {
        k: values.get(v, v) if isinstance(v, str) else v for k, v in ACROSS_SESSIONS[name].items()
    }
    return {**frame, "id": name}


async def _run_across(world: World, matrix: Matrix) -> None:
    from config.asgi import application

    assert world.running is not None
    cookie = world.cookies[OTHER_INSTRUCTOR]
    headers = [(b"origin", ORIGIN), (b"cookie", f"sessionid={cookie}".encode())]
    socket = WebsocketCommunicator(
        application, f"/ws/sessions/{world.rivals.code}/", headers=headers
    )
    connected, _ = await socket.connect(timeout=10)
    assert connected, "the other instructor's own dashboard refused them"
    try:
        for name in ACROSS_SESSIONS:
            frame = await sync_to_async(_across_frame)(world, name)
            before = await sync_to_async(_log_length)(world.running.pk)
            await socket.send_json_to(frame)
            while True:
                answer = await socket.receive_json_from(timeout=10)
                if answer.get("id") == name:
                    break
            after = await sync_to_async(_log_length)(world.running.pk)
            appended = await sync_to_async(_events_after)(world.running.pk, before)
            matrix.across[name] = Attempt(answer, before, after, appended, [])
    finally:
        await socket.disconnect()
    assert world.student is not None
    student = await sync_to_async(SessionMember.objects.get)(pk=world.student.pk)
    matrix.student_assigned = student.game_id is not None or bool(student.seat_key)


async def _run_all(world: World, matrix: Matrix) -> None:
    try:
        await _run_commands(world, matrix)
        await _run_sockets(world, matrix)
        await _run_across(world, matrix)
    finally:
        await runtime.settle()
        runtime.reset()


@pytest.fixture(scope="module")
def matrix(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Matrix]:
    """Run every command from every kind of connection, and open every instructor page as
    every kind of visitor, once for the module; the database is emptied afterwards."""
    from channels.layers import channel_layers

    result = Matrix()
    # Refusals are expected by the hundred here: not worth a warning with a traceback each.
    request_log = logging.getLogger("django.request")
    level = request_log.level
    request_log.setLevel(logging.ERROR)
    with django_db_blocker.unblock(), override_settings(RATIFY_BOT_DELAY=3600):
        channel_layers.backends.clear()
        services.state_cache.clear()
        runtime.reset()
        try:
            world = _build_world()
            _prepare_pages(world)
            _run_http(world, result)
            asyncio.run(_run_all(world, result))
            yield result
        finally:
            runtime.reset()
            services.state_cache.clear()
            channel_layers.backends.clear()
            request_log.setLevel(level)
            with contextlib.suppress(Exception):
                call_command("flush", interactive=False, verbosity=0)


# --------------------------------------------------------------------------------------------
# The cases


def _command_cases() -> Iterator[Any]:
    for rule in RULES:
        for kind in KINDS:
            reason = KNOWN_BUGS.get((rule.case, kind))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(rule.case, kind, id=f"{rule.case}-{kind}", marks=marks)


@pytest.mark.parametrize("case, kind", list(_command_cases()))
def test_a_command_succeeds_only_for_the_kinds_the_policy_allows(
    matrix: Matrix, case: str, kind: str
) -> None:
    rule = RULE_BY_CASE[case]
    attempt = matrix.commands[case, kind]
    answer = attempt.answer
    if kind in rule.allowed:
        assert answer["type"] == "ack", (rule.why, answer)
        assert attempt.log_after > attempt.log_before, "acknowledged but nothing was appended"
        assert answer["seq"] == attempt.log_after
        # Whatever the events name as their author is the connection's own seat.
        authors = {event["by"] for event in attempt.appended if "by" in event}
        own = SEAT_OF.get(kind)
        if own is not None:
            assert authors <= {own}, (authors, own)
        else:
            assert not authors & set(SEAT_OF.values()), authors
    else:
        assert answer["type"] == "error", (rule.why, answer)
        assert answer["code"] in AUTHORIZATION_REFUSALS, (rule.why, answer)
        assert attempt.log_after == attempt.log_before, attempt.appended
        assert attempt.events_received == []


def _http_cases() -> Iterator[Any]:
    for endpoint in ENDPOINTS:
        for kind in HTTP_KINDS:
            reason = KNOWN_BUGS.get((endpoint.case, kind))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(endpoint.case, kind, id=f"{endpoint.case}-{kind}", marks=marks)


ENDPOINT_BY_CASE = {endpoint.case: endpoint for endpoint in ENDPOINTS}
#: What an allowed request gets.
SUCCESS = {"GET": 200, "POST": 201}


@pytest.mark.parametrize("case, kind", list(_http_cases()))
def test_an_instructor_page_opens_only_for_the_kinds_the_policy_allows(
    matrix: Matrix, case: str, kind: str
) -> None:
    endpoint = ENDPOINT_BY_CASE[case]
    record = matrix.http[case, kind]
    if endpoint.method == "WS":
        if kind in endpoint.allowed:
            assert record["connected"] and record["first"]["type"] == "summary", record
        else:
            assert not record["connected"], record
        return
    status = record["status"]
    if kind in endpoint.allowed:
        assert status == SUCCESS[endpoint.method], (endpoint.why, record)
        viewer = record.get("json", {}).get("viewer")
        if viewer is not None and kind in SEAT_OF:
            assert viewer == SEAT_OF[kind], "a player replays from their own seat"
    else:
        login_redirect = status == 302 and record["location"].startswith("/accounts/login/")
        assert status in (403, 404) or login_redirect, (endpoint.why, record)


@pytest.mark.parametrize("case", list(ACROSS_SESSIONS))
def test_an_instructor_cannot_reach_another_sessions_games_from_their_own_dashboard(
    matrix: Matrix, case: str
) -> None:
    attempt = matrix.across[case]
    assert attempt.answer["type"] == "error", attempt.answer
    assert attempt.log_after == attempt.log_before, attempt.appended


def test_the_other_sessions_student_was_not_seated(matrix: Matrix) -> None:
    # The assignment above was refused: the roster line is still unseated.
    assert "seat_their_student" in matrix.across
    assert matrix.student_assigned is False


def test_the_matrix_is_complete(matrix: Matrix) -> None:
    assert set(matrix.commands) == {(rule.case, kind) for rule in RULES for kind in KINDS}
    assert set(matrix.http) == {(e.case, kind) for e in ENDPOINTS for kind in HTTP_KINDS}
