"""``services.submit``, the only writer: its cached fast path gives the answers the log gives."""

from __future__ import annotations

import asyncio
import io

import pytest
from django.core.management import call_command
from django.db import connection

from negotiation import services
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine import scenario as scenario_module
from negotiation.engine.scenario import Deadlines, GameDefaults
from negotiation.models import Game, GameCommand, GameEvent, Scenario

# Transactions commit as in production: on-commit hooks fill the state cache.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def scenarios() -> None:
    call_command("load_scenarios", stdout=io.StringIO())
    services.state_cache.clear()


def started_game(level1: int | None = None) -> Game:
    settings = GameDefaults(
        rounds=3, attempts=3, deadlines=Deadlines(level1=level1, level2=None, compliance=None)
    )
    game = services.create_game(scenario=Scenario.objects.get(slug="gatt"), settings=settings)
    outcome = services.submit(
        game_id=game.pk, command=c.StartGame(c.INSTRUCTOR), issuer="host", client_id="start"
    )
    assert outcome.accepted
    return game


def chat(game: Game, text: str, client_id: str | None = None) -> services.Outcome:
    return services.submit(
        game_id=game.pk,
        command=c.Chat("A-chief", "table", text),
        issuer="player",
        client_id=client_id,
    )


def stored_texts(game: Game) -> list[str]:
    return [
        payload["text"]
        for payload in GameEvent.objects.filter(game=game, type="chat_posted")
        .order_by("seq")
        .values_list("payload", flat=True)
    ]


def test_a_retried_id_returns_the_recorded_outcome_and_writes_nothing() -> None:
    game = started_game()
    first = chat(game, "hello", client_id="c1")
    again = chat(game, "hello", client_id="c1")
    assert first.accepted and again.accepted and again.replayed
    assert again.last_seq == first.last_seq
    assert again.events == ()
    assert stored_texts(game) == ["hello"]
    assert GameCommand.objects.filter(game=game, client_id="c1").count() == 1


def test_a_retried_refused_id_keeps_its_refusal_even_once_the_command_would_pass() -> None:
    game = started_game()
    refused = services.submit(
        game_id=game.pk, command=c.Accept("A-chief", 1), issuer="player", client_id="a1"
    )
    assert not refused.accepted and refused.code
    services.submit(
        game_id=game.pk,
        command=c.Propose("B-chief", (5.0, 5.0)),
        issuer="other",
        client_id="p1",
    )
    again = services.submit(
        game_id=game.pk, command=c.Accept("A-chief", 1), issuer="player", client_id="a1"
    )
    assert (again.accepted, again.code, again.replayed) == (False, refused.code, True)
    assert not GameEvent.objects.filter(game=game, type="proposal_accepted").exists()


def test_a_command_decided_on_a_cached_state_another_process_overtook_is_decided_again() -> None:
    game = started_game()
    chat(game, "mine")
    cached = services.state_cache.get(game.pk)
    assert cached is not None
    # Another process appends an event this process's cache does not know.
    other = e.ChatPosted(channel="table", by="B-chief", text="theirs")
    GameEvent.objects.create(
        game=game, seq=cached.seq + 1, type=other.TYPE, payload=e.event_to_dict(other)
    )
    Game.objects.filter(pk=game.pk).update(last_seq=cached.seq + 1)
    outcome = chat(game, "after", client_id="c2")
    assert outcome.accepted
    assert stored_texts(game) == ["mine", "theirs", "after"]
    assert outcome.last_seq == cached.seq + 2


def test_a_refusal_on_a_stale_cached_state_is_checked_against_the_log() -> None:
    game = started_game()
    cached = services.state_cache.get(game.pk)
    assert cached is not None
    # Another process records a proposal this process has not seen.
    proposal = e.ProposalMade(proposal_id=1, by="B-chief", values=(5.0, 5.0))
    GameEvent.objects.create(
        game=game, seq=cached.seq + 1, type=proposal.TYPE, payload=e.event_to_dict(proposal)
    )
    Game.objects.filter(pk=game.pk).update(last_seq=cached.seq + 1)
    outcome = services.submit(
        game_id=game.pk, command=c.Accept("A-chief", 1), issuer="player", client_id="a1"
    )
    assert outcome.accepted, outcome
    assert GameEvent.objects.filter(game=game, type="proposal_accepted").exists()


def test_a_deadline_fired_early_may_fire_again_under_the_same_id() -> None:
    game = started_game(level1=60)
    state = services.load_state(game.pk)
    assert state.deadline is not None
    command_id = f"deadline:{state.deadline!r}"
    fire = c.FireDeadline(c.SYSTEM, state.deadline)
    early = services.submit(
        game_id=game.pk,
        command=fire,
        issuer=services.SYSTEM_ISSUER,
        client_id=command_id,
        now=state.deadline - 1,
    )
    assert early.code == "deadline_not_reached"
    due = services.submit(
        game_id=game.pk,
        command=fire,
        issuer=services.SYSTEM_ISSUER,
        client_id=command_id,
        now=state.deadline + 0.01,
    )
    assert due.accepted and not due.replayed and due.events
    assert services.load_state(game.pk).deadline != state.deadline


def test_an_unknown_game_raises() -> None:
    with pytest.raises(services.GameNotFoundError):
        services.submit(game_id=987654, command=c.StartGame(c.INSTRUCTOR), issuer="host")


def test_a_deleted_game_whose_state_is_cached_raises() -> None:
    game = started_game()
    chat(game, "hello")
    assert services.state_cache.get(game.pk) is not None
    Game.objects.filter(pk=game.pk).delete()
    with pytest.raises(services.GameNotFoundError):
        chat(game, "anyone?")


def test_a_batch_writes_several_games_and_one_game_twice_in_order() -> None:
    first, second = started_game(), started_game()
    results = services.submit_many(
        [
            services.Request(first.pk, c.Chat("A-chief", "table", "one"), "p", "b1"),
            services.Request(second.pk, c.Chat("B-chief", "table", "two"), "p", "b2"),
            services.Request(first.pk, c.Chat("B-chief", "table", "three"), "p", "b3"),
            services.Request(first.pk, c.Accept("A-chief", 99), "p", "b4"),
        ]
    )
    outcomes = [r for r in results if isinstance(r, services.Outcome)]
    assert len(outcomes) == 4
    assert [o.accepted for o in outcomes] == [True, True, True, False]
    assert outcomes[2].last_seq == outcomes[0].last_seq + 1
    assert outcomes[3].last_seq == outcomes[2].last_seq
    assert stored_texts(first) == ["one", "three"]
    assert stored_texts(second) == ["two"]
    # Written together, cached after the commit: the next command goes on from there.
    assert chat(first, "four").last_seq == outcomes[2].last_seq + 1
    assert GameCommand.objects.filter(client_id="b4", accepted=False).count() == 1


def test_a_batch_with_a_retried_id_or_an_unknown_game_answers_each_request_on_its_own() -> None:
    game = started_game()
    done = chat(game, "earlier", client_id="r1")
    results = services.submit_many(
        [
            services.Request(game.pk, c.Chat("A-chief", "table", "new"), "player", "r2"),
            services.Request(game.pk, c.Chat("A-chief", "table", "earlier"), "player", "r1"),
            services.Request(987654, c.Chat("A-chief", "table", "lost"), "player", "r3"),
        ]
    )
    fresh, retried, missing = results
    assert isinstance(fresh, services.Outcome) and fresh.accepted and not fresh.replayed
    assert isinstance(retried, services.Outcome) and retried.replayed
    assert retried.last_seq == done.last_seq
    assert isinstance(missing, services.GameNotFoundError)
    assert stored_texts(game) == ["earlier", "new"]
    assert services.load_state(game.pk).seq == fresh.last_seq


async def test_the_writer_batches_commands_that_arrive_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from channels.db import database_sync_to_async

    from negotiation.writer import writer

    games = [await database_sync_to_async(started_game)() for _ in range(3)]
    sizes: list[int] = []
    real = services.submit_many

    def counting(requests: list[services.Request], now: float | None = None) -> object:
        sizes.append(len(requests))
        return real(requests, now)

    monkeypatch.setattr(services, "submit_many", counting)
    requests = [
        services.Request(game.pk, c.Chat("A-chief", "table", f"{game.pk}-{n}"), "p", f"w{n}")
        for n in range(10)
        for game in games
    ]
    outcomes = await asyncio.gather(*(writer().submit(r) for r in requests))
    assert all(o.accepted and not o.replayed for o in outcomes)
    assert sum(sizes) == len(requests)
    assert max(sizes) > 1
    for game in games:
        texts = await database_sync_to_async(stored_texts)(game)
        assert texts == [f"{game.pk}-{n}" for n in range(10)]


def test_with_row_locks_a_cached_state_catches_up_from_the_events_this_process_received(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.db import transaction

    from negotiation import frames

    game = started_game()
    chat(game, "mine")
    cached = services.state_cache.get(game.pk)
    assert cached is not None
    # Another process wrote the next event; this process received it from the group.
    other = e.ChatPosted(channel="table", by="B-chief", text="theirs")
    GameEvent.objects.create(
        game=game, seq=cached.seq + 1, type=other.TYPE, payload=e.event_to_dict(other)
    )
    frames.remember(game.pk, [(cached.seq + 1, other)])

    def no_reading(game_id: int) -> object:
        raise AssertionError("the log was read again")

    monkeypatch.setattr(services, "load_state", no_reading)
    request = services.Request(game.pk, c.Chat("A-chief", "table", "after"), "p", "x1")
    with transaction.atomic():
        # What PostgreSQL's locked row reports: the latest seq is the other process's.
        outcome = services._write(request, None, {}, {game.pk: cached.seq + 1}, False)
    assert outcome.accepted and outcome.last_seq == cached.seq + 2
    assert stored_texts(game) == ["mine", "theirs", "after"]


def test_the_scenario_member_index_holds_every_cached_states_scenario() -> None:
    # Each cached state carries its own scenario: a smaller index would be emptied and
    # rebuilt over and over by a process serving more games than it holds.
    assert scenario_module.MEMBER_INDEX_SIZE >= services.STATE_CACHE_SIZE


@pytest.mark.parametrize(
    ("model", "unique"),
    [(GameEvent, ["game_id", "seq"]), (GameCommand, ["game_id", "issuer", "client_id"])],
)
def test_a_log_table_is_indexed_by_game_only_through_its_unique_constraint(
    model: type[GameEvent] | type[GameCommand], unique: list[str]
) -> None:
    # Every index is written on every insert of a batch: one that only repeats the unique
    # constraint's leading column costs a page per row and serves no lookup the other does not.
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    indexes = [
        info["columns"]
        for info in constraints.values()
        if (info["index"] or info["unique"]) and not info["primary_key"]
    ]
    assert indexes == [unique]
