"""The admin shows games, their seats and logs, and changes none of them."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from negotiation import services
from negotiation.models import Game, GameEvent, Scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_game(client: Client) -> tuple[Client, Game]:
    call_command("load_scenarios", stdout=io.StringIO())
    game = services.create_game(scenario=Scenario.objects.get(slug="gatt"), bot_seats=["A1"])
    user = User.objects.create_superuser("teacher", "teacher@example.org", "a long passphrase")
    client.force_login(user)
    return client, game


def test_the_admin_lists_games_and_shows_one_read_only(
    admin_client_with_game: tuple[Client, Game],
) -> None:
    client, game = admin_client_with_game
    listing = client.get("/admin/negotiation/game/")
    assert listing.status_code == 200 and game.code in listing.content.decode()
    page = client.get(f"/admin/negotiation/game/{game.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert game.code in content and "A1" in content
    assert game.host_token not in content
    assert 'name="_save"' not in content


def test_the_admin_cannot_add_change_or_delete_events(
    admin_client_with_game: tuple[Client, Game],
) -> None:
    client, game = admin_client_with_game
    event = GameEvent.objects.filter(game=game).first()
    assert event is not None
    assert client.get("/admin/negotiation/gameevent/add/").status_code == 403
    assert client.get(f"/admin/negotiation/gameevent/{event.pk}/delete/").status_code == 403
    response = client.post(f"/admin/negotiation/gameevent/{event.pk}/change/", {"type": "forged"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.type == "game_created"


def test_stored_events_refuse_changes_and_deletion(
    admin_client_with_game: tuple[Client, Game],
) -> None:
    _, game = admin_client_with_game
    event = GameEvent.objects.filter(game=game).first()
    assert event is not None
    event.type = "forged"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
