"""The class-session debrief in a real browser: charts drawn, SVG and PNG downloads, the
dashboard's link, and a phone screen.

The session is the one of ``tests/test_debrief.py``: GATT, six games played by a script
through ``services`` in a ``manage.py shell`` (cooperation twice, involuntary defection,
discord, voluntary defection, one never started), every event stored ten seconds after the
one before it.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Site
from tests.live import manage

Shots = Callable[[Page, str], Path]
People = Callable[..., Page]

PASSWORD = "two-level-games-1988"
SCRIPT = """
from django.contrib.auth import get_user_model
from negotiation import class_sessions
from negotiation.engine.scenario import GameDefaults
from negotiation.models import Scenario
from tests.test_debrief import play_session_games
user = get_user_model().objects.create_user({username!r}, "ts@example.org", {password!r})
session = class_sessions.create_session(
    owner=user,
    title="IR 101: debrief",
    scenario=Scenario.objects.get(slug="gatt"),
    games=6,
    settings=GameDefaults(rounds=1, attempts=2, compliance=True),
)
play_session_games(class_sessions.session_games(session))
print("SESSION", session.code)
"""
CHARTS = ("share-vs-winset", "agreement-times")


def played_session(site: Site, owner: str) -> str:
    """The code of a session owned by a new instructor ``owner`` (password ``PASSWORD``)."""
    out = manage(site.env, "shell", "-c", SCRIPT.format(username=owner, password=PASSWORD))
    match = re.search(r"SESSION ([A-Z0-9]+)", out)
    assert match, out
    return match.group(1)


def sign_in(page: Page, site: Site, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{site.base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("nav-sessions")).to_be_visible()


def charts_drawn(page: Page) -> None:
    for name in CHARTS:
        image = page.get_by_test_id(f"debrief-img-{name}")
        expect(image).to_be_visible()
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0 && el.getBoundingClientRect().height > 0",
            arg=image.element_handle(),
        )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_instructor_reads_the_debrief_and_downloads_its_charts(
    site: Site, people: People, shots: Shots, tmp_path: Path
) -> None:
    code = played_session(site, "prof-schelling")
    teacher = people(accept_downloads=True)
    sign_in(teacher, site, "prof-schelling")
    teacher.goto(f"{site.base}/sessions/{code}/")
    teacher.get_by_test_id("debrief-link").click()
    teacher.wait_for_url(re.compile(rf"/sessions/{code}/debrief/$"))
    expect(teacher.get_by_test_id("debrief")).to_have_attribute("data-ready", "true")
    charts_drawn(teacher)
    expect(teacher.get_by_test_id("debrief-count-cooperation")).to_have_attribute(
        "data-rounds", "2"
    )
    for label in ("involuntary_defection", "discord", "voluntary_defection"):
        expect(teacher.get_by_test_id(f"debrief-count-{label}")).to_have_attribute(
            "data-rounds", "1"
        )
    expect(teacher.get_by_test_id("debrief-reading")).to_contain_text("n = 6 points")
    expect(teacher.get_by_test_id("debrief-questions")).to_contain_text(
        "Atlantis did not ratify (Farm lobby and Import-competing industries voted no)"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    teacher.screenshot(path=str(ARTIFACTS / "debrief.png"), full_page=True)
    teacher.screenshot(path=str(ARTIFACTS / "debrief-top.png"))
    shots(teacher, "debrief-desktop")

    # SVG: the server's file, as an attachment.
    with teacher.expect_download() as svg_download:
        teacher.get_by_test_id("debrief-svg-share-vs-winset").click()
    svg_file = tmp_path / "shares.svg"
    svg_download.value.save_as(svg_file)
    assert svg_download.value.suggested_filename == f"ratify-{code}-share-vs-winset.svg"
    root = ET.fromstring(svg_file.read_bytes())
    assert len([el for el in root.iter() if el.get("class") == "point"]) == 6
    svg_width = float(root.get("width") or 0)

    # PNG: drawn in the browser at twice the chart's size.
    for name in CHARTS:
        with teacher.expect_download() as png_download:
            teacher.get_by_test_id(f"debrief-png-{name}").click()
        png_file = tmp_path / f"{name}.png"
        png_download.value.save_as(png_file)
        assert png_download.value.suggested_filename == f"ratify-{code}-{name}.png"
        width, height = png_size(png_file.read_bytes())
        assert width == 2 * 680 and height > 400, (name, width, height)
    assert svg_width == 680
    assert teacher.errors == []  # type: ignore[attr-defined]

    # Each game's row links to its replay.
    replay_link = teacher.locator("[data-testid^=debrief-replay-]").first
    expect(replay_link).to_have_attribute("href", re.compile(r"^/g/[A-Z0-9]+/replay/$"))

    phone = people(phone=True)
    sign_in(phone, site, "prof-schelling")
    phone.goto(f"{site.base}/sessions/{code}/debrief/")
    charts_drawn(phone)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the debrief is {width} px wide on a phone"
    shots(phone, "debrief-phone")
    for section in ("debrief-outcomes", "debrief-shares"):
        phone.get_by_test_id(section).screenshot(
            path=str(ARTIFACTS / f"debrief-phone-{section.removeprefix('debrief-')}.png")
        )
    assert phone.errors == []  # type: ignore[attr-defined]


def test_another_instructor_gets_404(site: Site, people: People) -> None:
    code = played_session(site, "prof-putnam")
    manage(
        site.env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_user('prof-waltz', 'w@example.org', 'anarchy-is-1979')",
    )
    stranger = people()
    sign_in(stranger, site, "prof-waltz", "anarchy-is-1979")
    response = stranger.goto(f"{site.base}/sessions/{code}/debrief/")
    assert response is not None and response.status == 404
