"""The server-rendered pages, through Django's test client: home, join, lobby and seats, seat
links, the table, the briefing, the results, the host console and the new-game page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Player
from negotiation import services
from negotiation.engine import commands as c
from negotiation.models import Game, Scenario, Seat
from negotiation.runtime import runtime

pytestmark = pytest.mark.django_db

CONSTITUENTS = ("A1", "A2", "A3", "B1", "B2", "B3")


@pytest.fixture(autouse=True)
def fresh_server(settings: Any) -> Iterator[None]:
    """No cached states, timers or bots carried over from another test."""
    settings.RATIFY_BOT_DELAY = 0
    services.state_cache.clear()
    runtime.reset()
    yield
    runtime.reset()
    services.state_cache.clear()


@pytest.fixture
def scenarios() -> None:
    call_command("load_scenarios", verbosity=0)


def new_game(bots: tuple[str, ...] = ()) -> Game:
    call_command("load_scenarios", verbosity=0)
    return services.create_game(scenario=Scenario.objects.get(slug="gatt"), bot_seats=bots)


def seated(client: Client, game: Game, seat: str, name: str = "Ada") -> None:
    response = client.post(reverse("take_seat", args=[game.code]), {"name": name, "seat": seat})
    assert response.status_code == 302, response.content
    assert response["Location"] == reverse("play", args=[game.code])


def text(response: Any) -> str:
    return str(response.content.decode())


# ---------------------------------------------------------------------------------------------
# Home and join


def test_home_offers_the_join_form_and_lists_the_scenarios(client: Client, scenarios: None) -> None:
    response = client.get(reverse("home"))
    assert response.status_code == 200
    page = text(response)
    assert 'name="code"' in page and 'name="name"' in page
    assert "A GATT round: reciprocal tariff cuts" in page
    assert "sign in to host a game" in page


def test_joining_with_an_unknown_code_says_so(client: Client, scenarios: None) -> None:
    response = client.post(reverse("join"), {"code": "nope42", "name": "Ada"})
    assert response.status_code == 400
    assert "No game has this code" in text(response)
    assert 'aria-invalid="true"' in text(response)


def test_joining_without_a_name_says_so(client: Client) -> None:
    game = new_game()
    response = client.post(reverse("join"), {"code": game.code, "name": "   "})
    assert response.status_code == 400
    assert "This field is required" in text(response) or "Tell the others" in text(response)


def test_joining_with_a_code_in_any_case_leads_to_the_lobby(client: Client) -> None:
    game = new_game()
    response = client.post(reverse("join"), {"code": f" {game.code.lower()} ", "name": "Ada"})
    assert response.status_code == 302
    assert response["Location"] == reverse("lobby", args=[game.code])
    assert client.session[Player.SESSION_KEY]
    lobby = client.get(response["Location"])
    assert lobby.status_code == 200
    assert 'value="Ada"' in text(lobby)


def test_an_unknown_game_is_a_404(client: Client, scenarios: None) -> None:
    for name in ("lobby", "play", "results", "host"):
        assert client.get(reverse(name, args=["ZZZZZZ"])).status_code == 404


# ---------------------------------------------------------------------------------------------
# Lobby and seats


def test_the_lobby_lists_every_seat_with_its_holder(client: Client) -> None:
    game = new_game(bots=("B1",))
    response = client.get(reverse("lobby", args=[game.code]))
    assert response.status_code == 200
    page = text(response)
    assert "7 free seats" in page
    for seat in ("A-chief", "A1", "B-chief", "B3"):
        assert f'data-testid="pick-{seat}"' in page
    assert re.search(r'data-testid="pick-B1"\s+disabled', page)
    assert "Give me any free seat" in page
    assert "Daniel Harrow" in page and "Export manufacturers" in page


def test_picking_a_seat_seats_the_player_and_sends_it_to_the_table(client: Client) -> None:
    game = new_game()
    seated(client, game, "A2", name="Bo")
    seat = Seat.objects.get(game=game, key="A2")
    assert seat.player is not None and seat.display_name == "Bo"
    # A seated player who comes back to the lobby goes straight to the table.
    again = client.get(reverse("lobby", args=[game.code]))
    assert again.status_code == 302 and again["Location"] == reverse("play", args=[game.code])


def test_any_free_seat_is_the_first_free_one(client: Client) -> None:
    game = new_game(bots=("A-chief",))
    response = client.post(reverse("take_seat", args=[game.code]), {"name": "Cy", "seat": ""})
    assert response.status_code == 302
    assert Seat.objects.get(game=game, key="A1").display_name == "Cy"


def test_a_taken_seat_is_refused_with_a_sentence(client: Client) -> None:
    game = new_game()
    seated(Client(), game, "B2", name="First")
    response = client.post(reverse("take_seat", args=[game.code]), {"name": "Second", "seat": "B2"})
    assert response.status_code == 409
    assert 'data-testid="seat-problem"' in text(response)
    assert Seat.objects.get(game=game, key="B2").display_name == "First"


def test_a_seat_needs_a_name(client: Client) -> None:
    game = new_game()
    response = client.post(reverse("take_seat", args=[game.code]), {"name": " ", "seat": "A1"})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in text(response)
    assert not Seat.objects.get(game=game, key="A1").occupied


def test_a_full_game_offers_to_watch(client: Client) -> None:
    game = new_game(bots=("A-chief", "B-chief", *CONSTITUENTS))
    page = text(client.get(reverse("lobby", args=[game.code])))
    assert "0 free seats" in page
    assert "Give me any free seat" not in page
    assert "Watch as a spectator" in page


def test_display_names_are_escaped(client: Client) -> None:
    game = new_game()
    seated(Client(), game, "A1", name="<script>x</script>")
    page = text(client.get(reverse("lobby", args=[game.code])))
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


# ---------------------------------------------------------------------------------------------
# Seat links


def test_a_seat_link_names_the_seat_and_takes_it(client: Client) -> None:
    game = new_game()
    url = reverse("seat", args=[game.code, "B-chief"])
    page = text(client.get(url))
    assert "Mira Stolnik" in page and "Take this seat" in page
    assert 'name="seat" value="B-chief"' in page
    seated(client, game, "B-chief")
    assert client.get(url)["Location"] == reverse("play", args=[game.code])


def test_a_seat_link_to_a_taken_seat_offers_the_others(client: Client) -> None:
    game = new_game(bots=("A1",))
    page = text(client.get(reverse("seat", args=[game.code, "A1"])))
    assert 'data-testid="seat-taken"' in page
    assert "Take this seat" not in page
    assert 'data-testid="pick-A2"' in page


def test_a_seat_link_to_no_such_seat_is_a_404(client: Client) -> None:
    game = new_game()
    assert client.get(reverse("seat", args=[game.code, "Z9"])).status_code == 404


# ---------------------------------------------------------------------------------------------
# The table, the briefing, the results


def test_the_table_page_carries_what_the_script_needs(client: Client) -> None:
    game = new_game()
    seated(client, game, "A-chief")
    response = client.get(reverse("play", args=[game.code]))
    assert response.status_code == 200
    page = text(response)
    assert 'data-seat="A-chief"' in page and 'data-host="false"' in page
    assert f'data-socket-path="/ws/games/{game.code}/"' in page
    assert "js/play.js" in page and 'type="module"' in page
    settings = json.loads(re.search(r'id="game-settings"[^>]*>(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert settings["payoffs"] == {"T": 5, "R": 3, "P": 1, "S": 0}
    assert 'id="seat-links"' not in page


def test_a_spectator_gets_the_table_without_a_seat(client: Client) -> None:
    game = new_game()
    page = text(client.get(reverse("play", args=[game.code])))
    assert 'data-seat=""' in page and 'data-host="false"' in page


def test_the_briefing_shows_the_roles_private_information(client: Client) -> None:
    game = new_game()
    seated(client, game, "A2")
    response = client.get(reverse("briefing", args=[game.code]))
    assert response.status_code == 200
    page = text(response)
    assert "Farm lobby" in page
    assert "You represent Atlantis&#x27;s farmers" in page
    assert 'data-testid="reservation">70 points' in page
    assert "1 of 3 votes" in page
    assert "more than 1/2 of the weighted votes" in page
    assert 'data-testid="heatmap"' in page
    assert "each step away from 2 costs 5 points" in page


def test_the_briefing_of_a_chief(client: Client) -> None:
    game = new_game()
    seated(client, game, "B-chief")
    page = text(client.get(reverse("briefing", args=[game.code])))
    assert "Mira Stolnik" in page and "Minister of Foreign Trade of Borduria" in page
    assert "you may refuse it" in page


def test_the_briefing_needs_a_seat(client: Client) -> None:
    game = new_game()
    response = client.get(reverse("briefing", args=[game.code]))
    assert response.status_code == 302
    assert response["Location"] == reverse("lobby", args=[game.code])


def test_the_results_page_renders_before_and_after_the_game(client: Client) -> None:
    game = new_game(bots=("A-chief", "B-chief", *CONSTITUENTS))
    response = client.get(reverse("results", args=[game.code]))
    assert response.status_code == 200
    assert "No round has ended yet" in text(response)
    for command in (c.StartGame(c.INSTRUCTOR), c.EndGame(c.INSTRUCTOR)):
        outcome = services.submit(game_id=game.pk, command=command, issuer="test")
        assert outcome.accepted, outcome
    page = text(client.get(reverse("results", args=[game.code])))
    assert "Outcome" in page and "ended" in page
    assert "Atlantis" in page and "Borduria" in page


# ---------------------------------------------------------------------------------------------
# The host console


def test_the_host_page_is_403_without_the_host_link(client: Client) -> None:
    game = new_game()
    response = client.get(reverse("host", args=[game.code]))
    assert response.status_code == 403
    assert client.get(reverse("host_link", args=[game.code, "wrong-token"])).status_code == 404
    assert client.get(reverse("host", args=[game.code])).status_code == 403


def test_the_host_link_opens_the_console(client: Client) -> None:
    game = new_game(bots=("B1",))
    response = client.get(reverse("host_link", args=[game.code, game.host_token]))
    assert response.status_code == 302 and response["Location"] == reverse("host", args=[game.code])
    page = text(client.get(response["Location"]))
    assert 'data-host="true"' in page
    assert f'data-socket-path="/ws/games/{game.code}/?role=host"' in page
    links = json.loads(re.search(r'id="seat-links"[^>]*>(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert set(links) == {"A-chief", "B-chief", *CONSTITUENTS}
    assert links["A1"].endswith(reverse("seat", args=[game.code, "A1"]))
    join_url = json.loads(re.search(r'id="join-url"[^>]*>(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert join_url.endswith(reverse("lobby", args=[game.code]))


def test_the_instructor_who_created_a_game_hosts_it(client: Client, scenarios: None) -> None:
    user = get_user_model().objects.create_user("teacher", password="pw-teacher-1")
    game = services.create_game(scenario=Scenario.objects.get(slug="gatt"), created_by=user)
    client.force_login(user)
    assert client.get(reverse("host", args=[game.code])).status_code == 200
    other = get_user_model().objects.create_user("other", password="pw-other-1")
    stranger = Client()
    stranger.force_login(other)
    assert stranger.get(reverse("host", args=[game.code])).status_code == 403


# ---------------------------------------------------------------------------------------------
# New game


def test_the_new_game_page_needs_a_signed_in_user(client: Client, scenarios: None) -> None:
    response = client.get(reverse("new_game"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_a_signed_in_user_creates_a_game_and_hosts_it(client: Client, scenarios: None) -> None:
    user = get_user_model().objects.create_user("teacher", password="pw-teacher-1")
    client.force_login(user)
    page = text(client.get(reverse("new_game")))
    assert 'name="scenario"' in page and 'name="level1_minutes"' in page
    scenario = Scenario.objects.get(slug="gatt")
    response = client.post(
        reverse("new_game"),
        {
            "scenario": scenario.pk,
            "rounds": 2,
            "attempts": 2,
            "compliance": "on",
            "level1_minutes": 10,
            "level2_minutes": 2,
        },
    )
    assert response.status_code == 302
    game = Game.objects.get(created_by=user)
    assert response["Location"] == reverse("host", args=[game.code])
    settings = services.load_state(game.pk).settings
    assert settings.rounds == 2 and settings.compliance and not settings.regime
    assert settings.deadlines.level1 == 600 and settings.deadlines.level2 == 120
    assert client.get(response["Location"]).status_code == 200


def test_the_new_game_form_reports_bad_values(client: Client, scenarios: None) -> None:
    user = get_user_model().objects.create_user("teacher", password="pw-teacher-1")
    client.force_login(user)
    response = client.post(reverse("new_game"), {"rounds": 0})
    assert response.status_code == 200
    assert "field-error" in text(response)
    assert not Game.objects.exists()


def test_an_instructor_finds_their_games_on_the_front_page(client: Client, scenarios: None) -> None:
    user = get_user_model().objects.create_user("teacher", password="pw-teacher-1")
    gatt = Scenario.objects.get(slug="gatt")
    running = services.create_game(scenario=gatt, created_by=user)
    ended = services.create_game(scenario=gatt, created_by=user)
    services.submit(game_id=ended.pk, command=c.EndGame(c.INSTRUCTOR), issuer="test")
    someone_elses = services.create_game(scenario=gatt)
    client.force_login(user)
    page = text(client.get(reverse("home")))
    assert 'data-testid="my-games"' in page
    assert reverse("host", args=[running.code]) in page
    assert reverse("results", args=[ended.code]) in page
    assert reverse("host", args=[ended.code]) not in page
    assert someone_elses.code not in page
    # Nobody else sees the list.
    assert 'data-testid="my-games"' not in text(Client().get(reverse("home")))
