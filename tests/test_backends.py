"""PostgreSQL and Redis, for real: DATABASE_URL and REDIS_URL switch the project onto them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer

from tests.fault_support import new_game
from tests.live import REDIS_URL, create_game, manage, postgres_database, require, server_env

pytestmark = pytest.mark.timeout(300)

SETTINGS_PROBE = (
    "from django.conf import settings; from channels.layers import get_channel_layer; "
    "import json; print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'layer': type(get_channel_layer()).__name__}))"
)


def last_json(output: str) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return parsed


def test_the_default_is_sqlite_and_the_in_memory_layer() -> None:
    probe = last_json(manage(server_env(), "shell", "-c", SETTINGS_PROBE))
    assert probe == {"engine": "config.sqlite3", "layer": "ProcessChannelLayer"}


def test_sqlite_writes_ahead_without_an_fsync_per_commit(tmp_path: Path) -> None:
    probe = (
        "from django.db import connection; import json; c = connection.cursor(); "
        "c.execute('PRAGMA journal_mode'); mode = c.fetchone()[0]; "
        "c.execute('PRAGMA synchronous'); sync = c.fetchone()[0]; "
        "print(json.dumps({'mode': mode, 'synchronous': sync}))"
    )
    env = server_env(DATABASE_URL=f"sqlite:///{tmp_path / 'wal.sqlite3'}")
    # synchronous 1 is NORMAL: durable when the process dies, not through a power cut.
    assert last_json(manage(env, "shell", "-c", probe)) == {"mode": "wal", "synchronous": 1}


def test_database_url_and_redis_url_switch_to_postgresql_and_redis() -> None:
    env = server_env(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres", REDIS_URL=REDIS_URL
    )
    probe = last_json(manage(env, "shell", "-c", SETTINGS_PROBE))
    assert probe == {
        "engine": "django.db.backends.postgresql",
        "layer": "RedisPubSubChannelLayer",
    }


def test_postgresql_migrates_loads_the_scenarios_and_plays_a_whole_game() -> None:
    with postgres_database() as url:
        env = server_env(DATABASE_URL=url)
        manage(env, "migrate", "--noinput")
        assert "6 scenarios loaded" in manage(env, "load_scenarios")
        game = create_game(env, "gatt", bots="all")
        played = last_json(
            manage(
                env,
                "shell",
                "-c",
                f"from tests.backend_scripts import play_bots; play_bots({game['code']!r})",
            )
        )
        assert played["phase"] == "ended"
        report = last_json(manage(env, "score_game", game["code"], "--json"))
        assert report["phase"] == "ended"
        debrief = report["debrief"]
        assert isinstance(debrief, dict)
        assert debrief["outcome"]["label"] == "cooperation"
        assert debrief["agreement"] == {"a_cut": 5, "b_cut": 5}


def test_concurrent_writers_on_postgresql_each_get_their_own_seq() -> None:
    with postgres_database() as url:
        env = server_env(DATABASE_URL=url)
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")
        game = create_game(env, "gatt")
        writers, each = 8, 25
        result = last_json(
            manage(
                env,
                "shell",
                "-c",
                f"from tests.backend_scripts import race; race({game['code']!r}, {writers}, {each})",
            )
        )
        assert result["vendor"] == "postgresql"
        assert result["refused"] == []
        assert result["chats"] == writers * each
        seqs = result["seqs"]
        assert isinstance(seqs, list)
        assert seqs == list(range(1, len(seqs) + 1))
        # The writers queue on the game's row lock instead of colliding on the next seq.
        assert result["conflicts"] == 0


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_batch_of_several_games_is_written_and_projected_on_each_database(
    database: str, tmp_path: Path
) -> None:
    """One statement per table for the whole batch: every event, command record and game row
    as the single writes would leave them (a column of NULL deadlines keeps its type). On
    PostgreSQL a batch whose rows fit one ``INSERT`` per table sends them with the row locks
    and the games' ``UPDATE`` as one statement, with PostgreSQL's own placeholders unless
    queries are logged."""
    with contextlib.ExitStack() as stack:
        if database == "postgresql":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'batch.sqlite3'}"
        # As deployed: with DEBUG on, Django logs every query (and the batch takes the logged path).
        env = server_env(
            DATABASE_URL=url, DJANGO_DEBUG="false", DJANGO_SECRET_KEY="batch-test-" + "k" * 40
        )
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")
        no_deadlines = {"level1": None, "level2": None, "compliance": None}
        codes = [new_game(env, "gatt", deadlines=no_deadlines)["code"] for _ in range(2)]
        codes.append(new_game(env, "gatt")["code"])
        result: dict[str, Any] = json.loads(
            manage(
                env,
                "shell",
                "-c",
                f"from tests.backend_scripts import batch_of_games; batch_of_games({codes!r})",
            )
            .strip()
            .splitlines()[-1]
        )
    assert result["vendor"] == database
    assert result["accepted"] == [True] * result["requests"]
    assert result["commands"] == result["requests"]
    for code in codes:
        row, state = result["rows"][code], result["states"][code]
        assert row["last_seq"] == state["seq"]
        assert row["phase"] == state["phase"]
        assert row["status"] == "active"
        assert row["deadline"] == state["deadline"]
        assert result["texts"][code] == [f"{code}-{n}" for n in range(len(result["texts"][code]))]
        assert len(result["texts"][code]) == result["requests"] // len(codes)
    # The game with phase deadlines has one; the others hold NULL.
    assert result["rows"][codes[2]]["deadline"] is not None
    assert result["rows"][codes[0]]["deadline"] is None
    if database == "postgresql":
        # The row locks, the inserts and the update: one statement, its own transaction.
        assert result["small_batch_statements"] == ["WITH"]
        # PostgreSQL's own placeholders, which psycopg sends without searching the statement
        # for ``%s`` (it keeps what it finds only for statements of at most 50 parameters).
        assert result["small_batch_placeholders"] == ["$n"]
        assert result["larger_batch_placeholders"] == ["$n"]
        # With the queries logged, which formats statements with ``%s``: the usual cursor.
        assert result["logged_batch_statements"] == ["WITH"]
        assert result["logged_batch_placeholders"] == ["%s"]
    else:
        # SQLite: the write lock taken when the transaction begins (no row locks).
        assert result["small_batch_statements"] == ["BEGIN", "INSERT", "INSERT", "UPDATE"]
        assert result["small_batch_placeholders"] == ["none", "%s", "%s", "%s"]
        assert result["logged_batch_statements"] == [
            "BEGIN",
            "INSERT",
            "INSERT",
            "UPDATE",
            "COMMIT",
        ]
        assert result["logged_batch_placeholders"] == ["none", "%s", "%s", "%s"]


def test_a_writer_with_a_stale_state_collides_reloads_and_applies_once() -> None:
    with postgres_database() as url:
        env = server_env(DATABASE_URL=url)
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")
        game = create_game(env, "gatt")
        result = last_json(
            manage(
                env,
                "shell",
                "-c",
                f"from tests.backend_scripts import stale_writer; stale_writer({game['code']!r})",
            )
        )
        assert result["vendor"] == "postgresql"
        assert result["conflicts"] == 1
        assert result["loads"] == 2
        assert result["accepted"] is True
        assert result["texts"] == ["first", "second"]


async def test_the_redis_pubsub_layer_carries_a_group_message_between_processes() -> None:
    require("127.0.0.1", 6379, "Redis")
    prefix = f"ratify-test-{uuid.uuid4().hex[:8]}"
    # Two layers with their own connections, as in two server processes.
    here = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    there = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    try:
        channel = await here.new_channel()
        await here.group_add("game.1", channel)
        await asyncio.sleep(0.2)  # the subscription reaches Redis
        for n in range(50):
            await there.group_send("game.1", {"type": "game.events", "n": n})
        received = [await asyncio.wait_for(here.receive(channel), 5) for _ in range(50)]
        assert [m["n"] for m in received] == list(range(50))
    finally:
        await here.flush()
        await there.flush()


def test_batches_on_postgresql_go_as_one_statement_when_the_process_holds_their_states() -> None:
    """Outside a transaction a batch decided from the states this process holds is one
    statement (row locks, inserts and update: its own transaction); one that needs the
    database to decide after writing, or moves seats, goes in a transaction; one decided on
    a state another writer overtook collides, and its commands are then written one at a
    time, each once; writers of batches over the same games at once neither deadlock nor
    lose a line."""
    with postgres_database() as url:
        # DEBUG off, as deployed: the statements go with PostgreSQL's own placeholders.
        env = server_env(
            DATABASE_URL=url, DJANGO_DEBUG="false", DJANGO_SECRET_KEY="batch-test-" + "k" * 40
        )
        manage(env, "migrate", "--noinput")
        manage(env, "load_scenarios")
        codes = [create_game(env, "gatt")["code"] for _ in range(3)]
        result: Any = last_json(
            manage(
                env,
                "shell",
                "-c",
                f"from tests.backend_scripts import one_statement_batches; "
                f"one_statement_batches({codes!r})",
            )
        )
    assert result["vendor"] == "postgresql"
    # "WITH+locked": the batch's one statement, which locks the games itself.
    assert result["cached"] == {"statements": ["WITH+locked"], "accepted": [True, True, True]}
    assert result["single"] == {"statements": ["WITH+locked"], "accepted": [True]}
    # The refusal is checked against the stored log (a read), then the batch is one statement.
    refused_first = result["refused_first"]
    assert refused_first["accepted"] == [False, True]
    assert refused_first["statements"][-1] == "WITH+locked"
    assert "WITH" not in refused_first["statements"]
    # In a transaction: the row locks first, then the rows.
    for name in ("refused_elsewhere", "refused_after_write", "seat"):
        statements = result[name]["statements"]
        assert statements[0] == "SELECT", name
        assert "WITH" in statements and "WITH+locked" not in statements, name
    assert result["refused_elsewhere"]["accepted"] == [False, True]
    assert result["refused_after_write"]["accepted"] == [True, False]
    assert result["seat"]["accepted"] == [True, True]
    # The overtaken state: the statement fails, then a transaction checks it against the row.
    stale = result["stale"]
    assert stale["accepted"] == [True, True]
    assert stale["statements"][0] == "WITH+locked"
    assert stale["statements"][1] == "SELECT"
    assert stale["statements"].count("WITH") == 1
    assert result["writers"] == {"failures": [], "refused": []}
    first, second, third = (result["games"][key] for key in sorted(result["games"], key=int))
    for game in (first, second, third):
        assert game["seqs"] == list(range(1, len(game["seqs"]) + 1))
        assert game["last_seq"] == game["state_seq"] == len(game["seqs"])
        # Every writer's lines, each once, in the order each writer sent them.
        lines = [text for text in game["texts"] if text.startswith("w")]
        assert len(lines) == len(set(lines)) == 4 * 15
        for number in range(4):
            own = [text.split("-")[1] for text in lines if text.startswith(f"w{number}-")]
            assert own == [str(n) for n in range(15)]
    assert [t for t in first["texts"] if not t.startswith("w")] == [
        "one",
        "three",
        "four",
        "five",
        "other",
        "seven",
    ]
    assert [t for t in second["texts"] if not t.startswith("w")] == [
        "two",
        "four",
        "alone",
        "eight",
    ]
    assert third["seats"] == [result["seat_taken"]]
