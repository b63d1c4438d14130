"""Whole games in the browser: six people in six browser contexts, phones and desktops.

GATT (DESIGN §6): at (5, 5) A1 has U = 100 * (1 - (1/10 + 4/10) / 2) = 75 > 70 (yes), A2 has
U = 100 * (1 - (3/10 + 3/10) / 2) = 70 = r (a tie: no), A3 80 > 75 (yes); B1 80 > 66, B2 75 > 68
and B3 75 > 73 (all yes). The chiefs: A (4, 8) gets 80 > 60, B (8, 4) gets 80 > 60.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from playwright.sync_api import Page, expect

from negotiation.engine.scenario import BUILTIN_DIR as SCENARIOS
from tests.browser.conftest import Site
from tests.live import create_game, manage, start_server

Shots = Callable[[Page, str], Path]
People = Callable[..., Page]

# Six people: the two chiefs and four constituents. A3 and B3 are bots.
CAST = [
    ("A-chief", "Ana", False),
    ("B-chief", "Bruno", False),
    ("A1", "Chen", True),
    ("A2", "Dara", True),
    ("B1", "Emeka", True),
    ("B2", "Fatima", False),
]


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def no_sideways_scroll(page: Page) -> None:
    """A phone page fits its 375 px screen."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"  # type: ignore[index]


def live(page: Page) -> None:
    expect(page.get_by_test_id("connection")).to_have_attribute("data-status", "live")


def seat_everyone(
    site: Site, game: dict[str, Any], people: People, shots: Shots
) -> dict[str, Page]:
    links = {seat["seat"]: seat["url"] for seat in game["seats"]}
    pages: dict[str, Page] = {}
    for seat, name, phone in CAST:
        page = people(phone=phone)
        page.goto(site.base + path_of(links[seat]))
        if seat == "A1":
            shots(page, "seat-link-phone")
            no_sideways_scroll(page)
        page.get_by_test_id("seat-name").fill(name)
        page.get_by_test_id("take-seat").click()
        page.wait_for_url(re.compile(r"/play/$"))
        live(page)
        pages[seat] = page
    return pages


def open_host(site: Site, game: dict[str, Any], people: People) -> Page:
    host = people()
    host.goto(site.base + path_of(game["host_url"]))
    host.wait_for_url(re.compile(r"/host/$"))
    live(host)
    return host


def agree_on_five_five(pages: dict[str, Page], shots: Shots) -> None:
    chief_a, chief_b = pages["A-chief"], pages["B-chief"]
    chief_a.get_by_test_id("issue-a_cut").fill("5")
    chief_a.get_by_test_id("issue-b_cut").fill("5")
    preview = chief_a.get_by_test_id("preview")
    expect(preview).to_have_attribute("data-beats", "true")
    expect(preview).to_have_attribute("data-utility", re.compile(r"^80(\.0+)?$"))
    shots(chief_a, "chief-a-builder")
    chief_a.get_by_test_id("propose").click()
    proposal = chief_b.locator("[data-testid^='proposal-']").filter(has_text="5").first
    expect(proposal).to_be_visible()
    shots(chief_b, "chief-b-sees-the-proposal")
    # B accepts by keyboard alone.
    accept = chief_b.locator("[data-testid^='accept-']").first
    accept.focus()
    chief_b.keyboard.press("Enter")
    for page in pages.values():
        expect(page.get_by_test_id("tentative-banner")).to_be_visible()


def vote(page: Page, yes: bool) -> None:
    ballot = page.get_by_test_id("ballot")
    expect(ballot).to_be_visible()
    page.get_by_test_id("ballot-yes" if yes else "ballot-no").click()
    expect(page.get_by_test_id("ballot-status")).to_contain_text(
        re.compile("yes" if yes else "no", re.I)
    )


def test_gatt_played_to_a_ratified_agreement(site: Site, people: People, shots: Shots) -> None:
    game = create_game(site.env, "gatt", bots="A3,B3")
    code = game["code"]

    home = people(phone=True)
    home.goto(site.base + "/")
    shots(home, "home-phone")
    no_sideways_scroll(home)
    lobby = people()
    lobby.goto(site.base + f"/g/{code}/")
    shots(lobby, "lobby-seat-picker")

    host = open_host(site, game, people)
    pages = seat_everyone(site, game, people, shots)
    for seat, name, _ in CAST:
        expect(host.get_by_test_id(f"seat-holder-{seat}")).to_contain_text(name)
    shots(host, "host-console-lobby")

    briefing = pages["A1"].context.new_page()
    briefing.goto(site.base + f"/g/{code}/briefing/")
    expect(briefing.get_by_test_id("reservation")).to_contain_text("70")
    expect(briefing.get_by_test_id("heatmap")).to_be_visible()
    shots(briefing, "briefing-phone")
    no_sideways_scroll(briefing)

    host.get_by_test_id("start-game").click()
    for page in pages.values():
        expect(page.get_by_test_id("phase")).to_have_attribute("data-phase", "level1")
    shots(pages["A1"], "constituent-level1-phone")

    # The chiefs talk at the table; A's caucus stays inside Atlantis.
    chief_a = pages["A-chief"]
    chief_a.get_by_test_id("chat-tab-table").click()
    chief_a.get_by_test_id("chat-input-table").fill("Shall we meet at five and five? <b>fair</b>")
    chief_a.get_by_test_id("chat-send-table").click()
    chief_b = pages["B-chief"]
    chief_b.get_by_test_id("chat-tab-table").click()
    expect(chief_b.get_by_test_id("chat-log-table")).to_contain_text("<b>fair</b>")
    assert chief_b.locator("[data-testid='chat-log-table'] b").count() == 0  # text, not markup
    pages["A1"].get_by_test_id("chat-tab-caucus:A").click()
    pages["A1"].get_by_test_id("chat-input-caucus:A").fill("Hold out for a deep Bordurian cut.")
    pages["A1"].get_by_test_id("chat-send-caucus:A").click()
    chief_a.get_by_test_id("chat-tab-caucus:A").click()
    expect(chief_a.get_by_test_id("chat-log-caucus:A")).to_contain_text("deep Bordurian cut")
    assert pages["B1"].get_by_test_id("chat-log-caucus:A").count() == 0

    agree_on_five_five(pages, shots)
    shots(pages["A2"], "constituent-ballot-phone")
    no_sideways_scroll(pages["A2"])
    vote(pages["A1"], True)
    vote(pages["A2"], False)
    vote(pages["B1"], True)
    vote(pages["B2"], True)

    for page in pages.values():
        expect(page.get_by_test_id("count-result-A")).to_contain_text("Atlantis: ratified")
        expect(page.get_by_test_id("count-result-B")).to_contain_text("Borduria: ratified")
        expect(page.get_by_test_id("results-link")).to_be_visible()
    shots(pages["A1"], "constituent-counted-phone")
    shots(chief_a, "chief-a-in-force")
    expect(host.get_by_test_id("phase")).to_have_attribute("data-phase", "ended")
    shots(host, "host-console-ended")

    pages["B1"].get_by_test_id("results-link").click()
    pages["B1"].wait_for_url(re.compile(r"/results/$"))
    expect(pages["B1"].get_by_test_id("outcome")).to_contain_text("Cooperation")
    shots(pages["B1"], "results-phone")
    no_sideways_scroll(pages["B1"])
    for page in (*pages.values(), host):
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


def test_gatt_accepted_by_the_chiefs_and_voted_down(
    site: Site, people: People, shots: Shots
) -> None:
    game = create_game(site.env, "gatt", bots="A3,B3")
    host = open_host(site, game, people)
    pages = seat_everyone(site, game, people, shots)
    host.get_by_test_id("start-game").click()
    for page in pages.values():
        expect(page.get_by_test_id("phase")).to_have_attribute("data-phase", "level1")
    agree_on_five_five(pages, shots)
    # Atlantis's two human constituents vote the deal down: only the bot A3 says yes.
    vote(pages["A1"], False)
    vote(pages["A2"], False)
    vote(pages["B1"], True)
    vote(pages["B2"], True)
    for page in pages.values():
        expect(page.get_by_test_id("count-result-A")).to_contain_text("Atlantis: not ratified")
        expect(page.get_by_test_id("count-result-B")).to_contain_text("Borduria: ratified")
        notice = page.get_by_test_id("defection-notice")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text(re.compile("involuntary defection", re.I))
        # Back to Level I for the second attempt.
        expect(page.get_by_test_id("phase")).to_have_attribute("data-phase", "level1")
    shots(pages["A-chief"], "chief-a-involuntary-defection")
    shots(pages["A1"], "constituent-involuntary-defection-phone")
    shots(host, "host-console-involuntary-defection")

    host.get_by_test_id("end-game").click()
    host.get_by_test_id("end-game-confirm").click()
    for page in pages.values():
        expect(page.get_by_test_id("results-link")).to_be_visible()
    pages["A-chief"].get_by_test_id("results-link").click()
    expect(pages["A-chief"].get_by_test_id("outcome")).to_contain_text(
        re.compile("involuntary defection", re.I)
    )
    shots(pages["A-chief"], "results-involuntary-defection")
    for page in (*pages.values(), host):
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


def _chief_on_a_phone_against_bots(own_site: Site, people: People, scenario: str) -> Page:
    """A game of ``scenario`` with bots in every seat but A's chief, taken by a player on a
    phone; the host has started it. Returns the chief's page, live in Level I."""
    game = create_game(own_site.env, scenario, bots="A1,A2,A3,B1,B2,B3,B-chief")
    host = open_host(own_site, game, people)
    chief = people(phone=True)
    seat_url = next(s["url"] for s in game["seats"] if s["seat"] == "A-chief")
    chief.goto(own_site.base + path_of(seat_url))
    chief.get_by_test_id("seat-name").fill("Ana")
    chief.get_by_test_id("take-seat").click()
    live(chief)
    host.get_by_test_id("start-game").click()
    expect(chief.get_by_test_id("phase")).to_have_attribute("data-phase", "level1")
    return chief


def test_the_page_reconnects_by_itself_and_sends_what_waited(
    own_site: Site, people: People, shots: Shots
) -> None:
    chief = _chief_on_a_phone_against_bots(own_site, people, "gatt")

    own_site.server.stop()  # the wifi drops, or the server restarts
    expect(chief.get_by_test_id("connection")).to_have_attribute(
        "data-status", re.compile("reconnecting|offline")
    )
    shots(chief, "reconnecting-phone")
    # A chat line written while the server is away waits, then is sent once.
    chief.get_by_test_id("chat-tab-table").click()
    chief.get_by_test_id("chat-input-table").fill("Sent while the server was away.")
    chief.get_by_test_id("chat-send-table").click()

    own_site.server = start_server(
        own_site.env, own_site.logs, "browser", port=own_site.server.port
    )
    live(chief)
    expect(chief.get_by_test_id("chat-log-table")).to_contain_text(
        "Sent while the server was away."
    )
    lines = chief.get_by_test_id("chat-log-table").get_by_text("Sent while the server was away.")
    expect(lines).to_have_count(1)
    shots(chief, "reconnected-phone")
    assert os.path.exists(own_site.logs)


def test_a_chief_on_a_phone_plays_against_bots_on_postgresql(
    postgres_site: Site, people: People
) -> None:
    """The server on PostgreSQL, where the writer sends a batch decided from the states it
    holds as one statement and seat moves in a transaction: the chief's line is stored once,
    and a reload shows it from the log."""
    chief = _chief_on_a_phone_against_bots(postgres_site, people, "gatt")
    chief.get_by_test_id("chat-tab-table").click()
    for text in ("Hello from PostgreSQL.", "And a second line."):
        chief.get_by_test_id("chat-input-table").fill(text)
        chief.get_by_test_id("chat-send-table").click()
        expect(chief.get_by_test_id("chat-log-table").get_by_text(text)).to_have_count(1)
    chief.reload()
    live(chief)
    chief.get_by_test_id("chat-tab-table").click()
    for text in ("Hello from PostgreSQL.", "And a second line."):
        expect(chief.get_by_test_id("chat-log-table").get_by_text(text)).to_have_count(1)
    stored = manage(
        postgres_site.env,
        "shell",
        "-c",
        "import json; from django.db import connection; from negotiation.models import GameEvent; "
        "print(json.dumps([connection.vendor, list(GameEvent.objects.filter(type='chat_posted')"
        ".values_list('payload__text', flat=True))]))",
    )
    vendor, texts = json.loads(stored.strip().splitlines()[-1])
    assert vendor == "postgresql"
    assert texts.count("Hello from PostgreSQL.") == texts.count("And a second line.") == 1


def test_a_deadline_that_passed_while_the_server_was_down_ends_the_attempt_when_it_is_back(
    own_site: Site, people: People, shots: Shots, tmp_path: Path
) -> None:
    # GATT with a Level I deadline of 10 s (the shortest allowed), one attempt and one round: the deadline
    # ends the game.
    data = yaml.safe_load((SCENARIOS / "gatt.yaml").read_text(encoding="utf-8"))
    data.update(slug="gatt-quick", title="GATT with a short Level I")
    data["game"] = {"rounds": 1, "attempts": 1, "deadlines": {"level1": 10}}
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "gatt-quick.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    manage(own_site.env, "load_scenarios", "--dir", str(folder))
    chief = _chief_on_a_phone_against_bots(own_site, people, "gatt-quick")
    started = time.monotonic()

    own_site.server.stop()
    # The deadline passes while no server runs: the restarted one times it from the game's row
    # on its first connection (the page reconnecting by itself) and fires it at once.
    time.sleep(max(0.0, started + 12 - time.monotonic()))
    own_site.server = start_server(
        own_site.env, own_site.logs, "browser", port=own_site.server.port
    )
    live(chief)
    expect(chief.get_by_test_id("results-link")).to_be_visible(timeout=15_000)
    shots(chief, "deadline-fired-after-restart-phone")
    assert chief.errors == [], chief.errors  # type: ignore[attr-defined]
