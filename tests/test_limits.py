"""The limits a client meets, one test each, with the error docs/protocol.md and docs/rules.md
name: frame size, frames per second per connection, chat, statement and announcement length,
command ids, and the display name of the join form and of a seat's link.

Where the documentation is silent (the transport's own frame limit, the characters a display
name may hold), the tests ask for what a careful user would expect: a clear close code, a
clear refusal of the form.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Player
from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine.scenario import Deadlines, GameDefaults
from negotiation.models import Game, GameEvent, Scenario, Seat
from negotiation.runtime import runtime
from negotiation.selectors import HOST_SESSION_KEY
from tests.fault_support import InProcessClient, new_game, new_session, seat_cookie
from tests.live import manage, server_env, start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("fresh_server"),
]

#: The limits as docs/protocol.md and docs/rules.md state them.
MAX_FRAME_BYTES = 16_384
RATE_LIMIT_FRAMES = 20
RATE_LIMIT_SECONDS = 2.0
MAX_TEXT = 2_000
MAX_ANNOUNCEMENT = 4_000
MAX_COMMAND_ID = 64
#: Django's CharField(max_length=40) of the name fields, and Player.display_name.
MAX_DISPLAY_NAME = 40


@dataclass
class Table:
    game: Game
    sessions: dict[str, str]


def _table() -> Table:
    """A started game of GATT without deadlines, A-chief and A1 seated, and the host."""
    call_command("load_scenarios", verbosity=0)
    settings = GameDefaults(deadlines=Deadlines(None, None, None))
    game = services.create_game(scenario=Scenario.objects.get(slug="gatt"), settings=settings)
    sessions = {"host": new_session(**{HOST_SESSION_KEY: [game.code]})}
    for seat in ("A-chief", "A1"):
        player = Player.objects.create(display_name=f"Player {seat}")
        assert services.take_seat(game=game, player=player, seat_key=seat).accepted
        sessions[seat] = new_session(**{Player.SESSION_KEY: str(player.pk)})
    started = services.submit(game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="test")
    assert started.accepted, started
    game.refresh_from_db()
    return Table(game, sessions)


@pytest.fixture
async def table() -> Table:
    return await sync_to_async(_table)()


@pytest.fixture
async def connect(table: Table) -> AsyncIterator[Any]:
    opened: list[InProcessClient] = []

    async def open_client(who: str) -> InProcessClient:
        client = await InProcessClient.open(
            table.game.code, table.sessions[who], who, host=who == "host"
        )
        opened.append(client)
        await client.hello()
        return client

    yield open_client
    for client in opened:
        await client.close()
    # What the closed connections set off (their seats turning away) ends before the
    # database is flushed.
    await runtime.settle()
    await runtime.idle()


def error(code: str, command_id: str | None = None) -> Any:
    """Matches the error frame with ``code`` (and ``id``), whatever its message says."""

    class _Error:
        def __eq__(self, other: object) -> bool:
            return (
                isinstance(other, dict)
                and other.get("type") == "error"
                and other.get("code") == code
                and other.get("id") == command_id
                and bool(other.get("message"))
            )

        def __repr__(self) -> str:
            return f"<error {code} id={command_id!r}>"

    return _Error()


async def answer_to(client: InProcessClient, frame: str | bytes) -> dict[str, Any]:
    """The first frame the server sends after ``frame`` that is not an event or presence."""
    start = len(client.frames)
    await client.send(frame)
    return await client.wait_for(lambda f: f["type"] not in ("event", "presence"), start=start)


def padded_ping(size: int) -> str:
    """A valid ping frame of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    frame = json.dumps({"type": "ping", "t": 1})
    return frame + " " * (size - len(frame))


def chat_lines() -> list[str]:
    return list(
        GameEvent.objects.filter(type="chat_posted").values_list("payload__text", flat=True)
    )


# --------------------------------------------------------------------------------------------
# Frame size


async def test_a_frame_of_16384_bytes_is_read_and_one_byte_more_is_frame_too_large(
    connect: Any,
) -> None:
    client = await connect("A1")
    answer = await answer_to(client, padded_ping(MAX_FRAME_BYTES))
    assert (answer["type"], answer["t"]) == ("pong", 1)
    assert await answer_to(client, padded_ping(MAX_FRAME_BYTES + 1)) == error("frame_too_large")
    # Refused, not disconnected.
    assert (await client.ping(2))["t"] == 2


async def test_the_frame_limit_counts_bytes_not_characters(connect: Any) -> None:
    client = await connect("A1")
    # 6,000 euro signs: 18,000 bytes of UTF-8 in 6,000 characters.
    frame = json.dumps(
        {"type": "command", "id": "wide", "name": "\u20ac" * 6_000, "args": {}}, ensure_ascii=False
    )
    assert len(frame) < MAX_FRAME_BYTES < len(frame.encode())
    assert await answer_to(client, frame) == error("frame_too_large")
    assert (await client.ping(3))["t"] == 3


async def test_a_binary_frame_over_the_limit_is_frame_too_large(connect: Any) -> None:
    client = await connect("A1")
    assert await answer_to(client, padded_ping(MAX_FRAME_BYTES + 1).encode()) == error(
        "frame_too_large"
    )
    assert (await client.ping(4))["t"] == 4


async def test_a_frame_over_the_servers_transport_limit_closes_with_1009(tmp_path: Path) -> None:
    """Daphne reads at most 1 MiB per message: a larger frame ends the connection with 1009
    ("message too big"), a clear close code, and the server keeps serving."""
    env = server_env(DATABASE_URL=f"sqlite:///{tmp_path / 'limits.sqlite3'}")
    manage(env, "migrate", "--noinput")
    manage(env, "load_scenarios")
    game = new_game(env, "gatt", deadlines={"level1": None, "level2": None, "compliance": None})
    server = start_server(env, tmp_path, "limits")
    try:
        cookie = await sync_to_async(seat_cookie)(server.base, game["code"], "A1")
        url = f"{server.ws_base}/ws/games/{game['code']}/"
        headers = {"Cookie": cookie, "Origin": server.base}
        async with websockets.connect(url, additional_headers=headers) as socket:
            await socket.send(json.dumps({"type": "hello", "last_seq": None}))
            await socket.send(padded_ping(2 * 1024 * 1024))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(socket.recv(), 10)
            received = closed.value.rcvd
            assert received is not None and received.code == 1009, (
                f"closed without a clear code: {closed.value!r}"
            )
        async with websockets.connect(url, additional_headers=headers) as socket:
            await socket.send(json.dumps({"type": "ping", "t": 5}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["t"] == 5
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Frames per second per connection


async def test_twenty_frames_in_two_seconds_pass_and_the_twenty_first_is_rate_limited(
    connect: Any,
) -> None:
    client = await connect("A1")
    await asyncio.sleep(RATE_LIMIT_SECONDS)  # the hello's window is over
    start = len(client.frames)
    for n in range(RATE_LIMIT_FRAMES + 1):
        await client.send({"type": "ping", "t": n})
    await client.wait_for(lambda f: f["type"] == "error", start=start)
    answers = [f for f in client.frames[start:] if f["type"] in ("pong", "error")]
    assert [f["t"] for f in answers[:RATE_LIMIT_FRAMES]] == list(range(RATE_LIMIT_FRAMES))
    assert answers[RATE_LIMIT_FRAMES:] == [error("rate_limited")]
    # The connection stays open and is served again once the window has passed.
    await asyncio.sleep(RATE_LIMIT_SECONDS)
    assert (await client.ping(99))["t"] == 99


async def test_a_rate_limited_command_is_refused_by_its_id_and_not_applied(
    connect: Any,
) -> None:
    client = await connect("A-chief")
    await asyncio.sleep(RATE_LIMIT_SECONDS)
    for n in range(RATE_LIMIT_FRAMES):
        await client.send({"type": "ping", "t": n})
    start = len(client.frames)
    frame = {"type": "command", "id": "over", "name": "chat", "args": {"text": "too fast"}}
    await client.send({**frame, "args": {"channel": "table", "text": "too fast"}})
    refused = await client.wait_for(lambda f: f["type"] in ("ack", "error"), start=start)
    # The client learns which command was refused, as for every other refusal.
    assert refused == error("rate_limited", "over")
    assert await sync_to_async(chat_lines)() == []


async def test_the_rate_limit_is_per_connection(connect: Any) -> None:
    flooding = await connect("A1")
    other_tab = await connect("A1")
    await asyncio.sleep(RATE_LIMIT_SECONDS)
    for n in range(RATE_LIMIT_FRAMES + 5):
        await flooding.send({"type": "ping", "t": n})
    await flooding.wait_for(lambda f: f.get("code") == "rate_limited")
    assert (await other_tab.ping(7))["t"] == 7


# --------------------------------------------------------------------------------------------
# Text lengths


@pytest.mark.parametrize("command", ["chat", "statement"])
async def test_a_text_of_2000_characters_is_taken_and_2001_is_text_too_long(
    connect: Any, command: str
) -> None:
    chief = await connect("A-chief")
    args: dict[str, Any] = {"channel": "table"} if command == "chat" else {}
    assert (await chief.command(command, text="x" * MAX_TEXT, **args))["type"] == "ack"
    # Trimmed first: surrounding blanks do not count.
    padded = "  " + "y" * MAX_TEXT + "\n "
    assert (await chief.command(command, text=padded, **args))["type"] == "ack"
    assert await chief.command(command, "long", text="z" * (MAX_TEXT + 1), **args) == error(
        "text_too_long", "long"
    )


@pytest.mark.parametrize(
    ("length", "code"), [(MAX_TEXT + 2_000, "text_too_long"), (5_000, "bad_command")]
)
async def test_any_text_over_the_limit_is_refused(connect: Any, length: int, code: str) -> None:
    """docs/rules.md: text_too_long is "more than 2,000 characters"; docs/protocol.md: a text
    field over 4,000 characters does not fit the command's schema (bad_command)."""
    chief = await connect("A-chief")
    refused = await chief.command("chat", "longer", channel="table", text="w" * length)
    assert refused == error(code, "longer")


@pytest.mark.parametrize("command", ["chat", "statement"])
async def test_an_empty_text_is_empty_text(connect: Any, command: str) -> None:
    chief = await connect("A-chief")
    args: dict[str, Any] = {"channel": "table"} if command == "chat" else {}
    assert await chief.command(command, "e1", text="", **args) == error("empty_text", "e1")
    assert await chief.command(command, "e2", text=" \n\t ", **args) == error("empty_text", "e2")


async def test_an_announcement_holds_up_to_4000_characters(connect: Any) -> None:
    """docs/protocol.md: announce takes a text of 1 to 4,000 characters after trimming."""
    host = await connect("host")
    assert (await host.command("announce", text="a" * MAX_ANNOUNCEMENT))["type"] == "ack"
    refused = await host.command("announce", "long", text="b" * (MAX_ANNOUNCEMENT + 1))
    assert refused["type"] == "error" and refused["id"] == "long"


# --------------------------------------------------------------------------------------------
# Command ids


async def test_a_command_id_of_64_printable_characters_is_taken_and_65_is_bad_frame(
    connect: Any,
) -> None:
    chief = await connect("A-chief")
    longest = "i" * MAX_COMMAND_ID
    assert (await chief.command("chat", longest, channel="table", text="ok"))["type"] == "ack"
    frame = {"type": "command", "id": "j" * 65, "name": "chat", "args": {"text": "no"}}
    answer = await answer_to(chief, json.dumps(frame))
    assert answer["type"] == "error" and answer["code"] == "bad_frame"
    for bad in ("with space", "tab\there", "\u00e9t\u00e9", ""):
        frame = {"type": "command", "id": bad, "name": "chat", "args": {"text": "no"}}
        assert (await answer_to(chief, json.dumps(frame)))["code"] == "bad_frame", bad
    assert await sync_to_async(chat_lines)() == ["ok"]


# --------------------------------------------------------------------------------------------
# Display names: the join form and a seat's link

FORMS = ["join", "seat link"]
#: Characters a display name must not hold: C0 and C1 controls, DEL, and the bidirectional
#: overrides that make a name read backwards.
CONTROL_CHARACTERS = ["\x00", "\x07", "\x1b", "\n", "\r", "\t", "\x7f", "\x85", "\u202e", "\u2066"]


def _post_name(kind: str, name: str) -> tuple[Any, Game]:
    """Post ``name`` through the join form or a seat link of a new game (a new browser)."""
    call_command("load_scenarios", verbosity=0)
    game = services.create_game(scenario=Scenario.objects.get(slug="gatt"))
    browser = Client()
    if kind == "join":
        response = browser.post(reverse("join"), {"code": game.code, "name": name})
    else:
        browser.get(reverse("seat", args=[game.code, "A1"]))
        response = browser.post(
            reverse("take_seat", args=[game.code]), {"name": name, "seat": "A1"}
        )
    return response, game


def _name_errors(response: Any) -> list[str]:
    form = response.context["form"] if response.context else None
    return list(form.errors.get("name", [])) if form is not None else []


@pytest.mark.parametrize("kind", FORMS)
def test_a_display_name_of_40_characters_is_taken_and_41_is_refused(kind: str) -> None:
    response, game = _post_name(kind, "N" * MAX_DISPLAY_NAME)
    assert response.status_code == 302, response.content[:500]
    if kind == "seat link":
        assert Seat.objects.get(game=game, key="A1").display_name == "N" * MAX_DISPLAY_NAME
    response, game = _post_name(kind, "M" * (MAX_DISPLAY_NAME + 1))
    assert response.status_code == 400
    assert _name_errors(response) == ["Ensure this value has at most 40 characters (it has 41)."]
    assert not Seat.objects.filter(game=game, player__isnull=False).exists()


@pytest.mark.parametrize("kind", FORMS)
@pytest.mark.parametrize("name", ["", "   ", "\u3000", "\x1b\x07"])
def test_a_blank_display_name_is_refused(kind: str, name: str) -> None:
    response, _ = _post_name(kind, name)
    assert response.status_code == 400
    assert _name_errors(response)
    assert not Player.objects.exists()


def _printable(name: str) -> bool:
    return name == name.strip() and all(unicodedata.category(ch)[0] != "C" for ch in name)


@pytest.mark.parametrize("kind", FORMS)
@pytest.mark.parametrize("character", CONTROL_CHARACTERS, ids=lambda ch: f"U+{ord(ch):04X}")
def test_a_display_name_never_keeps_a_control_character(kind: str, character: str) -> None:
    """Refused with a clear error on the name, or taken without the character: either way
    nobody is shown a name holding one."""
    response, game = _post_name(kind, f"Ada{character}Lovelace")
    if response.status_code == 400:
        assert _name_errors(response)
        assert not Player.objects.exists()
        return
    assert response.status_code == 302, response.content[:500]
    names = [Player.objects.get().display_name]
    if kind == "seat link":
        names.append(Seat.objects.get(game=game, key="A1").display_name)
        state = services.load_state(game.pk)
        names.append(state.seats["A1"].name)
    assert all(_printable(name) and "Ada" in name for name in names), names


@pytest.mark.parametrize("kind", FORMS)
def test_a_display_name_is_trimmed(kind: str) -> None:
    response, game = _post_name(kind, "  Grace   Hopper  ")
    assert response.status_code == 302
    assert Player.objects.get().display_name.split() == ["Grace", "Hopper"]
    assert Player.objects.get().display_name == Player.objects.get().display_name.strip()
    if kind == "seat link":
        # What the others see has single spaces (the engine's TakeSeat).
        assert Seat.objects.get(game=game, key="A1").display_name == "Grace Hopper"
