"""Commands from this process's connections, written to the database in batches.

Every database call of a connection is a hop to the one database thread and back. Under load
the hops queue behind each other, and each SQL statement of a command waits for the event
loop's thread to hand the GIL back. The writer collects the commands that arrive while a batch
is being written and writes them all in the next hop, in one transaction
(``services.submit_many``): the busier the server, the bigger the batches and the fewer the
hops and commits per command. An idle server writes each command at once, alone.

A command is answered only once its batch has committed, so an acknowledged command is in
the log (the guarantee the fault tests check).

With PostgreSQL a batch spends most of its time waiting for the database (row locks, round
trips), so several batches are written at once, each by a thread of the writer's own with its
own connection (``RATIFY_WRITE_LANES``, default 4): commands of different games do not wait
for each other, and two batches that touch one game take its row lock in turn. SQLite
serialises writers anyway: one lane, on the thread every other database call uses.
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
#: Batches written at once with a database that locks rows (PostgreSQL).
DEFAULT_LANES = 4


def write_lanes() -> int:
    """How many batches this process writes at once: ``RATIFY_WRITE_LANES``, else 1 with
    SQLite and ``DEFAULT_LANES`` with any other database."""
    configured = getattr(settings, "RATIFY_WRITE_LANES", None)
    if configured:
        return max(1, int(configured))
    engine = str(settings.DATABASES["default"]["ENGINE"])
    return 1 if engine.endswith("sqlite3") else DEFAULT_LANES


class Writer:
    """The batch writer of one event loop."""

    def __init__(self, lanes: int = 1) -> None:
        self._pending: list[tuple[services.Request, asyncio.Future[services.Outcome]]] = []
        self._lanes = lanes
        self._running = 0
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
        self._pending.append((request, answer))
        if self._running < self._lanes:
            self._running += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await answer

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
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
            self._running -= 1


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Writer] = weakref.WeakKeyDictionary()


def writer() -> Writer:
    """The writer of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        found = _writers[loop] = Writer(write_lanes())
    return found
