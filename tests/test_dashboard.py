"""The instructor's live dashboard of a class session, through Channels' WebsocketCommunicator:
who may connect, the summary it sends, and every control with its refusals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from config.asgi import application
from negotiation import class_sessions, dashboard, hub, services
from negotiation.models import ClassSession, Game, GameEvent, Scenario, Seat, SessionMember
from negotiation.runtime import runtime

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("fresh_server"),
]

ORIGIN = (b"origin", b"http://testserver")
User = get_user_model()


@pytest.fixture(autouse=True)
def scenarios(fresh_server: None) -> None:
    call_command("load_scenarios", verbosity=0)


def _cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _session(owner: Any, games: int = 2, assignment: str = "random") -> ClassSession:
    return class_sessions.create_session(
        owner=owner,
        title="Tuesday",
        scenario=Scenario.objects.get(slug="imf-weak"),
        games=games,
        assignment=assignment,
    )


class Dash:
    def __init__(self, socket: WebsocketCommunicator) -> None:
        self.socket = socket
        self.counter = 0

    async def next(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await self.socket.receive_from(timeout=timeout))
            if frame["type"] == kind:
                return frame

    async def act(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send a frame; its ack or error, then the summary that follows it."""
        self.counter += 1
        frame_id = f"t{self.counter}"
        await self.socket.send_to(
            text_data=json.dumps({"id": frame_id, "action": action, **fields})
        )
        while True:
            answer: dict[str, Any] = json.loads(await self.socket.receive_from(timeout=10))
            if answer["type"] in ("ack", "error") and answer.get("id") == frame_id:
                return answer

    async def summary(self) -> dict[str, Any]:
        await self.act("refresh")
        frame = await self.next("summary")
        session: dict[str, Any] = frame["session"]
        return session


async def connect(code: str, cookie: str | None) -> tuple[bool, Any]:
    headers = [ORIGIN]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    socket = WebsocketCommunicator(application, f"/ws/sessions/{code}/", headers=headers)
    connected, code_or_protocol = await socket.connect(timeout=5)
    return connected, socket if connected else code_or_protocol


async def test_only_the_owner_connects() -> None:
    owner = await sync_to_async(User.objects.create_user)("owner", "o@example.org", "pw-123456789")
    other = await sync_to_async(User.objects.create_user)("other", "x@example.org", "pw-123456789")
    session = await sync_to_async(_session)(owner)
    for cookie in (None, await sync_to_async(_cookie)(other)):
        connected, close_code = await connect(session.code, cookie)
        assert not connected and close_code == dashboard.CLOSE_NOT_YOURS
    connected, close_code = await connect("NOSUCH", await sync_to_async(_cookie)(owner))
    assert not connected and close_code == dashboard.CLOSE_NOT_YOURS
    connected, socket = await connect(session.code, await sync_to_async(_cookie)(owner))
    assert connected
    first = json.loads(await socket.receive_from(timeout=5))
    assert first["type"] == "summary" and first["session"]["code"] == session.code
    assert len(first["session"]["games"]) == 2
    await socket.disconnect()


async def test_start_all_with_bots_then_pause_resume_extend_announce_and_end() -> None:
    owner = await sync_to_async(User.objects.create_user)("owner", "o@example.org", "pw-123456789")
    session = await sync_to_async(_session)(owner)
    _connected, socket = await connect(session.code, await sync_to_async(_cookie)(owner))
    dash = Dash(socket)
    await dash.next("summary")

    assert (await dash.act("start_all", fill_bots=True))["type"] == "ack"
    state = await dash.summary()
    assert [g["phase"] for g in state["games"]] == ["level1", "level1"]
    assert all(seat["bot"] for g in state["games"] for seat in g["seats"])
    assert all(g["deadline"] is not None for g in state["games"])
    first = state["games"][0]["code"]

    assert (await dash.act("control", game="*", name="pause"))["type"] == "ack"
    state = await dash.summary()
    assert all(g["paused"] and g["remaining"] is not None for g in state["games"])
    again = await dash.act("control", game=first, name="pause")
    assert again["type"] == "error" and again["code"] == "already_paused"

    assert (await dash.act("control", game=first, name="resume"))["type"] == "ack"
    assert (await dash.act("control", game=first, name="extend_deadline", seconds=120))[
        "type"
    ] == "ack"
    assert (await dash.act("announce", game="*", text="Ten minutes left"))["type"] == "ack"
    types = await sync_to_async(
        lambda: list(GameEvent.objects.filter(game__session=session).values_list("type", flat=True))
    )()
    assert types.count("announcement_made") == 2
    assert types.count("deadline_extended") == 1

    assert (await dash.act("control", game=first, name="end_game"))["type"] == "ack"
    state = await dash.summary()
    assert state["games"][0]["phase"] == "ended"
    await runtime.idle()
    await socket.disconnect()


async def test_bad_frames_and_unknown_games_are_refused_and_the_socket_stays_open() -> None:
    owner = await sync_to_async(User.objects.create_user)("owner", "o@example.org", "pw-123456789")
    other = await sync_to_async(User.objects.create_user)("other", "x@example.org", "pw-123456789")
    session = await sync_to_async(_session)(owner)
    foreign = await sync_to_async(_session)(other, games=1)
    foreign_game = await sync_to_async(lambda: foreign.games.get().code)()
    _connected, socket = await connect(session.code, await sync_to_async(_cookie)(owner))
    dash = Dash(socket)
    await dash.next("summary")
    for raw in ["not json", "[]", json.dumps({"id": "x", "action": "explode"}), "{" * 10000]:
        await socket.send_to(text_data=raw)
        error = await dash.next("error")
        assert error["code"] in ("bad_frame", "too_large")
    refused = await dash.act("control", game=foreign_game, name="end_game")
    assert refused["type"] == "error" and refused["code"] == "unknown"
    refused = await dash.act("control", game="*", name="extend_deadline", seconds=0)
    assert refused["type"] == "error"
    refused = await dash.act("announce", game="*", text="")
    assert refused["type"] == "error"
    ended = await sync_to_async(lambda: Game.objects.get(code=foreign_game).status)()
    assert ended == Game.Status.LOBBY
    assert (await dash.act("refresh"))["type"] == "ack"
    await socket.disconnect()


async def test_seat_a_waiting_student_move_them_and_hand_their_seat_to_a_bot_and_back() -> None:
    owner = await sync_to_async(User.objects.create_user)("owner", "o@example.org", "pw-123456789")
    session = await sync_to_async(_session)(owner, assignment="manual")

    def join(name: str) -> SessionMember:
        client = Client()
        client.post("/join/", {"code": session.code, "name": name})
        return SessionMember.objects.get(session=session, name=name)

    kim = await sync_to_async(join)("Kim")
    games = await sync_to_async(lambda: list(session.games.order_by("pk")))()
    _connected, socket = await connect(session.code, await sync_to_async(_cookie)(owner))
    dash = Dash(socket)
    summary = (await dash.next("summary"))["session"]
    assert summary["roster"] == [
        {
            "id": kim.pk,
            "name": "Kim",
            "joined": True,
            "seated": False,
            "game": None,
            "game_code": "",
            "seat": "",
        }
    ]
    ack = await dash.act("assign", member=kim.pk, game=games[0].code, seat="mer-chief")
    assert ack["type"] == "ack", ack
    holder = await sync_to_async(lambda: Seat.objects.get(game=games[0], key="mer-chief").player)()
    assert holder is not None and holder.display_name == "Kim"

    ack = await dash.act("assign", member=kim.pk, game=games[1].code, seat="imf-md")
    assert ack["type"] == "ack", ack
    seats = await sync_to_async(
        lambda: list(Seat.objects.filter(game__session=session, player__isnull=False))
    )()
    assert [(s.game_id, s.key) for s in seats] == [(games[1].pk, "imf-md")]

    ack = await dash.act("to_bot", game=games[1].code, seat="imf-md")
    assert ack["type"] == "ack", ack
    summary = await dash.summary()
    seat = next(s for s in summary["games"][1]["seats"] if s["key"] == "imf-md")
    assert seat["bot"] and seat["stand_in_for"] == "Kim"
    ack = await dash.act("give_back", game=games[1].code, seat="imf-md")
    assert ack["type"] == "ack", ack
    summary = await dash.summary()
    seat = next(s for s in summary["games"][1]["seats"] if s["key"] == "imf-md")
    assert not seat["bot"] and seat["holder"] == "Kim"

    refused = await dash.act("assign", member=kim.pk, game=games[0].code, seat="nobody")
    assert refused["type"] == "error" and refused["code"] == "unknown_seat"
    refused = await dash.act("assign", member=999999, game=games[0].code, seat="mer-chief")
    assert refused["type"] == "error" and refused["code"] == "unknown"
    await runtime.idle()
    await socket.disconnect()


async def test_an_event_in_any_game_brings_a_fresh_summary() -> None:
    owner = await sync_to_async(User.objects.create_user)("owner", "o@example.org", "pw-123456789")
    session = await sync_to_async(_session)(owner, games=1)
    _connected, socket = await connect(session.code, await sync_to_async(_cookie)(owner))
    dash = Dash(socket)
    await dash.next("summary")
    game = await sync_to_async(lambda: session.games.get())()
    from negotiation.engine import commands as c

    await sync_to_async(services.submit)(
        game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="instructor:test"
    )
    fresh = await dash.next("summary", timeout=5)
    assert fresh["session"]["games"][0]["phase"] == "level1"
    await asyncio.sleep(0)
    await socket.disconnect()


async def test_on_a_shared_layer_the_dashboard_says_it_listens_to_each_of_its_games(
    settings: Any,
) -> None:
    # A layer whose groups a process cannot see (as Redis): the hubs writing the games send
    # their events to the group only for listeners that said so.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    owner = await sync_to_async(User.objects.create_user)("owner", "o@example.org", "pw-123456789")
    session = await sync_to_async(_session)(owner, games=2)
    game_ids = await sync_to_async(lambda: sorted(session.games.values_list("pk", flat=True)))()
    layer = get_channel_layer()
    hub_channel = await layer.new_channel("hub.")
    for game_id in game_ids:
        await layer.group_add(services.group_name(game_id), hub_channel)
    _connected, socket = await connect(session.code, await sync_to_async(_cookie)(owner))
    dash = Dash(socket)
    await dash.next("summary")
    heard = [await asyncio.wait_for(layer.receive(hub_channel), 5) for _ in game_ids]
    assert sorted(m["game"] for m in heard) == game_ids
    assert {m["type"] for m in heard} == {hub.LISTENING}
    assert len({m["origin"] for m in heard}) == 1
    # Another listener's word is nothing the dashboard shows: no summary follows it.
    await layer.group_send(
        services.group_name(game_ids[0]),
        {"type": hub.LISTENING, "game": game_ids[0], "origin": "another-process"},
    )
    assert await socket.receive_nothing(timeout=dashboard.SUMMARY_INTERVAL + 0.5)
    await socket.disconnect()


def test_every_dashboard_frame_has_a_schema() -> None:
    assert isinstance(dashboard.parse_frame('{"id": "1", "action": "refresh"}'), dashboard.Refresh)
    frame = dashboard.parse_frame(
        '{"id": "1", "action": "control", "game": "ABC", "name": "extend_deadline", "seconds": 60}'
    )
    assert isinstance(frame, dashboard.Control) and frame.seconds == 60
    for bad in [
        '{"id": "1", "action": "control", "game": "ABC", "name": "fire_deadline"}',
        '{"id": "1", "action": "announce", "game": "ABC", "text": ""}',
        '{"id": "1", "action": "assign", "member": "1", "game": "A", "seat": "s"}',
        '{"id": "1", "action": "refresh", "extra": true}',
        '{"action": "refresh"}',
    ]:
        with pytest.raises(ValueError):
            dashboard.parse_frame(bad)
