"""A pytest plugin: every game any test plays through ``services`` must fold back from its log.

The stored log is the truth (DESIGN §7): folding it up to any seq must give the state the live
path held at that seq. ``tests/test_log_consistency.py`` checks that for the games it plays
itself; this plugin checks it for every game every test plays in this process.

How:

- ``services._append`` (where the live path stores new events and keeps the state they lead
  to) and ``services.load_state`` (the cached state folded forward, which every write decides
  on) are wrapped for the whole session. Each state they produce is recorded with the game's
  id and seq, together with an ``on_commit`` callback of the transaction it belongs to.
- When each test is torn down, the states recorded since its setup began are checked: per
  game, the stored log (``GameEvent`` rows, decoded with ``event_from_dict``) is folded once,
  with ``rules.evolve``, up to the highest recorded seq, and at every recorded seq the folded
  state must equal (``==``, as in ``test_log_consistency``) the live one. The snapshots clients
  get are ``visibility.view`` of that state, a pure function of it, so equal states give equal
  snapshots. A mismatch fails that test (an error at its teardown), naming the game, the seq
  and the fields that differ.
- The check is an autouse fixture set up right after the test's database (``django_db``
  marker, ``db`` or ``transactional_db``), so it runs after the test's other fixtures are torn
  down (``fresh_server`` settles the runtime: no bot or timer of the test still writes, and
  SQLite's shared in-memory database has no table locked) and before the database is rolled
  back or flushed. Checking at the end of the test body instead met writes still in flight.
- A recorded state is only compared when its transaction committed (the callback ran) or is
  still open on the connection doing the check (a test's own transaction, rolled back only at
  teardown). A write that was rolled back (it lost the race for a seq, or a test rolled it back
  on purpose) is skipped: its events were never stored.

Skipped and counted (shown in the one-line summary at the end of the run):

- ``rolled back``: states of transactions that were rolled back, or still open on another
  thread's connection when the check ran (in flight, not readable yet);
- ``gone``: games whose rows were already deleted when the check ran;
- ``unstored``: states past the end of the stored log (written on a connection whose rows this
  one cannot see);
- ``late``: states recorded after the check, while the rest of the test's fixtures were torn
  down or between tests; their games are usually flushed by then.

Out of reach: games played by other processes, such as the servers ``tests/live.py`` starts in
subprocesses (browser tests, two-server tests) and the ``manage.py`` scripts of
``tests/backend_scripts.py``. Their writes never pass through this process's ``services``.

Enable it for a run with ``python -m pytest -p tests.consistency`` (``-m`` puts the project on
the path before the plugin is imported), or for every run with
``pytest_plugins = ["tests.consistency"]`` in ``tests/conftest.py``. It needs pytest-django.

Cost: one fold per game per test (each event decoded and evolved once more than the test did)
and one state comparison per recorded seq.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from time import perf_counter, sleep
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from negotiation.engine.state import GameState

#: The clock, bound now: the check runs while a test's monkeypatches (some stop the clock) are
#: still in place.
_clock = perf_counter

#: How many mismatches one failure message spells out (the rest are counted).
MAX_REPORTED = 5


@dataclass(eq=False)
class _Commit:
    """The on-commit callback of the transaction a state was recorded in."""

    connection: Any
    committed: bool = False

    def __call__(self) -> None:
        self.committed = True


@dataclass(eq=False)
class _Entry:
    state: GameState
    commits: list[_Commit]


@dataclass(frozen=True, slots=True)
class Mismatch:
    game_id: int
    seq: int
    fields: tuple[str, ...]
    source: str

    def __str__(self) -> str:
        where = f"game {self.game_id} at seq {self.seq}"
        if self.fields:
            return f"{where}: {self.source} state differs in {', '.join(self.fields)}"
        return f"{where}: {self.source}"


@dataclass
class Report:
    """What one check found; ``add`` sums reports for the session summary."""

    games: int = 0
    states: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    rolled_back: int = 0
    gone: int = 0
    unstored: int = 0
    late: int = 0
    seconds: float = 0.0

    def add(self, other: Report) -> None:
        self.games += other.games
        self.states += other.states
        self.mismatches.extend(other.mismatches)
        self.rolled_back += other.rolled_back
        self.gone += other.gone
        self.unstored += other.unstored
        self.late += other.late
        self.seconds += other.seconds

    def summary(self) -> str:
        skipped = (
            f"{self.rolled_back} rolled back or in flight, {self.unstored} past the stored log, "
            f"{self.gone} of games already deleted, {self.late} recorded after the check"
        )
        return (
            f"log consistency: {self.games} games checked, {self.states} states compared, "
            f"{len(self.mismatches)} mismatches ({self.seconds:.1f} s); skipped states: {skipped}"
        )


def _differing_fields(live: GameState, folded: GameState) -> tuple[str, ...]:
    return tuple(
        f.name for f in dataclasses.fields(live) if getattr(live, f.name) != getattr(folded, f.name)
    )


class Recorder:
    """The states the live path produced, per game and seq, until the next ``take``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._games: dict[int, dict[int, list[_Entry]]] = {}

    def record(self, game_id: int, state: GameState) -> None:
        """Keep ``state`` as what the live path held for ``game_id`` at ``state.seq``, valid
        if the current transaction commits."""
        from django.db import transaction

        commit = _Commit(transaction.get_connection())
        transaction.on_commit(commit)
        with self._lock:
            entries = self._games.setdefault(game_id, {}).setdefault(state.seq, [])
            for entry in entries:
                if entry.state is state:
                    entry.commits.append(commit)
                    return
            entries.append(_Entry(state, [commit]))

    def take(self) -> dict[int, dict[int, list[_Entry]]]:
        """Everything recorded so far; the recorder starts empty again."""
        with self._lock:
            games, self._games = self._games, {}
        return games

    def discard(self) -> int:
        """Forget everything recorded so far; returns how many states that was."""
        return sum(len(entries) for seqs in self.take().values() for entries in seqs.values())

    def check(self) -> Report:
        """Fold the stored log of every game recorded since the last ``take`` and compare it
        with the live states (see the module's docstring). Never raises for a mismatch: the
        report lists them. Raises what the database raises when it cannot be read."""
        from django.db import transaction

        from negotiation.engine import events as e
        from negotiation.engine.rules import evolve, initial_state
        from negotiation.models import Game, GameEvent

        started = _clock()
        report = Report()
        connection = transaction.get_connection()
        open_here = {id(func) for _, func, _ in connection.run_on_commit}

        def readable(entry: _Entry) -> bool:
            return any(
                commit.committed or (commit.connection is connection and id(commit) in open_here)
                for commit in entry.commits
            )

        games = self.take()
        present = set(Game.objects.filter(pk__in=list(games)).values_list("pk", flat=True))
        for game_id, seqs in sorted(games.items()):
            wanted: dict[int, list[_Entry]] = {}
            for seq, entries in seqs.items():
                kept = [entry for entry in entries if readable(entry)]
                report.rolled_back += len(entries) - len(kept)
                if kept:
                    wanted[seq] = kept
            if not wanted:
                continue
            if game_id not in present:
                report.gone += sum(len(entries) for entries in wanted.values())
                continue
            last = max(wanted)
            rows = _read(
                GameEvent.objects.filter(game_id=game_id, seq__lte=last)
                .order_by("seq")
                .values_list("seq", "payload")
            )
            report.games += 1
            state: GameState | None = None
            for seq, payload in rows:
                event = e.event_from_dict(payload)
                if state is None:
                    if seq != 1 or not isinstance(event, e.GameCreated):
                        report.mismatches.append(
                            Mismatch(game_id, seq, (), "the stored log does not begin with seq 1")
                        )
                        break
                    state = initial_state(event)
                else:
                    if seq != state.seq + 1:
                        report.mismatches.append(
                            Mismatch(game_id, seq, (), f"the stored log skips seq {state.seq + 1}")
                        )
                        break
                    state = evolve(state, event)
                for entry in wanted.pop(seq, ()):
                    report.states += 1
                    if entry.state is not state and entry.state != state:
                        report.mismatches.append(
                            Mismatch(game_id, seq, _differing_fields(entry.state, state), "live")
                        )
            report.unstored += sum(len(entries) for entries in wanted.values())
        report.seconds = _clock() - started
        return report


#: How long the check waits for a table SQLite's shared-cache test database keeps locked.
LOCKED_PATIENCE_SECONDS = 5.0


def _read(query: Any) -> list[Any]:
    """The rows of ``query``, read at once (a cursor left open would keep SQLite's table locked
    for a writer). A table locked by a write still in flight is waited for; raises
    ``OperationalError`` when it stays locked."""
    from django.db import OperationalError

    waited = 0.0
    while True:
        try:
            return list(query)
        except OperationalError as error:
            if "locked" not in str(error) or waited >= LOCKED_PATIENCE_SECONDS:
                raise
        sleep(0.05)
        waited += 0.05


def failure_message(report: Report) -> str:
    """The message a test fails with when ``report`` found mismatches."""
    lines = [str(m) for m in report.mismatches[:MAX_REPORTED]]
    more = len(report.mismatches) - len(lines)
    if more:
        lines.append(f"... and {more} more")
    return (
        "a game this test played does not fold back from its stored log to the states the live "
        "path held:\n  " + "\n  ".join(lines)
    )


@contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Record into ``recorder`` every state ``services`` stores or loads while inside."""
    from negotiation import services

    original_append = services._append
    original_load = services.load_state

    def append(*args: Any, **kwargs: Any) -> Any:
        stored, after = original_append(*args, **kwargs)
        recorder.record(args[0] if args else kwargs["game_id"], after)
        return stored, after

    def load_state(game_id: int) -> GameState:
        state = original_load(game_id)
        recorder.record(game_id, state)
        return state

    services._append = append
    services.load_state = load_state
    try:
        yield recorder
    finally:
        services._append = original_append
        services.load_state = original_load


# --------------------------------------------------------------------------------------------
# The plugin's hooks and its fixture

_recorder = Recorder()
_totals = Report()
_installed: list[Callable[[], None]] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    context = recording(_recorder)
    context.__enter__()

    def uninstall() -> None:
        context.__exit__(None, None, None)

    _installed.append(uninstall)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _totals.late += _recorder.discard()
    while _installed:
        _installed.pop()()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    # Whatever was recorded since the last check came after a test's body.
    _totals.late += _recorder.discard()
    return (yield)


def _database_access(config: pytest.Config) -> Any:
    """Access to the test database for the check, whether or not the test itself had it."""
    try:
        from pytest_django.plugin import blocking_manager_key
    except ImportError:
        return nullcontext()
    blocker = config.stash.get(blocking_manager_key, None)
    return blocker.unblock() if blocker is not None else nullcontext()


@pytest.fixture(autouse=True)
def _log_consistency(request: pytest.FixtureRequest, _django_db_marker: None) -> Iterator[None]:
    """Check the games the test played when it is torn down: after the fixtures it asked for
    (a runtime settled, its bots and timers stopped) and before its database (set up before
    this fixture, by the ``django_db`` marker or the ``db`` fixtures) is rolled back or
    flushed. A mismatch fails the test at its teardown, naming the game and the seq."""
    if "_django_db_helper" in request.fixturenames:
        request.getfixturevalue("_django_db_helper")
    yield
    with _database_access(request.config):
        report = _recorder.check()
    _totals.add(report)
    if report.mismatches:
        pytest.fail(failure_message(report), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(_totals.summary())
