"""The game consumer, through Channels' WebsocketCommunicator: every frame, every refusal."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command

from accounts.models import Player
from config.asgi import application
from negotiation import consumers, services
from negotiation import runtime as runtime_module
from negotiation.engine import commands as c
from negotiation.engine.scenario import Deadlines, GameDefaults
from negotiation.models import Game, GameCommand, GameEvent, Scenario
from negotiation.runtime import Runtime, runtime
from negotiation.selectors import HOST_SESSION_KEY
from tests.live import REDIS_URL, free_port, require

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
    pytest.mark.usefixtures("fresh_server"),
]

ORIGIN = (b"origin", b"http://testserver")
WAIT = float(__import__("os").environ.get("TEST_WAIT", "3.0"))


@dataclass
class Table:
    """A game of GATT with human seats; ``sessions`` maps a seat (or "host") to its cookie."""

    game: Game
    sessions: dict[str, str]

    @property
    def code(self) -> str:
        return self.game.code


def _session(**values: Any) -> str:
    store = SessionStore()
    for key, value in values.items():
        store[key] = value
    store.create()
    assert store.session_key is not None
    return store.session_key


def _table(
    humans: tuple[str, ...] = ("A-chief", "A1", "B-chief", "B1"),
    bots: tuple[str, ...] = (),
    settings: GameDefaults | None = None,
) -> Table:
    call_command("load_scenarios", verbosity=0)
    scenario = Scenario.objects.get(slug="gatt")
    game = services.create_game(scenario=scenario, settings=settings, bot_seats=bots)
    sessions: dict[str, str] = {"host": _session(**{HOST_SESSION_KEY: [game.code]})}
    for seat in humans:
        player = Player.objects.create(display_name=f"Player {seat}")
        outcome = services.take_seat(game=game, player=player, seat_key=seat)
        assert outcome.accepted, outcome
        sessions[seat] = _session(**{Player.SESSION_KEY: str(player.pk)})
    sessions["spectator"] = _session()
    game.refresh_from_db()
    return Table(game, sessions)


table = sync_to_async(_table)


def communicator(code: str, session: str | None, *, host: bool = False) -> WebsocketCommunicator:
    headers = [ORIGIN]
    if session is not None:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    path = f"/ws/games/{code}/" + ("?role=host" if host else "")
    return WebsocketCommunicator(application, path, headers=headers)


class Client:
    """A connected, synced client that collects frames."""

    def __init__(self, socket: WebsocketCommunicator) -> None:
        self.socket = socket
        self.seq = 0
        self.seen: list[dict[str, Any]] = []
        #: Frames before this index have been claimed by ``until`` or ``event``.
        self.cursor = 0
        self.counter = 0

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.socket.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await self.socket.receive_from(timeout=timeout))
        self.seen.append(frame)
        if frame["type"] == "event":
            assert frame["seq"] == self.seq + 1, f"gap or repeat: {frame['seq']} after {self.seq}"
            self.seq = frame["seq"]
        elif frame["type"] == "snapshot":
            self.seq = frame["seq"]
        return frame

    async def until(self, kind: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """The next frame of ``kind`` with ``fields`` not claimed yet, received or still to
        come; frames before it are claimed too."""
        return await self._claim(
            lambda f: f["type"] == kind and all(f.get(k) == v for k, v in fields.items()), timeout
        )

    async def event(self, event_type: str, timeout: float = WAIT) -> dict[str, Any]:
        """The next unclaimed event frame of ``event_type``."""
        return await self._claim(
            lambda f: (
                f["type"] == "event" and f["event"] is not None and f["event"]["type"] == event_type
            ),
            timeout,
        )

    async def _claim(self, wanted: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while self.cursor < len(self.seen):
                frame = self.seen[self.cursor]
                self.cursor += 1
                if wanted(frame):
                    return frame
            await self.receive(timeout=max(0.05, deadline - time.monotonic()))

    async def command(self, name: str, **args: Any) -> dict[str, Any]:
        """Send a command and return its ack or error frame."""
        self.counter += 1
        command_id = f"c{self.counter}"
        await self.send({"type": "command", "id": command_id, "name": name, "args": args})
        deadline = time.monotonic() + WAIT
        start = len(self.seen)
        while True:
            for frame in self.seen[start:]:
                if frame["type"] in ("ack", "error") and frame.get("id") == command_id:
                    return frame
            start = len(self.seen)
            await self.receive(timeout=max(0.05, deadline - time.monotonic()))

    async def quiet(self, timeout: float = 0.2) -> list[dict[str, Any]]:
        """Every unclaimed frame, receiving until none arrives for ``timeout`` seconds (without
        cancelling the application, as a timed-out receive would); claims them all."""
        while not await self.socket.receive_nothing(timeout=timeout):
            await self.receive()
        frames = self.seen[self.cursor :]
        self.cursor = len(self.seen)
        return frames

    async def close(self) -> None:
        await self.socket.disconnect()


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    opened: list[Client] = []

    async def open_client(
        code: str, session: str | None, *, host: bool = False, hello: int | bool | None = None
    ) -> Client:
        socket = communicator(code, session, host=host)
        connected, _ = await socket.connect(timeout=WAIT)
        assert connected
        client = Client(socket)
        opened.append(client)
        if hello is not False:
            await client.send({"type": "hello", "last_seq": hello})
        return client

    yield open_client
    for client in opened:
        await client.close()
    await runtime.idle()


# --------------------------------------------------------------------------------------------
# Connecting and binding


async def test_an_unknown_game_closes_with_4404() -> None:
    await table()
    socket = communicator("NOSUCH", None)
    connected, code = await socket.connect(timeout=WAIT)
    assert not connected
    assert code == consumers.CLOSE_NO_SUCH_GAME


async def test_a_foreign_origin_is_refused() -> None:
    t = await table()
    socket = WebsocketCommunicator(
        application, f"/ws/games/{t.code}/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await socket.connect(timeout=WAIT)
    assert not connected


async def test_hello_without_seq_gets_the_seats_snapshot(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A1"])
    snapshot = await client.until("snapshot")
    assert snapshot["seq"] == t.game.last_seq
    assert abs(snapshot["now"] - time.time()) < 5
    state = snapshot["state"]
    assert state["settings"]["attempts"] == 2
    assert state["me"]["seat"] == "A1"
    assert state["me"]["reservation"] == 70
    assert state["phase"] == "lobby"
    # A1 does not see the other members' ideal points.
    others = [
        member
        for country in state["scenario"]["countries"]
        for member in (country["chief"], *country["constituents"])
        if member["key"] != "A1"
    ]
    assert all("ideal" not in member for member in others)


async def test_the_host_link_binds_the_instructor(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["host"], host=True)
    snapshot = await client.until("snapshot")
    assert snapshot["state"]["me"]["role"] == "instructor"
    assert await client.command("start_game") == {
        "type": "ack",
        "id": "c1",
        "seq": t.game.last_seq + 1,
    }


async def test_asking_for_host_without_the_link_gives_the_players_view(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A1"], host=True)
    assert (await client.until("snapshot"))["state"]["me"]["seat"] == "A1"
    assert (await client.command("start_game"))["code"] == "forbidden"


async def test_a_stranger_is_a_spectator(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, None)
    assert (await client.until("snapshot"))["state"]["me"]["role"] == "spectator"


# --------------------------------------------------------------------------------------------
# Client frames


async def test_ping_gets_pong(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A1"])
    await client.until("snapshot")
    before = time.time()
    await client.send({"type": "ping", "t": 42})
    pong = await client.until("pong")
    assert (pong["type"], pong["t"]) == ("pong", 42)
    assert before <= pong["now"] <= time.time()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_frame"),
        (json.dumps({"type": "dance"}), "unknown_frame"),
        (json.dumps({"type": "hello", "last_seq": "x"}), "bad_frame"),
        (json.dumps({"type": "ping", "t": 1}) + " " * 20_000, "frame_too_large"),
        (json.dumps({"type": "command", "id": "x1", "name": "fly", "args": {}}), "unknown_command"),
        (
            json.dumps({"type": "command", "id": "x2", "name": "propose", "args": {"values": "5"}}),
            "bad_command",
        ),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(
    connect: Any, text: str, code: str
) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A-chief"])
    await client.until("snapshot")
    await client.send(text)
    error = await client.until("error")
    assert error["code"] == code
    assert error["message"]
    await client.send({"type": "ping", "t": 1})
    assert (await client.until("pong"))["t"] == 1


async def test_an_error_names_the_refused_command_id(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A-chief"])
    await client.until("snapshot")
    await client.send({"type": "command", "id": "bad-args", "name": "accept", "args": {"id": 1}})
    assert (await client.until("error"))["id"] == "bad-args"


async def test_a_spectator_may_send_no_command(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["spectator"])
    await client.until("snapshot")
    refused = await client.command("chat", channel="table", text="hello")
    assert refused["code"] == "forbidden"


async def test_a_player_may_not_send_instructor_commands(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A-chief"])
    await client.until("snapshot")
    for name in ("start_game", "pause", "end_game"):
        assert (await client.command(name))["code"] == "forbidden"


async def test_the_instructor_may_not_send_player_commands(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    await host.until("snapshot")
    assert (await host.command("cast_ballot", yes=True))["code"] == "forbidden"


async def test_rule_refusals_reach_the_player_with_their_code(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    chief = await connect(t.code, t.sessions["A-chief"])
    member = await connect(t.code, t.sessions["A1"])
    for client in (host, chief, member):
        await client.until("snapshot")
    assert (await chief.command("propose", values=[5, 5]))["code"] == "wrong_phase"
    await host.command("start_game")
    assert (await member.command("propose", values=[5, 5]))["code"] == "not_a_chief"
    assert (await chief.command("propose", values=[5, 11]))["code"] == "bad_values"
    assert (await chief.command("accept", proposal_id=9))["code"] == "unknown_proposal"
    assert (await member.command("cast_ballot", yes=True))["code"] == "wrong_phase"
    assert (await chief.command("chat", channel="caucus:B", text="psst"))[
        "code"
    ] == "not_in_channel"
    assert (await host.command("resume"))["code"] == "not_paused"
    assert not await sync_to_async(GameEvent.objects.filter(type="proposal_made").exists)()


async def test_the_rate_limit_refuses_a_flood_and_recovers(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A1"])
    await client.until("snapshot")
    for n in range(consumers.RATE_LIMIT_FRAMES + 5):
        await client.send({"type": "ping", "t": n})
    frames = await client.quiet(0.3)
    assert any(f["type"] == "error" and f["code"] == "rate_limited" for f in frames)
    await asyncio.sleep(consumers.RATE_LIMIT_SECONDS)
    await client.send({"type": "ping", "t": 7})
    assert (await client.until("pong"))["t"] == 7


# --------------------------------------------------------------------------------------------
# Commands and events


async def test_a_command_sends_its_events_then_the_ack_and_others_see_them(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    chief = await connect(t.code, t.sessions["A-chief"])
    other = await connect(t.code, t.sessions["B-chief"])
    for client in (host, chief, other):
        await client.until("snapshot")
    await host.command("start_game")
    await chief.event("phase_changed")
    await other.event("phase_changed")
    ack = await chief.command("propose", values=[5, 5])
    made = [
        f
        for f in chief.seen
        if f["type"] == "event" and f["event"] and f["event"]["type"] == "proposal_made"
    ]
    assert len(made) == 1
    assert chief.seen.index(made[0]) < chief.seen.index(ack)
    assert ack == {"type": "ack", "id": ack["id"], "seq": made[0]["seq"]}
    seen = await other.event("proposal_made")
    assert seen["event"]["values"] == [5, 5]
    assert seen["seq"] == made[0]["seq"]


async def test_a_retried_command_id_is_acknowledged_again_but_applied_once(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    chief = await connect(t.code, t.sessions["A-chief"])
    await host.until("snapshot")
    await chief.until("snapshot")
    await host.command("start_game")
    frame = {"type": "command", "id": "same", "name": "propose", "args": {"values": [4, 6]}}
    await chief.send(frame)
    first = await chief.until("ack", id="same")
    await chief.send(frame)
    second = await chief.until("ack", id="same")
    assert first == second
    count = await sync_to_async(GameEvent.objects.filter(type="proposal_made").count)()
    assert count == 1
    # A refusal is answered the same way every time too.
    refused = {"type": "command", "id": "no", "name": "withdraw", "args": {"proposal_id": 77}}
    await chief.send(refused)
    first_error = await chief.until("error", id="no")
    await chief.send(refused)
    assert await chief.until("error", id="no") == first_error


async def test_a_retried_id_after_reconnecting_is_not_applied_twice(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    await host.until("snapshot")
    await host.command("start_game")
    chief = await connect(t.code, t.sessions["A-chief"])
    await chief.until("snapshot")
    await chief.send({"type": "command", "id": "r1", "name": "propose", "args": {"values": [3, 7]}})
    await chief.until("ack", id="r1")
    await chief.close()
    again = await connect(t.code, t.sessions["A-chief"], hello=chief.seq)
    again.seq = chief.seq
    await again.send({"type": "command", "id": "r1", "name": "propose", "args": {"values": [3, 7]}})
    ack = await again.until("ack", id="r1")
    assert ack["seq"] == chief.seq
    assert await sync_to_async(GameEvent.objects.filter(type="proposal_made").count)() == 1


async def test_events_a_seat_may_not_see_arrive_as_placeholders(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    a1 = await connect(t.code, t.sessions["A1"])
    b1 = await connect(t.code, t.sessions["B1"])
    for client in (host, a1, b1):
        await client.until("snapshot")
    await host.command("start_game")
    await a1.command("chat", channel="caucus:A", text="Hold out for a deep Bordurian cut.")
    frame = await b1.until("event", seq=a1.seq)
    assert frame == {"type": "event", "seq": a1.seq, "event": None}
    shown = [f for f in a1.seen if f.get("seq") == a1.seq and f["type"] == "event"]
    assert shown[0]["event"]["text"] == "Hold out for a deep Bordurian cut."


async def test_a_ballot_stays_secret_until_the_count(connect: Any) -> None:
    t = await table(humans=("A-chief", "B-chief", "A1", "B1"), bots=("A2", "A3", "B2", "B3"))
    host = await connect(t.code, t.sessions["host"], host=True)
    a_chief = await connect(t.code, t.sessions["A-chief"])
    b_chief = await connect(t.code, t.sessions["B-chief"])
    a1 = await connect(t.code, t.sessions["A1"])
    b1 = await connect(t.code, t.sessions["B1"])
    for client in (host, a_chief, b_chief, a1, b1):
        await client.until("snapshot")
    await host.command("start_game")
    await a_chief.command("propose", values=[5, 5])
    proposal = (await b_chief.event("proposal_made"))["event"]["proposal_id"]
    await b_chief.command("accept", proposal_id=proposal)
    await a1.event("tentative_agreement")
    await a1.command("cast_ballot", yes=True)
    own = [
        f
        for f in a1.seen
        if f["type"] == "event"
        and f["event"]
        and f["event"]["type"] == "ballot_cast"
        and f["event"]["by"] == "A1"
    ]
    # Bots (no delay) may vote before A1: A1's own ballot is the one it sees in full.
    assert own and own[0]["event"] == {"type": "ballot_cast", "by": "A1", "yes": True}
    # The others learn that a ballot was cast, not whose or which way.
    redacted = await b1.until("event", seq=own[0]["seq"])
    assert redacted["event"] == {"type": "ballot_cast", "by": "", "yes": None}
    await b1.command("cast_ballot", yes=True)
    counted = await a_chief.event("ballots_counted", timeout=5)
    assert counted["event"]["ballots"]["A1"] is True
    await a_chief.event("agreement_in_force")


# --------------------------------------------------------------------------------------------
# Reconnecting


async def test_reconnecting_with_the_last_seq_gets_exactly_the_missed_events(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    chief = await connect(t.code, t.sessions["A-chief"])
    await host.until("snapshot")
    await chief.until("snapshot")
    await host.command("start_game")
    await chief.event("phase_changed")
    held = chief.seq
    await chief.close()
    for n in range(3):
        await host.command("extend_deadline", seconds=60 + n)
    back = await connect(t.code, t.sessions["A-chief"], hello=held)
    back.seq = held
    frames = await back.quiet(0.3)
    events = [f for f in frames if f["type"] == "event"]
    assert [f["seq"] for f in events] == [held + 1, held + 2, held + 3]
    assert [f["event"]["seconds"] for f in events] == [60, 61, 62]
    assert not any(f["type"] == "snapshot" for f in frames)


async def test_a_client_too_far_behind_gets_a_snapshot(connect: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(consumers, "REPLAY_LIMIT", 2)
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    await host.until("snapshot")
    await host.command("start_game")
    for n in range(3):
        await host.command("extend_deadline", seconds=10 + n)
    back = await connect(t.code, t.sessions["A-chief"], hello=1)
    snapshot = await back.until("snapshot")
    assert snapshot["seq"] == host.seq


async def test_a_seq_from_the_future_gets_a_snapshot(connect: Any) -> None:
    t = await table()
    client = await connect(t.code, t.sessions["A1"], hello=10_000)
    assert (await client.until("snapshot"))["seq"] == t.game.last_seq


async def test_no_event_before_hello_then_every_seq_once(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    await host.until("snapshot")
    quiet = await connect(t.code, t.sessions["A1"], hello=False)
    await host.command("start_game")
    assert await quiet.quiet(0.3) == []
    await quiet.send({"type": "hello", "last_seq": None})
    assert (await quiet.until("snapshot"))["seq"] == host.seq


async def start_unpublished(game_id: int, monkeypatch: Any) -> None:
    """Start the game as "another process" whose publication never arrives: its connections
    here see a gap and fetch it from the log."""
    real_publish = services.publish
    monkeypatch.setattr(services, "publish", lambda game_id, stored: None)
    await sync_to_async(services.submit)(
        game_id=game_id, command=c.StartGame(c.INSTRUCTOR), issuer="elsewhere"
    )
    monkeypatch.setattr(services, "publish", real_publish)


async def test_events_the_layer_lost_are_fetched_from_the_log(
    connect: Any, monkeypatch: Any
) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    watcher = await connect(t.code, t.sessions["B1"])
    await host.until("snapshot")
    await watcher.until("snapshot")
    await start_unpublished(t.game.pk, monkeypatch)
    await host.command("extend_deadline", seconds=30)
    frames = await watcher.quiet(0.3)
    kinds = [f["event"]["type"] for f in frames if f["type"] == "event"]
    assert kinds == ["phase_changed", "deadline_extended"]


# --------------------------------------------------------------------------------------------
# Presence


async def test_presence_lists_who_is_connected(connect: Any) -> None:
    t = await table()
    a1 = await connect(t.code, t.sessions["A1"])
    await a1.until("snapshot")
    await a1.until("presence", online=["A1"])
    b1 = await connect(t.code, t.sessions["B1"])
    await b1.until("snapshot")
    await a1.until("presence", online=["A1", "B1"])
    await b1.until("presence", online=["A1", "B1"])
    host = await connect(t.code, t.sessions["host"], host=True)
    await a1.until("presence", online=["A1", "B1"], instructor=True)
    await host.close()
    await b1.close()
    await a1.until("presence", online=["A1"], instructor=False)


# --------------------------------------------------------------------------------------------
# Deadlines and bots


async def test_a_deadline_that_passed_while_the_server_was_down_fires_once(connect: Any) -> None:
    settings = GameDefaults(deadlines=Deadlines(level1=10, level2=10, compliance=10))
    t = await table(settings=settings)
    # Started 20 s ago by a server that has since gone away: its level 1 deadline has passed.
    await sync_to_async(services.submit)(
        game_id=t.game.pk,
        command=c.StartGame(c.INSTRUCTOR),
        issuer="old-server",
        now=time.time() - 20,
    )
    services.state_cache.clear()
    # The clients held everything up to the start; the first connection starts the runtime,
    # whose timer may fire before or after their hello: either way they get the events.
    held = t.game.last_seq + 1
    first = await connect(t.code, t.sessions["A1"], hello=held)
    second = await connect(t.code, t.sessions["B1"], hello=held)
    first.seq = second.seq = held
    ended = await first.event("round_ended", timeout=5)
    assert ended["event"]["result"] == "no_agreement"
    await second.event("game_ended", timeout=5)
    await runtime.idle()
    await asyncio.sleep(0.3)
    fired = await sync_to_async(
        lambda: list(GameEvent.objects.filter(game=t.game, type="round_ended"))
    )()
    assert len(fired) == 1


async def test_the_runtime_starts_from_the_game_rows_without_folding_other_games(
    connect: Any, monkeypatch: Any
) -> None:
    """The first connection of a process times every running deadline and wakes the bots of
    games with bot seats, but folds no log of a game whose connections it does not serve:
    with several processes, each would otherwise hold the state of every game."""
    timed = GameDefaults(deadlines=Deadlines(level1=600, level2=600))
    running, paused, lobby = [await table(settings=timed) for _ in range(3)]
    untimed = await table(
        settings=GameDefaults(deadlines=Deadlines(level1=None, level2=None, compliance=None))
    )
    everyone_else = ("A1", "A2", "A3", "B-chief", "B1", "B2", "B3")
    with_bots = await table(humans=("A-chief",), bots=everyone_else, settings=timed)
    for t in (running, paused, untimed):
        await sync_to_async(services.submit)(
            game_id=t.game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="instructor:test"
        )
    await sync_to_async(services.submit)(
        game_id=paused.game.pk, command=c.PauseGame(c.INSTRUCTOR), issuer="instructor:test"
    )
    deadline = (await sync_to_async(services.load_state)(running.game.pk)).deadline
    assert deadline is not None
    services.state_cache.clear()
    loads: list[int] = []
    real_load = services.load_state

    def counting_load(game_id: int) -> Any:
        loads.append(game_id)
        return real_load(game_id)

    monkeypatch.setattr(services, "load_state", counting_load)
    host = await connect(lobby.code, lobby.sessions["host"], host=True)
    await host.until("snapshot")
    await runtime.settle()
    await runtime.idle()
    assert {game_id: timer[0] for game_id, timer in runtime._timers.items()} == {
        running.game.pk: deadline
    }
    # Read: the connection's own game, and the bots' game to let them move (they have
    # nothing to do in the lobby); no other.
    assert set(loads) <= {lobby.game.pk, with_bots.game.pk}
    assert with_bots.game.pk in loads
    assert services.state_cache.get(running.game.pk) is None
    assert services.state_cache.get(untimed.game.pk) is None


async def test_a_deadline_a_command_here_moved_is_timed_without_loading_the_game(
    connect: Any, monkeypatch: Any
) -> None:
    t = await table(settings=GameDefaults(deadlines=Deadlines(level1=600, level2=600)))
    host = await connect(t.code, t.sessions["host"], host=True)
    await host.until("snapshot")
    loads: list[int] = []
    real_load = services.load_state

    def counting_load(game_id: int) -> Any:
        loads.append(game_id)
        return real_load(game_id)

    # The runtime's start (timers of games already under way) is over.
    await runtime.settle()
    monkeypatch.setattr(services, "load_state", counting_load)
    await host.command("start_game")
    await host.command("extend_deadline", seconds=30)
    await runtime.settle()
    state = await sync_to_async(real_load)(t.game.pk)
    assert state.deadline is not None
    assert runtime._timers[t.game.pk][0] == state.deadline
    # The written state timed it: no second trip to the database thread for the game.
    assert loads == []
    # A state older than the one the timer came from (a command here published after a later
    # event from another process was seen) leaves the timer alone.
    runtime._set_timer(t.game.pk, dataclasses.replace(state, seq=state.seq - 1, paused=True))
    assert runtime._timers[t.game.pk][0] == state.deadline


QUICK = GameDefaults(deadlines=Deadlines(level1=10, level2=10, compliance=10))


def _start_elsewhere(game: Game, ago: float) -> float:
    """Start ``game`` as another process would (this one's runtime hears nothing of it),
    ``ago`` seconds ago; returns its Level I deadline."""
    listeners = services._write_listeners[:]
    services._write_listeners.clear()
    try:
        outcome = services.submit(
            game_id=game.pk,
            command=c.StartGame(c.INSTRUCTOR),
            issuer="other-process",
            now=time.time() - ago,
        )
    finally:
        services._write_listeners[:] = listeners
    assert outcome.accepted and outcome.state is not None and outcome.state.deadline
    services.state_cache.clear()
    return outcome.state.deadline


def _rounds_ended(game: Game) -> int:
    return GameEvent.objects.filter(game=game, type="round_ended").count()


class _Submissions:
    """The games this process's runtime submits commands to."""

    def __init__(self, monkeypatch: Any) -> None:
        self.games: list[int] = []
        self.real = services.submit
        monkeypatch.setattr(services, "submit", self._submit)

    def _submit(self, **kwargs: Any) -> Any:
        self.games.append(kwargs["game_id"])
        return self.real(**kwargs)


async def _unserved_game(connect: Any, monkeypatch: Any) -> tuple[Table, float, _Submissions]:
    """A game started elsewhere, its deadline 0.5 s away, that this process times (its
    runtime started on a connection to another game) but does not serve; ``BACKUP_SECONDS``
    is 1.5. Returns the game, its deadline and the runtime's submissions from now on."""
    monkeypatch.setattr(runtime_module, "BACKUP_SECONDS", 1.5)
    unserved = await table(settings=QUICK)
    deadline = await sync_to_async(_start_elsewhere)(unserved.game, ago=9.5)
    submissions = _Submissions(monkeypatch)
    await _start_the_runtime(connect)
    return unserved, deadline, submissions


async def _start_the_runtime(connect: Any) -> None:
    """Start this process's runtime, as a connection to a game of its own does."""
    lobby = await table()
    host = await connect(lobby.code, lobby.sessions["host"], host=True)
    await host.until("snapshot")
    await runtime.settle()


async def test_a_process_with_no_connection_of_a_game_leaves_its_deadline_to_the_others(
    connect: Any, monkeypatch: Any
) -> None:
    """A process times every running deadline from the rows when it starts, but one that
    serves no connection of the game neither fires nor folds it when the deadline comes: it
    reads the row ``BACKUP_SECONDS`` later and, finding the deadline fired by the process
    that serves the game, stops timing it. With many processes, a deadline costs one fold."""
    elsewhere, deadline, submissions = await _unserved_game(connect, monkeypatch)
    assert runtime._timers[elsewhere.game.pk][0] == deadline
    # The process serving the game fires it on time.
    await asyncio.sleep(deadline - time.time() + 0.2)
    fired = await sync_to_async(submissions.real)(
        game_id=elsewhere.game.pk,
        command=c.FireDeadline(c.SYSTEM, deadline),
        issuer=services.SYSTEM_ISSUER,
        client_id=f"deadline:{deadline!r}",
    )
    assert fired.accepted and not fired.replayed
    services.state_cache.clear()
    await asyncio.sleep(deadline + 1.5 - time.time() + 0.5)
    await runtime.settle()
    assert elsewhere.game.pk not in submissions.games
    assert services.state_cache.get(elsewhere.game.pk) is None
    assert elsewhere.game.pk not in runtime._timers
    assert elsewhere.game.pk not in runtime._timed_seq
    assert await sync_to_async(_rounds_ended)(elsewhere.game) == 1


async def test_a_deadline_of_a_game_nobody_serves_is_fired_by_a_process_after_the_backup_delay(
    connect: Any, monkeypatch: Any
) -> None:
    orphan, deadline, submissions = await _unserved_game(connect, monkeypatch)
    await asyncio.sleep(deadline - time.time() + 0.5)
    # Past the deadline, within the backup delay: left to a process that serves the game.
    assert submissions.games == []
    assert await sync_to_async(_rounds_ended)(orphan.game) == 0
    await asyncio.sleep(deadline + 1.5 - time.time() + 0.5)
    await runtime.settle()
    assert submissions.games == [orphan.game.pk]
    assert await sync_to_async(_rounds_ended)(orphan.game) == 1


async def test_a_connection_times_its_games_deadline_when_it_opens(
    connect: Any, monkeypatch: Any
) -> None:
    """The runtime started before the game did, and another process started it: the first
    connection of the game here times the deadline from the state it loads for its
    snapshot, exactly (not as a backup)."""
    monkeypatch.setattr(runtime_module, "BACKUP_SECONDS", 30.0)
    later = await table(settings=QUICK)
    await _start_the_runtime(connect)
    deadline = await sync_to_async(_start_elsewhere)(later.game, ago=9.0)
    assert later.game.pk not in runtime._timers
    player = await connect(later.code, later.sessions["A1"])
    await player.until("snapshot")
    assert runtime._timers[later.game.pk][0] == deadline
    assert later.game.pk not in runtime._backing_up
    ended = await player.event("round_ended", timeout=5)
    assert ended["event"]["result"] == "no_agreement"
    assert time.time() < deadline + 5


async def test_the_sweep_times_a_deadline_nobody_timed(connect: Any, monkeypatch: Any) -> None:
    """A deadline whose timer was in a process that is gone (here: set by another process
    after this one started, with no connection of the game anywhere) is found by the
    periodic sweep once it is ``BACKUP_SECONDS`` overdue, and fired once."""
    monkeypatch.setattr(runtime_module, "BACKUP_SECONDS", 1.0)
    forgotten = await table(settings=QUICK)
    await _start_the_runtime(connect)
    deadline = await sync_to_async(_start_elsewhere)(forgotten.game, ago=12.0)
    assert deadline < time.time() - 1.0
    assert forgotten.game.pk not in runtime._timers
    await runtime._sweep()
    await asyncio.sleep(0.2)
    await runtime.settle()
    assert await sync_to_async(_rounds_ended)(forgotten.game) == 1
    # Swept again, the row shows no overdue deadline: nothing more is fired.
    await runtime._sweep()
    await runtime.settle()
    assert await sync_to_async(_rounds_ended)(forgotten.game) == 1


def _redis_layer(settings: Any, url: str, grace: float) -> str:
    """Settings of a process on a Redis layer of its own prefix; returns the lease's key."""
    settings.REDIS_URL = url
    settings.RATIFY_GRACE_SECONDS = grace
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": f"ratify-test-{uuid.uuid4().hex[:8]}"},
        }
    }
    return runtime_module.sweep_lease_key()


async def test_with_redis_one_process_in_each_period_sweeps_presence(settings: Any) -> None:
    """Every connection answers every probe: with several processes on Redis, one process
    per period asks, the one that takes the lease; the lease lasts nine tenths of it."""
    require("127.0.0.1", 6379, "Redis")
    key = _redis_layer(settings, REDIS_URL, grace=1.0)
    first, second = Runtime(), Runtime()
    try:
        assert await first._takes_the_sweep()
        assert not await second._takes_the_sweep()
        assert not await first._takes_the_sweep()
        await asyncio.sleep(1.0)
        assert await second._takes_the_sweep()
        assert not await first._takes_the_sweep()
    finally:
        for process in (first, second):
            if process._redis is not None:
                await process._redis[1].delete(key)
                await process._redis[1].aclose()


async def test_a_process_that_cannot_reach_redis_sweeps_presence_anyway(settings: Any) -> None:
    _redis_layer(settings, f"redis://127.0.0.1:{free_port()}/0", grace=1.0)
    assert await Runtime()._takes_the_sweep()
    settings.REDIS_URL = ""
    assert await Runtime()._takes_the_sweep()


async def test_a_process_without_the_lease_still_sets_the_matches_seat_timers(
    connect: Any, monkeypatch: Any
) -> None:
    swept: list[bool] = []
    armed: list[int] = []

    async def elsewhere() -> bool:
        return False

    async def presence() -> None:
        swept.append(True)

    async def arm(game_id: int) -> None:
        armed.append(game_id)

    monkeypatch.setattr(runtime_module, "_open_match_ids", lambda: [7, 9])
    monkeypatch.setattr(runtime, "_takes_the_sweep", elsewhere)
    monkeypatch.setattr(runtime, "_sweep_presence", presence)
    monkeypatch.setattr(runtime, "_arm", arm)
    await runtime._sweep()
    assert swept == [] and armed == [7, 9]
    runtime.reset()


async def test_bots_answer_a_human_chief(connect: Any) -> None:
    t = await table(humans=("A-chief",), bots=("A1", "A2", "A3", "B-chief", "B1", "B2", "B3"))
    host = await connect(t.code, t.sessions["host"], host=True)
    chief = await connect(t.code, t.sessions["A-chief"])
    await host.until("snapshot")
    await chief.until("snapshot")
    await host.command("start_game")
    # The B bot opens; GATT's Nash point (5, 5) is acceptable to A: accepting it ends the round.
    made = await chief.event("proposal_made", timeout=5)
    assert made["event"]["by"] == "B-chief"
    await chief.command("accept", proposal_id=made["event"]["proposal_id"])
    await chief.event("tentative_agreement")
    in_force = await chief.event("agreement_in_force", timeout=5)
    assert in_force["event"]["values"] == [5, 5]
    await chief.event("game_ended", timeout=5)


async def test_seat_bot_and_release_seat_from_the_host(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    await host.until("snapshot")
    assert (await host.command("seat_bot", seat="A2"))["type"] == "ack"
    taken = await host.event("seat_taken")
    assert taken["event"]["bot"] is True
    assert (await host.command("release_seat", seat="A2"))["type"] == "ack"
    assert (await host.command("release_seat", seat="A2"))["code"] == "seat_empty"
    assert (await host.command("seat_bot", seat="Z9"))["code"] == "unknown_seat"


async def test_every_connection_sees_who_holds_each_seat(connect: Any) -> None:
    t = await table(humans=("A-chief", "A1"), bots=("B2",))
    spectator = await connect(t.code, None)
    seats = (await spectator.until("snapshot"))["state"]["seats"]
    assert seats["A1"]["name"] == "Player A1"
    assert (seats["B2"]["name"], seats["B2"]["bot"]) == ("Bot", True)
    assert seats["B1"] == {"occupied": False, "bot": False, "name": ""}


def _drive_to_compliance_resolved(game_id: int) -> int:
    """Agree on (5, 5), ratify it, let B defect; returns the seq before the resolution."""

    def run(command: c.Command) -> services.Outcome:
        outcome = services.submit(game_id=game_id, command=command, issuer="test")
        assert outcome.accepted, outcome
        return outcome

    run(c.StartGame(c.INSTRUCTOR))
    proposal = run(c.Propose("A-chief", (5.0, 5.0)))
    run(c.Accept("B-chief", proposal.events[0].event.proposal_id))  # type: ignore[attr-defined]
    for voter in ("A1", "A2", "A3", "B1", "B2", "B3"):
        run(c.CastBallot(voter, True))
    before = run(c.ChooseCompliance("B-chief", False)).last_seq
    run(c.ChooseCompliance("A-chief", True))
    return before


@pytest.mark.parametrize("regime", [False, True])
async def test_compliance_results_reach_players_as_the_regime_allows(
    connect: Any, regime: bool
) -> None:
    humans = ("A-chief", "A1", "A2", "A3", "B-chief", "B1", "B2", "B3")
    t = await table(humans=humans, settings=GameDefaults(compliance=True, regime=regime))
    before = await sync_to_async(_drive_to_compliance_resolved)(t.game.pk)
    a1 = await connect(t.code, t.sessions["A1"], hello=before)
    a1.seq = before
    resolved = (await a1.event("compliance_resolved"))["event"]
    # Under a regime every country's record is public; without one, only A's own.
    expected = {"A": True, "B": False} if regime else {"A": True}
    assert resolved["choices"] == expected
    snapshot_client = await connect(t.code, t.sessions["A1"])
    history = (await snapshot_client.until("snapshot"))["state"]["history"][0]
    assert history["compliance"] == expected


async def test_a_connection_acts_for_its_seat_only_while_it_holds_it(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    member = await connect(t.code, t.sessions["A1"])
    chief = await connect(t.code, t.sessions["A-chief"])
    for client in (host, member, chief):
        await client.until("snapshot")
    assert (await member.command("chat", channel="caucus:A", text="still here"))["type"] == "ack"
    await host.command("release_seat", seat="A1")
    refused = await member.command("chat", channel="caucus:A", text="am I?")
    assert refused["code"] == "seat_lost"
    # Given to a bot while its player is connected: the old connection acts for nobody.
    await host.command("seat_bot", seat="A-chief")
    await host.command("start_game")
    assert (await chief.command("propose", values=[5, 5]))["code"] == "seat_lost"
    applied = await sync_to_async(
        GameCommand.objects.filter(issuer__startswith="player:", accepted=True).count
    )()
    assert applied == 1  # the chat line before the seat was released, nothing after


async def test_a_connection_that_loses_its_seat_stops_seeing_its_secrets(connect: Any) -> None:
    t = await table()
    host = await connect(t.code, t.sessions["host"], host=True)
    member = await connect(t.code, t.sessions["A1"])
    chief = await connect(t.code, t.sessions["A-chief"])
    for client in (host, member, chief):
        await client.until("snapshot")
    await host.command("start_game")
    await chief.command("chat", channel="caucus:A", text="before: for Atlantis only")
    seen = await member.event("chat_posted")
    assert seen["event"]["text"] == "before: for Atlantis only"
    await host.command("seat_bot", seat="A1")
    await member.event("seat_taken")
    await host.until("presence", online=["A-chief"])
    said = await chief.command("chat", channel="caucus:A", text="after: for Atlantis only")
    # The old tab now sees what a spectator sees: the caucus line is only a placeholder.
    placeholder = await member.until("event", seq=said["seq"])
    assert placeholder["event"] is None
