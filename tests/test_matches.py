"""Remote matches: the public lobby and its JSON, creating a match, quick match, the bot fill
and the automatic start, spectators (who cannot act), the "a bot stood in for you" endpoint,
and who may do what."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Player
from negotiation import services
from negotiation.engine import commands as c
from negotiation.models import Game, GameEvent, Scenario, Seat
from negotiation.runtime import runtime
from tests.test_consumers import Client as SocketClient
from tests.test_consumers import communicator

GATT_SEATS = ("A-chief", "A1", "A2", "A3", "B-chief", "B1", "B2", "B3")

pytestmark = pytest.mark.usefixtures("fresh_server")


def scenario(slug: str = "gatt") -> Scenario:
    call_command("load_scenarios", verbosity=0)
    return Scenario.objects.get(slug=slug)


def match(slug: str = "gatt", bot_fill_after: int | None = None) -> Game:
    return services.create_match(scenario=scenario(slug), bot_fill_after=bot_fill_after)


def sit(game: Game, key: str, name: str = "") -> Player:
    player = Player.objects.create(display_name=name or f"Player {key}")
    assert services.take_seat(game=game, player=player, seat_key=key).accepted
    return player


def fresh(game: Game) -> Game:
    game.refresh_from_db()
    return game


def kinds(game: Game) -> list[str]:
    return list(GameEvent.objects.filter(game=game).order_by("seq").values_list("type", flat=True))


# --------------------------------------------------------------------------------------------
# The lobby


@pytest.mark.django_db
def test_the_home_page_links_the_lobby(client: Client) -> None:
    response = client.get(reverse("home"))
    assert reverse("matches") in response.content.decode()


@pytest.mark.django_db
def test_the_lobby_lists_open_matches_only(client: Client) -> None:
    waiting = match(bot_fill_after=45)
    sit(waiting, "A1")
    playing = match("gatt")
    for key in GATT_SEATS[:-1]:
        sit(playing, key)
    services.hand_to_bot(game=playing, seat_key="B3")  # full: it starts by itself
    assert fresh(playing).status == Game.Status.ACTIVE
    over = match()
    services.submit(game_id=over.pk, command=c.EndGame(c.INSTRUCTOR), issuer="test")
    private = services.create_game(scenario=scenario())

    page = client.get(reverse("matches")).content.decode()
    assert f'data-testid="match-{waiting.code}"' in page
    assert f'data-testid="join-{waiting.code}"' in page
    assert "7 of 8" in page and "bots after 45 s" in page
    assert f'data-testid="match-{playing.code}"' in page
    assert f'data-testid="join-{playing.code}"' not in page  # no free seat: watch only
    assert f'data-testid="watch-{playing.code}"' in page
    assert over.code not in page and private.code not in page

    listed = client.get(reverse("open_matches")).json()["matches"]
    assert [m["code"] for m in listed] == [waiting.code, playing.code]  # waiting ones first
    first = listed[0]
    assert (first["free"], first["seats"], first["started"]) == (7, 8, False)
    assert first["join_url"] == reverse("lobby", args=[waiting.code])
    assert first["watch_url"] == reverse("play", args=[waiting.code])
    assert (listed[1]["free"], listed[1]["started"]) == (0, True)


# --------------------------------------------------------------------------------------------
# Creating a match


@pytest.mark.django_db
def test_create_a_match_with_bots_after_a_wait(client: Client) -> None:
    gatt = scenario()
    response = client.post(
        reverse("new_match"), {"name": "Ada", "scenario": gatt.pk, "bots": "on", "wait": 90}
    )
    game = Game.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "lobby", args=[game.code]
    )
    assert (game.public, game.bot_fill_after, game.status) == (True, 90, Game.Status.LOBBY)
    assert Player.objects.get().display_name == "Ada"


@pytest.mark.django_db
def test_create_a_match_without_bots(client: Client) -> None:
    gatt = scenario()
    client.post(reverse("new_match"), {"name": "Ada", "scenario": gatt.pk, "wait": 60})
    assert Game.objects.get().bot_fill_after is None


@pytest.mark.django_db
def test_create_a_match_refuses_a_bad_form(client: Client) -> None:
    gatt = scenario()
    assert client.get(reverse("new_match")).status_code == 200
    for data in (
        {"name": "Ada", "scenario": gatt.pk, "bots": "on", "wait": 1},
        {"name": "  ", "scenario": gatt.pk, "wait": 60},
        {"name": "Ada", "scenario": 999999, "wait": 60},
    ):
        assert client.post(reverse("new_match"), data).status_code == 400
    assert not Game.objects.exists()


# --------------------------------------------------------------------------------------------
# Quick match


def quick(client: Client, name: str, slug: str = "") -> Any:
    data = {"name": name}
    if slug:
        data["scenario"] = str(Scenario.objects.get(slug=slug).pk)
    return client.post(reverse("quick_match"), data)


@pytest.mark.django_db
def test_quick_match_opens_a_match_then_fills_it() -> None:
    scenario()
    first, second = Client(), Client()
    response = quick(first, "Ada")
    game = Game.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("play", args=[game.code])
    assert game.public and game.bot_fill_after == services.QUICK_MATCH_BOT_WAIT
    quick(second, "Bea")
    assert Game.objects.count() == 1
    holders = set(Seat.objects.filter(game=game).values_list("display_name", flat=True))
    assert {"Ada", "Bea"} <= holders
    # Ada again: back to her own seat, not a second one.
    assert quick(first, "Ada")["Location"] == reverse("play", args=[game.code])
    assert Seat.objects.filter(game=game, player__isnull=False).count() == 2


@pytest.mark.django_db
def test_quick_match_skips_full_ended_private_and_other_scenario_games() -> None:
    full = match()
    for key in GATT_SEATS:
        sit(full, key)
    over = match()
    sit(over, "A1")
    services.submit(game_id=over.pk, command=c.EndGame(c.INSTRUCTOR), issuer="test")
    private = services.create_game(scenario=scenario())
    other = match("bonn-1978")
    wanted = match()

    response = quick(Client(), "Ada", "gatt")
    assert response["Location"] == reverse("play", args=[wanted.code])
    # Without a scenario, the oldest waiting match with a free seat: the Bonn one.
    assert quick(Client(), "Bea")["Location"] == reverse("play", args=[other.code])
    assert not Seat.objects.filter(game=private, player__isnull=False).exists()


@pytest.mark.django_db
def test_quick_match_opens_a_match_of_the_chosen_scenario() -> None:
    match("gatt")
    response = quick(Client(), "Ada", "bonn-1978")
    game = Game.objects.get(code=response["Location"].split("/")[2])
    assert game.scenario.slug == "bonn-1978"


@pytest.mark.django_db
def test_quick_match_needs_a_name(client: Client) -> None:
    scenario()
    assert quick(client, " ").status_code == 400
    assert not Game.objects.exists()


# --------------------------------------------------------------------------------------------
# Bot fill and the automatic start


@pytest.mark.django_db
def test_a_match_starts_by_itself_once_people_hold_every_seat() -> None:
    game = match()
    for key in GATT_SEATS[:-1]:
        sit(game, key)
    assert fresh(game).status == Game.Status.LOBBY
    sit(game, GATT_SEATS[-1])
    assert fresh(game).status == Game.Status.ACTIVE
    assert kinds(game)[-2:] == ["seat_taken", "phase_changed"]


@pytest.mark.django_db
def test_bots_fill_the_empty_seats_once_the_wait_is_over() -> None:
    game = match(bot_fill_after=30)
    sit(game, "A1")
    assert not services.fill_match(game_id=game.pk).events  # not yet
    Game.objects.filter(pk=game.pk).update(
        created=fresh(game).created - datetime.timedelta(seconds=31)
    )
    outcome = services.fill_match(game_id=game.pk)
    assert outcome.accepted
    game = fresh(game)
    assert game.status == Game.Status.ACTIVE
    bots = Seat.objects.filter(game=game, bot=True)
    assert sorted(bots.values_list("key", flat=True)) == sorted(set(GATT_SEATS) - {"A1"})
    assert not services.fill_match(game_id=game.pk).events  # done once


@pytest.mark.django_db
def test_a_match_nobody_plays_in_is_not_filled_with_bots() -> None:
    game = match(bot_fill_after=0)
    assert not services.fill_match(game_id=game.pk).events
    assert fresh(game).status == Game.Status.LOBBY
    # Once its wait is over, the first person to sit down gets a full table at once.
    sit(game, "B2")
    assert fresh(game).status == Game.Status.ACTIVE
    assert Seat.objects.filter(game=game, bot=True).count() == 7


@pytest.mark.django_db
def test_a_match_without_bot_fill_waits_for_people() -> None:
    game = match(bot_fill_after=None)
    sit(game, "A1")
    Game.objects.filter(pk=game.pk).update(created=fresh(game).created - datetime.timedelta(days=1))
    assert not services.fill_match(game_id=game.pk).events
    assert fresh(game).status == Game.Status.LOBBY


def _waiting_match() -> tuple[Game, str]:
    from tests.test_seat_handoff import _session_of

    game = match(bot_fill_after=1)
    return game, _session_of(sit(game, "A-chief", "Ada"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_the_runtime_fills_a_match_when_its_wait_is_over_and_bots_play() -> None:
    game, session = await sync_to_async(_waiting_match)()
    socket = SocketClient(communicator(game.code, session))
    assert (await socket.socket.connect(timeout=3))[0]
    await socket.send({"type": "hello", "last_seq": None})
    await socket.until("snapshot")
    started = await socket.event("phase_changed", timeout=8)
    assert started["event"]["phase"] == "level1"
    # A bot chief opens the talks at once (no delay in tests).
    made = await socket.event("proposal_made", timeout=8)
    assert made["event"]["by"] == "B-chief"
    await socket.close()
    await runtime.settle()
    await runtime.idle()


# --------------------------------------------------------------------------------------------
# Spectators


def _spectated_match() -> tuple[Game, str, str]:
    from django.contrib.sessions.backends.db import SessionStore

    from tests.test_seat_handoff import _session_of

    game = match()
    chief = _session_of(sit(game, "A-chief"))
    stranger = SessionStore()
    stranger.create()
    assert stranger.session_key is not None
    return game, chief, stranger.session_key


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_spectator_sees_public_information_only_and_cannot_act() -> None:
    game, chief_session, stranger = await sync_to_async(_spectated_match)()
    for key in GATT_SEATS[1:]:
        await sync_to_async(services.hand_to_bot)(game=game, seat_key=key)
    chief = SocketClient(communicator(game.code, chief_session))
    watcher = SocketClient(communicator(game.code, stranger))
    for client in (chief, watcher):
        assert (await client.socket.connect(timeout=3))[0]
        await client.send({"type": "hello", "last_seq": None})
    snapshot = (await watcher.until("snapshot"))["state"]
    assert snapshot["me"]["seat"] is None
    await chief.until("snapshot")
    for name, args in (
        ("propose", {"values": [5, 5]}),
        ("chat", {"channel": "table", "text": "hello"}),
        ("start_game", {}),
        ("seat_bot", {"seat": "A-chief"}),
    ):
        refused = await watcher.command(name, **args)
        assert (refused["type"], refused["code"]) == ("error", "forbidden"), name
    said = await chief.command("chat", channel="caucus:A", text="for Atlantis only")
    assert said["type"] == "ack"
    hidden = await watcher.until("event", seq=said["seq"])
    assert hidden["event"] is None
    for client in (chief, watcher):
        await client.close()
    await runtime.settle()
    await runtime.idle()


# --------------------------------------------------------------------------------------------
# "A bot stood in for you" and permissions


@pytest.mark.django_db
def test_the_stand_in_notice_is_for_the_seats_player_only() -> None:
    game = match()
    ada_browser, other_browser = Client(), Client()
    ada_browser.post(reverse("take_seat", args=[game.code]), {"name": "Ada", "seat": "A1"})
    url = reverse("stood_in", args=[game.code])
    assert ada_browser.get(url).json() == {"stood_in": None}
    services.hand_to_bot(game=game, seat_key="A1")
    assert ada_browser.get(url).json() == {"stood_in": None}  # not given back yet
    services.give_back(game=game, seat_key="A1")
    notice = ada_browser.get(url).json()["stood_in"]
    assert notice["seat"] == "A1" and notice["moves"] == 0
    assert notice["since"] <= notice["until"]
    assert other_browser.get(url).json() == {"stood_in": None}
    assert other_browser.get(reverse("stood_in", args=["NOSUCH"])).status_code == 404


@pytest.mark.django_db
def test_forms_need_post_and_a_csrf_token() -> None:
    scenario()
    strict = Client(enforce_csrf_checks=True)
    assert strict.get(reverse("quick_match")).status_code == 405
    assert strict.post(reverse("quick_match"), {"name": "Ada"}).status_code == 403
    assert strict.post(reverse("new_match"), {"name": "Ada"}).status_code == 403
    assert strict.post(reverse("open_matches")).status_code in (403, 405)
    assert not Game.objects.exists()


@pytest.mark.django_db
def test_a_player_of_a_match_does_not_get_its_host_console(client: Client) -> None:
    game = match()
    client.post(reverse("take_seat", args=[game.code]), {"name": "Ada", "seat": "A1"})
    assert client.get(reverse("host", args=[game.code])).status_code == 403
