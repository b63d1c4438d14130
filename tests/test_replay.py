"""The replay (``negotiation.replay``) through Django's test client: who may open it, what each
viewer is shown at each seq, the charts, and the instructor's notes.

The game is GATT with a person in every seat, played through ``services``: the chiefs trade
proposals, agree on (5, 5), every constituent votes yes, the agreement enters into force and
the one-round game ends. The player under test holds A1.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Player
from negotiation import replay, selectors, services
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.rules import fold
from negotiation.engine.visibility import SPECTATOR, view, visible
from negotiation.models import Annotation, Game, Scenario
from negotiation.runtime import runtime

pytestmark = pytest.mark.django_db

CHIEFS = ("A-chief", "B-chief")
CONSTITUENTS = ("A1", "A2", "A3", "B1", "B2", "B3")


@pytest.fixture(autouse=True)
def fresh_server(settings: Any) -> Iterator[None]:
    """No cached states, timelines, timers or bots carried over from another test."""
    settings.RATIFY_BOT_DELAY = 0
    services.state_cache.clear()
    replay.timelines.clear()
    runtime.reset()
    yield
    runtime.reset()
    replay.timelines.clear()
    services.state_cache.clear()


@dataclass
class Setup:
    game: Game
    instructor: AbstractBaseUser
    players: dict[str, Player]

    def run(self, command: c.Command) -> None:
        outcome = services.submit(game_id=self.game.pk, command=command, issuer="test")
        assert outcome.accepted, outcome

    def finish(self) -> None:
        """Agree on (5, 5), vote it through: the game ends."""
        self.run(c.Propose("A-chief", (5.0, 5.0)))
        proposal = services.load_state(self.game.pk).proposals
        (open_id,) = [p.proposal_id for p in proposal.values() if p.by == "A-chief"]
        self.run(c.Accept("B-chief", open_id))
        for seat in CONSTITUENTS:
            self.run(c.CastBallot(seat, True))
        assert services.load_state(self.game.pk).ended


def user(name: str, **extra: Any) -> Any:
    made: AbstractBaseUser = get_user_model().objects.create_user(
        username=name, password="secret-pass", **extra
    )
    return made


@pytest.fixture
def setup() -> Setup:
    """A GATT game in Level I: a person in every seat, two proposals and a table chat line."""
    call_command("load_scenarios", verbosity=0)
    instructor = user("teacher")
    game = services.create_game(scenario=Scenario.objects.get(slug="gatt"), created_by=instructor)
    players: dict[str, Player] = {}
    for seat in (*CHIEFS, *CONSTITUENTS):
        player = Player.objects.create(display_name=f"Player {seat}")
        outcome = services.take_seat(game=game, player=player, seat_key=seat)
        assert outcome.accepted, outcome
        players[seat] = player
    made = Setup(game, instructor, players)
    made.run(c.StartGame(INSTRUCTOR))
    made.run(c.Propose("A-chief", (2.0, 9.0)))
    made.run(c.Propose("B-chief", (9.0, 2.0)))
    made.run(c.Chat("A-chief", "table", "Meet me in the middle."))
    made.run(c.Chat("B1", "caucus:B", "We could live with (5, 5)."))
    return made


def as_player(player: Player) -> Client:
    client = Client()
    session = client.session
    session[Player.SESSION_KEY] = str(player.pk)
    session.save()
    return client


def as_user(who: Any, **options: Any) -> Client:
    client = Client(**options)
    client.force_login(who)
    return client


def urls(game: Game) -> dict[str, str]:
    return {
        "page": reverse("replay", args=[game.code]),
        "data": reverse("replay_data", args=[game.code]),
        "view": reverse("replay_view", args=[game.code]),
        "chart": reverse("replay_chart", args=[game.code, "surplus"]),
    }


def statuses(client: Client, game: Game, viewer: str | None = None) -> list[int]:
    suffix = f"?viewer={viewer}" if viewer else ""
    return [client.get(url + suffix).status_code for url in urls(game).values()]


# ---------------------------------------------------------------------------------------------
# Who may replay


def test_permissions_before_the_end(setup: Setup) -> None:
    game = setup.game
    assert statuses(as_user(setup.instructor), game) == [200, 200, 200, 200]
    # A player waits for the end of the game.
    assert statuses(as_player(setup.players["A1"]), game) == [403, 403, 403, 403]
    # A spectator (a player without a seat), an anonymous visitor, another instructor: never.
    spectator = as_player(Player.objects.create(display_name="Watcher"))
    assert statuses(spectator, game) == [403, 403, 403, 403]
    assert statuses(Client(), game) == [403, 403, 403, 403]
    assert statuses(as_user(user("someone-else")), game) == [403, 403, 403, 403]


def test_permissions_after_the_end(setup: Setup) -> None:
    setup.finish()
    game = setup.game
    player = as_player(setup.players["A1"])
    assert statuses(player, game) == [200, 200, 200, 200]
    assert statuses(player, game, "A1") == [200, 200, 200, 200]
    # Only from their own seat: not another seat, not the instructor's view, not the public.
    for viewer in ("A2", "B-chief", INSTRUCTOR, SPECTATOR):
        assert statuses(player, game, viewer)[1:] == [403, 403, 403], viewer
    spectator = as_player(Player.objects.create(display_name="Watcher"))
    assert statuses(spectator, game) == [403, 403, 403, 403]
    assert statuses(Client(), game) == [403, 403, 403, 403]
    assert statuses(as_user(user("someone-else")), game) == [403, 403, 403, 403]
    # The instructor, staff and the holder of the host link pick any viewer.
    host_link = Client()
    session = host_link.session
    session[selectors.HOST_SESSION_KEY] = [game.code]
    session.save()
    staff = as_user(user("staff-member", is_staff=True))
    for client in (as_user(setup.instructor), host_link, staff):
        for viewer in (INSTRUCTOR, SPECTATOR, "A1", "B3"):
            assert statuses(client, game, viewer) == [200, 200, 200, 200], viewer


def test_the_page_offers_the_instructor_every_viewer_and_a_player_their_seat(setup: Setup) -> None:
    page = as_user(setup.instructor).get(urls(setup.game)["page"]).content.decode()
    assert 'data-testid="replay-viewer"' in page
    for key in (INSTRUCTOR, SPECTATOR, *CHIEFS, *CONSTITUENTS):
        assert f'<option value="{key}">' in page
    assert 'data-testid="replay-note-add"' in page
    setup.finish()
    mine = as_player(setup.players["A1"]).get(urls(setup.game)["page"]).content.decode()
    assert 'data-testid="replay-viewer-only"' in mine
    assert "Export manufacturers" in mine
    assert '<option value="A2">' not in mine and "replay-note-add" not in mine


# ---------------------------------------------------------------------------------------------
# What each viewer is shown


def test_the_view_at_every_seq_is_the_live_view_of_the_folded_log(setup: Setup) -> None:
    setup.finish()
    game = setup.game
    log = services.log_of(game.pk)
    client = as_user(setup.instructor)
    for viewer in (INSTRUCTOR, "A-chief", "A1", "B2", SPECTATOR):
        for seq in range(1, len(log) + 1):
            response = client.get(urls(game)["view"], {"viewer": viewer, "seq": str(seq)})
            assert response.status_code == 200
            data = response.json()
            expected = json.loads(json.dumps(view(fold(log[:seq]), viewer)))
            assert data["seq"] == seq
            assert data["view"] == expected, (viewer, seq)


def test_the_view_refuses_a_seq_outside_the_log(setup: Setup) -> None:
    client = as_user(setup.instructor)
    last = len(services.log_of(setup.game.pk))
    for seq in ("0", str(last + 1), "x", "-3"):
        response = client.get(urls(setup.game)["view"], {"viewer": INSTRUCTOR, "seq": seq})
        assert response.status_code == 400, seq


def test_the_event_list_holds_exactly_what_the_viewer_saw(setup: Setup) -> None:
    setup.finish()
    game = setup.game
    log = services.log_of(game.pk)
    client = as_user(setup.instructor)
    scenario = fold(log[:1]).scenario
    for viewer in (INSTRUCTOR, "A1", "B1", SPECTATOR):
        data = client.get(urls(game)["data"], {"viewer": viewer}).json()
        assert data["last_seq"] == len(log) and data["ended"] is True
        state_settings = fold(log[:1]).settings
        expected = []
        for seq, event in enumerate(log, 1):
            shown = visible(scenario, event, viewer, settings=state_settings)
            if shown is not None:
                expected.append((seq, shown.TYPE))
        assert [(item["seq"], item["type"]) for item in data["events"]] == expected
        texts = json.dumps(data["events"])
        if viewer != INSTRUCTOR:
            # No other seat's ballot, no chat the viewer could not read.
            for item in data["events"]:
                if item["type"] == "ballot_cast" and item["event"]["by"] != viewer:
                    assert item["event"] == {"type": "ballot_cast", "by": "", "yes": None}
        if viewer in ("A1", SPECTATOR):
            assert "Meet me in the middle." not in texts
            assert "We could live with" not in texts
        if viewer == "B1":
            assert "We could live with" in texts and "Meet me in the middle." not in texts


def test_the_key_moments_are_the_proposals_agreements_counts_and_outcomes(setup: Setup) -> None:
    setup.finish()
    game = setup.game
    log = services.log_of(game.pk)
    client = as_user(setup.instructor)
    moments = client.get(urls(game)["data"], {"viewer": INSTRUCTOR}).json()["moments"]
    kinds = [(m["type"], m["kind"]) for m in moments]
    proposals = [i for i, ev in enumerate(log, 1) if isinstance(ev, e.ProposalMade)]
    assert [m["seq"] for m in moments if m["kind"] == "proposal"] == proposals
    assert ("tentative_agreement", "tentative") in kinds
    assert ("ballots_counted", "ballot") in kinds
    assert ("agreement_in_force", "outcome") in kinds and ("game_ended", "outcome") in kinds
    public = client.get(urls(game)["data"], {"viewer": SPECTATOR}).json()["moments"]
    assert not [m for m in public if m["kind"] == "proposal"]
    assert [m for m in public if m["kind"] == "tentative"]


def test_the_timeline_grows_with_the_log(setup: Setup) -> None:
    client = as_user(setup.instructor)
    before = client.get(urls(setup.game)["data"]).json()["last_seq"]
    setup.finish()
    after = client.get(urls(setup.game)["data"]).json()["last_seq"]
    assert after == len(services.log_of(setup.game.pk)) > before


# ---------------------------------------------------------------------------------------------
# Charts


def test_each_chart_is_served_as_svg_for_the_viewer_and_can_be_downloaded(setup: Setup) -> None:
    setup.finish()
    game = setup.game
    client = as_user(setup.instructor)
    for name in ("issue-grid", "surplus", "utility", "votes"):
        url = reverse("replay_chart", args=[game.code, name])
        response = client.get(url, {"viewer": "A1", "upto": "12"})
        assert response.status_code == 200
        assert response["Content-Type"].startswith("image/svg+xml")
        assert "default-src 'none'" in response["Content-Security-Policy"]
        assert "Content-Disposition" not in response
        root = ET.fromstring(response.content)
        assert root.get("role") == "img"
        download = client.get(url, {"viewer": "A1", "upto": "12", "download": "1"})
        assert download["Content-Disposition"] == (
            f'attachment; filename="ratify-{game.code}-{name}-A1-seq12.svg"'
        )
        assert download.content == response.content
    # A seat's grid has its own win-set only.
    grid = client.get(reverse("replay_chart", args=[game.code, "issue-grid"]), {"viewer": "A1"})
    winsets = [
        g.get("data-country")
        for g in ET.fromstring(grid.content).iter("{http://www.w3.org/2000/svg}g")
        if g.get("class") == "winset"
    ]
    assert winsets == ["A"]


def test_unknown_charts_and_bad_moments_are_refused(setup: Setup) -> None:
    client = as_user(setup.instructor)
    game = setup.game
    assert client.get(reverse("replay_chart", args=[game.code, "pie"])).status_code == 404
    chart = reverse("replay_chart", args=[game.code, "votes"])
    assert client.get(chart, {"upto": "0"}).status_code == 400
    assert client.get(chart, {"upto": "many"}).status_code == 400
    assert client.get(chart, {"viewer": "nobody"}).status_code == 403


def test_a_scenario_without_two_issues_has_no_issue_grid(setup: Setup) -> None:
    gatt = Scenario.objects.get(slug="gatt")
    definition = copy.deepcopy(gatt.definition)
    definition["slug"] = "gatt-three"
    definition["issues"].append({"key": "quota", "label": "Quota", "min": 0, "max": 4})
    for country in definition["countries"]:
        for member in (country["chief"], *country["constituents"]):
            member["ideal"]["quota"] = 2
            if "salience" in member:
                member["salience"]["quota"] = 1
    three = Scenario.objects.create(slug="gatt-three", title="Three issues", definition=definition)
    game = services.create_game(scenario=three, created_by=setup.instructor)
    client = as_user(setup.instructor)
    assert client.get(reverse("replay_chart", args=[game.code, "issue-grid"])).status_code == 404
    assert client.get(reverse("replay_chart", args=[game.code, "surplus"])).status_code == 200
    assert client.get(reverse("replay_data", args=[game.code])).json()["charts"] == [
        "surplus",
        "utility",
        "votes",
    ]


# ---------------------------------------------------------------------------------------------
# Notes


def test_the_instructor_adds_notes_that_players_see_after_the_end(setup: Setup) -> None:
    game = setup.game
    url = reverse("replay_annotations", args=[game.code])
    client = as_user(setup.instructor, enforce_csrf_checks=True)
    page = client.get(urls(game)["page"])
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value
    # Without the CSRF token the note is refused.
    assert client.post(url, {"seq": 3, "text": "Opening bids"}).status_code == 403
    created = client.post(url, {"seq": 3, "text": "Opening <bids>"}, HTTP_X_CSRFTOKEN=token)
    assert created.status_code == 201
    note = created.json()
    assert note["seq"] == 3 and note["text"] == "Opening <bids>" and note["author"] == "teacher"
    stored = Annotation.objects.get(pk=note["id"])
    assert stored.game == game and stored.author == setup.instructor
    for bad in ({"seq": 0, "text": "x"}, {"seq": 999, "text": "x"}, {"seq": "x", "text": "x"}):
        assert client.post(url, bad, HTTP_X_CSRFTOKEN=token).status_code == 400
    assert client.post(url, {"seq": 2, "text": "   "}, HTTP_X_CSRFTOKEN=token).status_code == 400
    assert (
        client.post(url, {"seq": 2, "text": "x" * 2001}, HTTP_X_CSRFTOKEN=token).status_code == 400
    )
    assert Annotation.objects.filter(game=game).count() == 1
    listed = client.get(urls(game)["data"]).json()["annotations"]
    assert [(n["seq"], n["text"]) for n in listed] == [(3, "Opening <bids>")]

    setup.finish()
    player = as_player(setup.players["A1"])
    assert [n["text"] for n in player.get(urls(game)["data"]).json()["annotations"]] == [
        "Opening <bids>"
    ]


def test_nobody_but_the_instructor_writes_notes(setup: Setup) -> None:
    setup.finish()
    url = reverse("replay_annotations", args=[setup.game.code])
    for client in (
        as_player(setup.players["A1"]),
        as_player(Player.objects.create(display_name="Watcher")),
        Client(),
        as_user(user("someone-else")),
    ):
        assert client.post(url, {"seq": 2, "text": "mine"}).status_code == 403
    assert not Annotation.objects.exists()
    # Reading is GET only; writing is POST only.
    assert as_user(setup.instructor).get(url).status_code == 405
