"""Server-made SVG charts (``negotiation.charts``) on a hand-built game whose numbers are known.

The scenario: two issues x, y on 0..4 (step 1), cityblock utility with equal saliences, so a
member with ideal p has ``U(q) = 100 - 12.5 * (|q_x - p_x| + |q_y - p_y|)``. Each country has one
constituent with reservation 70, who votes yes iff its distance to the text is at most 2:

- Atlantis & <Co> (key A): A1's ideal is (0, 0): the win-set is ``x + y <= 2`` (6 points).
- Borduria (key B): B1's ideal is (2, 2): the win-set is ``|x - 2| + |y - 2| <= 2`` (13 points).
- The zone of agreement is therefore x + y = 2: (0, 2), (1, 1) and (2, 0).

The game: A's chief proposes (0, 2), B's chief (3, 3), A's chief (1, 1); B's chief accepts
(1, 1), both constituents vote yes and the agreement enters into force. Pivotal surpluses (each
country has one member, so m is that member's margin, less the 1e-9 tie margin): at (0, 2)
m_A = 75 - 70 = 5 and m_B = 5; at (3, 3) m_A = 25 - 70 = -45 and m_B = 5; at (1, 1) both 5.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from negotiation import charts
from negotiation.engine import commands as c
from negotiation.engine import events as e
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.scenario import Scenario, parse_scenario
from negotiation.engine.visibility import SPECTATOR
from tests.engine.rules_support import Game

SVG = "{http://www.w3.org/2000/svg}"
VIEWERS = (INSTRUCTOR, "A-chief", "A1", "B-chief", "B1", SPECTATOR)
COUNTRY_A = "Atlantis & <Co>"


def person(key: str, ideal: Sequence[float], reservation: float) -> dict[str, Any]:
    return {
        "key": key,
        "name": f"{key} person",
        "ideal": {"x": ideal[0], "y": ideal[1]},
        "reservation": reservation,
    }


def scenario_data(*, issues: int = 2, winsets: str = "own") -> dict[str, Any]:
    keys = ["x", "y", "z"][:issues]

    def ideal(values: Sequence[float]) -> dict[str, float]:
        return {k: (values[i] if i < len(values) else 0) for i, k in enumerate(keys)}

    def member(key: str, values: Sequence[float], reservation: float) -> dict[str, Any]:
        data = person(key, values, reservation)
        data["ideal"] = ideal(values)
        return data

    return {
        "schema": 1,
        "slug": "charts-test",
        "title": "Charts <test>",
        "utility": "cityblock",
        "issues": [{"key": k, "label": f"Issue {k.upper()}", "min": 0, "max": 4} for k in keys],
        "information": {"winsets": winsets},
        "countries": [
            {
                "key": "A",
                "name": COUNTRY_A,
                "ratification": {"quota": "1/2", "strict": True},
                "chief": member("A-chief", (0, 0), 0),
                "constituents": [member("A1", (0, 0), 70)],
            },
            {
                "key": "B",
                "name": "Borduria",
                "ratification": {"quota": "1/2", "strict": True},
                "chief": member("B-chief", (4, 4), 0),
                "constituents": [member("B1", (2, 2), 70)],
            },
        ],
    }


def scenario(**options: Any) -> Scenario:
    return parse_scenario(scenario_data(**options))


def played(chosen: Scenario | None = None) -> Game:
    """The game of the module docstring, played to the agreement in force."""
    game = Game(chosen or scenario())
    game.seat_everyone()
    game.start()
    game.propose(0, (0, 2))
    game.propose(1, (3, 3))
    third = game.propose(0, (1, 1))
    game.run(c.Accept("B-chief", third))
    game.run(c.CastBallot("A1", True))
    game.run(c.CastBallot("B1", True))
    assert any(isinstance(ev, e.AgreementInForce) for ev in game.log)
    return game


def seq_of(game: Game, kind: type[e.Event], nth: int = 0) -> int:
    """The seq of the ``nth`` event of ``kind`` in the game's log."""
    seqs = [i for i, ev in enumerate(game.log, 1) if isinstance(ev, kind)]
    return seqs[nth]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode())


def groups(root: ET.Element, css_class: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == css_class]


def covered_points(group: ET.Element) -> set[tuple[int, int]]:
    """Grid indices covered by the run rectangles of a win-set or zone group."""
    points: set[tuple[int, int]] = set()
    for rect in group.iter(f"{SVG}rect"):
        start, end = rect.get("data-from"), rect.get("data-to")
        if start is None or end is None:
            continue
        (i0, j0), (i1, j1) = (tuple(map(int, p.split(","))) for p in (start, end))
        assert j0 == j1
        points.update((i, j0) for i in range(i0, i1 + 1))
    return points


def rect_contains(rect: ET.Element, x: float, y: float) -> bool:
    left, top = float(rect.get("x", "0")), float(rect.get("y", "0"))
    width, height = float(rect.get("width", "0")), float(rect.get("height", "0"))
    return left < x < left + width and top < y < top + height


def proposal_marks(root: ET.Element) -> list[ET.Element]:
    return [el for el in root.iter() if el.get("class") == "proposal"]


# ---------------------------------------------------------------------------------------------
# Every chart is a standalone, labelled SVG document


@pytest.mark.parametrize("name", charts.CHART_NAMES)
@pytest.mark.parametrize("viewer", VIEWERS)
def test_every_chart_is_valid_svg_with_a_title_a_description_and_escaped_text(
    name: str, viewer: str
) -> None:
    game = played()
    svg = charts.CHARTS[name](game.scenario, game.log, viewer)
    root = parse(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title, desc = root[0], root[1]
    assert title.tag == f"{SVG}title" and title.text
    assert desc.tag == f"{SVG}desc" and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    # The country's name went in escaped and comes out as written.
    if name == "votes" or (name == "issue-grid" and viewer in (INSTRUCTOR, "A-chief", "A1")):
        texts = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
        assert COUNTRY_A in texts or COUNTRY_A in (desc.text or "")
    assert "<script" not in svg


def test_the_line_charts_label_both_axes_and_have_a_legend() -> None:
    game = played()
    for function in (charts.surplus_over_time_svg, charts.utility_over_time_svg):
        root = parse(function(game.scenario, game.log, INSTRUCTOR))
        texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
        assert "Event number (seq)" in texts
        assert any(t.startswith(("Pivotal surplus", "Utility (")) for t in texts)
        assert groups(root, "legend")


# ---------------------------------------------------------------------------------------------
# The issue grid


def test_the_instructor_sees_both_win_sets_and_the_zone_where_they_are() -> None:
    game = played()
    root = parse(charts.issue_grid_svg(game.scenario, game.log, INSTRUCTOR))
    winsets = {g.get("data-country"): g for g in groups(root, "winset")}
    assert set(winsets) == {"A", "B"}
    assert covered_points(winsets["A"]) == {
        (x, y) for x in range(5) for y in range(5) if x + y <= 2
    }
    assert covered_points(winsets["B"]) == {
        (x, y) for x in range(5) for y in range(5) if abs(x - 2) + abs(y - 2) <= 2
    }
    (zone,) = groups(root, "zone")
    assert covered_points(zone) == {(0, 2), (1, 1), (2, 0)}
    assert zone.get("data-points") == "3"
    # Geometrically too: each zone point's centre lies in a zone rectangle, and no other does.
    rects = [r for r in zone.iter(f"{SVG}rect")]
    for x in range(5):
        for y in range(5):
            cx, cy = charts.grid_position(game.scenario, (x, y))
            inside = any(rect_contains(r, cx, cy) for r in rects)
            assert inside == (x + y == 2), (x, y)


def test_the_grid_puts_the_first_issue_across_and_the_second_up() -> None:
    chosen = scenario()
    left_bottom = charts.grid_position(chosen, (0, 0))
    right = charts.grid_position(chosen, (4, 0))
    up = charts.grid_position(chosen, (0, 4))
    assert right[0] > left_bottom[0] and right[1] == left_bottom[1]
    assert up[1] < left_bottom[1] and up[0] == left_bottom[0]


def test_the_proposals_are_drawn_where_they_were_made_in_time_order_with_arrows() -> None:
    game = played()
    root = parse(charts.issue_grid_svg(game.scenario, game.log, INSTRUCTOR))
    paths = {g.get("data-by"): g for g in groups(root, "proposals")}
    assert set(paths) == {"A-chief", "B-chief"}
    a_marks = proposal_marks(paths["A-chief"])
    assert [m.get("data-values") for m in a_marks] == ["0,2", "1,1"]
    seqs = [int(m.get("data-seq", "0")) for m in a_marks]
    assert seqs == sorted(seqs) and seqs[0] < seqs[1]
    for mark in a_marks:
        values = tuple(float(v) for v in (mark.get("data-values") or "").split(","))
        x, y = charts.grid_position(game.scenario, values)
        assert math.isclose(float(mark.get("cx", "nan")), x)
        assert math.isclose(float(mark.get("cy", "nan")), y)
    # One arrow from A's first proposal towards its second, pointing at it.
    (arrow,) = [el for el in paths["A-chief"].iter(f"{SVG}line") if el.get("class") == "step"]
    assert arrow.get("marker-end") == "url(#grid-arrow-A)"
    start = charts.grid_position(game.scenario, (0, 2))
    end = charts.grid_position(game.scenario, (1, 1))
    assert math.isclose(float(arrow.get("x1", "nan")), start[0])
    assert math.isclose(float(arrow.get("y1", "nan")), start[1])
    tip = (float(arrow.get("x2", "nan")), float(arrow.get("y2", "nan")))
    assert math.dist(tip, end) < math.dist(start, end)
    assert [m.get("data-values") for m in proposal_marks(paths["B-chief"])] == ["3,3"]
    (agreed,) = groups(root, "agreed")
    assert agreed.get("data-values") == "1,1"


def test_upto_shows_the_game_as_it_stood_then() -> None:
    game = played()
    before_third = seq_of(game, e.ProposalMade, 2) - 1
    root = parse(charts.issue_grid_svg(game.scenario, game.log, INSTRUCTOR, upto=before_third))
    assert sorted(m.get("data-values") or "" for m in proposal_marks(root)) == ["0,2", "3,3"]
    assert not groups(root, "agreed") and not groups(root, "tentative")


def test_a_seat_sees_only_its_own_countrys_win_set_and_no_zone() -> None:
    game = played()
    for viewer, own, other in (("A1", "A", "B"), ("B-chief", "B", "A"), ("B1", "B", "A")):
        svg = charts.issue_grid_svg(game.scenario, game.log, viewer)
        root = parse(svg)
        assert [g.get("data-country") for g in groups(root, "winset")] == [own]
        assert not groups(root, "zone")
        assert f"grid-hatch-{other}" not in svg
        assert "zone of agreement" not in svg.split("<desc", 1)[1]


def test_a_country_setting_of_all_win_sets_shows_the_zone_to_a_seat() -> None:
    game = played(scenario(winsets="all"))
    root = parse(charts.issue_grid_svg(game.scenario, game.log, "B1"))
    assert {g.get("data-country") for g in groups(root, "winset")} == {"A", "B"}
    assert len(groups(root, "zone")) == 1


def test_a_spectator_sees_no_win_set_and_no_proposal_but_the_public_agreement() -> None:
    game = played()
    root = parse(charts.issue_grid_svg(game.scenario, game.log, SPECTATOR))
    assert not groups(root, "winset") and not groups(root, "zone")
    assert not proposal_marks(root)
    (agreed,) = groups(root, "agreed")
    assert agreed.get("data-values") == "1,1"


def test_a_seat_is_shown_its_own_ideal_point() -> None:
    game = played()
    root = parse(charts.issue_grid_svg(game.scenario, game.log, "B1"))
    assert len(groups(root, "own-ideal")) == 1
    assert not groups(
        parse(charts.issue_grid_svg(game.scenario, game.log, INSTRUCTOR)), "own-ideal"
    )


def test_the_grid_of_a_scenario_without_exactly_two_issues_is_a_value_error() -> None:
    three = scenario(issues=3)
    game = Game(three)
    with pytest.raises(ValueError, match="exactly two issues"):
        charts.issue_grid_svg(three, game.log, INSTRUCTOR)
    with pytest.raises(ValueError, match="exactly two issues"):
        charts.grid_position(three, (0, 0, 0))
    assert "issue-grid" not in charts.charts_for(three)
    # The other charts work with any number of issues.
    for name in ("surplus", "utility", "votes"):
        parse(charts.CHARTS[name](three, game.log, INSTRUCTOR))


def test_a_log_that_does_not_start_with_game_created_is_a_value_error() -> None:
    game = played()
    with pytest.raises(ValueError):
        charts.surplus_over_time_svg(game.scenario, game.log[1:], INSTRUCTOR)


# ---------------------------------------------------------------------------------------------
# Surplus and utility over time


def points_of(root: ET.Element, series: str) -> list[tuple[int, float]]:
    (group,) = [g for g in groups(root, "series") if g.get("data-series") == series]
    return [
        (int(el.get("data-seq", "0")), float(el.get("data-value", "nan")))
        for el in group.iter()
        if el.get("class") == "point"
    ]


def test_the_surplus_chart_follows_the_table_proposal() -> None:
    game = played()
    root = parse(charts.surplus_over_time_svg(game.scenario, game.log, INSTRUCTOR))
    first, second, third = (seq_of(game, e.ProposalMade, n) for n in range(3))
    tentative = seq_of(game, e.TentativeAgreement)
    assert points_of(root, COUNTRY_A) == [(first, 5), (second, -45), (third, 5), (tentative, 5)]
    assert points_of(root, "Borduria") == [(first, 5), (second, 5), (third, 5), (tentative, 5)]


def test_a_seat_sees_the_surplus_of_its_own_country_only_and_a_spectator_none() -> None:
    game = played()
    root = parse(charts.surplus_over_time_svg(game.scenario, game.log, "A1"))
    assert [g.get("data-series") for g in groups(root, "series")] == [COUNTRY_A]
    spectator = parse(charts.surplus_over_time_svg(game.scenario, game.log, SPECTATOR))
    assert not groups(spectator, "series")
    assert [el for el in spectator.iter() if el.get("class") == "empty"]


def test_the_utility_chart_shows_a_seat_its_own_utility_and_the_instructor_everyones() -> None:
    game = played()
    everyone = parse(charts.utility_over_time_svg(game.scenario, game.log, INSTRUCTOR))
    names = [g.get("data-series") for g in groups(everyone, "series")]
    assert len(names) == 4
    mine = parse(charts.utility_over_time_svg(game.scenario, game.log, "B1"))
    (series,) = groups(mine, "series")
    assert series.get("data-series") == "B1 person (Borduria member)"
    # B1's ideal is (2, 2): (0, 2) and (3, 3) are 2 away (75), (1, 1) too.
    assert [value for _, value in points_of(mine, "B1 person (Borduria member)")] == [75] * 4
    chief = parse(charts.utility_over_time_svg(game.scenario, game.log, "A-chief"))
    # A's chief has its ideal at (0, 0): 75 at (0, 2), 0 at (3, 3)... 100 - 12.5 * 6 = 25.
    assert [v for _, v in points_of(chief, f"A-chief person ({COUNTRY_A} chief)")] == [
        75,
        25,
        75,
        75,
    ]
    assert not groups(
        parse(charts.utility_over_time_svg(game.scenario, game.log, SPECTATOR)), "series"
    )


# ---------------------------------------------------------------------------------------------
# The vote


def test_the_vote_breakdown_shows_each_member_after_the_count_only() -> None:
    game = played()
    counted = seq_of(game, e.BallotsCounted)
    root = parse(charts.vote_breakdown_svg(game.scenario, game.log, "A1"))
    ballots = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("ballot ")]
    assert {(g.get("data-member"), g.get("class")) for g in ballots} == {
        ("A1", "ballot ballot--yes"),
        ("B1", "ballot ballot--yes"),
    }
    results = [el for el in root.iter(f"{SVG}text") if el.get("data-country")]
    assert {(el.get("data-country"), el.get("class")) for el in results} == {
        ("A", "result result--ratified"),
        ("B", "result result--ratified"),
    }
    # Before the count nobody's ballot is drawn, not even the instructor's view of them.
    for viewer in (INSTRUCTOR, "A1"):
        early = parse(charts.vote_breakdown_svg(game.scenario, game.log, viewer, upto=counted - 1))
        assert not [
            g for g in early.iter(f"{SVG}g") if (g.get("class") or "").startswith("ballot ")
        ]
        assert [el for el in early.iter() if el.get("class") == "empty"]


# ---------------------------------------------------------------------------------------------
# A property: whatever the moment and the viewer, the grid shows exactly the chiefs' proposals
# the viewer was sent by then.


@settings(max_examples=40, deadline=None)
@given(upto=st.integers(min_value=1, max_value=40), viewer=st.sampled_from(VIEWERS))
def test_the_grid_draws_exactly_the_proposals_the_viewer_had_seen(upto: int, viewer: str) -> None:
    game = played()
    root = parse(charts.issue_grid_svg(game.scenario, game.log, viewer, upto=upto))
    drawn = sorted(int(m.get("data-proposal", "0")) for m in proposal_marks(root))
    last = min(upto, len(game.log))
    seen = sorted(
        ev.proposal_id
        for ev in game.log[:last]
        if isinstance(ev, e.ProposalMade) and viewer != SPECTATOR
    )
    assert drawn == seen
