"""``python manage.py analyze_scenario <slug-or-path> [--json] [--summary]``.

Checks a scenario and prints its win-sets, zone of agreement, playable zone, Nash point(s) and
harmony (DESIGN §3), with a text map of the grid for two-issue scenarios.

The argument is a scenario file when such a file exists; otherwise a slug, looked up first in the
``negotiation.Scenario`` table (when the model exists and the table is reachable), then among the
built-in files. A file that is refused, or a slug that names nothing, exits with status 2 and
writes one problem per line to stderr (no traceback).

``--json`` prints exactly one JSON object::

    {"scenario": slug, "points": N,
     "countries": {KEY: {"winset_size": n, "winset": [point, ...]}},
     "zone_size": n, "zone": [...], "playable_zone_size": n, "playable_zone": [...],
     "nash": [...]}

A point is a list of issue values in the scenario's issue order; lists are sorted ascending and
whole numbers print as integers. ``--summary`` leaves out every point list: the keys ``winset``,
``zone``, ``playable_zone`` and ``nash`` (the Nash points are a point list too); the sizes stay.
Without ``--json``, ``--summary`` leaves out the map and the list of Nash points.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from django.apps import apps
from django.core.exceptions import FieldError
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from negotiation.engine.scenario import (
    Issue,
    Problem,
    Scenario,
    ScenarioError,
    builtin_scenario_paths,
    load_builtin,
    load_scenario_file,
    plain_number,
    scenario_from_dict,
)
from negotiation.engine.winset import Analysis, BoolArray, FloatArray, IntArray, pivotal_surplus

#: The model of scenarios stored in the database (``definition`` holds ``Scenario.to_dict()``).
STORED_SCENARIO_MODEL: str = "negotiation.Scenario"
#: Exit status for a refused file or an unknown slug (``CommandError`` would exit with 1).
EXIT_REFUSED = 2
#: A map is drawn only when both issues have at most this many levels.
MAP_MAX_LEVELS = 80
#: The human report lists at most this many Nash points.
NASH_POINTS_SHOWN = 10
#: Map symbols other than the countries' letters.
OUTSIDE, SEVERAL, ZONE, PLAYABLE, NASH = ".", ":", "+", "*", "N"
RESERVED_SYMBOLS = frozenset({OUTSIDE, SEVERAL, ZONE, PLAYABLE, NASH})
#: Above this magnitude, issue values are computed with Python integers instead of int64.
INT64_SAFE = 2**62

PointValue = int | float


class ScenarioNotFoundError(Exception):
    """The argument names neither a file nor a stored or built-in scenario."""


# --------------------------------------------------------------------------------------------
# Finding the scenario


def stored_scenario(slug: str) -> Scenario | None:
    """The scenario stored under ``slug`` in the ``negotiation.Scenario`` table, if any.

    Returns None when the model does not exist, the table cannot be reached or has no such row.
    Raises ``ScenarioError`` when the stored definition is not a valid scenario.
    """
    try:
        model = apps.get_model(STORED_SCENARIO_MODEL)
    except LookupError:
        return None
    try:
        row = model._default_manager.filter(slug=slug).first()
    except (DatabaseError, FieldError):
        return None
    if row is None:
        return None
    definition: object = getattr(row, "definition", None)
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as error:
            raise ScenarioError(
                [Problem(f"stored scenario {slug!r}", f"is not valid JSON: {error.msg}")]
            ) from None
    if not isinstance(definition, Mapping):
        raise ScenarioError([Problem(f"stored scenario {slug!r}", "has no definition mapping")])
    return scenario_from_dict(definition)


def resolve_scenario(argument: str) -> Scenario:
    """Load the scenario a command-line argument names: a file, else a stored or built-in slug.

    Raises ``ScenarioError`` for a refused file or definition and ``ScenarioNotFoundError`` when the
    argument names nothing.
    """
    path = Path(argument)
    if path.exists():
        return load_scenario_file(path)
    if path.suffix.lower() in {".yaml", ".yml", ".json"} or "/" in argument or "\\" in argument:
        raise ScenarioNotFoundError(f"{argument}: no such file")
    stored = stored_scenario(argument)
    if stored is not None:
        return stored
    try:
        return load_builtin(argument)
    except KeyError:
        builtins = ", ".join(p.stem for p in builtin_scenario_paths()) or "none"
        raise ScenarioNotFoundError(
            f"{argument}: no such file, and no stored or built-in scenario has this slug "
            f"(built-in: {builtins})"
        ) from None


# --------------------------------------------------------------------------------------------
# Points as plain values


def issue_values_at(issue: Issue, axis: FloatArray, levels: IntArray) -> list[PointValue]:
    """The values of ``issue`` at the given level indices, whole numbers as ``int``."""
    if issue.min.denominator == 1 and issue.step.denominator == 1:
        low, step = int(issue.min), int(issue.step)
        return [low + level * step for level in levels.tolist()]
    if issue.levels <= levels.size:
        table = [plain_number(value) for value in axis.tolist()]
        return [table[level] for level in levels.tolist()]
    return [plain_number(value) for value in axis[levels].tolist()]


def point_list(analysis: Analysis, mask_or_indices: BoolArray | IntArray) -> list[list[PointValue]]:
    """The grid points of a mask (or flat indices), ascending, each a list of issue values."""
    if mask_or_indices.dtype == np.bool_:
        indices = np.flatnonzero(mask_or_indices)
    else:
        indices = np.sort(np.asarray(mask_or_indices, dtype=np.int64))
    scenario = analysis.scenario
    if indices.size == 0:
        return []
    coordinates = np.unravel_index(indices, scenario.grid_shape)
    if all(
        issue.min.denominator == 1
        and issue.step.denominator == 1
        and max(abs(issue.min), abs(issue.max)) < INT64_SAFE
        for issue in scenario.issues
    ):
        # Every value is a whole number: one int64 table, converted in a single call.
        columns = [
            int(issue.min) + np.asarray(level, dtype=np.int64) * int(issue.step)
            for issue, level in zip(scenario.issues, coordinates, strict=True)
        ]
        whole: list[list[PointValue]] = np.stack(columns, axis=1).tolist()
        return whole
    values = [
        issue_values_at(issue, analysis.axes[j], np.asarray(coordinates[j]))
        for j, issue in enumerate(scenario.issues)
    ]
    return [list(point) for point in zip(*values, strict=True)]


def json_chunks(analysis: Analysis, *, summary: bool) -> Iterator[str]:
    """The ``--json`` object (see the module docstring) as consecutive pieces of text.

    Each point list is encoded and handed over on its own, so a million-point grid never holds
    all its lists at once. ``summary`` leaves out the point lists.
    """
    scenario = analysis.scenario
    yield f'{{"scenario": {json.dumps(scenario.slug)}, "points": {scenario.grid_size}'
    yield ', "countries": {'
    for position, country in enumerate(scenario.countries):
        mask = analysis.winsets[country.key]
        separator = ", " if position else ""
        yield f'{separator}{json.dumps(country.key)}: {{"winset_size": {np.count_nonzero(mask)}'
        if not summary:
            yield f', "winset": {json.dumps(point_list(analysis, mask))}'
        yield "}"
    yield f'}}, "zone_size": {np.count_nonzero(analysis.zone)}'
    if not summary:
        yield f', "zone": {json.dumps(point_list(analysis, analysis.zone))}'
    yield f', "playable_zone_size": {np.count_nonzero(analysis.playable_zone)}'
    if not summary:
        yield f', "playable_zone": {json.dumps(point_list(analysis, analysis.playable_zone))}'
        yield f', "nash": {json.dumps(point_list(analysis, analysis.nash_indices))}'
    yield "}"


def json_report(analysis: Analysis, *, summary: bool) -> dict[str, Any]:
    """The ``--json`` object as a dict (the decoded text of ``json_chunks``)."""
    report: dict[str, Any] = json.loads("".join(json_chunks(analysis, summary=summary)))
    return report


# --------------------------------------------------------------------------------------------
# The report for a person


def format_value(value: float | Fraction) -> str:
    return str(plain_number(value))


def format_point(point: Sequence[PointValue]) -> str:
    return "(" + ", ".join(str(v) for v in point) + ")"


def format_surplus(value: float) -> str:
    """A pivotal surplus rounded to two decimals (it carries the 1e-9 of the tie rule)."""
    return str(plain_number(round(value, 2)))


def share(count: int, total: int) -> str:
    percent = 100 * count / total
    if 0 < percent < 0.1:
        return "<0.1%"
    return f"{percent:.1f}%"


def points_text(count: int, total: int) -> str:
    noun = "point" if count == 1 else "points"
    return f"{count:,} {noun} ({share(count, total)} of the grid)"


def country_symbols(scenario: Scenario) -> dict[str, str]:
    """One map character per country: a letter of its key (or name) not used for anything else."""
    symbols: dict[str, str] = {}
    taken = set(RESERVED_SYMBOLS)
    for index, country in enumerate(scenario.countries):
        candidates = [ch.upper() for ch in country.key + country.name if ch.isalnum()]
        candidates += [str(digit) for digit in range(1, 10)] + [str(index)]
        symbol = next(ch for ch in candidates if ch not in taken)
        symbols[country.key] = symbol
        taken.add(symbol)
    return symbols


def issue_line(issue: Issue) -> str:
    unit = f" ({issue.unit})" if issue.unit else ""
    return (
        f"  {issue.key}: {issue.label}, {format_value(issue.min)} to {format_value(issue.max)} "
        f"in steps of {format_value(issue.step)}, {issue.levels:,} levels{unit}"
    )


def grid_map(analysis: Analysis, nash_indices: IntArray) -> list[str]:
    """Lines of the text map of a two-issue grid: second issue up, first issue across."""
    scenario = analysis.scenario
    across, up = scenario.issues
    if across.levels > MAP_MAX_LEVELS or up.levels > MAP_MAX_LEVELS:
        return [
            f"No map: the grid is {across.levels:,} x {up.levels:,} levels; a map is drawn "
            f"when both issues have at most {MAP_MAX_LEVELS} levels."
        ]
    symbols = country_symbols(scenario)
    countries = scenario.countries
    winsets = [analysis.winsets[c.key] for c in countries]
    nash = np.zeros(scenario.grid_shape, dtype=np.bool_)
    nash.flat[nash_indices] = True

    def cell(i: int, j: int) -> str:
        if nash[i, j]:
            return NASH
        if analysis.playable_zone[i, j]:
            return PLAYABLE
        if analysis.zone[i, j]:
            return ZONE
        inside = [c.key for c, mask in zip(countries, winsets, strict=True) if mask[i, j]]
        if not inside:
            return OUTSIDE
        return symbols[inside[0]] if len(inside) == 1 else SEVERAL

    up_labels = [format_value(v) for v in analysis.axes[1].tolist()]
    label_width = max(len(label) for label in up_labels)
    lines = [
        f"Map: {up.key} ({up.label}) up, {across.key} ({across.label}) across",
        f"{'':>{label_width}}   {up.key}",
    ]
    for j in reversed(range(up.levels)):
        cells = " ".join(cell(i, j) for i in range(across.levels))
        lines.append(f"{up_labels[j]:>{label_width}} | {cells}")
    lines.append(f"{'':>{label_width}} +-" + "-" * (2 * across.levels - 1))
    axis = [" "] * (2 * across.levels + 8)
    next_free = 0
    for i, value in enumerate(analysis.axes[0].tolist()):
        label = format_value(value)
        start = 2 * i
        if start >= next_free and start + len(label) <= len(axis):
            axis[start : start + len(label)] = list(label)
            next_free = start + len(label) + 1
    lines.append(f"{'':>{label_width}}   " + "".join(axis).rstrip())
    lines.append(f"{'':>{label_width}}   {across.key}")
    legend = [f"{OUTSIDE} in no win-set"]
    legend += [f"{symbols[c.key]} only {c.name}'s win-set" for c in countries]
    if len(countries) > 2:
        legend.append(f"{SEVERAL} in several win-sets, not all")
    legend += [f"{ZONE} zone of agreement", f"{PLAYABLE} playable zone", f"{NASH} Nash point"]
    lines.append("Legend:")
    lines += [f"  {item}" for item in legend]
    return lines


def human_report(analysis: Analysis, *, summary: bool) -> list[str]:
    """The lines of the report for a person; ``summary`` leaves out the map and point lists."""
    scenario = analysis.scenario
    total = scenario.grid_size
    shape = " x ".join(f"{levels:,}" for levels in scenario.grid_shape)
    lines = [
        f"Scenario: {scenario.title} ({scenario.slug})",
        f"Utility: {scenario.utility}",
        f"Grid: {total:,} points ({shape})",
        *(issue_line(issue) for issue in scenario.issues),
        "",
        "Countries:",
    ]
    for country in scenario.countries:
        size = int(np.count_nonzero(analysis.winsets[country.key]))
        lines += [
            f"  {country.key}: {country.name}",
            f"    ratifies with {country.rule_text}",
            f"    win-set: {points_text(size, total)}",
        ]
    zone_size = int(np.count_nonzero(analysis.zone))
    playable_size = int(np.count_nonzero(analysis.playable_zone))
    lines += [
        "",
        f"Zone of agreement: {points_text(zone_size, total)}",
        f"Playable zone (every chief accepts too): {points_text(playable_size, total)}",
    ]
    nash_indices = analysis.nash_indices
    if nash_indices.size == 0:
        lines.append("Nash point: none (the zone of agreement is empty)")
    elif summary:
        lines.append(f"Nash points: {nash_indices.size:,}")
    else:
        heading = "Nash point" if nash_indices.size == 1 else f"Nash points ({nash_indices.size:,})"
        lines.append(f"{heading}, with each country's pivotal surplus:")
        shown = nash_indices[:NASH_POINTS_SHOWN]
        rows = analysis.points(shown)
        surpluses = {c.key: pivotal_surplus(scenario, c, rows) for c in scenario.countries}
        for row, point in enumerate(point_list(analysis, shown)):
            values = ", ".join(
                f"{key} {format_surplus(float(surplus[row]))}" for key, surplus in surpluses.items()
            )
            lines.append(f"  {format_point(point)}: {values}")
        if nash_indices.size > NASH_POINTS_SHOWN:
            lines.append(f"  ... and {nash_indices.size - NASH_POINTS_SHOWN:,} more")
    if analysis.harmony:
        lines.append("Harmony: yes (each country's best point is inside every other win-set)")
    else:
        lines.append("Harmony: no (some country's best point is outside another's win-set)")
    if not summary:
        lines.append("")
        if len(scenario.issues) == 2:
            lines += grid_map(analysis, nash_indices)
        else:
            lines.append(
                f"No map: a map is drawn for two-issue scenarios; this one has "
                f"{len(scenario.issues)}."
            )
    return lines


# --------------------------------------------------------------------------------------------
# The command


class Command(BaseCommand):
    help = (
        "Check a scenario (a file, or the slug of a stored or built-in scenario) and print its "
        "win-sets, zone of agreement, playable zone, Nash points and, for two issues, a map. "
        "A refused file or an unknown slug exits with status 2."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scenario", help="a .yaml, .yml or .json file, or a scenario slug")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="print exactly one JSON object with the sizes and the point lists",
        )
        parser.add_argument(
            "--summary",
            action="store_true",
            help="sizes only: no point lists (and no map)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Print the report. Raises ``SystemExit(2)`` for a refused file or an unknown slug."""
        argument: str = options["scenario"]
        try:
            scenario = resolve_scenario(argument)
        except ScenarioError as error:
            self.refuse([str(problem) for problem in error.problems])
        except ScenarioNotFoundError as error:
            self.refuse([str(error)])
        analysis = Analysis(scenario)
        if options["as_json"]:
            for chunk in json_chunks(analysis, summary=options["summary"]):
                self.stdout.write(chunk, ending="")
            self.stdout.write("")
        else:
            self.stdout.write("\n".join(human_report(analysis, summary=options["summary"])))

    def refuse(self, lines: Sequence[str]) -> NoReturn:
        """Write the problems to stderr, one a line, and exit with status 2 (raises SystemExit)."""
        for line in lines:
            self.stderr.write(line)
        raise SystemExit(EXIT_REFUSED)
