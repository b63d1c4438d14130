"""A remote match in the browser: one person creates a GATT match with bots after a wait and
picks a seat, a second finds it in the public lobby and joins it with Quick match; bots fill
the rest and the match starts by itself; the first plays; the second drops, a bot keeps the
seat, and on coming back the second gets it again with a notice."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site
from tests.live import manage, server_env, start_server

Shots = Callable[[Page, str], Path]
People = Callable[..., Page]
GATT = "A GATT round: reciprocal tariff cuts"
#: The shortest wait the create form allows before bots join.
BOT_WAIT = 10


@pytest.fixture
def match_site(tmp_path: Path) -> Iterator[Site]:
    """A server whose remote matches give a dropped player two seconds."""
    env = server_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'matches.sqlite3'}", RATIFY_GRACE_SECONDS="2"
    )
    manage(env, "migrate", "--noinput")
    manage(env, "load_scenarios")
    site = Site(env, start_server(env, tmp_path, "matches"), tmp_path)
    try:
        yield site
    finally:
        site.server.stop()


def live(page: Page) -> None:
    expect(page.get_by_test_id("connection")).to_have_attribute("data-status", "live")


@pytest.mark.timeout(240)
def test_quick_match_play_drop_and_come_back(
    match_site: Site, people: People, shots: Shots
) -> None:
    base = match_site.base
    ana = people()
    ana.goto(base + "/")
    ana.get_by_test_id("remote-matches").click()
    ana.wait_for_url(re.compile(r"/matches/$"))
    shots(ana, "lobby-empty")
    ana.get_by_test_id("new-match").click()
    ana.get_by_label("Your name").fill("Ana")
    ana.get_by_label("Scenario").select_option(label=GATT)
    ana.get_by_label("Wait before bots join (seconds)").fill(str(BOT_WAIT))
    shots(ana, "create-match")
    ana.get_by_test_id("create-match").click()
    ana.wait_for_url(re.compile(r"/g/[A-Z0-9]+/$"))
    code = ana.get_by_test_id("game-code").inner_text().strip()
    ana.get_by_test_id("pick-A-chief").click()
    ana.wait_for_url(re.compile(r"/play/$"))
    live(ana)

    # Bruno finds the match in the lobby (it refreshes itself) and joins it by Quick match.
    bruno = people(phone=True)
    bruno.goto(base + "/matches/")
    row = bruno.get_by_test_id(f"match-{code}")
    expect(row).to_contain_text("7 of 8")
    shots(bruno, "lobby-one-match-phone")
    bruno.get_by_test_id("quick-name").fill("Bruno")
    bruno.get_by_label("Scenario").select_option(label=GATT)
    bruno.get_by_test_id("quick-match").click()
    bruno.wait_for_url(re.compile(rf"/g/{code}/play/$"))
    live(bruno)
    expect(bruno.get_by_test_id("me")).to_be_visible()

    # Bots take the six empty seats once the wait is over, and the match starts by itself.
    expect(ana.get_by_test_id("phase")).to_have_attribute(
        "data-phase", "level1", timeout=(BOT_WAIT + 20) * 1000
    )
    expect(bruno.get_by_test_id("phase")).to_have_attribute("data-phase", "level1")
    shots(ana, "match-started")

    # Ana plays: the bot chief of B opens the talks; she tables her own ideal instead.
    expect(ana.get_by_test_id("proposal-1")).to_be_visible()
    ana.get_by_test_id("propose").click()
    expect(ana.get_by_test_id("event-log")).to_contain_text("proposed #2")
    shots(ana, "ana-proposed")

    # Bruno drops; after the grace period a bot keeps his seat, then he comes back.
    context = bruno.context
    bruno.close()
    ana.wait_for_timeout(5000)  # the grace period (2 s) and the bot's taking over
    again = context.new_page()
    errors: list[str] = []
    again.on("pageerror", lambda error: errors.append(str(error)))
    again.goto(base + f"/g/{code}/play/")
    live(again)
    expect(again.get_by_test_id("me")).to_be_visible()
    notice = again.get_by_test_id("stood-in")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("A bot played for you")
    shots(again, "bruno-back-phone")
    again.get_by_test_id("stood-in-dismiss").click()
    expect(notice).to_be_hidden()
    assert not errors, errors
    assert not ana.errors, ana.errors  # type: ignore[attr-defined]
