"""The replay page in a real browser: scrub, step, play at 16x, switch seats, charts, downloads,
notes, keyboard and a phone screen.

The game is GATT with bots in every seat, played by a script through ``services`` in a
``manage.py shell`` (so it is the same every time): the chiefs trade proposals, agree on (5, 5),
Atlantis rejects it (A2 and A3 vote no: an involuntary defection), the chiefs agree on (5, 5)
again and everyone votes yes. The game then ends.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Site
from tests.live import create_game, manage

Shots = Callable[[Page, str], Path]
People = Callable[..., Page]

SCRIPT = """
from negotiation import services
from negotiation.engine import commands as c
game = services.game_by_code({code!r})
def run(command):
    outcome = services.submit(game_id=game.pk, command=command, issuer="test")
    assert outcome.accepted, outcome
def agree(values):
    run(c.Propose("A-chief", values))
    state = services.load_state(game.pk)
    (mine,) = [p.proposal_id for p in state.proposals.values() if p.by == "A-chief"]
    run(c.Accept("B-chief", mine))
run(c.StartGame("instructor"))
run(c.Propose("A-chief", (2.0, 9.0)))
run(c.Propose("B-chief", (9.0, 2.0)))
run(c.Chat("A-chief", "table", "Let us meet in the middle."))
run(c.Propose("A-chief", (4.0, 7.0)))
run(c.Propose("B-chief", (8.0, 4.0)))
agree((5.0, 5.0))
for seat, yes in [("A1", True), ("A2", False), ("A3", False), ("B1", True), ("B2", True), ("B3", True)]:
    run(c.CastBallot(seat, yes))
agree((5.0, 5.0))
for seat in ["A1", "A2", "A3", "B1", "B2", "B3"]:
    run(c.CastBallot(seat, True))
state = services.load_state(game.pk)
assert state.ended, state.phase
print("LAST", state.seq)
"""

CHARTS = ("issue-grid", "surplus", "utility", "votes")


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def played_game(site: Site) -> tuple[dict[str, Any], int]:
    game = create_game(site.env, "gatt", bots="all")
    out = manage(site.env, "shell", "-c", SCRIPT.format(code=game["code"]))
    match = re.search(r"LAST (\d+)", out)
    assert match, out
    return game, int(match.group(1))


def seq_of(page: Page) -> int:
    return int(page.get_by_test_id("replay").get_attribute("data-seq") or "0")


def at_seq(page: Page, seq: int) -> None:
    expect(page.get_by_test_id("replay")).to_have_attribute("data-seq", str(seq))


def charts_drawn(page: Page, viewer: str, seq: int) -> None:
    """Every chart is a loaded image of the viewer's chart up to ``seq``, with a nonzero size."""
    for name in CHARTS:
        image = page.get_by_test_id(f"chart-{name}")
        expect(image).to_have_attribute("src", re.compile(rf"viewer={viewer}&upto={seq}$"))
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0 && el.getBoundingClientRect().height > 0",
            arg=image.element_handle(),
        )


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"  # type: ignore[index]


def test_the_instructor_replays_a_finished_game(
    site: Site, people: People, shots: Shots, tmp_path: Path
) -> None:
    game, last = played_game(site)
    code = game["code"]
    host = people(accept_downloads=True)
    host.goto(site.base + path_of(game["host_url"]))
    host.wait_for_url(re.compile(r"/host/$"))
    host.goto(site.base + f"/g/{code}/replay/")
    replay = host.get_by_test_id("replay")
    expect(replay).to_have_attribute("aria-busy", "false")
    at_seq(host, 1)
    expect(host.get_by_test_id("replay-scrubber")).to_have_attribute("max", str(last))
    expect(host.get_by_test_id("replay-position")).to_contain_text(f"Event 1 of {last}")
    expect(host.get_by_test_id("phase")).to_have_attribute("data-phase", "lobby")
    charts_drawn(host, "instructor", 1)
    shots(host, "start-omniscient")

    # Scrub to the first tentative agreement's vote: the whole table as the instructor saw it.
    moments = host.evaluate("window.ratifyReplay.moments")
    tentative = next(m["seq"] for m in moments if m["kind"] == "tentative")
    host.get_by_test_id("replay-scrubber").fill(str(tentative + 1))
    at_seq(host, tentative + 1)
    expect(host.get_by_test_id("phase")).to_have_attribute("data-phase", "level2")
    expect(host.get_by_test_id("tentative-banner")).to_contain_text("proposal #5")
    # Read-only: not one command control of the console is shown.
    assert host.locator("#replay-view button:visible:not([role=tab])").count() == 0
    charts_drawn(host, "instructor", tentative + 1)
    shots(host, "scrubbed-to-the-vote")

    # Step forward and back, with the buttons and with the arrow keys.
    host.get_by_test_id("replay-step-forward").click()
    at_seq(host, tentative + 2)
    host.get_by_test_id("replay-step-back").click()
    host.get_by_test_id("replay-step-back").click()
    at_seq(host, tentative)
    host.get_by_test_id("replay-step-back").focus()
    host.keyboard.press("ArrowRight")
    at_seq(host, tentative + 1)
    host.keyboard.press("ArrowLeft")
    at_seq(host, tentative)
    host.keyboard.press("End")
    at_seq(host, last)
    host.keyboard.press("Home")
    at_seq(host, 1)

    # Jump between key moments.
    host.get_by_test_id("replay-next-moment").click()
    first_proposal = next(m["seq"] for m in moments if m["kind"] == "proposal")
    at_seq(host, first_proposal)
    counted = [m["seq"] for m in moments if m["kind"] == "ballot"]
    assert len(counted) == 2
    host.get_by_test_id("replay-moment").select_option(str(counted[0]))
    at_seq(host, counted[0])
    expect(host.get_by_test_id("count-result-A")).to_contain_text("not ratified")

    # Play at 16x from the first count to the end.
    host.get_by_test_id("replay-speed-16").check()
    host.get_by_test_id("replay-play").click()
    expect(replay).to_have_attribute("data-playing", "true")
    expect(replay).to_have_attribute("data-playing", "false", timeout=20_000)
    at_seq(host, last)
    expect(host.get_by_test_id("ended-notice")).to_be_visible()
    charts_drawn(host, "instructor", last)
    shots(host, "played-to-the-end")

    # The votes chart, drawn by the server, has both counts member by member.
    votes = host.request.get(
        site.base + f"/g/{code}/replay/chart/votes.svg?viewer=instructor&upto={last}"
    )
    root = ET.fromstring(votes.body())
    ballots = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-member")]
    assert len(ballots) == 12

    # Download a chart as SVG and as PNG.
    with host.expect_download() as svg_download:
        host.get_by_test_id("chart-svg-issue-grid").click()
    svg_file = tmp_path / "grid.svg"
    svg_download.value.save_as(svg_file)
    assert (
        svg_download.value.suggested_filename
        == f"ratify-{code}-issue-grid-instructor-seq{last}.svg"
    )
    grid = ET.fromstring(svg_file.read_bytes())
    assert grid.get("role") == "img"
    with host.expect_download() as png_download:
        host.get_by_test_id("chart-png-votes").click()
    png_file = tmp_path / "votes.png"
    png_download.value.save_as(png_file)
    assert png_download.value.suggested_filename.endswith(".png")
    assert png_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A note at the failed count shows in the list and as a mark on the timeline.
    host.get_by_test_id("replay-moment").select_option(str(counted[0]))
    at_seq(host, counted[0])
    host.get_by_test_id("replay-note-text").fill("Atlantis's farm lobby sank the first deal.")
    host.get_by_test_id("replay-note-add").click()
    note = host.get_by_test_id("replay-note-list").locator("li")
    expect(note).to_have_count(1)
    expect(note).to_contain_text(f"Event {counted[0]}")
    expect(host.locator("[data-testid^='replay-mark-note-']")).to_have_count(1)

    # Switch to a constituent's seat: the table as A1 saw it, and A1's charts.
    host.get_by_test_id("replay-viewer").select_option("A1")
    expect(replay).to_have_attribute("data-viewer", "A1")
    expect(replay).to_have_attribute("aria-busy", "false")
    at_seq(host, counted[0])
    expect(host.get_by_test_id("me")).to_contain_text("Export manufacturers")
    expect(host.get_by_test_id("ballot-status")).to_contain_text(re.compile("yes", re.I))
    charts_drawn(host, "A1", counted[0])
    shots(host, "seat-A1-at-the-failed-count")

    # The public view: no proposals were ever shown to a spectator.
    host.get_by_test_id("replay-viewer").select_option("spectator")
    expect(replay).to_have_attribute("data-viewer", "spectator")
    events = host.get_by_test_id("replay-events")
    expect(events.locator("li").first).to_be_visible()
    expect(events).not_to_contain_text("proposed #")
    assert host.errors == []  # type: ignore[attr-defined]


def test_the_replay_fits_a_phone(site: Site, people: People, shots: Shots) -> None:
    game, last = played_game(site)
    phone = people(phone=True)
    phone.goto(site.base + path_of(game["host_url"]))
    phone.wait_for_url(re.compile(r"/host/$"))
    phone.goto(site.base + f"/g/{game['code']}/replay/")
    expect(phone.get_by_test_id("replay")).to_have_attribute("aria-busy", "false")
    phone.get_by_test_id("replay-end").click()
    at_seq(phone, last)
    charts_drawn(phone, "instructor", last)
    no_sideways_scroll(phone)
    shots(phone, "phone-at-the-end")
    assert phone.errors == []  # type: ignore[attr-defined]
