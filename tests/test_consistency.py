"""The log-consistency plugin (``tests/consistency.py``) catches a stored log that no longer
folds to the states the live path held, and skips only what it should: writes that were
rolled back and games that are gone.

Each test records into a ``Recorder`` of its own (``recording``), whether or not the plugin is
enabled for the run; a test that corrupts a stored event puts it back before it ends, so the
plugin (when enabled) checks the restored game like any other.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine import rules
from negotiation.models import Game, GameEvent
from tests.consistency import Recorder, Report, failure_message, recording
from tests.test_log_consistency import (
    LiveGame,
    new_live_game,
    play_failed_then_ratified,
    store_counting_scenario,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scenarios() -> None:
    call_command("load_scenarios", stdout=io.StringIO())
    services.state_cache.clear()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with recording(Recorder()) as kept:
        yield kept


def played_counting_game(recorder: Recorder) -> LiveGame:
    """The scripted counting game of ``test_log_consistency`` (a failed ratification, then
    an agreement), played while ``recorder`` records."""
    store_counting_scenario()
    live = new_live_game("counting")
    play_failed_then_ratified(live)
    return live


def test_every_state_of_a_played_game_matches_its_log(recorder: Recorder) -> None:
    live = played_counting_game(recorder)
    report = recorder.check()
    assert report.mismatches == []
    assert report.games == 1
    # The driver loads the state after every command: each of those seqs was compared (and
    # the states ``_append`` produced, which may be the same objects).
    assert report.states >= len(live.states) > 10
    assert report.rolled_back == report.gone == report.unstored == 0


def test_a_corrupted_stored_event_is_caught_at_its_seq(recorder: Recorder) -> None:
    game = played_counting_game(recorder).game
    events = GameEvent.objects.filter(game=game, type="proposal_made").order_by("seq")
    target = events.first()
    assert target is not None
    original = dict(target.payload)
    # Rows are append-only for the application; the test changes one behind its back.
    GameEvent.objects.filter(pk=target.pk).update(payload={**original, "values": [3]})
    try:
        report = recorder.check()
    finally:
        GameEvent.objects.filter(pk=target.pk).update(payload=original)
    assert report.mismatches, "the corrupted event went unnoticed"
    first = min(report.mismatches, key=lambda m: m.seq)
    assert first.game_id == game.pk and first.seq == target.seq
    assert "proposals" in first.fields
    # Nothing before the corrupted event is blamed.
    assert all(m.seq >= target.seq for m in report.mismatches)
    message = failure_message(report)
    assert f"game {game.pk} at seq {target.seq}" in message


def test_a_missing_event_is_caught() -> None:
    recorder = Recorder()
    with recording(recorder):
        game = played_counting_game(recorder).game
    # A hole in the stored log (seq 3 gone): the fold stops there with a mismatch.
    doomed = GameEvent.objects.filter(game=game, seq=3)
    payload = doomed.values_list("payload", flat=True).get()
    doomed.delete()
    try:
        report = recorder.check()
    finally:
        GameEvent.objects.create(game=game, seq=3, type=payload["type"], payload=payload)
    assert [(m.seq, m.source) for m in report.mismatches] == [(4, "the stored log skips seq 3")]


def test_a_rolled_back_write_is_not_compared(recorder: Recorder) -> None:
    store_counting_scenario()
    live = new_live_game("counting")
    live.submit(c.Chat("A-chief", "table", "kept"))

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        outcome = services.submit(
            game_id=live.pk, command=c.Chat("A-chief", "table", "undone"), issuer="test"
        )
        assert outcome.accepted
        raise Undo
    services.state_cache.forget(live.pk)
    # The same seq is written again, by another command: only this one is in the log.
    live.submit(c.Chat("B-chief", "table", "written instead"))
    report = recorder.check()
    assert report.mismatches == []
    assert report.rolled_back >= 1
    assert report.states >= 2


def test_a_deleted_game_is_skipped_and_counted(recorder: Recorder) -> None:
    game = played_counting_game(recorder).game
    Game.objects.filter(pk=game.pk).delete()
    report = recorder.check()
    assert report.games == 0 and report.gone > 0 and report.mismatches == []


def test_the_log_is_folded_once_per_game(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    game = played_counting_game(recorder).game
    last = services.load_state(game.pk).seq
    folded: list[int] = []
    real = rules.evolve

    def counting(state: object, event: object) -> object:
        folded.append(1)
        return real(state, event)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "evolve", counting)
    report = recorder.check()
    # A fold per compared seq would evolve about states * last / 2 times.
    assert report.states > 10
    assert len(folded) == last - 1


def test_the_summary_line_counts_what_was_checked_and_skipped() -> None:
    total = Report(games=2, states=10, rolled_back=1)
    total.add(Report(games=1, states=4, gone=3, late=2))
    line = total.summary()
    assert line.startswith("log consistency: 3 games checked, 14 states compared, 0 mismatches")
    assert "1 rolled back or in flight" in line and "3 of games already deleted" in line
    assert "2 recorded after the check" in line


INNER_TESTS = """
import io

import pytest
from django.core.management import call_command

from negotiation import services
from negotiation.models import GameEvent
from tests.test_log_consistency import (
    new_live_game,
    play_failed_then_ratified,
    store_counting_scenario,
)

pytestmark = pytest.mark.django_db


def play():
    call_command("load_scenarios", stdout=io.StringIO())
    services.state_cache.clear()
    store_counting_scenario()
    live = new_live_game("counting")
    play_failed_then_ratified(live)
    return live.game


def test_plays_a_clean_game():
    play()


def test_plays_a_game_then_corrupts_its_log():
    game = play()
    row = GameEvent.objects.filter(game=game, type="proposal_made").order_by("seq").first()
    GameEvent.objects.filter(pk=row.pk).update(payload={**row.payload, "values": [3]})
"""


def test_the_plugin_fails_the_test_that_played_an_inconsistent_game(tmp_path: Path) -> None:
    """A pytest run of its own, with the plugin: the test whose game no longer folds to its
    live states fails (at its teardown) with the game and seq named; the clean one passes; the
    summary counts both games."""
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # A database of its own, never the one this run's tests use.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'inner.sqlite3'}",
    }
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "tests.consistency", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*command, "-o", "addopts=", "-rfE", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 passed, 1 error" in out, out
    assert "ERROR test_inner.py::test_plays_a_game_then_corrupts_its_log" in out, out
    assert "does not fold back from its stored log" in out and "live state differs in" in out
    assert "log consistency: 2 games checked" in out and "mismatches" in out, out
