"""Scripts the backend tests run in a separate process against a real database.

Run as ``manage.py shell -c "from tests.backend_scripts import ...; ..."`` with
``DATABASE_URL`` set; each prints one JSON object.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine.bots import BotBrain, bot_commands
from negotiation.engine.winset import Analysis
from negotiation.models import GameEvent


def play_bots(code: str) -> None:
    """Start the game and let its bots play it to the end, synchronously."""
    game = services.game_by_code(code)
    started = services.submit(game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="test")
    assert started.accepted, started
    state = services.load_state(game.pk)
    brain = BotBrain(Analysis(state.scenario))
    moves = 0
    while not state.ended and moves < 500:
        moved = False
        for seat in sorted(state.seats):
            for index, command in enumerate(bot_commands(state, seat, brain)):
                outcome = services.submit(
                    game_id=game.pk,
                    command=command,
                    issuer=services.BOT_ISSUER,
                    client_id=f"bot:{seat}:{state.seq}:{index}",
                )
                assert outcome.accepted, outcome
                moved = True
                moves += 1
            state = services.load_state(game.pk)
        if not moved:
            break
    print(json.dumps({"phase": state.phase, "seq": state.seq, "moves": moves}))


def race(code: str, writers: int, each: int) -> None:
    """``writers`` threads each post ``each`` chat lines to the same game at once."""
    game = services.game_by_code(code)
    services.submit(game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="test")
    chiefs = ["A-chief", "B-chief"]
    conflicts = 0
    refused: list[Any] = []
    lock = threading.Lock()
    original = services._append

    def counting_append(*args: Any, **kwargs: Any) -> Any:
        nonlocal conflicts
        try:
            return original(*args, **kwargs)
        except IntegrityError:
            with lock:
                conflicts += 1
            raise

    services._append = counting_append

    def writer(number: int) -> None:
        for line in range(each):
            outcome = services.submit(
                game_id=game.pk,
                command=c.Chat(chiefs[number % 2], "table", f"writer {number} line {line}"),
                issuer=f"writer-{number}",
                client_id=f"line-{line}",
            )
            if not outcome.accepted:
                with lock:
                    refused.append(outcome.code)

    _at_once(writer, writers)
    seqs = list(GameEvent.objects.filter(game=game).order_by("seq").values_list("seq", flat=True))
    chats = GameEvent.objects.filter(game=game, type="chat_posted").count()
    print(
        json.dumps(
            {
                "seqs": seqs,
                "chats": chats,
                "conflicts": conflicts,
                "refused": refused,
                "vendor": connection.vendor,
            }
        )
    )


def _at_once(writer: Callable[[int], None], count: int) -> None:
    """``writer(0)`` to ``writer(count - 1)``, each in a thread of its own, all let go at once;
    each thread closes its database connection. Returns when all are done."""
    barrier = threading.Barrier(count)

    def run(number: int) -> None:
        barrier.wait()
        try:
            writer(number)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def stale_writer(code: str) -> None:
    """A writer that decided on a stale state collides on the unique (game, seq), reloads and
    decides again: its command is applied once, after the one that beat it."""
    game = services.game_by_code(code)
    services.submit(game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="test")
    stale = services.load_state(game.pk)
    # Another process writes first.
    services.submit(game_id=game.pk, command=c.Chat("A-chief", "table", "first"), issuer="other")
    real_load = services.load_state
    loads: list[int] = []

    def load_once_stale(game_id: int) -> Any:
        loads.append(game_id)
        return stale if len(loads) == 1 else real_load(game_id)

    services.load_state = load_once_stale
    # This process's cache knows "first"; a process that has not seen it loads a stale state.
    services.state_cache.forget(game.pk)
    conflicts = 0
    original = services._append

    def counting_append(*args: Any, **kwargs: Any) -> Any:
        nonlocal conflicts
        try:
            return original(*args, **kwargs)
        except IntegrityError:
            conflicts += 1
            raise

    services._append = counting_append
    outcome = services.submit(
        game_id=game.pk, command=c.Chat("B-chief", "table", "second"), issuer="me", client_id="x"
    )
    texts = [
        payload["text"]
        for payload in GameEvent.objects.filter(game=game, type="chat_posted")
        .order_by("seq")
        .values_list("payload", flat=True)
    ]
    print(
        json.dumps(
            {
                "accepted": outcome.accepted,
                "last_seq": outcome.last_seq,
                "conflicts": conflicts,
                "loads": len(loads),
                "texts": texts,
                "vendor": connection.vendor,
            }
        )
    )


def start_with_deadline_in(code: str, seconds: float) -> None:
    """Start the game as if long ago, so its Level I deadline falls ``seconds`` from now."""
    import time

    game = services.game_by_code(code)
    state = services.load_state(game.pk)
    level1 = state.settings.deadlines.level1
    assert level1 is not None
    outcome = services.submit(
        game_id=game.pk,
        command=c.StartGame(c.INSTRUCTOR),
        issuer="test",
        now=time.time() - level1 + seconds,
    )
    assert outcome.accepted, outcome
    print(json.dumps({"seq": outcome.last_seq, "deadline": outcome.state.deadline}))  # type: ignore[union-attr]


def batch_of_games(codes: list[str]) -> None:
    """Start the games, then write one batch with commands of every game (two of the first,
    and more events than one ``INSERT`` takes) and a small one (two commands a game), and
    print what the database holds and the statements the small batch sent."""
    from negotiation.models import Game, GameCommand

    games = [services.game_by_code(code) for code in codes]
    for game in games:
        services.submit(game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="test")

    def chats(first: int, count: int) -> list[services.Request]:
        return [
            services.Request(game.pk, c.Chat("A-chief", "table", f"{game.code}-{n}"), "p", f"{n}")
            for n in range(first, first + count)
            for game in games
        ]

    big = chats(0, services.INSERT_ROWS // len(games) + 2)
    small = chats(len(big) // len(games), 2)
    # Over psycopg's 50 parameters, and then with the queries logged (DEBUG, query counting).
    larger = chats((len(big) + len(small)) // len(games), 4)
    logged = chats((len(big) + len(small) + len(larger)) // len(games), 2)
    results = services.submit_many(big)
    statements: list[str] = []
    placeholders: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql.split(None, 1)[0].upper())
        placeholders.append("$n" if "$1" in sql else "%s" if "%s" in sql else "none")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        results += services.submit_many(small)
    small_placeholders = placeholders[:]
    placeholders.clear()
    with connection.execute_wrapper(record):
        results += services.submit_many(larger)
    larger_placeholders = placeholders[:]
    placeholders.clear()
    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(record):
        results += services.submit_many(logged)
    logged_placeholders = placeholders[:]
    requests = big + small + larger + logged
    rows = {
        game.code: {
            "last_seq": game.last_seq,
            "phase": game.phase,
            "status": game.status,
            "deadline": game.deadline,
        }
        for game in Game.objects.filter(pk__in=[g.pk for g in games])
    }
    states = {
        game.code: {
            "seq": services.load_state(game.pk).seq,
            "phase": services.load_state(game.pk).phase,
            "deadline": services.load_state(game.pk).deadline,
        }
        for game in games
    }
    texts = {
        game.code: [
            payload["text"]
            for payload in GameEvent.objects.filter(game=game, type="chat_posted")
            .order_by("seq")
            .values_list("payload", flat=True)
        ]
        for game in games
    }
    print(
        json.dumps(
            {
                "vendor": connection.vendor,
                "accepted": [getattr(r, "accepted", None) for r in results],
                "requests": len(requests),
                "commands": GameCommand.objects.filter(issuer="p").count(),
                "rows": rows,
                "states": states,
                "texts": texts,
                "small_batch_statements": statements[: len(small_placeholders)],
                "small_batch_placeholders": small_placeholders,
                "larger_batch_placeholders": larger_placeholders,
                "logged_batch_placeholders": logged_placeholders,
                "logged_batch_statements": [
                    query["sql"].split(None, 1)[0].upper() for query in captured.captured_queries
                ],
            }
        )
    )


def one_statement_batches(codes: list[str]) -> None:
    """Batches on PostgreSQL outside a transaction: what goes as one statement and what goes in
    a transaction, a batch decided on a state another writer overtook, and writers of batches
    over the same games at once. Prints the statements each batch sent, the outcomes, and
    each game's seqs and chat lines."""
    from negotiation.services import BOT_PLAYER, SYSTEM_ISSUER, Request

    first, second, third = (services.game_by_code(code).pk for code in codes)
    for game_id in (first, second, third):
        services.submit(game_id=game_id, command=c.StartGame(c.INSTRUCTOR), issuer="test")
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # The batch's own statement locks the games itself.
        alone = "+locked" if sql.startswith("WITH locked AS (") else ""
        statements.append(sql.split(None, 1)[0].upper() + alone)
        return execute(sql, params, many, context)

    def chat(game_id: int, text: str, issuer: str = "p") -> Request:
        return Request(game_id, c.Chat("A-chief", "table", text), issuer, f"{issuer}-{text}")

    def batch(requests: list[Request]) -> dict[str, Any]:
        statements.clear()
        with connection.execute_wrapper(record):
            results = services.submit_many(requests)
        return {
            "statements": statements[:],
            "accepted": [getattr(result, "accepted", repr(result)) for result in results],
        }

    report: dict[str, Any] = {"vendor": connection.vendor}
    # States this process holds: one statement.
    report["cached"] = batch([chat(first, "one"), chat(second, "two"), chat(first, "three")])
    # A refusal confirmed against the log of a game with no rows in the batch yet, in a game
    # the batch writes to: still one statement.
    report["refused_first"] = batch(
        [Request(first, c.Accept("A-chief", 999), "p", "p-accept"), chat(first, "four")]
    )
    # A refusal in a game the batch writes nothing to: a transaction (its record's foreign key
    # would lock that game after the others).
    report["refused_elsewhere"] = batch(
        [Request(first, c.Accept("A-chief", 999), "p", "p-accept-1"), chat(second, "four")]
    )
    # A refusal after an earlier command of the same game in the batch: a transaction.
    report["refused_after_write"] = batch(
        [chat(first, "five"), Request(first, c.Accept("A-chief", 999), "p", "p-accept-2")]
    )
    # A seat taken: a transaction (the seat rows move with the events).
    state = services.load_state(third)
    seat = sorted(services._member_keys(state) - set(state.seats))[0]
    report["seat"] = batch(
        [
            chat(third, "six"),
            Request(
                third,
                c.TakeSeat(c.SYSTEM, seat, BOT_PLAYER, bot=True, name="Bot"),
                SYSTEM_ISSUER,
                None,
            ),
        ]
    )
    # A command alone (an idle server's batch): one statement too.
    report["single"] = batch([chat(second, "alone")])
    # Another process writes to the first game; this one still holds the older state.
    stale = services.state_cache.get(first)
    services.submit(game_id=first, command=c.Chat("B-chief", "table", "other"), issuer="other")
    assert stale is not None
    services.state_cache.forget(first)
    services.state_cache.put(first, stale)
    report["stale"] = batch([chat(first, "seven"), chat(second, "eight")])
    # Writers of batches over the same games, in different orders, at once.
    writers, batches = 4, 15
    failures: list[str] = []
    refused: list[Any] = []

    def writer(number: int) -> None:
        games = [first, second, third][number % 3 :] + [first, second, third][: number % 3]
        try:
            for n in range(batches):
                requests = [chat(g, f"w{number}-{n}-{g}", f"w{number}") for g in games]
                if n % 3 == 0:
                    # Refusals too: with a chat in their game (one statement), and alone in
                    # two games (a transaction).
                    requests.append(
                        Request(games[0], c.Accept("A-chief", 999), "r", f"{number}-{n}")
                    )
                    only_refusals = [
                        Request(g, c.Accept("A-chief", 999), "q", f"{number}-{n}-{g}")
                        for g in (games[2], games[0])
                    ]
                    for result in services.submit_many(only_refusals):
                        if getattr(result, "accepted", None) is not False:
                            refused.append(repr(result))
                for request, result in zip(requests, services.submit_many(requests), strict=True):
                    expected = isinstance(request.command, c.Chat)
                    if getattr(result, "accepted", None) is not expected:
                        refused.append(repr(result))
        except Exception as failure:
            failures.append(repr(failure))

    _at_once(writer, writers)
    report["writers"] = {"failures": failures, "refused": refused}
    report["games"] = {
        str(game_id): {
            "seqs": list(
                GameEvent.objects.filter(game_id=game_id)
                .order_by("seq")
                .values_list("seq", flat=True)
            ),
            "texts": [
                payload["text"]
                for payload in GameEvent.objects.filter(game_id=game_id, type="chat_posted")
                .order_by("seq")
                .values_list("payload", flat=True)
            ],
            "seats": sorted(
                key for key, holder in services.load_state(game_id).seats.items() if holder.bot
            ),
            "last_seq": services.game_by_code(code).last_seq,
            "state_seq": services.load_state(game_id).seq,
        }
        for game_id, code in zip((first, second, third), codes, strict=True)
    }
    report["seat_taken"] = seat
    print(json.dumps(report))
