"""The instructor's whole flow in the browser: sign up, create a class session of imf-weak with
two games, eight students join by code (phones and desktops), start, pause, resume, broadcast
and end, watched on the live dashboard and on every student's page."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import Site

Shots = Callable[[Page, str], Path]
People = Callable[..., Page]

STUDENTS = ["Amina", "Bo", "Carla", "Dev", "Eitan", "Fumiko", "Goran", "Hana"]


def test_an_instructor_runs_a_class_of_eight_in_two_games(
    site: Site, people: People, shots: Shots
) -> None:
    teacher = people()
    teacher.goto(f"{site.base}/")
    teacher.get_by_test_id("nav-signup").click()
    teacher.get_by_label("Username").fill("prof-keohane")
    teacher.get_by_label("Email").fill("keohane@example.org")
    teacher.get_by_label("Password", exact=True).fill("after-hegemony-1984")
    teacher.get_by_label("Password confirmation").fill("after-hegemony-1984")
    shots(teacher, "01-sign-up")
    teacher.get_by_test_id("signup").click()
    expect(teacher.get_by_test_id("nav-sessions")).to_be_visible()

    teacher.get_by_test_id("new-session").first.click()
    teacher.get_by_label("Title").fill("IR 101 section B")
    teacher.get_by_label("Scenario", exact=True).select_option(
        label="An IMF standby arrangement: a weak debtor government (imf-weak)"
    )
    teacher.get_by_label("Parallel games").fill("2")
    shots(teacher, "02-new-session")
    teacher.get_by_test_id("create-session").click()
    expect(teacher.get_by_test_id("dash-connection")).to_have_text("Live")
    code = teacher.get_by_test_id("session-code").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{6}", code)
    expect(teacher.locator("[data-testid^=game-][data-phase]")).to_have_count(2)
    teacher.wait_for_function("document.querySelector('[data-testid=session-qr]').naturalWidth > 0")

    pages = []
    for number, name in enumerate(STUDENTS):
        page = people(phone=number % 2 == 0)
        page.goto(f"{site.base}/s/{code}/")
        expect(page.get_by_label("Join code")).to_have_value(code)
        page.get_by_label("Your name").fill(name)
        page.get_by_test_id("join").click()
        page.wait_for_url(re.compile(r"/g/[A-Z0-9]+/play/"))
        expect(page.get_by_test_id("connection")).to_have_attribute("data-status", "live")
        pages.append(page)
    expect(teacher.get_by_test_id("roster-count")).to_have_text("(8 joined of 8)")
    expect(teacher.locator("[data-testid^=roster-][data-status=seated]")).to_have_count(8)
    shots(teacher, "03-everyone-joined")
    shots(pages[0], "04-student-waiting-phone")

    teacher.get_by_test_id("start-all").click()
    games = teacher.locator("article[data-testid^=game-]")
    for index in range(2):
        expect(games.nth(index)).to_have_attribute("data-phase", "level1")
    for page in pages:
        expect(page.get_by_test_id("phase")).to_have_attribute("data-phase", "level1")
    shots(teacher, "05-started")

    teacher.get_by_test_id("pause-all").click()
    for index in range(2):
        expect(games.nth(index)).to_have_attribute("data-paused", "true")
    for page in pages:
        expect(page.get_by_test_id("paused-notice")).to_be_visible()
    shots(pages[1], "06-student-paused")

    teacher.get_by_test_id("resume-all").click()
    for index in range(2):
        expect(games.nth(index)).to_have_attribute("data-paused", "false")
    for page in pages:
        expect(page.get_by_test_id("paused-notice")).to_be_hidden()

    teacher.get_by_test_id("announce-all-text").fill("Ten minutes left: table your best offer.")
    teacher.get_by_test_id("announce-all").click()
    for page in pages:
        expect(page.get_by_test_id("announcement-text")).to_have_text(
            "Ten minutes left: table your best offer."
        )
    shots(pages[2], "07-student-announcement-phone")
    shots(teacher, "08-dashboard-live")

    teacher.get_by_test_id("end-all").click()
    teacher.get_by_test_id("end-all-confirm").click()
    for index in range(2):
        expect(games.nth(index)).to_have_attribute("data-phase", "ended")
    for page in pages:
        expect(page.get_by_test_id("ended-notice")).to_be_visible()
    shots(teacher, "09-ended")
    shots(pages[3], "10-student-ended")
