"""Two Daphne processes on loopback, one PostgreSQL database and the real Redis: the players of
one game are split across both servers and play it to the end; every player sees every event,
in order, exactly as visibility allows. A game played on one server (as ``docs/deploy.md``
routes it) sends nothing through Redis until a connection of the game comes to the other
server, and from then on its events go both ways at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import websockets

from negotiation import hub
from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.rules import initial_state
from negotiation.engine.utility import votes_yes
from negotiation.engine.visibility import visible
from tests.live import (
    Browser,
    Server,
    create_game,
    manage,
    two_servers_on_redis,
)

pytestmark = pytest.mark.timeout(240)
STEP = 20.0


class Player:
    """One websocket client: sends hello, keeps every frame, checks seqs as they come."""

    def __init__(self, name: str, server: Server, cookie: str, host: bool = False) -> None:
        self.name = name
        self.server = server
        self.cookie = cookie
        self.host = host
        self.frames: list[dict[str, Any]] = []
        self.events: dict[int, dict[str, Any] | None] = {}
        self.first_seq = 0
        self.seq = 0
        self.arrived = asyncio.Event()
        self.sent = 0

    async def run(self, code: str) -> None:
        path = f"/ws/games/{code}/" + ("?role=host" if self.host else "")
        async with websockets.connect(
            self.server.ws_base + path,
            additional_headers={"Cookie": self.cookie, "Origin": self.server.base},
            open_timeout=STEP,
        ) as socket:
            self.socket = socket
            await socket.send(json.dumps({"type": "hello", "last_seq": None}))
            async for text in socket:
                frame = json.loads(text)
                self.frames.append(frame)
                if frame["type"] == "snapshot":
                    self.first_seq = self.seq = frame["seq"]
                elif frame["type"] == "event":
                    assert frame["seq"] == self.seq + 1, (
                        f"{self.name}: {frame['seq']} after {self.seq}"
                    )
                    self.seq = frame["seq"]
                    self.events[frame["seq"]] = frame["event"]
                self.arrived.set()

    async def wait_for(self, predicate: Any) -> dict[str, Any]:
        deadline = time.monotonic() + STEP
        index = 0
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if predicate(frame):
                    return frame
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{self.name} waited in vain; last frames: {self.frames[-3:]}"
            await asyncio.wait_for(self.arrived.wait(), remaining)

    async def event(self, event_type: str) -> dict[str, Any]:
        frame = await self.wait_for(
            lambda f: f["type"] == "event" and f["event"] and f["event"]["type"] == event_type
        )
        event: dict[str, Any] = frame["event"]
        return event

    async def command(self, name: str, **args: Any) -> dict[str, Any]:
        self.sent += 1
        command_id = f"{self.name}-{self.sent}"
        await self.socket.send(
            json.dumps({"type": "command", "id": command_id, "name": name, "args": args})
        )
        return await self.wait_for(lambda f: f.get("id") == command_id)


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[dict[str, str], Server, Server]]:
    with two_servers_on_redis(tmp_path) as servers:
        yield servers


def hosted_game(env: dict[str, str], server: Server) -> tuple[dict[str, Any], str]:
    """A new game of the built-in scenario, and the cookie of its host (whose link was opened
    on ``server``)."""
    game = create_game(env, "gatt")
    host_browser = Browser(server.base)
    host_browser.open_host_link(game["host_url"])
    return game, host_browser.cookie_header()


def stored_log(url: str, code: str) -> list[e.Event]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT ev.payload FROM negotiation_gameevent ev JOIN negotiation_game g "
            "ON g.id = ev.game_id WHERE g.code = %s ORDER BY ev.seq",
            (code,),
        ).fetchall()
    return [e.event_from_dict(row[0]) for row in rows]


async def test_one_game_played_across_two_servers_sharing_redis(
    two_servers: tuple[dict[str, str], Server, Server],
) -> None:
    env, first, second = two_servers
    game, host_cookie = hosted_game(env, first)
    code = game["code"]
    servers = (first, second)
    players: dict[str, Player] = {"host": Player("host", first, host_cookie, True)}
    countries = sorted({s["country"] for s in game["seats"]})
    for index, seat_info in enumerate(game["seats"]):
        # Alternate within each country, each country starting on another server: the two
        # chiefs and half of each country's constituents sit on each.
        seat = seat_info["seat"]
        server = servers[(index + countries.index(seat_info["country"])) % 2]
        browser = Browser(server.base)
        browser.take_seat(code, seat, f"Student {index + 1}")
        players[seat] = Player(seat, server, browser.cookie_header())
    assert {p.server.port for p in players.values()} == {first.port, second.port}

    tasks = [asyncio.create_task(p.run(code)) for p in players.values()]
    try:
        for player in players.values():
            await player.wait_for(lambda f: f["type"] == "snapshot")
        host = players["host"]
        assert (await host.command("start_game"))["type"] == "ack"

        # Level I across the two servers: A's chief (first) proposes, B's chief (second) accepts.
        a_chief, b_chief = players["A-chief"], players["B-chief"]
        assert a_chief.server is not b_chief.server
        await b_chief.event("phase_changed")
        assert (await a_chief.command("propose", values=[5, 5]))["type"] == "ack"
        proposal = await b_chief.event("proposal_made")
        assert (await b_chief.command("accept", proposal_id=proposal["proposal_id"]))[
            "type"
        ] == "ack"

        # Level II: every constituent votes sincerely on the frozen text.
        log = stored_log(env["DATABASE_URL"], code)
        created = log[0]
        assert isinstance(created, e.GameCreated)
        scenario = initial_state(created).scenario
        for member in (m for m in scenario.members if m.role == "constituent"):
            player = players[member.key]
            text = (await player.event("tentative_agreement"))["values"]
            yes = votes_yes(scenario.utility_of(member, text), member.reservation)
            assert (await player.command("cast_ballot", yes=yes))["type"] == "ack"
        for player in players.values():
            await player.event("game_ended")
        await asyncio.sleep(0.3)  # anything stray would arrive now
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    log = stored_log(env["DATABASE_URL"], code)
    assert any(isinstance(event, e.AgreementInForce) for event in log)
    last = len(log)
    for name, player in players.items():
        viewer = INSTRUCTOR if name == "host" else name
        # Every seq after the snapshot, once and in order (checked as they came), to the end.
        assert sorted(player.events) == list(range(player.first_seq + 1, last + 1)), name
        for seq, shown in player.events.items():
            expected = visible(scenario, log[seq - 1], viewer)
            assert shown == (e.event_to_dict(expected) if expected else None), (name, seq)
    # The ballots were secret: B1 learnt only that A1's ballot was cast.
    ballot_seqs = [
        seq
        for seq, event in enumerate(log, 1)
        if isinstance(event, e.BallotCast) and event.by == "A1"
    ]
    assert ballot_seqs
    assert players["B1"].events[ballot_seqs[0]] == {"type": "ballot_cast", "by": "", "yes": None}


async def test_a_viewer_who_joins_a_game_on_the_other_server_is_served_at_once(
    two_servers: tuple[dict[str, str], Server, Server],
) -> None:
    env, first, second = two_servers
    game, cookie = hosted_game(env, first)
    code = game["code"]
    players = {"host": Player("host", first, cookie, True)}
    for seat in ("A-chief", "B-chief"):
        browser = Browser(first.base)
        browser.take_seat(code, seat, seat)
        players[seat] = Player(seat, first, browser.cookie_header())
    tasks = [asyncio.create_task(p.run(code)) for p in players.values()]
    try:
        for player in players.values():
            await player.wait_for(lambda f: f["type"] == "snapshot")
        assert (await players["host"].command("start_game"))["type"] == "ack"
        a_chief = players["A-chief"]
        for n in range(3):
            assert (await a_chief.command("chat", channel="table", text=f"n{n}"))["type"] == "ack"

        # The instructor opens the game again, on the other server: both servers now listen.
        late = Player("late", second, cookie, True)
        tasks.append(asyncio.create_task(late.run(code)))
        await late.wait_for(lambda f: f["type"] == "snapshot")
        # Long before either server says again that it listens (LISTEN_RENEW_SECONDS), an
        # event written on either reaches the other's connections.
        started = time.monotonic()
        assert (await a_chief.command("chat", channel="table", text="here"))["type"] == "ack"
        await late.wait_for(
            lambda f: f["type"] == "event" and (f["event"] or {}).get("text") == "here"
        )
        assert (await late.command("announce", text="from the other server"))["type"] == "ack"
        for name in ("host", "A-chief", "B-chief"):
            await players[name].event("announcement_made")
        assert time.monotonic() - started < hub.LISTEN_RENEW_SECONDS / 2
        await asyncio.sleep(0.3)  # anything stray would arrive now
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    last = len(stored_log(env["DATABASE_URL"], code))
    for player in [*players.values(), late]:
        # Every seq after the snapshot, once and in order (checked as they came).
        assert sorted(player.events) == list(range(player.first_seq + 1, last + 1)), player.name


async def test_a_deadline_fires_once_with_two_servers_holding_its_timer(
    two_servers: tuple[dict[str, str], Server, Server],
) -> None:
    env, first, second = two_servers
    game = create_game(env, "gatt")
    code = game["code"]
    started = json.loads(
        manage(
            env,
            "shell",
            "-c",
            f"from tests.backend_scripts import start_with_deadline_in; "
            f"start_with_deadline_in({code!r}, 3)",
        )
        .strip()
        .splitlines()[-1]
    )
    # A spectator on each server: each server's runtime starts and sets the timer.
    watchers = [
        Player(f"watcher-{s.port}", s, Browser(s.base).cookie_header()) for s in (first, second)
    ]
    tasks = [asyncio.create_task(w.run(code)) for w in watchers]
    try:
        for watcher in watchers:
            snapshot = await watcher.wait_for(lambda f: f["type"] == "snapshot")
            assert snapshot["state"]["deadline"] == pytest.approx(started["deadline"])
        for watcher in watchers:
            ended = await watcher.event("round_ended")
            assert ended["result"] == "no_agreement"
            await watcher.event("game_ended")
        await asyncio.sleep(1.0)  # a second firing would have landed by now
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    log = stored_log(env["DATABASE_URL"], code)
    assert sum(isinstance(event, e.RoundEnded) for event in log) == 1
    assert sum(isinstance(event, e.GameEnded) for event in log) == 1
    with psycopg.connect(env["DATABASE_URL"]) as connection:
        (fired,) = connection.execute(
            "SELECT count(*) FROM negotiation_gamecommand WHERE issuer = 'system' "
            "AND client_id LIKE 'deadline:%%' AND accepted"
        ).fetchone()  # type: ignore[misc]
    assert fired == 1
