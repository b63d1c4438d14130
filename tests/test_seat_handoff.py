"""Seat hand-offs: ``hand_to_bot``, ``give_back``, ``move_player``, ``set_bot_strategy`` with
every refusal; presence (``Seat.away_since``) and the grace period of remote matches, end to
end through the consumer; the bots' human-like pauses."""

from __future__ import annotations

import asyncio
import datetime
import json
import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Player
from negotiation import runtime as runtime_module
from negotiation import selectors, services
from negotiation.engine import bots
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.models import ClassSession, Game, GameEvent, Scenario, Seat, SessionMember
from negotiation.runtime import bot_pause, runtime
from tests.live import (
    Browser,
    Server,
    manage,
    two_servers_on_redis,
)
from tests.test_consumers import Client, communicator
from tests.test_two_servers import Player as LivePlayer
from tests.test_two_servers import stored_log

GATT_SEATS = ("A-chief", "A1", "A2", "A3", "B-chief", "B1", "B2", "B3")

pytestmark = pytest.mark.usefixtures("fresh_server")


def gatt() -> Scenario:
    call_command("load_scenarios", verbosity=0)
    return Scenario.objects.get(slug="gatt")


def new_game(*, public: bool = False, bots: tuple[str, ...] = (), **kwargs: Any) -> Game:
    return services.create_game(scenario=gatt(), public=public, bot_seats=bots, **kwargs)


def seat(game: Game, key: str, name: str | None = None) -> Player:
    player = Player.objects.create(display_name=name or f"Player {key}")
    outcome = services.take_seat(game=game, player=player, seat_key=key)
    assert outcome.accepted, outcome
    return player


def row(game: Game, key: str) -> Seat:
    return Seat.objects.get(game=game, key=key)


def holder(game: Game, key: str) -> Any:
    services.state_cache.forget(game.pk)
    return services.load_state(game.pk).seats.get(key)


def fresh(game: Game) -> Game:
    game.refresh_from_db()
    return game


# --------------------------------------------------------------------------------------------
# hand_to_bot


@pytest.mark.django_db
def test_hand_to_bot_releases_the_player_and_seats_a_bot_that_remembers_them() -> None:
    game = new_game()
    ada = seat(game, "A1", "Ada")
    before = fresh(game).last_seq
    outcome = services.hand_to_bot(game=game, seat_key="A1")
    assert outcome.accepted, outcome
    assert [type(s.event) for s in outcome.events] == [e.SeatReleased, e.SeatTaken]
    taken = outcome.events[1].event
    assert isinstance(taken, e.SeatTaken) and taken.bot and taken.name == "Ada (bot)"
    assert outcome.last_seq == before + 2
    a1 = row(game, "A1")
    assert (a1.bot, a1.player_id, a1.stand_in_for_id, a1.display_name) == (
        True,
        None,
        ada.pk,
        "Ada (bot)",
    )
    assert holder(game, "A1").bot


@pytest.mark.django_db
def test_hand_to_bot_fills_an_empty_seat_without_remembering_anyone() -> None:
    game = new_game()
    outcome = services.hand_to_bot(game=game, seat_key="B3")
    assert outcome.accepted
    assert [type(s.event) for s in outcome.events] == [e.SeatTaken]
    b3 = row(game, "B3")
    assert b3.bot and b3.stand_in_for_id is None and b3.display_name == "Bot"


@pytest.mark.django_db
def test_hand_to_bot_stores_the_strategy_given() -> None:
    game = new_game()
    seat(game, "A-chief")
    strategy = known_strategy("chief")
    assert services.hand_to_bot(game=game, seat_key="A-chief", strategy=strategy).accepted
    assert row(game, "A-chief").bot_strategy == strategy


@pytest.mark.django_db
def test_hand_to_bot_refusals() -> None:
    game = new_game(bots=("B1",))
    seat(game, "A1")
    unknown = services.hand_to_bot(game=game, seat_key="Z9")
    assert (unknown.accepted, unknown.code) == (False, "unknown_seat")
    assert services.hand_to_bot(game=game, seat_key="B1").code == "already_bot"
    bad = services.hand_to_bot(game=game, seat_key="A1", strategy="no-such-strategy")
    assert bad.code == "unknown_strategy"
    assert not row(game, "A1").bot  # nothing written by a refusal
    services.submit(game_id=game.pk, command=c.EndGame(c.INSTRUCTOR), issuer="test")
    assert services.hand_to_bot(game=game, seat_key="A1").code == "game_ended"


@pytest.mark.django_db
def test_the_hosts_seat_bot_command_also_remembers_the_player() -> None:
    game = new_game()
    ada = seat(game, "A2")
    outcome = services.submit(
        game_id=game.pk,
        command=c.TakeSeat(c.INSTRUCTOR, "A2", "bot", bot=True, name="Bot"),
        issuer="test",
    )
    assert outcome.accepted
    assert row(game, "A2").stand_in_for_id == ada.pk


# --------------------------------------------------------------------------------------------
# give_back


@pytest.mark.django_db
def test_give_back_returns_the_seat_to_the_remembered_player() -> None:
    game = new_game()
    ada = seat(game, "A1", "Ada")
    services.hand_to_bot(game=game, seat_key="A1")
    outcome = services.give_back(game=game, seat_key="A1")
    assert outcome.accepted, outcome
    assert [type(s.event) for s in outcome.events] == [e.SeatReleased, e.SeatTaken]
    a1 = row(game, "A1")
    assert (a1.bot, a1.player_id, a1.stand_in_for_id, a1.display_name) == (
        False,
        ada.pk,
        None,
        "Ada",
    )
    assert holder(game, "A1").player == str(ada.pk)
    # The log tells the player's table what the bot did meanwhile.
    notice = selectors.stood_in(game, str(ada.pk))
    assert notice is not None and notice["seat"] == "A1" and notice["moves"] == 0


@pytest.mark.django_db
def test_give_back_refusals() -> None:
    game = new_game(bots=("B1",))
    seat(game, "A1")
    assert services.give_back(game=game, seat_key="Z9").code == "unknown_seat"
    assert services.give_back(game=game, seat_key="A1").code == "nobody_to_give_back"
    assert services.give_back(game=game, seat_key="A2").code == "nobody_to_give_back"
    assert services.give_back(game=game, seat_key="B1").code == "nobody_to_give_back"
    # The remembered player sits elsewhere in the game by now.
    bea = seat(game, "A3", "Bea")
    services.hand_to_bot(game=game, seat_key="A3")
    services.submit(
        game_id=game.pk,
        command=c.TakeSeat(c.SYSTEM, "B2", str(bea.pk), name="Bea"),
        issuer="test",
    )
    refused = services.give_back(game=game, seat_key="A3")
    assert (refused.accepted, refused.code) == (False, "already_seated")
    assert row(game, "A3").bot


@pytest.mark.django_db
def test_taking_a_seat_again_gets_back_the_one_a_bot_keeps() -> None:
    game = new_game()
    ada = seat(game, "B2")
    services.hand_to_bot(game=game, seat_key="B2")
    other = services.take_seat(game=game, player=ada, seat_key="A1")
    assert (other.accepted, other.code) == (False, "already_seated")
    assert services.take_seat(game=game, player=ada, seat_key=None).accepted
    assert row(game, "B2").player_id == ada.pk


# --------------------------------------------------------------------------------------------
# move_player


def class_session() -> tuple[ClassSession, Game, Game]:
    owner = get_user_model().objects.create_user("teacher", password="secret-password-1")
    session = ClassSession.objects.create(
        code="CLS123", title="Class", owner=owner, scenario=gatt()
    )
    first, second = new_game(), new_game()
    Game.objects.filter(pk__in=[first.pk, second.pk]).update(session=session)
    return session, fresh(first), fresh(second)


@pytest.mark.django_db
def test_move_player_within_a_game() -> None:
    game = new_game()
    ada = seat(game, "A1", "Ada")
    outcome = services.move_player(player=ada, to_game=game, to_seat_key="B2")
    assert outcome.accepted, outcome
    assert row(game, "A1").player_id is None
    assert row(game, "B2").player_id == ada.pk
    assert holder(game, "A1") is None and holder(game, "B2").player == str(ada.pk)
    same = services.move_player(player=ada, to_game=game, to_seat_key="B2")
    assert same.accepted and not same.events


@pytest.mark.django_db
def test_move_player_across_the_games_of_a_session_and_past_a_bot() -> None:
    session, first, second = class_session()
    ada = seat(first, "A1", "Ada")
    member = SessionMember.objects.create(
        session=session, name="Ada", player=ada, game=first, seat_key="A1"
    )
    services.hand_to_bot(game=second, seat_key="B3")
    outcome = services.move_player(player=ada, to_game=second, to_seat_key="B3")
    assert outcome.accepted, outcome
    assert [type(s.event) for s in outcome.events] == [e.SeatReleased, e.SeatTaken]
    assert row(first, "A1").player_id is None and holder(first, "A1") is None
    b3 = row(second, "B3")
    assert (b3.player_id, b3.bot) == (ada.pk, False)
    member.refresh_from_db()
    assert (member.game_id, member.seat_key) == (second.pk, "B3")


@pytest.mark.django_db
def test_a_session_member_without_a_seat_may_be_seated() -> None:
    session, first, _ = class_session()
    ada = Player.objects.create(display_name="Ada")
    SessionMember.objects.create(session=session, name="Ada", player=ada)
    assert services.move_player(player=ada, to_game=first, to_seat_key="A2").accepted
    assert row(first, "A2").player_id == ada.pk


@pytest.mark.django_db
def test_move_player_refusals() -> None:
    _, first, second = class_session()
    ada = seat(first, "A1", "Ada")
    seat(second, "B1", "Bea")
    taken = services.move_player(player=ada, to_game=second, to_seat_key="B1")
    assert (taken.accepted, taken.code) == (False, "seat_taken")
    assert services.move_player(player=ada, to_game=second, to_seat_key="Z9").code == (
        "unknown_seat"
    )
    elsewhere = new_game()  # a stand-alone game, no session of Ada's
    outsider = Player.objects.create(display_name="Cy")
    seat(elsewhere, "A1", "Cy")
    foreign = services.move_player(player=outsider, to_game=second, to_seat_key="A2")
    assert (foreign.accepted, foreign.code) == (False, "other_session")
    services.submit(game_id=second.pk, command=c.EndGame(c.INSTRUCTOR), issuer="test")
    assert services.move_player(player=ada, to_game=second, to_seat_key="A2").code == ("game_ended")
    # Nothing moved.
    assert row(first, "A1").player_id == ada.pk
    assert row(second, "A2").player_id is None


# --------------------------------------------------------------------------------------------
# set_bot_strategy


def known_strategy(role: str) -> str:
    registry = bots.CONSTITUENT_STRATEGIES if role == "constituent" else bots.CHIEF_STRATEGIES
    return sorted(registry)[-1]


@pytest.mark.django_db
def test_set_bot_strategy() -> None:
    game = new_game(bots=("A1",))
    strategy = known_strategy("constituent")
    services.set_bot_strategy(game=game, seat_key="A1", strategy=strategy)
    assert row(game, "A1").bot_strategy == strategy
    services.set_bot_strategy(game=game, seat_key="A1", strategy="")
    assert row(game, "A1").bot_strategy == ""
    with pytest.raises(KeyError):
        services.set_bot_strategy(game=game, seat_key="Z9", strategy="")


@pytest.mark.django_db
def test_set_bot_strategy_refuses_a_name_the_registry_does_not_know() -> None:
    game = new_game(bots=("A1",))
    with pytest.raises(ValueError, match="no-such-strategy"):
        services.set_bot_strategy(game=game, seat_key="A1", strategy="no-such-strategy")


# --------------------------------------------------------------------------------------------
# Presence in the database


@pytest.mark.django_db
def test_a_seat_is_away_from_its_taking_until_its_player_connects() -> None:
    game = new_game()
    ada = seat(game, "A1")
    assert row(game, "A1").away_since is not None
    assert services.note_arrival(game_id=game.pk, player_id=str(ada.pk)) is False
    assert row(game, "A1").away_since is None
    left = timezone.now()
    assert services.note_departure(
        game_id=game.pk, seat_key="A1", player_id=str(ada.pk), since=left
    )
    assert row(game, "A1").away_since == left
    # Marked once: a second departure keeps the first time.
    later = left + datetime.timedelta(seconds=5)
    assert not services.note_departure(
        game_id=game.pk, seat_key="A1", player_id=str(ada.pk), since=later
    )
    assert services.note_present(game_id=game.pk, seat_key="A1", player_id=str(ada.pk))
    assert row(game, "A1").away_since is None


@pytest.mark.django_db
def test_the_grace_hand_over_only_takes_a_seat_still_away() -> None:
    game = new_game(public=True)
    ada = seat(game, "A1")
    away = row(game, "A1").away_since
    services.note_arrival(game_id=game.pk, player_id=str(ada.pk))
    back = services.hand_over_absent_seat(game_id=game.pk, seat_key="A1", away_before=away)
    assert (back.accepted, back.code) == (False, "not_away")
    left = timezone.now()
    services.note_departure(game_id=game.pk, seat_key="A1", player_id=str(ada.pk), since=left)
    # Away again since after the time the timer was set for: a newer timer decides.
    early = services.hand_over_absent_seat(
        game_id=game.pk, seat_key="A1", away_before=left - datetime.timedelta(seconds=1)
    )
    assert early.code == "not_away"
    first = services.hand_over_absent_seat(game_id=game.pk, seat_key="A1", away_before=left)
    second = services.hand_over_absent_seat(game_id=game.pk, seat_key="A1", away_before=left)
    assert first.accepted and (second.accepted, second.code) == (False, "already_bot")
    assert row(game, "A1").stand_in_for_id == ada.pk
    # Back in a remote match: the seat comes back by itself.
    assert services.note_arrival(game_id=game.pk, player_id=str(ada.pk)) is True
    a1 = row(game, "A1")
    assert (a1.player_id, a1.bot, a1.away_since) == (ada.pk, False, None)


@pytest.mark.django_db
def test_outside_remote_matches_only_the_instructor_gives_a_seat_back() -> None:
    game = new_game()
    ada = seat(game, "A1")
    services.hand_to_bot(game=game, seat_key="A1")
    assert services.note_arrival(game_id=game.pk, player_id=str(ada.pk)) is False
    assert row(game, "A1").bot


# --------------------------------------------------------------------------------------------
# The grace period end to end, through the consumer


async def connected(code: str, session: str) -> Client:
    socket = communicator(code, session)
    ok, _ = await socket.connect(timeout=3)
    assert ok
    client = Client(socket)
    await client.send({"type": "hello", "last_seq": None})
    await client.until("snapshot")
    return client


def _session_of(player: Player) -> str:
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[Player.SESSION_KEY] = str(player.pk)
    store.create()
    assert store.session_key is not None
    return store.session_key


def _match_with(*seats: str, public: bool = True) -> tuple[Game, dict[str, str]]:
    game = new_game(public=public)
    sessions = {key: _session_of(seat(game, key)) for key in seats}
    return fresh(game), sessions


match_with = sync_to_async(_match_with)


async def _events_of(game: Game, kind: str) -> list[GameEvent]:
    return await sync_to_async(lambda: list(GameEvent.objects.filter(game=game, type=kind)))()


async def _row(game: Game, key: str) -> Seat:
    return await sync_to_async(row)(game, key)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_dropped_player_gets_a_bot_after_the_grace_period_and_the_seat_back_later(
    settings: Any,
) -> None:
    settings.RATIFY_GRACE_SECONDS = 0.6
    game, sessions = await match_with("A-chief", "A1")
    chief = await connected(game.code, sessions["A-chief"])
    member = await connected(game.code, sessions["A1"])
    assert (await _row(game, "A1")).away_since is None
    await member.close()
    # The chief sees a bot take A1 once the grace period is over.
    taken = await chief.event("seat_taken", timeout=5)
    assert taken["event"]["seat"] == "A1" and taken["event"]["bot"] is True
    a1 = await _row(game, "A1")
    assert a1.bot and a1.stand_in_for_id is not None
    # The player comes back: their seat is given back and the connection is bound to it.
    again = Client(communicator(game.code, sessions["A1"]))
    assert (await again.socket.connect(timeout=3))[0]
    await again.send({"type": "hello", "last_seq": None})
    snapshot = await again.until("snapshot")
    assert snapshot["state"]["me"]["seat"] == "A1"
    back = await chief.event("seat_taken")
    assert back["event"]["seat"] == "A1" and back["event"]["bot"] is False
    a1 = await _row(game, "A1")
    assert (a1.bot, a1.away_since, a1.stand_in_for_id) == (False, None, None)
    assert (await again.command("chat", channel="caucus:A", text="back"))["type"] == "ack"
    for client in (chief, again):
        await client.close()
    await runtime.settle()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_reconnecting_within_the_grace_period_keeps_the_seat(settings: Any) -> None:
    settings.RATIFY_GRACE_SECONDS = 1.5
    game, sessions = await match_with("A-chief", "A1")
    chief = await connected(game.code, sessions["A-chief"])
    member = await connected(game.code, sessions["A1"])
    await member.close()
    await asyncio.sleep(0.8)
    assert (await _row(game, "A1")).away_since is not None
    member = await connected(game.code, sessions["A1"])
    assert (await _row(game, "A1")).away_since is None
    await asyncio.sleep(2.0)  # past the end of the first grace period
    assert not [ev for ev in await _events_of(game, "seat_taken") if ev.payload["bot"]]
    assert not (await _row(game, "A1")).bot
    for client in (chief, member):
        await client.close()
    await runtime.settle()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_second_tab_keeps_the_seat_when_the_first_closes(settings: Any) -> None:
    settings.RATIFY_GRACE_SECONDS = 0.6
    game, sessions = await match_with("A-chief", "A1")
    first = await connected(game.code, sessions["A1"])
    second = await connected(game.code, sessions["A1"])
    # The first tab has heard of the second (its own presence frame, then the second's).
    await first.until("presence")
    await first.until("presence")
    await first.close()
    await asyncio.sleep(1.5)
    a1 = await _row(game, "A1")
    assert (a1.bot, a1.away_since) == (False, None)
    await second.close()
    await runtime.settle()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_seat_whose_connection_vanished_without_a_word_is_found_by_the_sweep(
    settings: Any,
) -> None:
    """As when the process serving the player's only connection dies: nobody marked the seat
    away. The sweep asks the game's group, nobody answers for A1: away, then a bot."""
    settings.RATIFY_GRACE_SECONDS = 0.6
    game, sessions = await match_with("A-chief", "A1")
    await sync_to_async(Seat.objects.filter(game=game, key="A1").update)(away_since=None)
    chief = await connected(game.code, sessions["A-chief"])
    taken = await chief.event("seat_taken", timeout=8)
    assert taken["event"]["seat"] == "A1" and taken["event"]["bot"] is True
    # The chief, connected all along, answered every probe and kept the seat.
    chief_row = await _row(game, "A-chief")
    assert not chief_row.bot and chief_row.away_since is None
    await chief.close()
    await runtime.settle()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_outside_remote_matches_a_dropped_seat_is_only_marked_away(settings: Any) -> None:
    settings.RATIFY_GRACE_SECONDS = 0.4
    game, sessions = await match_with("A-chief", "A1", public=False)
    member = await connected(game.code, sessions["A1"])
    await member.close()
    await asyncio.sleep(1.5)
    a1 = await _row(game, "A1")
    assert a1.away_since is not None and not a1.bot
    await runtime.settle()


# --------------------------------------------------------------------------------------------
# Bots think like people


@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_a_bot_thinks_longer_over_a_proposal_or_a_ballot_than_over_chat(seed: int) -> None:
    rng = random.Random(seed)
    chat = bot_pause(c.Chat("A-chief", "table", "hi"), 1.0, rng)
    accept = bot_pause(c.Accept("A-chief", 1), 1.0, rng)
    propose = bot_pause(c.Propose("A-chief", (5.0, 5.0)), 1.0, rng)
    ballot = bot_pause(c.CastBallot("A1", True), 1.0, rng)
    assert 0 < chat < propose and accept < propose and chat < ballot


def test_without_a_base_delay_bots_do_not_wait() -> None:
    for command in (c.Propose("A-chief", (5.0, 5.0)), c.CastBallot("A1", True)):
        assert bot_pause(command, 0.0) == 0.0


def test_a_bots_pause_varies() -> None:
    rng = random.Random(7)
    pauses = {bot_pause(c.Propose("A-chief", (5.0, 5.0)), 1.0, rng) for _ in range(20)}
    assert len(pauses) == 20
    assert all(runtime_module.JITTER[0] * 4 <= p <= runtime_module.JITTER[1] * 4 for p in pauses)


# --------------------------------------------------------------------------------------------
# Two processes, one grace period


@pytest.fixture
def two_servers_with_grace(tmp_path: Any) -> Iterator[tuple[dict[str, str], Server, Server]]:
    with two_servers_on_redis(tmp_path, RATIFY_GRACE_SECONDS="1") as servers:
        yield servers


CREATE_MATCH = (
    "import json; from negotiation import services; from negotiation.models import Scenario; "
    "g = services.create_match(scenario=Scenario.objects.get(slug='gatt'), bot_fill_after=None); "
    "print(json.dumps({'code': g.code}))"
)


@pytest.mark.timeout(120)
async def test_two_servers_hand_a_dropped_seat_to_one_bot(
    two_servers_with_grace: tuple[dict[str, str], Server, Server],
) -> None:
    env, first, second = two_servers_with_grace
    code = json.loads(manage(env, "shell", "-c", CREATE_MATCH).strip().splitlines()[-1])["code"]
    ada, bea = Browser(first.base), Browser(second.base)
    ada.take_seat(code, "A1", "Ada")
    bea.take_seat(code, "A-chief", "Bea")
    member = LivePlayer("A1", first, ada.cookie_header())
    chief = LivePlayer("A-chief", second, bea.cookie_header())
    tasks = {
        name: asyncio.create_task(p.run(code)) for name, p in (("A1", member), ("A-chief", chief))
    }
    try:
        for player in (member, chief):
            await player.wait_for(lambda f: f["type"] == "snapshot")
        # Ada's browser goes away; both servers time her seat (the second learns of it from
        # its presence sweep) and both timers fire.
        tasks["A1"].cancel()
        await asyncio.gather(tasks["A1"], return_exceptions=True)
        taken = await chief.wait_for(
            lambda f: (
                f["type"] == "event"
                and f["event"]
                and f["event"]["type"] == "seat_taken"
                and f["event"]["seat"] == "A1"
            )
        )
        assert taken["event"]["bot"] is True
        await asyncio.sleep(3.0)  # a second hand-over would have landed by now
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    log = stored_log(env["DATABASE_URL"], code)
    released = [ev for ev in log if isinstance(ev, e.SeatReleased) and ev.seat == "A1"]
    bots_in = [ev for ev in log if isinstance(ev, e.SeatTaken) and ev.seat == "A1" and ev.bot]
    assert (len(released), len(bots_in)) == (1, 1)
    with psycopg.connect(env["DATABASE_URL"]) as connection:
        (stand_in,) = connection.execute(
            "SELECT p.display_name FROM negotiation_seat s JOIN negotiation_game g "
            "ON g.id = s.game_id JOIN accounts_player p ON p.id = s.stand_in_for_id "
            "WHERE g.code = %s AND s.key = 'A1'",
            (code,),
        ).fetchone()  # type: ignore[misc]
    assert stand_in == "Ada"


def _bonn_with_a_nash_seeking_bot() -> tuple[Game, str, str]:
    from negotiation.selectors import HOST_SESSION_KEY
    from tests.test_consumers import _session

    call_command("load_scenarios", verbosity=0)
    bonn = Scenario.objects.get(slug="bonn-1978")
    bots_at = ("de-spd", "de-fdp", "de-cdu", "us-producers", "us-consumers", "us-moderates")
    game = services.create_game(scenario=bonn, bot_seats=bots_at)
    chief = _session_of(seat(game, "us-chief"))
    outcome = services.hand_to_bot(game=game, seat_key="de-chief", strategy="nash_seeker")
    assert outcome.accepted, outcome
    return fresh(game), chief, _session(**{HOST_SESSION_KEY: [game.code]})


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_bot_plays_its_seats_strategy() -> None:
    """At Bonn the steady conceder opens with (1, 75) and the Nash seeker with the Nash point
    (4, 90): the bot in de-chief plays the strategy stored for its seat."""
    game, chief_session, host_session = await sync_to_async(_bonn_with_a_nash_seeking_bot)()
    chief = await connected(game.code, chief_session)
    host = Client(communicator(game.code, host_session, host=True))
    assert (await host.socket.connect(timeout=3))[0]
    await host.send({"type": "hello", "last_seq": None})
    await host.until("snapshot")
    assert (await host.command("start_game"))["type"] == "ack"
    opening = await chief.event("proposal_made", timeout=10)
    assert opening["event"]["by"] == "de-chief"
    assert opening["event"]["values"] == [4, 90]
    for client in (chief, host):
        await client.close()
    await runtime.settle()
    await runtime.idle()
