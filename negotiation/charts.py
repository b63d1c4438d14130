"""Charts of a game as standalone SVG, made on the server from its event log (no JS library).

Every chart takes the scenario, the game's log (``events[i]`` has seq ``i + 1``), a viewer (a
seat key, ``INSTRUCTOR`` for the omniscient view or ``SPECTATOR``) and an optional ``upto``
seq, and shows only what that viewer had seen by then: each event goes through
``visibility.visible`` before it is drawn, win-sets and surpluses only for the countries
``visibility.winsets_visible_to`` allows, utilities only of the members whose preferences the
viewer may see (``visibility.sees_preferences_of``). The state at each seq comes from folding
the log with ``rules.evolve``; win-sets and surpluses from ``winset`` and ``analytics``. Nothing
here re-implements a rule.

- ``issue_grid_svg``: two-issue scenarios only. The issue grid with each visible country's
  win-set (hatched, outlined in its own dash style), the zone of agreement when the viewer sees
  every win-set, every chief's proposals the viewer saw as a path with arrows in time order,
  tentative agreements, the agreement in force, the no-agreement point and a seat's own ideal.
- ``surplus_over_time_svg``: each visible country's pivotal surplus ``m_c`` of the *table
  proposal* over seq. The table proposal is the latest text put on the table that the viewer
  saw: a proposal, or the tentative agreement; the table is empty after a round ends.
- ``utility_over_time_svg``: each visible member's utility of the table proposal over seq.
- ``vote_breakdown_svg``: each Level II count member by member (``BallotsCounted`` is public
  once the votes are in; ballots before the count are never drawn).

Charts read in greyscale: every country or series has a colour *and* a dash pattern, marker
shape or hatch angle. Every text is escaped; each SVG has ``role="img"``, a ``<title>`` and a
``<desc>`` that says in words what the chart shows.
"""

from __future__ import annotations

import functools
import html
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from negotiation.engine import events as e
from negotiation.engine.analytics import surpluses
from negotiation.engine.commands import INSTRUCTOR
from negotiation.engine.rules import evolve, initial_state
from negotiation.engine.scenario import Member, Scenario
from negotiation.engine.state import GameState
from negotiation.engine.visibility import (
    sees_preferences_of,
    visible,
    winsets_visible_to,
)
from negotiation.engine.winset import Analysis, BoolArray

Point = tuple[float, ...]

#: Colours that stay apart for colour-blind readers (Okabe and Ito), one per country or series.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: Dash patterns paired with the colours, so the series differ in greyscale too.
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 2", "12 4 2 4 2 4", "1 4")
#: Hatch angles of the win-set fills, one per country.
HATCH_ANGLES = (45, -45, 0, 90, 22, -68, 68)
MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down", "cross", "plus")

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
TEXT_COLOUR = "#1d232b"
MUTED_COLOUR = "#56606b"
GRID_COLOUR = "#d9dde2"

#: The chart names of the replay's endpoints, in the order the page shows them.
CHART_NAMES = ("issue-grid", "surplus", "utility", "votes")


# --------------------------------------------------------------------------------------------
# SVG text


def _number(value: float) -> str:
    """A coordinate or value for SVG and labels: at most two decimals, no trailing zeros."""
    if not math.isfinite(value):
        return "0"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _attributes(attrs: Mapping[str, object]) -> str:
    parts = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        if isinstance(value, float):
            value = _number(value)
        parts.append(f' {name}="{html.escape(str(value), quote=True)}"')
    return "".join(parts)


def _tag(name: str, attrs: Mapping[str, object] | None = None, *children: str) -> str:
    """An element; ``children`` are markup already built (use ``_text`` for plain text)."""
    opening = f"<{name}{_attributes(attrs or {})}"
    if not children:
        return opening + "/>"
    return f"{opening}>{''.join(children)}</{name}>"


def _text(value: object) -> str:
    return html.escape(str(value), quote=False)


def _label(x: float, y: float, text: str, **attrs: object) -> str:
    return _tag(
        "text",
        {"x": x, "y": y, "font-size": attrs.pop("size", 12), "fill": TEXT_COLOUR, **attrs},
        _text(text),
    )


def _document(
    name: str, width: float, height: float, title: str, desc: str, body: Sequence[str]
) -> str:
    """The standalone SVG document: title and desc first, then a white background."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + _tag(
            "svg",
            {
                "xmlns": "http://www.w3.org/2000/svg",
                "version": "1.1",
                "width": width,
                "height": height,
                "viewBox": f"0 0 {_number(width)} {_number(height)}",
                "role": "img",
                "aria-labelledby": f"{name}-title {name}-desc",
                "font-family": FONT,
                "class": f"chart chart--{name}",
            },
            _tag("title", {"id": f"{name}-title"}, _text(title)),
            _tag("desc", {"id": f"{name}-desc"}, _text(desc)),
            _tag("rect", {"x": 0, "y": 0, "width": width, "height": height, "fill": "#ffffff"}),
            *body,
        )
        + "\n"
    )


def _marker_shape(shape: str, x: float, y: float, size: float, colour: str, **attrs: object) -> str:
    """A point marker of ``shape`` (see ``MARKERS``) centred on ``(x, y)``."""
    r = size / 2
    common: dict[str, object] = {"fill": colour, "stroke": "#ffffff", "stroke-width": 1, **attrs}
    if shape == "circle":
        return _tag("circle", {"cx": x, "cy": y, "r": r, **common})
    if shape == "square":
        return _tag("rect", {"x": x - r, "y": y - r, "width": size, "height": size, **common})
    if shape in ("triangle", "triangle-down"):
        d = r if shape == "triangle" else -r
        points = f"{_number(x)},{_number(y - d)} {_number(x + r)},{_number(y + d)} {_number(x - r)},{_number(y + d)}"
        return _tag("polygon", {"points": points, **common})
    if shape == "diamond":
        points = f"{_number(x)},{_number(y - r)} {_number(x + r)},{_number(y)} {_number(x)},{_number(y + r)} {_number(x - r)},{_number(y)}"
        return _tag("polygon", {"points": points, **common})
    width = 2.5 if shape == "plus" else 2.2
    if shape == "plus":
        path = f"M{_number(x - r)} {_number(y)}H{_number(x + r)}M{_number(x)} {_number(y - r)}V{_number(y + r)}"
    else:
        path = f"M{_number(x - r)} {_number(y - r)}L{_number(x + r)} {_number(y + r)}M{_number(x - r)} {_number(y + r)}L{_number(x + r)} {_number(y - r)}"
    return _tag(
        "path", {"d": path, "stroke": colour, "stroke-width": width, "fill": "none", **attrs}
    )


def _style(index: int) -> tuple[str, str, str]:
    """Colour, dash pattern and marker shape of the ``index``-th country or series."""
    return (
        PALETTE[index % len(PALETTE)],
        DASHES[index % len(DASHES)],
        MARKERS[index % len(MARKERS)],
    )


# --------------------------------------------------------------------------------------------
# The log as the viewer saw it


@dataclass(frozen=True, slots=True)
class Moment:
    """One seq of the log: the state after it and the event as the viewer saw it (None when
    the viewer did not see it)."""

    seq: int
    state: GameState
    seen: e.Event | None


def _moments(
    scenario: Scenario, events: Sequence[e.Event], viewer: str, upto: int | None
) -> Iterator[Moment]:
    """Fold the log (to ``upto``) with the engine, yielding each seq as the viewer saw it.

    Raises ``ValueError`` for an empty log or one that does not start with ``GameCreated``.
    """
    if not events or not isinstance(events[0], e.GameCreated):
        raise ValueError("a game's log must start with game_created")
    last = len(events) if upto is None else max(1, min(upto, len(events)))
    state = initial_state(events[0])
    for seq in range(1, last + 1):
        event = events[seq - 1]
        if seq > 1:
            state = evolve(state, event)
        yield Moment(seq, state, visible(scenario, event, viewer, settings=state.settings))


def _last_seq(events: Sequence[e.Event], upto: int | None) -> int:
    return len(events) if upto is None else max(1, min(upto, len(events)))


@dataclass(frozen=True, slots=True)
class TableText:
    """From ``seq`` on, ``values`` was the table proposal (None: the table was empty)."""

    seq: int
    values: Point | None
    what: str


def table_proposals(
    scenario: Scenario, events: Sequence[e.Event], viewer: str, upto: int | None = None
) -> list[TableText]:
    """Each change of the table proposal the viewer saw: the latest proposal or tentative
    agreement it was shown; ``None`` once a round ended. Raises ``ValueError`` for a log that
    does not start with ``GameCreated``."""
    changes: list[TableText] = []
    for moment in _moments(scenario, events, viewer, upto):
        seen = moment.seen
        if isinstance(seen, e.ProposalMade):
            changes.append(TableText(moment.seq, seen.values, f"proposal #{seen.proposal_id}"))
        elif isinstance(seen, e.TentativeAgreement):
            changes.append(
                TableText(moment.seq, seen.values, f"tentative agreement #{seen.proposal_id}")
            )
        elif isinstance(seen, e.RoundEnded) and changes and changes[-1].values is not None:
            changes.append(TableText(moment.seq, None, f"round {seen.round} ended"))
    return changes


# --------------------------------------------------------------------------------------------
# Line charts over seq


@dataclass(frozen=True, slots=True)
class Series:
    """A step line: from each ``(seq, y)`` on, the value is ``y`` (None: no value)."""

    name: str
    steps: tuple[tuple[int, float | None], ...]
    reference: float | None = None


LINE_WIDTH = 680
LINE_PLOT_LEFT = 64
LINE_PLOT_RIGHT = 20
LINE_PLOT_TOP = 44
LINE_PLOT_HEIGHT = 250
LEGEND_ROW = 22
#: A series with more changes than this is drawn without point markers.
MAX_MARKERS = 200


def _nice_step(span: float) -> float:
    """A round tick spacing giving about five ticks over ``span``."""
    raw = span / 5 if span > 0 else 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _ticks(low: float, high: float) -> list[float]:
    step = _nice_step(high - low)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _line_chart(
    *,
    name: str,
    title: str,
    desc: str,
    y_label: str,
    series: Sequence[Series],
    last_seq: int,
    empty: str,
    zero_label: str | None = None,
    reference_label: str = "bottom line",
) -> str:
    """Step lines over seq 1..``last_seq`` with axes, ticks, a legend and markers at changes."""
    values = [y for s in series for _, y in s.steps if y is not None]
    values += [s.reference for s in series if s.reference is not None]
    if zero_label is not None:
        values.append(0.0)
    # Two legend columns when the names fit in half the width (about 6.6 px a character).
    columns = 2 if all(len(s.name) <= 40 for s in series) else 1
    entries = len(series) + (1 if zero_label is not None else 0)
    legend_rows = math.ceil(entries / columns) if entries else 0
    height = LINE_PLOT_TOP + LINE_PLOT_HEIGHT + 56 + legend_rows * LEGEND_ROW + 10
    plot_width = LINE_WIDTH - LINE_PLOT_LEFT - LINE_PLOT_RIGHT
    bottom = LINE_PLOT_TOP + LINE_PLOT_HEIGHT
    body: list[str] = [_label(LINE_PLOT_LEFT, 24, title, size=15, **{"font-weight": "600"})]
    low, high = (min(values), max(values)) if values else (0.0, 100.0)
    if high - low < 1e-9:
        low, high = low - 5, high + 5
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    x_span = max(1, last_seq - 1)

    def x_of(seq: float) -> float:
        return LINE_PLOT_LEFT + (seq - 1) / x_span * plot_width

    def y_of(value: float) -> float:
        return bottom - (value - low) / (high - low) * LINE_PLOT_HEIGHT

    axes: list[str] = []
    for tick in _ticks(low, high):
        y = y_of(tick)
        axes.append(
            _tag(
                "line",
                {"x1": LINE_PLOT_LEFT, "x2": LINE_PLOT_LEFT + plot_width, "y1": y, "y2": y}
                | {"stroke": GRID_COLOUR, "stroke-width": 1},
            )
        )
        axes.append(
            _label(LINE_PLOT_LEFT - 6, y + 4, _number(tick), size=11, **{"text-anchor": "end"})
        )
    for tick in _ticks(1, max(2, last_seq)):
        if tick < 1 or tick > last_seq or tick != int(tick):
            continue
        x = x_of(tick)
        axes.append(
            _tag("line", {"x1": x, "x2": x, "y1": bottom, "y2": bottom + 4, "stroke": MUTED_COLOUR})
        )
        axes.append(_label(x, bottom + 17, str(int(tick)), size=11, **{"text-anchor": "middle"}))
    axes.append(
        _tag(
            "path",
            {
                "d": f"M{_number(LINE_PLOT_LEFT)} {_number(LINE_PLOT_TOP)}V{_number(bottom)}H{_number(LINE_PLOT_LEFT + plot_width)}",
                "stroke": MUTED_COLOUR,
                "fill": "none",
            },
        )
    )
    axes.append(
        _label(
            LINE_PLOT_LEFT + plot_width / 2,
            bottom + 36,
            "Event number (seq)",
            **{"text-anchor": "middle"},
        )
    )
    axes.append(
        _label(
            16,
            LINE_PLOT_TOP + LINE_PLOT_HEIGHT / 2,
            y_label,
            transform=f"rotate(-90 16 {_number(LINE_PLOT_TOP + LINE_PLOT_HEIGHT / 2)})",
            **{"text-anchor": "middle"},
        )
    )
    body.append(_tag("g", {"class": "axes"}, *axes))
    if zero_label is not None and low < 0 < high:
        y = y_of(0)
        body.append(
            _tag(
                "g",
                {"class": "zero-line"},
                _tag(
                    "line",
                    {"x1": LINE_PLOT_LEFT, "x2": LINE_PLOT_LEFT + plot_width, "y1": y, "y2": y}
                    | {"stroke": TEXT_COLOUR, "stroke-width": 1.2, "stroke-dasharray": "3 3"},
                ),
            )
        )
    if not any(y is not None for s in series for _, y in s.steps):
        body.append(
            _label(
                LINE_PLOT_LEFT + plot_width / 2,
                LINE_PLOT_TOP + LINE_PLOT_HEIGHT / 3,
                empty,
                size=13,
                fill=MUTED_COLOUR,
                **{"text-anchor": "middle", "class": "empty"},
            )
        )
    for index, line in enumerate(series):
        colour, dash, shape = _style(index)
        parts: list[str] = []
        if line.reference is not None:
            y = y_of(line.reference)
            parts.append(
                _tag(
                    "line",
                    {"x1": LINE_PLOT_LEFT, "x2": LINE_PLOT_LEFT + plot_width, "y1": y, "y2": y}
                    | {"stroke": colour, "stroke-width": 1, "stroke-dasharray": "1 3"},
                )
            )
            parts.append(
                _label(LINE_PLOT_LEFT + 4, y - 4, f"{line.name}: {reference_label}", size=10)
            )
        path = ""
        for position, (seq, value) in enumerate(line.steps):
            end = line.steps[position + 1][0] if position + 1 < len(line.steps) else last_seq
            if value is None:
                continue
            x0, x1, y = x_of(seq), x_of(end), y_of(value)
            path += f"M{_number(x0)} {_number(y)}H{_number(x1)}"
            following = line.steps[position + 1][1] if position + 1 < len(line.steps) else None
            if following is not None:
                path += f"V{_number(y_of(following))}"
        if path:
            parts.append(
                _tag(
                    "path",
                    {
                        "d": path,
                        "fill": "none",
                        "stroke": colour,
                        "stroke-width": 2.2,
                        "stroke-dasharray": dash or None,
                    },
                )
            )
        # Past a few hundred changes the markers would hide the line; the line alone stays.
        marked = len(line.steps) <= MAX_MARKERS
        for seq, value in line.steps:
            if value is not None and marked:
                parts.append(
                    _marker_shape(
                        shape,
                        x_of(seq),
                        y_of(value),
                        8,
                        colour,
                        **{"class": "point", "data-seq": seq, "data-value": _number(value)},
                    )
                )
        body.append(_tag("g", {"class": "series", "data-series": line.name}, *parts))
    legend: list[str] = []
    legend_top = bottom + 54
    for index, line in enumerate(series):
        colour, dash, shape = _style(index)
        x = LINE_PLOT_LEFT + (index % columns) * (plot_width / 2)
        y = legend_top + (index // columns) * LEGEND_ROW
        legend.append(
            _tag(
                "line",
                {"x1": x, "x2": x + 28, "y1": y, "y2": y, "stroke": colour, "stroke-width": 2.2}
                | {"stroke-dasharray": dash or None},
            )
        )
        legend.append(_marker_shape(shape, x + 14, y, 8, colour))
        legend.append(_label(x + 36, y + 4, line.name))
    if zero_label is not None:
        index = len(series)
        x = LINE_PLOT_LEFT + (index % columns) * (plot_width / 2)
        y = legend_top + (index // columns) * LEGEND_ROW
        legend.append(
            _tag(
                "line",
                {"x1": x, "x2": x + 28, "y1": y, "y2": y, "stroke": TEXT_COLOUR}
                | {"stroke-width": 1.2, "stroke-dasharray": "3 3"},
            )
        )
        legend.append(_label(x + 36, y + 4, zero_label))
    if legend:
        body.append(_tag("g", {"class": "legend"}, *legend))
    return _document(name, LINE_WIDTH, height, title, desc, body)


def _series_words(line: Series) -> str:
    points = [(seq, y) for seq, y in line.steps if y is not None]
    if not points:
        return f"{line.name}: no value"
    first, last = points[0], points[-1]
    if len(points) == 1:
        return f"{line.name}: {_number(first[1])} from seq {first[0]}"
    return (
        f"{line.name}: {_number(first[1])} at seq {first[0]}, "
        f"{_number(last[1])} at seq {last[0]} ({len(points)} changes)"
    )


def _viewer_words(scenario: Scenario, viewer: str) -> str:
    if viewer == INSTRUCTOR:
        return "the instructor's view (everything)"
    try:
        member = scenario.member(viewer)
    except KeyError:
        return "the public view"
    country = scenario.country(member.country).name
    return f"as {member.name} ({country}) saw it"


def surplus_over_time_svg(
    scenario: Scenario, events: Sequence[e.Event], viewer: str, *, upto: int | None = None
) -> str:
    """Each country's pivotal surplus of the table proposal over seq, for the countries whose
    win-sets ``viewer`` may see. Raises ``ValueError`` for a log that does not start with
    ``GameCreated``."""
    last = _last_seq(events, upto)
    changes = table_proposals(scenario, events, viewer, upto)
    shown = winsets_visible_to(scenario, viewer)
    # Long games table the same few texts again and again: compute each text's surpluses once.
    surplus_at = functools.lru_cache(maxsize=None)(lambda values: surpluses(scenario, values))
    series = []
    for country in scenario.countries:
        if country.key not in shown:
            continue
        steps: list[tuple[int, float | None]] = []
        for change in changes:
            value = surplus_at(change.values)[country.key] if change.values is not None else None
            steps.append(
                (change.seq, value if value is not None and math.isfinite(value) else None)
            )
        series.append(Series(country.name, tuple(steps)))
    title = "Pivotal surplus of the table proposal"
    words = "; ".join(_series_words(s) for s in series)
    desc = (
        f"{title}, {_viewer_words(scenario, viewer)}, up to seq {last}. A country ratifies a "
        "text exactly when its pivotal surplus is above 0. "
        + (words + "." if series else "No country's win-set is visible to this viewer.")
    )
    return _line_chart(
        name="surplus",
        title=title,
        desc=desc,
        y_label="Pivotal surplus m (points)",
        series=series,
        last_seq=last,
        empty=(
            "No proposal seen yet."
            if series
            else "Win-sets are not shown to this viewer, so neither are surpluses."
        ),
        zero_label="ratification line (m = 0)",
    )


def _member_label(scenario: Scenario, member: Member) -> str:
    country = scenario.country(member.country).name
    role = "chief" if member.role == "chief" else "member"
    return f"{member.name} ({country} {role})"


def utility_over_time_svg(
    scenario: Scenario, events: Sequence[e.Event], viewer: str, *, upto: int | None = None
) -> str:
    """Each role's utility of the table proposal over seq: every role for the instructor, the
    roles whose preferences a seat may see (its own at least), none for a spectator. Raises
    ``ValueError`` for a log that does not start with ``GameCreated``."""
    last = _last_seq(events, upto)
    changes = table_proposals(scenario, events, viewer, upto)
    members = [m for m in scenario.members if sees_preferences_of(scenario, viewer, m)]
    series = [
        Series(
            _member_label(scenario, member),
            tuple(
                (
                    change.seq,
                    scenario.utility_of(member, change.values)
                    if change.values is not None
                    else None,
                )
                for change in changes
            ),
            reference=member.reservation if len(members) <= 2 else None,
        )
        for member in members
    ]
    title = "Utility of the table proposal"
    words = "; ".join(_series_words(s) for s in series)
    desc = f"{title}, {_viewer_words(scenario, viewer)}, up to seq {last}. " + (
        words + "." if series else "No role's preferences are visible to this viewer."
    )
    return _line_chart(
        name="utility",
        title=title,
        desc=desc,
        y_label="Utility (0 to 100)",
        series=series,
        last_seq=last,
        empty="No proposal seen yet." if series else "No role's preferences are visible here.",
    )


# --------------------------------------------------------------------------------------------
# The vote, member by member

VOTE_STYLE = {
    True: ("Yes", "#1e6b3a", "yes"),
    False: ("No", "#9b1c1c", "no"),
    None: ("none", "#ffffff", "none"),
}


def _ballot_row_label(member: Member) -> str:
    veto = " (veto)" if member.veto else ""
    return f"{member.name}{veto} · weight {_number(float(member.weight))}"


def vote_breakdown_svg(
    scenario: Scenario, events: Sequence[e.Event], viewer: str, *, upto: int | None = None
) -> str:
    """Every Level II count up to ``upto``, member by member: one column per count, one row per
    constituent (grouped by country) and a row with each country's result. Ballots are drawn
    only from ``BallotsCounted``, which everyone sees once the vote is over. Raises
    ``ValueError`` for a log that does not start with ``GameCreated``."""
    last = _last_seq(events, upto)
    counts: list[tuple[int, int, int, e.BallotsCounted]] = []
    for moment in _moments(scenario, events, viewer, upto):
        if isinstance(moment.seen, e.BallotsCounted):
            counts.append((moment.seq, moment.state.round, moment.state.attempt, moment.seen))
    longest = max(
        (len(_ballot_row_label(m)) for c in scenario.countries for m in c.constituents), default=0
    )
    label_width = max(200, 40 + round(longest * 6.8))
    column = 96
    top = 84
    row = 24
    rows = sum(len(c.constituents) + 2 for c in scenario.countries)
    width = max(520, label_width + column * max(1, len(counts)) + 20)
    height = top + rows * row + 70
    title = "Level II votes, member by member"
    body: list[str] = [_label(16, 24, title, size=15, **{"font-weight": "600"})]
    defs = _tag(
        "defs",
        {},
        _tag(
            "pattern",
            {
                "id": "votes-no",
                "width": 6,
                "height": 6,
                "patternUnits": "userSpaceOnUse",
                "patternTransform": "rotate(45)",
            },
            _tag("rect", {"width": 6, "height": 6, "fill": "#fdecec"}),
            _tag(
                "line",
                {"x1": 0, "y1": 0, "x2": 0, "y2": 6, "stroke": "#9b1c1c", "stroke-width": 2.5},
            ),
        ),
    )
    body.append(defs)
    for index, (seq, round_number, attempt, count) in enumerate(counts):
        x = label_width + index * column + column / 2
        body.append(
            _label(x, top - 40, f"Round {round_number}", size=11, **{"text-anchor": "middle"})
        )
        body.append(
            _label(
                x,
                top - 26,
                f"attempt {attempt}, #{count.proposal_id}",
                size=11,
                **{"text-anchor": "middle"},
            )
        )
        body.append(
            _label(
                x, top - 12, f"seq {seq}", size=10, fill=MUTED_COLOUR, **{"text-anchor": "middle"}
            )
        )
    y = top
    words: list[str] = []
    for country in scenario.countries:
        body.append(_label(16, y + 16, country.name, size=13, **{"font-weight": "600"}))
        y += row
        for member in country.constituents:
            body.append(_label(28, y + 16, _ballot_row_label(member)))
            for index, (_, _, _, count) in enumerate(counts):
                ballot = count.ballots.get(member.key)
                text, colour, kind = VOTE_STYLE[ballot]
                x = label_width + index * column + 8
                fill = (
                    colour if ballot is True else "url(#votes-no)" if ballot is False else "#ffffff"
                )
                body.append(
                    _tag(
                        "g",
                        {"class": f"ballot ballot--{kind}", "data-member": member.key},
                        _tag(
                            "rect",
                            {"x": x, "y": y + 3, "width": column - 16, "height": row - 6}
                            | {"fill": fill, "stroke": "#56606b", "rx": 3},
                        ),
                        _label(
                            x + (column - 16) / 2,
                            y + 16,
                            text,
                            size=11,
                            fill="#ffffff" if ballot is True else TEXT_COLOUR,
                            **{
                                "text-anchor": "middle",
                                "font-weight": "600",
                                "paint-order": "stroke",
                                "stroke": "#ffffff" if ballot is False else "none",
                                "stroke-width": 3 if ballot is False else None,
                            },
                        ),
                    )
                )
            y += row
        for index, (_, _, _, count) in enumerate(counts):
            result = next((r for r in count.results if r.country == country.key), None)
            if result is None:
                continue
            x = label_width + index * column + column / 2
            verdict = "ratified" if result.ratified else "rejected"
            body.append(
                _label(
                    x,
                    y + 15,
                    f"{verdict} {_number(result.yes_weight)}/{_number(result.total_weight)}",
                    size=11,
                    **{
                        "text-anchor": "middle",
                        "font-weight": "600",
                        "class": f"result result--{verdict}",
                        "data-country": country.key,
                    },
                )
            )
            words.append(
                f"round {counts[index][1]} attempt {counts[index][2]}: {country.name} {verdict} "
                f"with {_number(result.yes_weight)} of {_number(result.total_weight)} for"
            )
        y += row
    if not counts:
        body.append(
            _label(
                label_width,
                top + 16,
                "No vote has been counted yet.",
                size=13,
                fill=MUTED_COLOUR,
                **{"class": "empty"},
            )
        )
    legend_y = height - 30
    legend = []
    for offset, ballot in enumerate((True, False, None)):
        text, colour, _ = VOTE_STYLE[ballot]
        x = 16 + offset * 150
        fill = colour if ballot is True else "url(#votes-no)" if ballot is False else "#ffffff"
        legend.append(
            _tag(
                "rect",
                {"x": x, "y": legend_y - 11, "width": 22, "height": 14, "fill": fill}
                | {"stroke": "#56606b", "rx": 3},
            )
        )
        meaning = {True: "voted yes", False: "voted no", None: "no ballot (counts as no)"}
        legend.append(_label(x + 28, legend_y, meaning[ballot], size=11))
    body.append(_tag("g", {"class": "legend"}, *legend))
    desc = f"{title}, {_viewer_words(scenario, viewer)}, up to seq {last}. " + (
        f"{len(counts)} count{'s' if len(counts) != 1 else ''}: " + "; ".join(words) + "."
        if counts
        else "No vote has been counted yet."
    )
    return _document("votes", width, height, title, desc, body)


# --------------------------------------------------------------------------------------------
# The issue grid (two issues)

GRID_PLOT = 420
GRID_LEFT = 70
GRID_TOP = 44
GRID_LEGEND_WIDTH = 250


@functools.lru_cache(maxsize=16)
def _analysis(scenario: Scenario) -> Analysis:
    return Analysis(scenario)


def _analysis_of(scenario: Scenario) -> Analysis:
    try:
        return _analysis(scenario)
    except TypeError:  # a scenario built by hand with unhashable parts: no cache
        return Analysis(scenario)


@dataclass(frozen=True, slots=True)
class GridFrame:
    """Where the issue grid's points land in the SVG: issue 0 across, issue 1 up."""

    scenario: Scenario

    @property
    def cell_width(self) -> float:
        return GRID_PLOT / self.scenario.issues[0].levels

    @property
    def cell_height(self) -> float:
        return GRID_PLOT / self.scenario.issues[1].levels

    def x_of_index(self, index: float) -> float:
        return GRID_LEFT + (index + 0.5) * self.cell_width

    def y_of_index(self, index: float) -> float:
        return GRID_TOP + GRID_PLOT - (index + 0.5) * self.cell_height

    def position(self, values: Sequence[float]) -> tuple[float, float]:
        """The SVG coordinates of a point (values need not lie on the grid)."""
        first, second = self.scenario.issues
        i = (values[0] - float(first.min)) / float(first.step)
        j = (values[1] - float(second.min)) / float(second.step)
        return self.x_of_index(i), self.y_of_index(j)


def grid_position(scenario: Scenario, values: Sequence[float]) -> tuple[float, float]:
    """The SVG coordinates ``issue_grid_svg`` draws the point ``values`` at. Raises
    ``ValueError`` unless the scenario has exactly two issues."""
    _require_two_issues(scenario)
    return GridFrame(scenario).position(values)


def _require_two_issues(scenario: Scenario) -> None:
    if len(scenario.issues) != 2:
        raise ValueError(
            f"the issue grid needs a scenario with exactly two issues; "
            f"{scenario.slug} has {len(scenario.issues)}"
        )


def _runs(mask: BoolArray, frame: GridFrame, attrs: Mapping[str, object]) -> list[str]:
    """The cells of ``mask`` as one rectangle per horizontal run of grid points."""
    rects = []
    levels_x, levels_y = mask.shape
    for j in range(levels_y):
        i = 0
        while i < levels_x:
            if not mask[i, j]:
                i += 1
                continue
            start = i
            while i < levels_x and mask[i, j]:
                i += 1
            x = GRID_LEFT + start * frame.cell_width
            y = frame.y_of_index(j) - frame.cell_height / 2
            rects.append(
                _tag(
                    "rect",
                    {
                        "x": x,
                        "y": y,
                        "width": (i - start) * frame.cell_width,
                        "height": frame.cell_height,
                        "data-from": f"{start},{j}",
                        "data-to": f"{i - 1},{j}",
                        **attrs,
                    },
                )
            )
    return rects


def _outline(mask: BoolArray, frame: GridFrame) -> str:
    """The boundary of the cells of ``mask`` as path data (one segment per outer cell edge)."""
    levels_x, levels_y = mask.shape
    w, h = frame.cell_width, frame.cell_height
    d: list[str] = []
    for i in range(levels_x):
        for j in range(levels_y):
            if not mask[i, j]:
                continue
            left = GRID_LEFT + i * w
            top = frame.y_of_index(j) - h / 2
            if i == 0 or not mask[i - 1, j]:
                d.append(f"M{_number(left)} {_number(top)}v{_number(h)}")
            if i == levels_x - 1 or not mask[i + 1, j]:
                d.append(f"M{_number(left + w)} {_number(top)}v{_number(h)}")
            if j == levels_y - 1 or not mask[i, j + 1]:
                d.append(f"M{_number(left)} {_number(top)}h{_number(w)}")
            if j == 0 or not mask[i, j - 1]:
                d.append(f"M{_number(left)} {_number(top + h)}h{_number(w)}")
    return "".join(d)


def _hatch(pattern_id: str, colour: str, angle: int) -> str:
    return _tag(
        "pattern",
        {
            "id": pattern_id,
            "width": 7,
            "height": 7,
            "patternUnits": "userSpaceOnUse",
            "patternTransform": f"rotate({angle})",
        },
        _tag("line", {"x1": 0, "y1": 0, "x2": 0, "y2": 7, "stroke": colour, "stroke-width": 2}),
    )


def _point_words(scenario: Scenario, values: Sequence[float]) -> str:
    return ", ".join(
        f"{issue.label} {_number(value)}"
        for issue, value in zip(scenario.issues, values, strict=True)
    )


def issue_grid_svg(
    scenario: Scenario, events: Sequence[e.Event], viewer: str, *, upto: int | None = None
) -> str:
    """The issue grid of a two-issue scenario as ``viewer`` saw it at ``upto``.

    Raises ``ValueError`` when the scenario does not have exactly two issues, or for a log that
    does not start with ``GameCreated``.
    """
    _require_two_issues(scenario)
    last = _last_seq(events, upto)
    frame = GridFrame(scenario)
    analysis = _analysis_of(scenario)
    shown = winsets_visible_to(scenario, viewer)
    first_issue, second_issue = scenario.issues
    chiefs = {c.chief.key: index for index, c in enumerate(scenario.countries)}
    paths: dict[str, list[tuple[int, e.ProposalMade]]] = {key: [] for key in chiefs}
    tentative: list[tuple[int, Point, int]] = []
    in_force: tuple[int, Point] | None = None
    for moment in _moments(scenario, events, viewer, upto):
        seen = moment.seen
        if isinstance(seen, e.ProposalMade) and seen.by in paths:
            paths[seen.by].append((moment.seq, seen))
        elif isinstance(seen, e.TentativeAgreement):
            tentative.append((moment.seq, seen.values, seen.proposal_id))
        elif isinstance(seen, e.AgreementInForce):
            in_force = (moment.seq, seen.values)

    width = GRID_LEFT + GRID_PLOT + 24 + GRID_LEGEND_WIDTH
    height = GRID_TOP + GRID_PLOT + 64
    body: list[str] = []
    defs: list[str] = [
        _hatch(f"grid-hatch-{c.key}", _style(i)[0], HATCH_ANGLES[i % len(HATCH_ANGLES)])
        for i, c in enumerate(scenario.countries)
        if c.key in shown
    ]
    defs.append(
        _tag(
            "pattern",
            {"id": "grid-zone", "width": 6, "height": 6, "patternUnits": "userSpaceOnUse"},
            _tag("rect", {"width": 6, "height": 6, "fill": "#fff4d6"}),
            _tag("circle", {"cx": 3, "cy": 3, "r": 1.3, "fill": "#7a4b00"}),
        )
    )
    for i, country in enumerate(scenario.countries):
        colour = _style(i)[0]
        defs.append(
            _tag(
                "marker",
                {
                    "id": f"grid-arrow-{country.key}",
                    "viewBox": "0 0 10 10",
                    "refX": 9,
                    "refY": 5,
                    "markerWidth": 10,
                    "markerHeight": 10,
                    "orient": "auto-start-reverse",
                    "markerUnits": "userSpaceOnUse",
                },
                _tag("path", {"d": "M0 0L10 5L0 10z", "fill": colour}),
            )
        )
    body.append(_tag("defs", {}, *defs))
    body.append(
        _label(
            GRID_LEFT,
            24,
            "The issue grid: win-sets and proposals",
            size=15,
            **{"font-weight": "600"},
        )
    )
    body.append(
        _tag(
            "rect",
            {"x": GRID_LEFT, "y": GRID_TOP, "width": GRID_PLOT, "height": GRID_PLOT}
            | {"fill": "#f8f9fa", "stroke": MUTED_COLOUR},
        )
    )

    legend: list[tuple[str, str]] = []
    words: list[str] = []
    for i, country in enumerate(scenario.countries):
        if country.key not in shown:
            continue
        colour, dash, _ = _style(i)
        mask = analysis.winsets[country.key]
        body.append(
            _tag(
                "g",
                {"class": "winset", "data-country": country.key, "data-points": int(mask.sum())},
                *_runs(mask, frame, {"fill": f"url(#grid-hatch-{country.key})", "opacity": 0.55}),
                _tag(
                    "path",
                    {
                        "d": _outline(mask, frame),
                        "stroke": colour,
                        "stroke-width": 2,
                        "stroke-dasharray": dash or None,
                        "fill": "none",
                    },
                ),
            )
        )
        legend.append(
            (
                _tag(
                    "rect",
                    {"width": 22, "height": 14, "fill": f"url(#grid-hatch-{country.key})"}
                    | {"stroke": colour, "stroke-width": 2, "stroke-dasharray": dash or None},
                ),
                f"{country.name}'s win-set",
            )
        )
        words.append(f"{country.name}'s win-set has {int(mask.sum())} of the grid's points")
    if scenario.countries and all(c.key in shown for c in scenario.countries):
        zone = analysis.zone
        body.append(
            _tag(
                "g",
                {"class": "zone", "data-points": int(zone.sum())},
                *_runs(zone, frame, {"fill": "url(#grid-zone)", "opacity": 0.9}),
                _tag(
                    "path",
                    {"d": _outline(zone, frame), "stroke": "#7a4b00", "stroke-width": 3}
                    | {"fill": "none"},
                ),
            )
        )
        legend.append(
            (
                _tag(
                    "rect",
                    {"width": 22, "height": 14, "fill": "url(#grid-zone)"}
                    | {"stroke": "#7a4b00", "stroke-width": 3},
                ),
                "zone of agreement",
            )
        )
        words.append(
            f"the zone of agreement has {int(zone.sum())} points"
            if zone.any()
            else "the zone of agreement is empty"
        )
    elif not shown:
        words.append("no win-set is shown to this viewer")

    # Axes: ticks on grid values, at most about ten labels per axis.
    axes: list[str] = []
    for axis, issue in enumerate(scenario.issues):
        stride = max(1, math.ceil(issue.levels / 10))
        for index in range(0, issue.levels, stride):
            value = _number(issue.value_at(index))
            if axis == 0:
                x = frame.x_of_index(index)
                axes.append(
                    _tag(
                        "line",
                        {
                            "x1": x,
                            "x2": x,
                            "y1": GRID_TOP + GRID_PLOT,
                            "y2": GRID_TOP + GRID_PLOT + 4,
                        }
                        | {"stroke": MUTED_COLOUR},
                    )
                )
                axes.append(
                    _label(
                        x, GRID_TOP + GRID_PLOT + 17, value, size=11, **{"text-anchor": "middle"}
                    )
                )
            else:
                y = frame.y_of_index(index)
                axes.append(
                    _tag(
                        "line",
                        {
                            "x1": GRID_LEFT - 4,
                            "x2": GRID_LEFT,
                            "y1": y,
                            "y2": y,
                            "stroke": MUTED_COLOUR,
                        },
                    )
                )
                axes.append(_label(GRID_LEFT - 7, y + 4, value, size=11, **{"text-anchor": "end"}))
    unit = f" ({first_issue.unit})" if first_issue.unit else ""
    axes.append(
        _label(
            GRID_LEFT + GRID_PLOT / 2,
            GRID_TOP + GRID_PLOT + 38,
            f"{first_issue.label}{unit}",
            **{"text-anchor": "middle", "class": "axis-label"},
        )
    )
    unit = f" ({second_issue.unit})" if second_issue.unit else ""
    middle = GRID_TOP + GRID_PLOT / 2
    axes.append(
        _label(
            20,
            middle,
            f"{second_issue.label}{unit}",
            transform=f"rotate(-90 20 {_number(middle)})",
            **{"text-anchor": "middle", "class": "axis-label"},
        )
    )
    body.append(_tag("g", {"class": "axes"}, *axes))

    marks: list[str] = []
    if scenario.no_agreement is not None:
        x, y = frame.position(scenario.no_agreement)
        marks.append(
            _tag(
                "g",
                {"class": "no-agreement"},
                _marker_shape("cross", x, y, 12, TEXT_COLOUR),
            )
        )
        legend.append((_marker_shape("cross", 11, 7, 12, TEXT_COLOUR), "no agreement (status quo)"))
    if viewer in {m.key for m in scenario.members}:
        me = scenario.member(viewer)
        x, y = frame.position(me.ideal)
        marks.append(_tag("g", {"class": "own-ideal"}, _marker_shape("plus", x, y, 14, "#16445f")))
        legend.append((_marker_shape("plus", 11, 7, 14, "#16445f"), "your ideal point"))

    for key, made in paths.items():
        if not made:
            continue
        index = chiefs[key]
        country = scenario.countries[index]
        colour, dash, shape = _style(index)
        points = [frame.position(p.values) for _, p in made]
        group: list[str] = []
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            length = math.hypot(x1 - x0, y1 - y0)
            if length < 1e-6:
                continue
            # Stop short of the next marker so the arrowhead stays visible beside it.
            shorten = min(7.0, length / 2)
            x_end = x1 - (x1 - x0) / length * shorten
            y_end = y1 - (y1 - y0) / length * shorten
            group.append(
                _tag(
                    "line",
                    {"x1": x0, "y1": y0, "x2": x_end, "y2": y_end, "stroke": colour}
                    | {
                        "stroke-width": 2,
                        "stroke-dasharray": dash or None,
                        "marker-end": f"url(#grid-arrow-{country.key})",
                        "class": "step",
                    },
                )
            )
        for order, ((seq, proposal), (x, y)) in enumerate(zip(made, points, strict=True), 1):
            group.append(
                _marker_shape(
                    shape,
                    x,
                    y,
                    10,
                    colour,
                    **{
                        "class": "proposal",
                        "data-proposal": proposal.proposal_id,
                        "data-seq": seq,
                        "data-values": ",".join(_number(v) for v in proposal.values),
                    },
                )
            )
            group.append(
                _label(
                    x + 7,
                    y - 6,
                    str(order),
                    size=10,
                    fill=colour,
                    **{"font-weight": "700", "paint-order": "stroke", "stroke": "#ffffff"}
                    | {"stroke-width": 3},
                )
            )
        marks.append(
            _tag("g", {"class": "proposals", "data-by": key, "data-country": country.key}, *group)
        )
        legend.append(
            (
                _tag(
                    "g",
                    {},
                    _tag(
                        "line",
                        {"x1": 0, "x2": 22, "y1": 7, "y2": 7, "stroke": colour, "stroke-width": 2}
                        | {"stroke-dasharray": dash or None},
                    ),
                    _marker_shape(shape, 11, 7, 9, colour),
                ),
                f"{country.chief.name}'s proposals, numbered in order",
            )
        )
        words.append(
            f"{country.chief.name} ({country.name}) made {len(made)} proposal"
            f"{'s' if len(made) != 1 else ''} the viewer saw: "
            + "; then ".join(_point_words(scenario, p.values) for _, p in made)
        )
    for seq, values, proposal_id in tentative:
        x, y = frame.position(values)
        marks.append(
            _tag(
                "g",
                {"class": "tentative", "data-seq": seq, "data-proposal": proposal_id},
                _marker_shape(
                    "diamond", x, y, 18, "none", stroke=TEXT_COLOUR, **{"stroke-width": 2}
                ),
            )
        )
    if tentative:
        legend.append(
            (
                _marker_shape(
                    "diamond", 11, 7, 14, "none", stroke=TEXT_COLOUR, **{"stroke-width": 2}
                ),
                "tentative agreement",
            )
        )
        words.append(
            "tentative agreements at "
            + "; ".join(_point_words(scenario, values) for _, values, _ in tentative)
        )
    if in_force is not None:
        x, y = frame.position(in_force[1])
        star = _star(x, y, 11)
        marks.append(
            _tag(
                "g",
                {
                    "class": "agreed",
                    "data-seq": in_force[0],
                    "data-values": ",".join(_number(v) for v in in_force[1]),
                },
                _tag("polygon", {"points": star, "fill": "#f0b429", "stroke": TEXT_COLOUR}),
            )
        )
        legend.append(
            (
                _tag(
                    "polygon", {"points": _star(11, 7, 9), "fill": "#f0b429", "stroke": TEXT_COLOUR}
                ),
                "the agreement in force",
            )
        )
        words.append(f"the agreement in force is {_point_words(scenario, in_force[1])}")
    body.append(_tag("g", {"class": "marks"}, *marks))

    legend_x = GRID_LEFT + GRID_PLOT + 24
    items = []
    for row, (swatch, text) in enumerate(legend):
        y = GRID_TOP + 6 + row * 32
        items.append(
            _tag("g", {"transform": f"translate({_number(legend_x)} {_number(y)})"}, swatch)
        )
        items.extend(_wrapped_label(legend_x + 30, y + 11, text, 30))
    body.append(_tag("g", {"class": "legend"}, *items))

    height = max(height, GRID_TOP + 12 + len(legend) * 32)
    title = f"Issue grid of {scenario.title}"
    desc = (
        f"{first_issue.label} across, {second_issue.label} up; "
        f"{_viewer_words(scenario, viewer)}, up to seq {last}. " + "; ".join(words) + "."
    )
    return _document("issue-grid", width, height, title, desc, body)


def _wrapped_label(x: float, y: float, text: str, limit: int) -> list[str]:
    """A legend label on one line, or two when longer than ``limit`` characters."""
    if len(text) <= limit:
        return [_label(x, y, text, size=12)]
    cut = text.rfind(" ", 0, limit)
    cut = cut if cut > 0 else limit
    return [_label(x, y - 6, text[:cut], size=12), _label(x, y + 8, text[cut:].strip(), size=12)]


def _star(x: float, y: float, radius: float) -> str:
    points = []
    for k in range(10):
        angle = math.pi / 2 + k * math.pi / 5
        r = radius if k % 2 == 0 else radius * 0.45
        points.append(f"{_number(x + r * math.cos(angle))},{_number(y - r * math.sin(angle))}")
    return " ".join(points)


ChartFunction = Callable[..., str]

#: Chart name (as in the replay's URLs) -> function.
CHARTS: dict[str, ChartFunction] = {
    "issue-grid": issue_grid_svg,
    "surplus": surplus_over_time_svg,
    "utility": utility_over_time_svg,
    "votes": vote_breakdown_svg,
}


def charts_for(scenario: Scenario) -> list[str]:
    """The chart names that apply to ``scenario`` (the issue grid needs exactly two issues)."""
    return [name for name in CHART_NAMES if name != "issue-grid" or len(scenario.issues) == 2]


# --------------------------------------------------------------------------------------------
# Charts across the games of a class session (the session's debrief, ``negotiation.debrief``).
# They take numbers the debrief computed with ``engine.analytics``, not a log: nothing here
# computes an analytic.


@dataclass(frozen=True, slots=True)
class SharePoint:
    """One country in one game whose agreement entered into force: its win-set as a share of
    the issue grid (``winset``, 0..1: ``winset_points`` of the grid's points) and its share of
    the joint gains of the agreement (``share``, normally 0..1). ``style`` is the country's
    index in the scenario, which picks its colour and marker."""

    game: str
    country: str
    country_name: str
    style: int
    winset: float
    winset_points: int
    share: float


SCATTER_WIDTH = 680
SCATTER_LEFT = 72
SCATTER_RIGHT = 24
SCATTER_TOP = 44
SCATTER_PLOT_HEIGHT = 300
#: Points drawn at the same spot are spread sideways by this much (pixels) so each shows.
SCATTER_DODGE = 9


def _percent(value: float) -> str:
    return f"{_number(value * 100)}%"


def share_vs_winset_svg(
    points: Sequence[SharePoint],
    *,
    reading: str,
    equal_share: float | None = None,
    trend: tuple[float, float] | None = None,
) -> str:
    """A scatter of each country's share of the joint gains (up) against the size of its
    win-set (across), one point per country per game with an agreement in force: Schelling's
    conjecture says the smaller win-set takes the larger share.

    ``reading`` (a sentence the caller computed, e.g. the correlation and its n) goes into the
    description; ``equal_share`` draws the equal split as a dashed line; ``trend`` (slope and
    intercept of share against win-set share) draws a least-squares line across the points'
    range. Points at the same spot are spread sideways by a few pixels; their exact values are
    in ``data-winset`` and ``data-share``.
    """
    plot_width = SCATTER_WIDTH - SCATTER_LEFT - SCATTER_RIGHT
    bottom = SCATTER_TOP + SCATTER_PLOT_HEIGHT
    shares = [p.share for p in points]
    y_low = min([0.0, *shares])
    y_high = max([1.0, *shares])
    # Across: from 0 (so sizes compare as proportions) to a tick past the largest win-set.
    widest = max((p.winset for p in points), default=1.0)
    x_step = 0.1 if widest <= 0.6 else 0.2
    x_high = round(min(1.0, (math.floor(widest / x_step) + 1) * x_step), 10)

    def x_of(value: float) -> float:
        return SCATTER_LEFT + value / x_high * plot_width

    def y_of(value: float) -> float:
        return bottom - (value - y_low) / (y_high - y_low) * SCATTER_PLOT_HEIGHT

    countries: dict[str, tuple[str, int, int]] = {}
    for point in points:
        countries.setdefault(point.country, (point.country_name, point.style, point.winset_points))
    legend_entries = len(countries) + (1 if equal_share is not None else 0) + (1 if trend else 0)
    legend_rows = math.ceil(legend_entries / 2)
    # One more row for the note on points drawn side by side.
    height = bottom + 56 + (legend_rows + 1) * LEGEND_ROW + 10
    title = "Share of the joint gains against win-set size"
    body: list[str] = [_label(SCATTER_LEFT, 24, title, size=15, **{"font-weight": "600"})]

    axes: list[str] = []
    for tick in _ticks(y_low, y_high):
        y = y_of(tick)
        axes.append(
            _tag(
                "line",
                {"x1": SCATTER_LEFT, "x2": SCATTER_LEFT + plot_width, "y1": y, "y2": y}
                | {"stroke": GRID_COLOUR, "stroke-width": 1},
            )
        )
        axes.append(
            _label(SCATTER_LEFT - 6, y + 4, _percent(tick), size=11, **{"text-anchor": "end"})
        )
    for tick in _ticks(0.0, x_high):
        x = x_of(tick)
        axes.append(
            _tag(
                "line",
                {"x1": x, "x2": x, "y1": SCATTER_TOP, "y2": bottom}
                | {"stroke": GRID_COLOUR, "stroke-width": 1},
            )
        )
        axes.append(_label(x, bottom + 17, _percent(tick), size=11, **{"text-anchor": "middle"}))
    axes.append(
        _tag(
            "path",
            {
                "d": f"M{_number(SCATTER_LEFT)} {_number(SCATTER_TOP)}V{_number(bottom)}H{_number(SCATTER_LEFT + plot_width)}",
                "stroke": MUTED_COLOUR,
                "fill": "none",
            },
        )
    )
    axes.append(
        _label(
            SCATTER_LEFT + plot_width / 2,
            bottom + 36,
            "Win-set size: share of the issue grid's deals the country would ratify",
            **{"text-anchor": "middle"},
        )
    )
    middle = SCATTER_TOP + SCATTER_PLOT_HEIGHT / 2
    axes.append(
        _label(
            18,
            middle,
            "Share of the joint gains",
            transform=f"rotate(-90 18 {_number(middle)})",
            **{"text-anchor": "middle"},
        )
    )
    body.append(_tag("g", {"class": "axes"}, *axes))

    if equal_share is not None:
        y = y_of(equal_share)
        body.append(
            _tag(
                "g",
                {"class": "equal-share"},
                _tag(
                    "line",
                    {"x1": SCATTER_LEFT, "x2": SCATTER_LEFT + plot_width, "y1": y, "y2": y}
                    | {"stroke": TEXT_COLOUR, "stroke-width": 1.2, "stroke-dasharray": "3 3"},
                ),
            )
        )
    if trend is not None and points:
        slope, intercept = trend
        low = min(p.winset for p in points)
        high = max(p.winset for p in points)
        body.append(
            _tag(
                "g",
                {"class": "trend"},
                _tag(
                    "line",
                    {
                        "x1": x_of(low),
                        "x2": x_of(high),
                        "y1": y_of(intercept + slope * low),
                        "y2": y_of(intercept + slope * high),
                    }
                    | {"stroke": MUTED_COLOUR, "stroke-width": 2, "stroke-dasharray": "8 4"},
                ),
            )
        )

    seen: dict[tuple[int, int], int] = {}
    crowd: dict[tuple[int, int], int] = {}
    for point in points:
        spot = (round(x_of(point.winset)), round(y_of(point.share)))
        crowd[spot] = crowd.get(spot, 0) + 1
    marks: list[str] = []
    for point in points:
        x, y = x_of(point.winset), y_of(point.share)
        spot = (round(x), round(y))
        order = seen.get(spot, 0)
        seen[spot] = order + 1
        x += (order - (crowd[spot] - 1) / 2) * SCATTER_DODGE
        colour, _, shape = _style(point.style)
        marks.append(
            _marker_shape(
                shape,
                x,
                y,
                11,
                colour,
                **{
                    "class": "point",
                    "data-game": point.game,
                    "data-country": point.country,
                    "data-winset": _number(point.winset * 100) + "%",
                    "data-share": _number(point.share * 100) + "%",
                },
            )
        )
    body.append(_tag("g", {"class": "points"}, *marks))
    dodged = any(count > 1 for count in crowd.values())
    if not points:
        body.append(
            _label(
                SCATTER_LEFT + plot_width / 2,
                SCATTER_TOP + SCATTER_PLOT_HEIGHT / 3,
                "No game has an agreement in force yet.",
                size=13,
                fill=MUTED_COLOUR,
                **{"text-anchor": "middle", "class": "empty"},
            )
        )

    legend: list[str] = []
    legend_top = bottom + 58
    entries: list[tuple[str, str]] = []
    for name, style, size in countries.values():
        colour, _, shape = _style(style)
        entries.append((_marker_shape(shape, 14, 0, 11, colour), f"{name} (win-set: {size} deals)"))
    if equal_share is not None:
        entries.append(
            (
                _tag(
                    "line",
                    {"x1": 0, "x2": 28, "y1": 0, "y2": 0, "stroke": TEXT_COLOUR}
                    | {"stroke-width": 1.2, "stroke-dasharray": "3 3"},
                ),
                f"equal split ({_percent(equal_share)})",
            )
        )
    if trend is not None and points:
        entries.append(
            (
                _tag(
                    "line",
                    {"x1": 0, "x2": 28, "y1": 0, "y2": 0, "stroke": MUTED_COLOUR}
                    | {"stroke-width": 2, "stroke-dasharray": "8 4"},
                ),
                "least-squares trend",
            )
        )
    for index, (swatch, text) in enumerate(entries):
        x = SCATTER_LEFT + (index % 2) * (plot_width / 2)
        y = legend_top + (index // 2) * LEGEND_ROW
        legend.append(_tag("g", {"transform": f"translate({_number(x)} {_number(y)})"}, swatch))
        legend.append(_label(x + 36, y + 4, text))
    if dodged:
        legend.append(
            _label(
                SCATTER_LEFT,
                legend_top + legend_rows * LEGEND_ROW,
                "Points at the same spot (equal agreements) are drawn side by side.",
                size=11,
                fill=MUTED_COLOUR,
            )
        )
    if legend:
        body.append(_tag("g", {"class": "legend"}, *legend))

    words = "; ".join(
        f"{p.country_name} in {p.game}: win-set {_percent(p.winset)}, share {_percent(p.share)}"
        for p in points[:40]
    )
    if len(points) > 40:
        words += f"; and {len(points) - 40} more"
    desc = (
        f"{title}: one point per country per game with an agreement in force. {reading}"
        + (f" Points: {words}." if points else "")
        + (" Points at the same spot are drawn side by side." if dodged else "")
    )
    return _document("share-vs-winset", SCATTER_WIDTH, height, title, desc, body)


@dataclass(frozen=True, slots=True)
class TimingBar:
    """One game: seconds from its start to its first tentative agreement and to the first
    entry into force (None: not reached); ``note`` says why when neither was reached."""

    game: str
    tentative: float | None
    in_force: float | None
    note: str = ""


TIMING_WIDTH = 680
TIMING_LABEL = 150
TIMING_RIGHT = 90
TIMING_TOP = 56
TIMING_BAR = 13
TIMING_ROW = 2 * TIMING_BAR + 16


def duration_words(seconds: float) -> str:
    """A duration for people: ``45 s``, ``3 min 05 s``, ``1 h 02 min``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, rest = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def agreement_times_svg(rows: Sequence[TimingBar]) -> str:
    """Per game, a bar from its start to its first tentative agreement and one to the first
    entry into force (hatched), on one time axis in seconds or minutes."""
    values = [v for row in rows for v in (row.tentative, row.in_force) if v is not None]
    longest = max(values, default=0.0)
    in_minutes = longest >= 120
    unit = 60.0 if in_minutes else 1.0
    # The axis ends on a tick at or past the longest time, so every bar ends inside it.
    step = _nice_step(max(longest / unit, 1.0))
    high = max(1, math.ceil(longest / unit / step - 1e-9)) * step
    ticks = _ticks(0.0, high)
    plot_width = TIMING_WIDTH - TIMING_LABEL - TIMING_RIGHT
    bottom = TIMING_TOP + max(1, len(rows)) * TIMING_ROW
    height = bottom + 78
    title = "Time from the start to agreement, per game"
    body: list[str] = [_label(16, 24, title, size=15, **{"font-weight": "600"})]
    tentative_colour, in_force_colour = PALETTE[0], PALETTE[1]
    body.append(_tag("defs", {}, _hatch("timing-hatch", in_force_colour, 45)))

    def x_of(seconds: float) -> float:
        return TIMING_LABEL + seconds / unit / high * plot_width

    axes: list[str] = []
    for tick in ticks:
        x = TIMING_LABEL + tick / high * plot_width
        axes.append(
            _tag(
                "line",
                {"x1": x, "x2": x, "y1": TIMING_TOP - 6, "y2": bottom}
                | {"stroke": GRID_COLOUR, "stroke-width": 1},
            )
        )
        axes.append(_label(x, bottom + 17, _number(tick), size=11, **{"text-anchor": "middle"}))
    axes.append(
        _tag(
            "path",
            {
                "d": f"M{_number(TIMING_LABEL)} {_number(TIMING_TOP - 6)}V{_number(bottom)}H{_number(TIMING_LABEL + plot_width)}",
                "stroke": MUTED_COLOUR,
                "fill": "none",
            },
        )
    )
    axes.append(
        _label(
            TIMING_LABEL + plot_width / 2,
            bottom + 36,
            f"{'Minutes' if in_minutes else 'Seconds'} from the game's start",
            **{"text-anchor": "middle"},
        )
    )
    body.append(_tag("g", {"class": "axes"}, *axes))

    words: list[str] = []
    for index, row in enumerate(rows):
        top = TIMING_TOP + index * TIMING_ROW
        parts: list[str] = [
            _label(TIMING_LABEL - 8, top + TIMING_BAR + 4, row.game, **{"text-anchor": "end"})
        ]
        said: list[str] = []
        for offset, (seconds, fill, kind, what) in enumerate(
            (
                (row.tentative, tentative_colour, "tentative", "tentative agreement"),
                (row.in_force, "url(#timing-hatch)", "in-force", "entry into force"),
            )
        ):
            if seconds is None:
                continue
            y = top + offset * (TIMING_BAR + 2)
            width = max(2.0, x_of(seconds) - TIMING_LABEL)
            parts.append(
                _tag(
                    "rect",
                    {"x": TIMING_LABEL, "y": y, "width": width, "height": TIMING_BAR}
                    | {
                        "fill": fill,
                        "stroke": tentative_colour if offset == 0 else in_force_colour,
                        "class": f"bar bar--{kind}",
                        "data-seconds": _number(seconds),
                    },
                )
            )
            parts.append(
                _label(
                    TIMING_LABEL + width + 5,
                    y + TIMING_BAR - 2,
                    duration_words(seconds),
                    size=11,
                )
            )
            said.append(f"{what} after {duration_words(seconds)}")
        if not said:
            parts.append(
                _label(
                    TIMING_LABEL + 6,
                    top + TIMING_BAR + 4,
                    row.note or "no tentative agreement",
                    size=12,
                    fill=MUTED_COLOUR,
                    **{"class": "empty"},
                )
            )
            said.append(row.note or "no tentative agreement")
        body.append(_tag("g", {"class": "game", "data-game": row.game}, *parts))
        words.append(f"{row.game}: " + ", ".join(said))
    if not rows:
        body.append(
            _label(
                TIMING_LABEL + 6,
                TIMING_TOP + TIMING_BAR,
                "The session has no games.",
                size=13,
                fill=MUTED_COLOUR,
                **{"class": "empty"},
            )
        )

    legend_y = bottom + 60
    body.append(
        _tag(
            "g",
            {"class": "legend"},
            _tag(
                "rect",
                {"x": TIMING_LABEL, "y": legend_y - 11, "width": 22, "height": 13}
                | {"fill": tentative_colour, "stroke": tentative_colour},
            ),
            _label(TIMING_LABEL + 28, legend_y, "first tentative agreement", size=12),
            _tag(
                "rect",
                {"x": TIMING_LABEL + 220, "y": legend_y - 11, "width": 22, "height": 13}
                | {"fill": "url(#timing-hatch)", "stroke": in_force_colour},
            ),
            _label(TIMING_LABEL + 248, legend_y, "first entry into force", size=12),
        )
    )
    desc = f"{title}. " + ("; ".join(words) + "." if words else "The session has no games.")
    return _document("agreement-times", TIMING_WIDTH, height, title, desc, body)
