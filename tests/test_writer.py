"""The batch writer's lanes: a game always goes to the same lane, lanes write at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from django.test import override_settings

from negotiation import services, writer
from negotiation.engine import commands as c


def request(game_id: int, n: int) -> services.Request:
    return services.Request(game_id, c.Chat("A1", "table", f"line {n}"), issuer="test")


def test_sqlite_always_writes_in_one_lane() -> None:
    with override_settings(RATIFY_WRITE_LANES=4):
        assert writer.write_lanes() == 1


def test_postgresql_takes_the_configured_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings

    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.postgresql")
    with override_settings(RATIFY_WRITE_LANES=3):
        assert writer.write_lanes() == 3
    with override_settings(RATIFY_WRITE_LANES=0):
        assert writer.write_lanes() == 1


def test_postgresql_batches_gather_for_longer_than_sqlite_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.conf import settings

    assert writer.batch_interval() == writer.MIN_BATCH_INTERVAL
    assert writer.Writer()._interval == writer.MIN_BATCH_INTERVAL
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.postgresql")
    assert writer.batch_interval() == writer.MIN_BATCH_INTERVAL_POSTGRESQL
    assert writer.Writer()._interval == writer.MIN_BATCH_INTERVAL_POSTGRESQL
    assert writer.MIN_BATCH_INTERVAL_POSTGRESQL > writer.MIN_BATCH_INTERVAL


async def test_each_game_keeps_its_lane_and_lanes_write_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[tuple[str, list[int]]] = []
    both_writing = threading.Barrier(2, timeout=5)

    def submit_many(requests: Sequence[services.Request]) -> list[Any]:
        games = [r.game_id for r in requests]
        batches.append((threading.current_thread().name, games))
        if len(batches) <= 2:
            # The first batch of each lane waits for the other's: they run at once.
            both_writing.wait()
        return [
            services.Outcome(accepted=True, last_seq=r.game_id, events=(), state=None)
            for r in requests
        ]

    monkeypatch.setattr(services, "submit_many", submit_many)
    lanes = writer.Writer(lanes=2)
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            *(lanes.submit(request(game_id, n)) for n, game_id in enumerate([2, 3, 4, 5, 6, 7]))
        ),
        10,
    )
    assert [o.last_seq for o in outcomes] == [2, 3, 4, 5, 6, 7]
    for _, games in batches:
        # A batch holds one lane's games only: even ids in one, odd in the other.
        assert len({g % 2 for g in games}) == 1
    assert all(name.startswith("ratify-writer") for name, _ in batches)
    assert sorted(g for _, games in batches for g in games) == [2, 3, 4, 5, 6, 7]


async def test_a_busy_lane_gathers_commands_for_a_moment_and_an_idle_one_writes_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    interval = 0.3
    monkeypatch.setattr(writer, "MIN_BATCH_INTERVAL", interval)
    batches: list[tuple[float, list[int]]] = []

    def submit_many(requests: Sequence[services.Request]) -> list[Any]:
        batches.append((time.monotonic(), [r.game_id for r in requests]))
        return [
            services.Outcome(accepted=True, last_seq=r.game_id, events=(), state=None)
            for r in requests
        ]

    monkeypatch.setattr(services, "submit_many", submit_many)
    lane = writer.Writer(lanes=2)  # its own threads: the test's database is not involved
    started = time.monotonic()
    await lane.submit(request(2, 1))
    # Idle before: written at once.
    assert batches[0][0] - started < interval / 2
    # Just after a batch: these wait for the interval and go together.
    second = asyncio.ensure_future(lane.submit(request(4, 2)))
    await asyncio.sleep(interval / 6)
    third = asyncio.ensure_future(lane.submit(request(6, 3)))
    await asyncio.wait_for(asyncio.gather(second, third), 5)
    assert [games for _, games in batches] == [[2], [4, 6]]
    assert batches[1][0] - batches[0][0] >= interval * 0.9
    # Idle for longer than the interval: at once again.
    await asyncio.sleep(interval * 1.2)
    before = time.monotonic()
    await lane.submit(request(8, 4))
    assert batches[2][0] - before < interval / 2
