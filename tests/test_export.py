"""Export (CSV tables, JSON archive) and import of games and class sessions.

The games are played through ``services.submit`` (see ``tests/test_log_consistency.py``): a
class session with a game of bots and a scripted game with a failed ratification, a chat line
over two lines and an annotation. pandas is not installed in the project's environment, so the
CSV files are read with the ``csv`` module and every cell is checked against the type that
docs/export.md gives its column (what ``pandas.read_csv`` would infer from it).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from negotiation import export, services
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.rules import fold
from negotiation.engine.scoring import score_game
from negotiation.models import (
    Annotation,
    ClassSession,
    Game,
    GameEvent,
    Scenario,
    Seat,
    SessionMember,
)
from tests.test_log_consistency import (
    new_live_game,
    play_bots,
    play_failed_then_ratified,
    store_counting_scenario,
)

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parent.parent / "docs" / "export.md"
TABLES = {
    export.EVENTS_FILE: export.EVENT_COLUMNS,
    export.SEATS_FILE: export.SEAT_COLUMNS,
    export.BALLOTS_FILE: export.BALLOT_COLUMNS,
}


@pytest.fixture(autouse=True)
def scenarios() -> None:
    call_command("load_scenarios", stdout=io.StringIO())
    services.state_cache.clear()


@pytest.fixture
def instructor() -> User:
    return User.objects.create_user("teacher", password="x", is_staff=True)


@pytest.fixture
def session(instructor: User) -> ClassSession:
    """A class session of the counting scenario: a scripted game (a failed ratification, then
    an agreement) with an annotation and two roster members, and a game played by bots."""
    counting = store_counting_scenario()
    session = ClassSession.objects.create(
        code="CLASS1", title="Tuesday class", owner=instructor, scenario=counting
    )
    scripted = new_live_game("counting")
    play_failed_then_ratified(scripted)
    bots = new_live_game("counting", bots=True)
    play_bots(bots)
    Game.objects.filter(pk__in=[scripted.pk, bots.pk]).update(session=session)
    Annotation.objects.create(
        game=scripted.game, seq=16, text="Here A1 said no.", author=instructor
    )
    SessionMember.objects.create(session=session, name="Ada", game=scripted.game, seat_key="A1")
    SessionMember.objects.create(session=session, name="Ben")
    return session


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as stop:
        return int(stop.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def documented_columns() -> dict[str, dict[str, str]]:
    """File name -> column -> documented type, from the tables of docs/export.md."""
    text = DOC.read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = {}
    for name in TABLES:
        section = text.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
        tables[name] = {column: kind.strip() for column, kind in rows}
    return tables


def cell_fits(value: str, kind: str) -> bool:
    """Whether a CSV cell is of a documented type (``integer``, ``number``, ``0/1``, ``time``,
    ``JSON``, ``text``), empty only where the type says ``or empty``."""
    if value == "":
        return kind.endswith("or empty")
    base = kind.removesuffix(" or empty")
    checks: dict[str, Callable[[str], object]] = {
        "integer": int,
        "number": float,
        "0/1": lambda v: {"0": 0, "1": 1}[v],
        "time": datetime.fromisoformat,
        "JSON": json.loads,
        "text": str,
    }
    try:
        checks[base](value)
    except (ValueError, KeyError):
        return False
    return True


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file, checking what ``pandas.read_csv`` needs with no options: a header
    of unique names, one line per row (no cell spans lines), as many cells as columns."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == len(lines), f"{path.name}: a cell spans lines"
    header = rows[0]
    assert len(set(header)) == len(header)
    assert all(len(row) == len(header) for row in rows)
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_files_have_one_row_per_event_seat_and_ballot(
    session: ClassSession, tmp_path: Path
) -> None:
    code, out, _ = run("export_session", "class1", "--format", "csv", "--out", str(tmp_path))
    assert code == 0, out
    assert "Class session CLASS1: 2 game(s) exported" in out
    games = list(Game.objects.filter(session=session))
    logs = {game.code: services.log_of(game.pk) for game in games}
    events = read_table(tmp_path / export.EVENTS_FILE)
    seats = read_table(tmp_path / export.SEATS_FILE)
    ballots = read_table(tmp_path / export.BALLOTS_FILE)

    assert len(events) == sum(len(log) for log in logs.values())
    for game in games:
        rows = [r for r in events if r["game"] == game.code]
        assert [int(r["seq"]) for r in rows] == list(range(1, len(logs[game.code]) + 1))
        assert [r["type"] for r in rows] == [event.TYPE for event in logs[game.code]]
        for row, event in zip(rows, logs[game.code], strict=True):
            assert json.loads(row["payload"]) == e.event_to_dict(event)
    cast = [ev for log in logs.values() for ev in log if isinstance(ev, e.BallotCast)]
    assert len(ballots) == len(cast) == 9  # the scripted game's 6, the bots' 3
    assert len(seats) == Seat.objects.filter(game__in=games).count() == 10


def test_every_column_is_documented_and_every_cell_has_its_documented_type(
    session: ClassSession, tmp_path: Path
) -> None:
    export.write_csv(tmp_path, list(Game.objects.filter(session=session)))
    documented = documented_columns()
    for name, columns in TABLES.items():
        rows = read_table(tmp_path / name)
        header = (tmp_path / name).read_text(encoding="utf-8").splitlines()[0].split(",")
        assert tuple(header) == columns
        assert list(documented[name]) == list(columns), name
        for row in rows:
            for column, value in row.items():
                kind = documented[name][column]
                assert cell_fits(value, kind), f"{name} {column}: {value!r} is not {kind}"


def test_csv_values_follow_the_log(session: ClassSession, tmp_path: Path) -> None:
    scripted = Game.objects.filter(session=session).order_by("created", "pk").first()
    assert scripted is not None
    export.write_csv(tmp_path, [scripted])
    events = read_table(tmp_path / export.EVENTS_FILE)
    chat = next(r for r in events if r["type"] == "chat_posted")
    assert chat["text"] == "Hold firm, we will see."
    assert json.loads(chat["payload"])["text"] == "Hold firm,\nwe will see."
    assert (chat["actor"], chat["country"], chat["channel"]) == ("A-chief", "A", "caucus:A")
    proposal = next(r for r in events if r["type"] == "proposal_made")
    assert json.loads(proposal["values"]) == {"x": 10}

    ballots = read_table(tmp_path / export.BALLOTS_FILE)
    first, second = ballots[:3], ballots[3:]
    assert [(b["member"], b["yes"], b["attempt"]) for b in first] == [
        ("A1", "0", "1"),
        ("A2", "0", "1"),
        ("B1", "1", "1"),
    ]
    assert {b["ratified"] for b in first if b["country"] == "A"} == {"0"}
    assert {b["ratified"] for b in second} == {"1"}
    # Every member of the counting scenario has its ideal at 10 and reservation 0.
    assert {(b["utility"], b["reservation"], b["margin"]) for b in ballots} == {("100", "0", "100")}

    seats = {row["seat"]: row for row in read_table(tmp_path / export.SEATS_FILE)}
    scores = score_game(services.log_of(scripted.pk))
    for key, value in scores.members.items():
        assert float(seats[key]["score"]) == pytest.approx(value)
    for key, value in scores.chiefs.items():
        assert float(seats[key]["score"]) == pytest.approx(value)
    assert seats["A1"]["round_surplus"] == "[100]"
    assert seats["A-chief"]["reputation"] == "50"  # one failure in two tentative agreements


# --------------------------------------------------------------------------------------------
# JSON round trip


def export_json(tmp_path: Path, code: str, *extra: str) -> Path:
    status, out, err = run(
        "export_session", code, "--format", "json", "--out", str(tmp_path), "--json", *extra
    )
    assert status == 0, err
    (path,) = json.loads(out)["files"]
    return Path(path)


def snapshot_of(game: Game) -> dict[str, Any]:
    """What must survive an export and import: log, times, scores, fold, seats, notes."""
    log = services.log_of(game.pk)
    return {
        "events": list(
            GameEvent.objects.filter(game=game).order_by("seq").values_list("seq", "payload")
        ),
        "times": list(
            GameEvent.objects.filter(game=game).order_by("seq").values_list("created", flat=True)
        ),
        "scores": score_game(log).to_dict(),
        "state": fold(log),
        "seats": list(
            Seat.objects.filter(game=game)
            .order_by("order")
            .values_list("key", "role", "country", "display_name", "bot")
        ),
        "notes": list(Annotation.objects.filter(game=game).values_list("seq", "text", "created")),
        "projection": (game.status, game.phase, game.last_seq, game.created),
    }


def test_export_then_import_gives_identical_scores_state_and_replay(
    session: ClassSession, instructor: User, tmp_path: Path
) -> None:
    games = list(Game.objects.filter(session=session).order_by("created", "pk"))
    before = {game.code: snapshot_of(game) for game in games}
    scored = {game.code: run("score_game", game.code, "--json")[1] for game in games}
    path = export_json(tmp_path, session.code)
    assert path.name == "CLASS1.json"
    session.delete()  # the games, annotations and members go with it

    status, out, err = run("import_games", str(path), "--owner", "teacher", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["session"] == result["original_session"] == "CLASS1"
    assert [g["code"] for g in result["games"]] == [g.code for g in games]
    assert result["scenarios_created"] == []  # the counting scenario is still stored

    imported = ClassSession.objects.get(code="CLASS1")
    assert imported.owner == instructor and imported.title == "Tuesday class"
    assert imported.scenario.slug == "counting"
    for game in Game.objects.filter(session=imported):
        assert snapshot_of(game) == before[game.code]
        assert run("score_game", game.code, "--json")[1] == scored[game.code]
    members = SessionMember.objects.filter(session=imported).order_by("name")
    assert [(m.name, m.game.code if m.game else None, m.seat_key) for m in members] == [
        ("Ada", games[0].code, "A1"),
        ("Ben", None, ""),
    ]


def test_importing_beside_the_original_gives_fresh_codes_and_reuses_the_scenario(
    session: ClassSession, tmp_path: Path
) -> None:
    path = export_json(tmp_path, session.code)
    originals = {g.code: g for g in Game.objects.filter(session=session)}
    counts = (Scenario.objects.count(), GameEvent.objects.count())

    status, out, err = run("import_games", str(path), "--owner", "teacher", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["session"] != "CLASS1"
    for item in result["games"]:
        assert item["code"] != item["original_code"]
        copy_ = Game.objects.get(code=item["code"])
        original = originals[item["original_code"]]
        assert copy_.scenario == original.scenario
        assert score_game(services.log_of(copy_.pk)) == score_game(services.log_of(original.pk))
        assert fold(services.log_of(copy_.pk)) == fold(services.log_of(original.pk))
    assert Scenario.objects.count() == counts[0]
    assert GameEvent.objects.count() == 2 * counts[1]


def test_a_stand_alone_game_and_a_scenario_whose_slug_is_taken(tmp_path: Path) -> None:
    live = new_live_game("gatt", bots=True)
    play_bots(live)
    path = export_json(tmp_path, live.game.code.lower())
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["session"] is None
    (record,) = document["games"]
    assert {"code", "scenario", "scenario_slug", "title", "seats", "events", "annotations"} <= set(
        record
    )
    # Another server holds a different scenario under the slug gatt.
    gatt = Scenario.objects.get(slug="gatt")
    changed = copy.deepcopy(gatt.definition)
    changed["title"] = "Our own GATT"
    Scenario.objects.filter(pk=gatt.pk).update(definition=changed)

    status, out, err = run("import_games", str(path))
    assert status == 0, err
    assert "New scenario: gatt-imported" in out
    assert Scenario.objects.get(slug="gatt").definition == changed  # never overwritten
    copy_ = Game.objects.exclude(pk=live.pk).get()
    assert copy_.scenario.slug == "gatt-imported" and copy_.session is None
    assert score_game(services.log_of(copy_.pk)) == score_game(services.log_of(live.pk))
    # A second import finds the identical scenario it created.
    status, out, _ = run("import_games", str(path))
    assert status == 0 and "New scenario" not in out
    assert Scenario.objects.filter(slug__startswith="gatt").count() == 2


# --------------------------------------------------------------------------------------------
# Refusals: nothing is written


def stored_counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (Scenario, ClassSession, Game, Seat, GameEvent, Annotation, SessionMember)
    )


def flip_first_ballot(document: dict[str, Any]) -> None:
    events = document["games"][0]["events"]
    ballot = next(r for r in events if r["payload"]["type"] == "ballot_cast")
    ballot["payload"]["yes"] = not ballot["payload"]["yes"]


def drop_an_acceptance(document: dict[str, Any]) -> None:
    events = document["games"][0]["events"]
    index = next(i for i, r in enumerate(events) if r["payload"]["type"] == "proposal_accepted")
    del events[index]
    for seq, record in enumerate(events, start=1):
        record["seq"] = seq


def raise_a_side_payment(document: dict[str, Any]) -> None:
    events = document["games"][0]["events"]
    counted = next(r for r in events if r["payload"]["type"] == "agreement_in_force")
    counted["payload"]["transfers"] = {"A1": 50}


def play_after_the_end(document: dict[str, Any]) -> None:
    events = document["games"][0]["events"]
    chat = {"type": "statement_made", "by": "A-chief", "text": "One more thing"}
    events.append({"seq": len(events) + 1, "created": events[-1]["created"], "payload": chat})


def renumber(document: dict[str, Any]) -> None:
    document["games"][0]["events"][3]["seq"] = 40


def unknown_event(document: dict[str, Any]) -> None:
    document["games"][0]["events"][2]["payload"]["type"] = "coup_detat"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            flip_first_ballot,
            "event 18 (ballot_cast) is not one the rules allow there: the rules record different",
        ),
        (drop_an_acceptance, "event 13 (tentative_agreement) is not one the rules allow there"),
        (raise_a_side_payment, "the rules record different events at that point"),
        (play_after_the_end, "comes after the game ended"),
        (renumber, "the events are not numbered 1, 2, 3"),
        (unknown_event, "event 3 cannot be read: unknown event type 'coup_detat'"),
    ],
)
def test_a_tampered_log_is_refused_and_nothing_is_written(
    session: ClassSession,
    tmp_path: Path,
    tamper: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    path = export_json(tmp_path, session.code)
    document = json.loads(path.read_text(encoding="utf-8"))
    tamper(document)
    path.write_text(json.dumps(document), encoding="utf-8")
    counts = stored_counts()
    status, out, err = run("import_games", str(path), "--owner", "teacher")
    assert status == 2
    assert "refused, nothing imported" in err
    assert message in err
    assert out == ""
    assert stored_counts() == counts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "the file is not JSON"),
        ('["ratify-export", 1]', "the file is not a Ratify export"),
        ('{"format": "other", "version": 1, "games": []}', "not a Ratify export"),
        ('{"format": "ratify-export", "version": 2, "games": []}', "export version 2 is not"),
        (
            '{"format": "ratify-export", "version": 1}',
            "the file is malformed: games: Field required",
        ),
        (
            '{"format": "ratify-export", "version": 1, "games": [{"code": "X"}]}',
            "the file is malformed: games.0.scenario_slug: Field required",
        ),
        ('{"format": "ratify-export", "version": 1, "games": []}', "the file holds no game"),
    ],
)
def test_a_file_that_is_not_a_valid_export_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "export.json"
    path.write_text(text, encoding="utf-8")
    counts = stored_counts()
    status, _, err = run("import_games", str(path))
    assert status == 2
    assert message in err
    assert stored_counts() == counts


def test_a_session_needs_a_known_owner(session: ClassSession, tmp_path: Path) -> None:
    path = export_json(tmp_path, session.code)
    counts = stored_counts()
    status, _, err = run("import_games", str(path))
    assert status == 2 and "name its owner with --owner" in err
    status, _, err = run("import_games", str(path), "--owner", "nobody")
    assert status == 2 and "no user is called 'nobody'" in err
    status, _, err = run("import_games", str(tmp_path / "missing.json"))
    assert status == 2 and "cannot read the file" in err
    assert stored_counts() == counts


def test_export_of_unknown_codes_and_of_a_game_of_a_session(
    session: ClassSession, tmp_path: Path
) -> None:
    status, _, err = run("export_session", "NOPE42", "--format", "csv", "--out", str(tmp_path))
    assert status == 2 and "NOPE42: no class session or game has this code" in err
    status, _, err = run(
        "export_session", "CLASS1", "--game", "--format", "json", "--out", str(tmp_path)
    )
    assert status == 2 and "CLASS1: no game has this code" in err
    game = Game.objects.filter(session=session).order_by("created", "pk").first()
    assert game is not None
    path = export_json(tmp_path, game.code, "--game")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["session"] is None
    assert [g["code"] for g in document["games"]] == [game.code]
    (note,) = document["games"][0]["annotations"]
    assert (note["seq"], note["text"], note["author"]) == (16, "Here A1 said no.", "teacher")


def test_verify_log_accepts_every_log_the_engine_wrote(session: ClassSession) -> None:
    for game in Game.objects.filter(session=session):
        payloads = list(
            GameEvent.objects.filter(game=game).order_by("seq").values_list("payload", flat=True)
        )
        events, state = export.verify_log(payloads)
        assert state == fold(services.log_of(game.pk))
        assert len(events) == len(payloads)


def test_every_event_type_starts_a_batch_or_follows_from_one() -> None:
    """A new event type must be taught to ``verify_log``, or every log holding it is refused."""
    starters = set(export.STARTERS)
    assert starters.isdisjoint(export.CONSEQUENCES)
    assert starters | export.CONSEQUENCES == set(e.EVENT_TYPES.values())


def test_an_announcement_survives_the_round_trip_and_an_empty_one_is_refused(
    tmp_path: Path,
) -> None:
    live = new_live_game("gatt", bots=True)
    assert live.submit(c.Announce(c.INSTRUCTOR, "Ten minutes left.\nBe brief."))
    play_bots(live)
    path = export_json(tmp_path, live.game.code)
    status, out, err = run("import_games", str(path), "--json")
    assert status == 0, err
    (item,) = json.loads(out)["games"]
    imported = Game.objects.get(code=item["code"])
    assert services.log_of(imported.pk) == services.log_of(live.pk)

    document = json.loads(path.read_text(encoding="utf-8"))
    announcement = next(
        r["payload"] for r in document["games"][0]["events"] if "text" in r["payload"]
    )
    announcement["text"] = "   "
    path.write_text(json.dumps(document), encoding="utf-8")
    counts = stored_counts()
    status, _, err = run("import_games", str(path))
    assert status == 2 and "(announcement_made) is not one the rules allow there" in err
    assert stored_counts() == counts


def test_pandas_reads_every_csv_file_with_no_options(session: ClassSession, tmp_path: Path) -> None:
    import pandas as pd  # type: ignore[import-untyped]  # no stubs in the dev set

    export.write_csv(tmp_path, list(Game.objects.filter(session=session)))
    games = list(Game.objects.filter(session=session))
    events = pd.read_csv(tmp_path / export.EVENTS_FILE)
    seats = pd.read_csv(tmp_path / export.SEATS_FILE)
    ballots = pd.read_csv(tmp_path / export.BALLOTS_FILE)
    assert len(events) == sum(len(services.log_of(g.pk)) for g in games)
    assert len(seats) == Seat.objects.filter(game__in=games).count()
    assert len(ballots) == sum(
        isinstance(ev, e.BallotCast) for g in games for ev in services.log_of(g.pk)
    )
    assert pd.api.types.is_integer_dtype(events["seq"])
    assert list(events.columns) == list(read_table(tmp_path / export.EVENTS_FILE)[0].keys())
    assert not any(str(column).startswith("Unnamed") for column in events.columns)
