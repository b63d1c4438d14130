"""Commands from this process's connections, written to the database in batches.

Every database call of a connection is a hop to the one database thread and back. Under load
the hops queue behind each other, and each SQL statement of a command waits for the event
loop's thread to hand the GIL back. The writer collects the commands that arrive while a batch
is being written and writes them all in the next hop, in one transaction
(``services.submit_many``): the busier the server, the bigger the batches and the fewer the
hops and commits per command. An idle server writes each command at once, alone.

A command is answered only once its batch has committed, so an acknowledged command is in
the log (the guarantee the fault tests check).
"""

from __future__ import annotations

import asyncio
import weakref

from channels.db import database_sync_to_async

from negotiation import frames, services

#: At most this many commands per batch (a batch is one transaction).
MAX_BATCH = 64


class Writer:
    """The batch writer of one event loop."""

    def __init__(self) -> None:
        self._pending: list[tuple[services.Request, asyncio.Future[services.Outcome]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: services.Request) -> services.Outcome:
        """``services.submit`` for ``request`` (events not published: the caller does).
        Raises ``GameNotFoundError`` for an unknown game."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[services.Outcome] = loop.create_future()
        self._pending.append((request, answer))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    results = await database_sync_to_async(services.submit_many)(
                        [request for request, _ in batch]
                    )
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
            self._draining = False


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Writer] = weakref.WeakKeyDictionary()


def writer() -> Writer:
    """The writer of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        found = _writers[loop] = Writer()
    return found
