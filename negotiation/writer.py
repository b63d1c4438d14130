"""Commands from this process's connections, written to the database in batches.

Every database call of a connection is a hop to the one database thread and back. Under load
the hops queue behind each other, and each SQL statement of a command waits for the event
loop's thread to hand the GIL back. The writer collects the commands that arrive while a batch
is being written and writes them all in the next hop, in one transaction
(``services.submit_many``): the busier the server, the bigger the batches and the fewer the
hops and commits per command. An idle server writes each command at once, alone; a busy
lane starts a batch at most every ``MIN_BATCH_INTERVAL`` (3 ms with SQLite, 8 ms with
PostgreSQL, where each batch also pays its round trips to the database), so that commands
share batches before the server is overloaded (two processes on PostgreSQL: fewer commits and
row locks for the other process to wait on).

A command is answered only once its batch has committed, so an acknowledged command is in
the log (the guarantee the fault tests check).

With PostgreSQL a batch spends much of its time waiting for the database (round trips), and
a process may write several batches at once, each by a thread of the writer's own with its
own connection (``RATIFY_WRITE_LANES``, default 1). A game always goes to the same lane
(its id modulo the lanes), so the lanes of one process never wait for each other's row
locks, and every process splits the games the same way: a game's row lock is contended by
at most one lane of each process. On a 2-core machine running its database, Redis and the
load generator as well, more lanes only added contention (``bench/README.md``), hence the
default; a machine with cores to spare and a database farther away may set more. SQLite
serialises writers anyway: always one lane, on the thread every other database call uses.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings

from negotiation import frames, services

#: At most this many commands per batch (a batch is one transaction).
MAX_BATCH = 64
#: A lane starts a batch at most this often (seconds). A busy server's commands then wait up
#: to this long to share a batch: a batch of one costs the database thread about four times
#: as much per command as a batch of eight (``bench/README.md``). A command that finds its
#: lane idle for longer is written at once.
MIN_BATCH_INTERVAL = 0.003
#: The same with PostgreSQL: a batch costs a round trip and a commit besides its commands
#: (four round trips when it needs a transaction, ``services.submit_many``), and two
#: server processes each see half the commands, so their batches would hold half as many.
#: Two processes, 100 games at 8 commands per game per second: 0.7 of a core of servers
#: against 0.8-0.9 with 3 ms, p99 24-34 ms against 27-40 (``bench/README.md``).
MIN_BATCH_INTERVAL_POSTGRESQL = 0.008


def _on_sqlite() -> bool:
    return str(settings.DATABASES["default"]["ENGINE"]).endswith("sqlite3")


def batch_interval() -> float:
    """How often a busy lane starts a batch (seconds), for the configured database."""
    return MIN_BATCH_INTERVAL if _on_sqlite() else MIN_BATCH_INTERVAL_POSTGRESQL


def write_lanes() -> int:
    """How many batches this process writes at once: ``RATIFY_WRITE_LANES`` (default 1);
    always 1 with SQLite."""
    if _on_sqlite():
        return 1
    return max(1, int(getattr(settings, "RATIFY_WRITE_LANES", 1) or 1))


class Writer:
    """The batch writer of one event loop."""

    def __init__(self, lanes: int = 1) -> None:
        self._pending: list[list[tuple[services.Request, asyncio.Future[services.Outcome]]]] = [
            [] for _ in range(lanes)
        ]
        self._lanes = lanes
        self._draining = [False] * lanes
        self._last_start = [float("-inf")] * lanes
        self._interval = batch_interval()
        self._tasks: set[asyncio.Task[None]] = set()
        self._write: Callable[[Sequence[services.Request]], Any]
        if lanes == 1:
            self._write = database_sync_to_async(services.submit_many)
        else:
            executor = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="ratify-writer")
            weakref.finalize(self, executor.shutdown, wait=False)
            self._write = DatabaseSyncToAsync(
                services.submit_many, thread_sensitive=False, executor=executor
            )

    async def submit(self, request: services.Request) -> services.Outcome:
        """``services.submit`` for ``request`` (events not published: the caller does).
        Raises ``GameNotFoundError`` for an unknown game."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[services.Outcome] = loop.create_future()
        lane = request.game_id % self._lanes
        self._pending[lane].append((request, answer))
        if not self._draining[lane]:
            self._draining[lane] = True
            task = loop.create_task(self._drain(lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await answer

    async def _drain(self, lane: int) -> None:
        pending = self._pending[lane]
        loop = asyncio.get_running_loop()
        try:
            while pending:
                wait = self._last_start[lane] + self._interval - loop.time()
                if wait > 0 and len(pending) < MAX_BATCH:
                    await asyncio.sleep(wait)
                self._last_start[lane] = loop.time()
                batch = pending[:MAX_BATCH]
                del pending[:MAX_BATCH]
                try:
                    results = await self._write([request for request, _ in batch])
                except BaseException as failure:
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(failure)
                    if not isinstance(failure, Exception):
                        raise
                    continue
                for request, result in zip(batch, results, strict=True):
                    if isinstance(result, services.Outcome) and result.events:
                        frames.remember(
                            request[0].game_id, [(s.seq, s.event) for s in result.events]
                        )
                for (_, answer), result in zip(batch, results, strict=True):
                    if answer.done():
                        continue
                    if isinstance(result, Exception):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)
        finally:
            self._draining[lane] = False


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Writer] = weakref.WeakKeyDictionary()


def writer() -> Writer:
    """The writer of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        found = _writers[loop] = Writer(write_lanes())
    return found
