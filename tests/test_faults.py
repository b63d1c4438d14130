"""Faults against real Daphne processes on loopback, on SQLite and on a fresh PostgreSQL
database: a server killed with SIGKILL mid-game, Redis restarted under two servers, and two
servers receiving commands for one game at the same instant, many times over.

The clients are ``fault_support.ResyncingClient``: they behave as the game page does
(hello with the last seq, resend unanswered commands with their ids, reconnect by themselves).
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.rules import initial_state
from negotiation.engine.scenario import GameDefaults, Scenario
from negotiation.engine.utility import votes_yes
from negotiation.engine.visibility import SPECTATOR, visible
from tests.fault_support import (
    DATABASE_KINDS,
    CommandRecord,
    Frame,
    ResyncingClient,
    command_records,
    documented_error_codes,
    host_cookie,
    kill,
    live_database,
    new_game,
    seat_cookie,
    sequence_problems,
    start_redis,
    stop_all,
    stored_log,
)
from tests.live import REDIS_URL, Server, manage, require, server_env, start_server

pytestmark = pytest.mark.timeout(300)

SEATS = ("A-chief", "A1", "A2", "A3", "B-chief", "B1", "B2", "B3")
#: Seconds to wait for anything a server should do at once.
STEP = 30.0
#: The shortest Level I a game accepts: its deadline falls due while the server is down.
LEVEL1_SECONDS = 10
NO_DEADLINES = {"level1": None, "level2": None, "compliance": None}
#: Commands each talking client makes per burst, and the pause between bursts.
BURST = 2
BURST_PAUSE = 0.4


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database of each kind, migrated, with the built-in scenarios, for this module's
    tests (each plays its own game); yields its URL."""
    directory = tmp_path_factory.mktemp(f"faults-{request.param}")
    with live_database(str(request.param), directory) as url:
        env = server_env(DATABASE_URL=url)
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")
        yield url


# --------------------------------------------------------------------------------------------
# Helpers


def scenario_of(url: str, code: str) -> tuple[Scenario, GameDefaults]:
    created = e.event_from_dict(stored_log(url, code)[0][1])
    assert isinstance(created, e.GameCreated)
    state = initial_state(created)
    return state.scenario, state.settings


def table(
    code: str, cookies: Mapping[str, str], servers: Mapping[str, Server]
) -> dict[str, ResyncingClient]:
    """A client for the host, every seat and a spectator, each on the server named for it."""
    clients: dict[str, ResyncingClient] = {}
    for name, server in servers.items():
        viewer = INSTRUCTOR if name.startswith("host") else name
        if name.startswith("spectator"):
            viewer = SPECTATOR
        path = f"/ws/games/{code}/" + ("?role=host" if viewer == INSTRUCTOR else "")
        clients[name] = ResyncingClient(name, server, path, cookies.get(name, ""), viewer)
    return clients


async def synced(clients: Mapping[str, ResyncingClient]) -> list[asyncio.Task[None]]:
    """Start every client; returns their tasks once each holds a snapshot."""
    tasks = [asyncio.create_task(client.run()) for client in clients.values()]
    for client in clients.values():
        await client.synced(STEP)
    return tasks


async def talk(client: ResyncingClient, stop: asyncio.Event) -> None:
    """Commands in a steady stream, without waiting for answers, until ``stop``: chat lines
    and statements whose text carries the command id, and proposals no other chief tables."""
    chief = client.viewer.endswith("chief")
    country = client.viewer[0]
    made = 0
    while not stop.is_set():
        for _ in range(BURST):
            made += 1
            command_id = client.next_id()
            if chief and made % 5 == 0:
                # A's texts and B's never meet: no tentative agreement by accident.
                own = made % 5
                values = [own, 10] if country == "A" else [10, own]
                client.submit("propose", {"values": values}, command_id)
            elif chief and made % 7 == 0:
                client.submit("statement", {"text": f"said {command_id}"}, command_id)
            else:
                channel = "table" if chief and made % 2 else f"caucus:{country}"
                client.submit(
                    "chat", {"channel": channel, "text": f"said {command_id}"}, command_id
                )
        await asyncio.sleep(BURST_PAUSE)


async def play_round_to_agreement(
    clients: Mapping[str, ResyncingClient], scenario: Scenario
) -> None:
    """A's chief tables (5, 5), B's accepts it, every constituent votes sincerely."""
    a_chief, b_chief = clients["A-chief"], clients["B-chief"]
    tabled = await a_chief.call("propose", values=[5, 5])
    assert tabled["type"] == "ack", tabled
    await a_chief.wait_until(lambda: tabled["seq"] in a_chief.events, STEP, "its proposal")
    made = a_chief.events[tabled["seq"]]
    assert made is not None and made["type"] == "proposal_made", made
    accepted = await b_chief.call("accept", proposal_id=made["proposal_id"])
    assert accepted["type"] == "ack", accepted
    for member in (m for m in scenario.members if m.role == "constituent"):
        voter = clients[member.key]
        text = (await voter.event("tentative_agreement", proposal_id=made["proposal_id"]))["values"]
        yes = votes_yes(scenario.utility_of(member, text), member.reservation)
        ballot = await voter.call("cast_ballot", yes=yes)
        assert ballot["type"] == "ack", ballot


def said_texts(log: list[tuple[int, dict[str, Any]]]) -> collections.Counter[str]:
    return collections.Counter(
        payload["text"]
        for _, payload in log
        if payload["type"] in ("chat_posted", "statement_made")
    )


def answer_problems(
    clients: Mapping[str, ResyncingClient],
    log: list[tuple[int, dict[str, Any]]],
    records: list[CommandRecord],
) -> tuple[list[str], int, int]:
    """Whether every command made was answered once, every acked one is in the log exactly
    once and every refused one not at all. Returns (problems, acked, lost)."""
    codes = documented_error_codes()
    texts = said_texts(log)
    recorded = {r.client_id: r for r in records}
    problems: list[str] = []
    acked = lost = 0
    for client in clients.values():
        if client.pending:
            problems.append(f"{client.name}: never answered {sorted(client.pending)[:5]}")
        for command_id, answer in client.answers.items():
            said = texts.get(f"said {command_id}", 0)
            record = recorded.get(command_id)
            if answer["type"] == "ack":
                acked += 1
                if record is None or not record.accepted or record.last_seq != answer["seq"]:
                    lost += 1
                    problems.append(f"{command_id} was acked {answer} but recorded {record}")
                if record is not None and record.name in ("chat", "statement") and said != 1:
                    lost += 1
                    problems.append(f"{command_id} was acked but is in the log {said} times")
            else:
                if answer["code"] not in codes:
                    problems.append(f"{command_id}: undocumented code {answer['code']!r}")
                if said:
                    problems.append(f"{command_id} was refused but is in the log")
    duplicated = [text for text, count in texts.items() if count > 1]
    if duplicated:
        problems.append(f"said more than once: {duplicated[:5]}")
    return problems, acked, lost


def view_problems(
    clients: Mapping[str, ResyncingClient],
    log: list[tuple[int, dict[str, Any]]],
    url: str,
    code: str,
) -> list[str]:
    """Every client holds every seq once and in order, each as its viewer may see it."""
    scenario, settings = scenario_of(url, code)
    problems: list[str] = []
    for client in clients.values():
        problems += sequence_problems(client, len(log))
        for seq, shown in client.events.items():
            expected = visible(
                scenario, e.event_from_dict(log[seq - 1][1]), client.viewer, settings=settings
            )
            if shown != (e.event_to_dict(expected) if expected else None):
                problems.append(f"{client.name} holds {shown} at {seq}")
    return problems


# --------------------------------------------------------------------------------------------
# (a) A server killed mid-game


async def test_a_server_killed_mid_game_loses_no_command_and_its_clients_resync(
    database: str, tmp_path: Path
) -> None:
    url = database
    env = server_env(DATABASE_URL=url)
    game = new_game(
        env,
        "gatt",
        rounds=2,
        deadlines={"level1": LEVEL1_SECONDS, "level2": None, "compliance": None},
    )
    code = game["code"]
    server = start_server(env, tmp_path, "before")
    clients: dict[str, ResyncingClient] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        cookies = {seat: seat_cookie(server.base, code, seat) for seat in SEATS}
        cookies["host"] = host_cookie(server.base, code, game["host_token"])
        clients = table(code, cookies, {name: server for name in ("host", *SEATS, "spectator")})
        tasks = await synced(clients)
        host = clients["host"]
        assert (await host.call("start_game"))["type"] == "ack"
        deadline = float((await host.event("phase_changed", round=1))["deadline"])

        quiet = asyncio.Event()
        talking = [asyncio.create_task(talk(clients[seat], quiet)) for seat in SEATS]
        await asyncio.sleep(2.0)
        assert time.time() < deadline - 2, "the server must die before the deadline falls due"
        # A last burst from every seat, and the server dies while it works on it.
        for seat in SEATS:
            for _ in range(BURST):
                command_id = clients[seat].next_id()
                clients[seat].submit(
                    "chat",
                    {"channel": f"caucus:{seat[0]}", "text": f"said {command_id}"},
                    command_id,
                )
        # Dies a moment after the burst left: the server answers a burst of this size in a
        # few milliseconds, so waiting longer would leave nothing in flight.
        await asyncio.sleep(0.002)
        kill(server)
        in_flight = {cid for client in clients.values() for cid in client.pending}
        log_at_kill = stored_log(url, code)
        applied_unanswered = {r.client_id for r in command_records(url, code)} & in_flight
        await asyncio.sleep(0.6)  # the players keep playing while the server is down
        quiet.set()
        await asyncio.gather(*talking)
        made_during_outage = sum(len(c.pending) for c in clients.values()) - len(in_flight)
        # Come back only once the Level I deadline has passed.
        await asyncio.sleep(max(0.0, deadline + 0.5 - time.time()))
        server = start_server(env, tmp_path, "after", port=server.port)

        ended = await host.event("round_ended", round=1)
        assert ended["result"] == "no_agreement"
        # Round 2 has the same short Level I: the host gives the players time at once.
        await host.event("phase_changed", round=2)
        assert (await host.call("extend_deadline", seconds=3600))["type"] == "ack"
        for client in clients.values():
            await client.answered(STEP, reconnected=True)
        scenario, _ = scenario_of(url, code)
        await play_round_to_agreement(clients, scenario)
        for client in clients.values():
            await client.event("game_ended", reason="all_rounds_played")
        await asyncio.sleep(0.5)  # anything stray would arrive now
    finally:
        await stop_all(clients, tasks)
        server.stop()

    log = stored_log(url, code)
    records = command_records(url, code)
    assert [seq for seq, _ in log] == list(range(1, len(log) + 1))
    problems, acked, lost = answer_problems(clients, log, records)
    assert not problems, problems
    assert lost == 0
    assert acked > 2 * len(SEATS)
    assert in_flight, "no command was in flight when the server died"
    assert made_during_outage > 0
    assert not [p for _, p in log_at_kill if p["type"] == "round_ended"]
    # The deadline that fell due while the server was down fired once, after the restart.
    assert [p["round"] for _, p in log if p["type"] == "round_ended"] == [1, 2]
    fired = [r for r in records if r.client_id.startswith("deadline:") and r.accepted]
    assert len(fired) == 1, fired
    assert log[-1][1] == {"type": "game_ended", "reason": "all_rounds_played"}
    assert not view_problems(clients, log, url, code)
    print(
        f"\n[faults] SIGKILL on {url.split(':')[0]}: {len(in_flight)} commands in flight "
        f"({len(applied_unanswered)} applied, unanswered), {made_during_outage} made during "
        f"the outage, {acked} acked, {lost} lost"
    )


# --------------------------------------------------------------------------------------------
# (b) Redis restarted under two servers


async def test_two_servers_recover_from_a_redis_restart_without_losing_an_event(
    database: str, tmp_path: Path
) -> None:
    url = database
    redis = start_redis(tmp_path)
    env = server_env(
        DATABASE_URL=url,
        REDIS_URL=redis.url,
        RATIFY_CHANNEL_PREFIX=f"ratify-fault-{uuid.uuid4().hex[:8]}",
    )
    game = new_game(env, "gatt", rounds=1, deadlines=NO_DEADLINES)
    code = game["code"]
    first = start_server(env, tmp_path, "first")
    second: Server | None = None
    clients: dict[str, ResyncingClient] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        second = start_server(env, tmp_path, "second")
        servers = (first, second)
        placement: dict[str, Server] = {"host": first, "spectator-1": first, "spectator-2": second}
        for index, seat in enumerate(SEATS):
            # Each country's chief and constituents are spread over both servers.
            placement[seat] = servers[(index + (seat[0] == "B")) % 2]
        cookies = {seat: seat_cookie(placement[seat].base, code, seat) for seat in SEATS}
        cookies["host"] = host_cookie(first.base, code, game["host_token"])
        clients = table(code, cookies, placement)
        tasks = await synced(clients)
        assert (await clients["host"].call("start_game"))["type"] == "ack"

        quiet = asyncio.Event()
        talking = [asyncio.create_task(talk(clients[seat], quiet)) for seat in SEATS]
        await asyncio.sleep(1.0)
        redis.stop()
        await asyncio.sleep(1.5)  # commands go on while Redis is down
        redis = start_redis(tmp_path, port=redis.port)
        await asyncio.sleep(1.5)
        quiet.set()
        await asyncio.gather(*talking)
        for client in clients.values():
            await client.answered(STEP)
        scenario, _ = scenario_of(url, code)
        await play_round_to_agreement(clients, scenario)
        for client in clients.values():
            await client.event("game_ended", reason="all_rounds_played")
        await asyncio.sleep(0.5)
    finally:
        await stop_all(clients, tasks)
        if second is not None:
            second.stop()
        first.stop()
        redis.stop()

    log = stored_log(url, code)
    records = command_records(url, code)
    assert [seq for seq, _ in log] == list(range(1, len(log) + 1))
    problems, acked, lost = answer_problems(clients, log, records)
    assert not problems, problems
    assert lost == 0 and acked > 2 * len(SEATS)
    assert any(p["type"] == "agreement_in_force" for _, p in log)
    assert not view_problems(clients, log, url, code)
    for server in (first, second):
        # Both processes felt Redis go away (and, the checks above show, came back).
        assert f"('127.0.0.1', {redis.port})" in server.log.read_text(errors="replace")
    gaps = sum(client.gaps for client in clients.values())
    print(
        f"\n[faults] Redis restart on {url.split(':')[0]}: {acked} acked, {lost} lost, {gaps} gaps"
    )


# --------------------------------------------------------------------------------------------
# (c) The same instant, two servers, many times over

PAIRS = 200


async def test_two_servers_taking_commands_for_one_game_at_the_same_instant(
    database: str, tmp_path: Path
) -> None:
    require("127.0.0.1", 6379, "Redis")
    url = database
    env = server_env(
        DATABASE_URL=url,
        REDIS_URL=REDIS_URL,
        RATIFY_CHANNEL_PREFIX=f"ratify-race-{uuid.uuid4().hex[:8]}",
    )
    game = new_game(env, "gatt")
    code = game["code"]
    first = start_server(env, tmp_path, "first")
    second: Server | None = None
    clients: dict[str, ResyncingClient] = {}
    tasks: list[asyncio.Task[None]] = []
    outcomes: list[tuple[str, Frame, Frame]] = []
    try:
        second = start_server(env, tmp_path, "second")
        cookie = host_cookie(first.base, code, game["host_token"])
        cookies = {"host-1": cookie, "host-2": cookie}
        placement: dict[str, Server] = {
            "host-1": first,
            "host-2": second,
            "A-chief": first,
            "B-chief": second,
            "A1": second,
            "B1": first,
            "spectator-1": first,
            "spectator-2": second,
        }
        for seat in ("A-chief", "B-chief", "A1", "B1"):
            cookies[seat] = seat_cookie(placement[seat].base, code, seat)
        clients = table(code, cookies, placement)
        tasks = await synced(clients)
        assert (await clients["host-1"].call("start_game"))["type"] == "ack"
        paused = False
        for pair in range(PAIRS):
            if pair % 2:
                # Only one of two identical pauses (or resumes) can be applied.
                kind = "resume" if paused else "pause"
                left, right = clients["host-1"], clients["host-2"]
                ids = (left.submit(kind, {}), right.submit(kind, {}))
                paused = not paused
            else:
                kind = "chat"
                left, right = clients["A-chief"], clients["B-chief"]
                a_id, b_id = left.next_id(), right.next_id()
                ids = (
                    left.submit("chat", {"channel": "table", "text": f"said {a_id}"}, a_id),
                    right.submit("chat", {"channel": "table", "text": f"said {b_id}"}, b_id),
                )
            outcomes.append((kind, await left.answer(ids[0]), await right.answer(ids[1])))
        if paused:
            assert (await clients["host-1"].call("resume"))["type"] == "ack"
        assert (await clients["host-1"].call("end_game"))["type"] == "ack"
        for client in clients.values():
            await client.event("game_ended")
        await asyncio.sleep(0.5)
    finally:
        await stop_all(clients, tasks)
        if second is not None:
            second.stop()
        first.stop()

    log = stored_log(url, code)
    records = command_records(url, code)
    assert [seq for seq, _ in log] == list(range(1, len(log) + 1)), "a seq is missing or twice"
    problems, _, lost = answer_problems(clients, log, records)
    assert not problems, problems
    assert lost == 0
    expected_refusal = {"pause": "already_paused", "resume": "not_paused"}
    for kind, left_answer, right_answer in outcomes:
        kinds = sorted((left_answer["type"], right_answer["type"]))
        if kind == "chat":
            assert kinds == ["ack", "ack"], (left_answer, right_answer)
        else:
            assert kinds == ["ack", "error"], (kind, left_answer, right_answer)
            refusal = left_answer if left_answer["type"] == "error" else right_answer
            assert refusal["code"] == expected_refusal[kind], refusal
    pauses = sum(1 for kind, _, _ in outcomes if kind == "pause")
    assert sum(1 for _, p in log if p["type"] == "game_paused") == pauses
    assert sum(1 for _, p in log if p["type"] == "game_resumed") == pauses
    assert len(said_texts(log)) == 2 * sum(1 for kind, _, _ in outcomes if kind == "chat")
    assert not view_problems(clients, log, url, code)
