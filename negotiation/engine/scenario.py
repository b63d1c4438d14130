"""Scenario files, schema 1 (DESIGN §2): parsing, validation and the frozen scenario model.

``parse_scenario`` turns the plain data of a JSON or YAML file into a ``Scenario`` or raises
``ScenarioError`` listing every problem by its path, e.g.
``countries[1].constituents[0].ideal.b_cut: 12 is above max 10``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, cast

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.nodes import Node
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from negotiation.engine.utility import UtilityKind, utility

SCHEMA_VERSION = 1
MAX_ISSUES = 6
MIN_COUNTRIES = 2
MAX_COUNTRIES = 6
MAX_MEMBERS_PER_COUNTRY = 50
MAX_GRID_POINTS = 10_000_000
MAX_TEXT = 20_000
#: Every number in a scenario lies within this magnitude, so it converts to a float exactly
#: enough and no arithmetic on it overflows.
MAX_MAGNITUDE = 10**12
#: Limits of the text a scenario is read from, well above what the limits of the scenario
#: itself allow (a scenario is at most six levels deep and, with every country at its
#: largest, holds about 15,000 values), so that reading hostile text costs bounded time and
#: memory before validation starts.
MAX_NESTING = 32
MAX_NODES = 20_000

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "scenarios"

#: Names the game gives to viewers and actors that are not seats: no member may be keyed so.
RESERVED_MEMBER_KEYS = frozenset({"instructor", "spectator", "system", "bot"})

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
ISSUE_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

PreferenceVisibility = Literal["self", "own_country", "all"]
WinsetVisibility = Literal["none", "own", "all"]
Role = Literal["chief", "constituent"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, located by its path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ScenarioError(ValueError):
    """A scenario file was refused; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Issue:
    key: str
    label: str
    min: Fraction
    max: Fraction
    step: Fraction
    unit: str

    @property
    def levels(self) -> int:
        return int((self.max - self.min) / self.step) + 1

    @property
    def range(self) -> float:
        return float(self.max - self.min)

    def value_at(self, index: int) -> float:
        return float(self.min + index * self.step)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(self.value_at(k) for k in range(self.levels))

    def index_of(self, value: float) -> int | None:
        """The grid index of ``value``, or None when it is off the grid or out of range."""
        if not math.isfinite(value):
            return None
        position = (value - float(self.min)) / float(self.step)
        index = round(position)
        if abs(position - index) > 1e-9 or not 0 <= index < self.levels:
            return None
        return index


@dataclass(frozen=True, slots=True)
class Member:
    """A chief or a constituent: a seat of the game."""

    key: str
    role: Role
    country: str
    name: str
    title: str
    ideal: tuple[float, ...]
    salience: tuple[float, ...]
    weight: Fraction
    reservation: float
    veto: bool
    briefing: str


@dataclass(frozen=True, slots=True)
class Country:
    key: str
    name: str
    quota: Fraction
    strict: bool
    side_payment_budget: int
    chief: Member
    constituents: tuple[Member, ...]

    @property
    def members(self) -> tuple[Member, ...]:
        return (self.chief, *self.constituents)

    @property
    def total_weight(self) -> Fraction:
        return sum((m.weight for m in self.constituents), Fraction(0))

    def quota_met(self, yes_weight: Fraction) -> bool:
        """Whether ``yes_weight`` meets the quota (strict: more than, else at least)."""
        threshold = self.quota * self.total_weight
        return yes_weight > threshold if self.strict else yes_weight >= threshold

    @property
    def rule_text(self) -> str:
        comparison = "more than" if self.strict else "at least"
        vetoes = [m.name for m in self.constituents if m.veto]
        text = f"{comparison} {self.quota} of the weighted votes"
        if vetoes:
            text += ", and every veto player (" + ", ".join(vetoes) + ") votes yes"
        return text


@dataclass(frozen=True, slots=True)
class Information:
    """What a seat is shown beyond its own briefing, ideal point and reservation."""

    preferences: PreferenceVisibility = "self"
    winsets: WinsetVisibility = "own"


@dataclass(frozen=True, slots=True)
class Payoffs:
    """Prisoner's Dilemma payoffs of the compliance stage, T > R > P > S."""

    temptation: float = 5
    reward: float = 3
    punishment: float = 1
    sucker: float = 0


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds each phase may last; None means no deadline."""

    level1: int | None = 900
    level2: int | None = 180
    compliance: int | None = 120


@dataclass(frozen=True, slots=True)
class GameDefaults:
    rounds: int = 1
    attempts: int = 2
    compliance: bool = False
    regime: bool = False
    payoffs: Payoffs = field(default_factory=Payoffs)
    deadlines: Deadlines = field(default_factory=Deadlines)


#: Scenarios whose members ``Scenario.member`` has indexed, by identity (each entry holds its
#: scenario, so an id is not reused while indexed). Games of the same scenario data share one
#: (``scenario_from_dict``), but a scenario may also be built directly: as many as a server
#: process keeps states of (``services.STATE_CACHE_SIZE``), so that a process serving more
#: games than this does not index them again and again.
MEMBER_INDEX_SIZE = 4096
_member_index: dict[int, tuple[Scenario, dict[str, Member]]] = {}


@dataclass(frozen=True, slots=True)
class Scenario:
    schema: int
    slug: str
    title: str
    summary: str
    utility: UtilityKind
    issues: tuple[Issue, ...]
    no_agreement: tuple[float, ...] | None
    countries: tuple[Country, ...]
    information: Information = field(default_factory=Information)
    game: GameDefaults = field(default_factory=GameDefaults)

    @property
    def issue_keys(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.issues)

    @property
    def ranges(self) -> tuple[float, ...]:
        return tuple(i.range for i in self.issues)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(i.levels for i in self.issues)

    @property
    def grid_size(self) -> int:
        return math.prod(self.grid_shape)

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(m for c in self.countries for m in c.members)

    @property
    def chiefs(self) -> tuple[Member, ...]:
        return tuple(c.chief for c in self.countries)

    def member(self, key: str) -> Member:
        """Raises ``KeyError`` for an unknown member key."""
        entry = _member_index.get(id(self))
        if entry is None or entry[0] is not self:
            # Asked for every event and every viewer: index the members once per scenario.
            if len(_member_index) >= MEMBER_INDEX_SIZE:
                _member_index.clear()
            entry = (self, {m.key: m for m in self.members})
            _member_index[id(self)] = entry
        try:
            return entry[1][key]
        except KeyError:
            raise KeyError(key) from None

    def country(self, key: str) -> Country:
        """Raises ``KeyError`` for an unknown country key."""
        for c in self.countries:
            if c.key == key:
                return c
        raise KeyError(key)

    def utility_of(self, member: Member, point: Sequence[float]) -> float:
        return utility(self.utility, member.ideal, member.salience, self.ranges, point)

    def snap(self, values: Sequence[float]) -> tuple[float, ...] | None:
        """The exact grid point for ``values`` (one per issue), or None if any is off the grid."""
        if len(values) != len(self.issues):
            return None
        snapped = []
        for issue, value in zip(self.issues, values, strict=True):
            index = issue.index_of(value)
            if index is None:
                return None
            snapped.append(issue.value_at(index))
        return tuple(snapped)

    def point_dict(self, point: Sequence[float]) -> dict[str, int | float]:
        return {k: plain_number(v) for k, v in zip(self.issue_keys, point, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """The scenario as schema-1 plain data with every default filled in (JSON-safe)."""

        def member_dict(m: Member) -> dict[str, Any]:
            data: dict[str, Any] = {"key": m.key, "name": m.name}
            if m.role == "chief":
                data["title"] = m.title
            data["ideal"] = self.point_dict(m.ideal)
            data["salience"] = {
                k: plain_number(s) for k, s in zip(self.issue_keys, m.salience, strict=True)
            }
            if m.role == "constituent":
                data["weight"] = fraction_out(m.weight)
                data["veto"] = m.veto
            data["reservation"] = plain_number(m.reservation)
            data["briefing"] = m.briefing
            return data

        return {
            "schema": self.schema,
            "slug": self.slug,
            "title": self.title,
            "summary": self.summary,
            "utility": self.utility,
            "issues": [
                {
                    "key": i.key,
                    "label": i.label,
                    "min": fraction_out(i.min),
                    "max": fraction_out(i.max),
                    "step": fraction_out(i.step),
                    "unit": i.unit,
                }
                for i in self.issues
            ],
            **(
                {"no_agreement": self.point_dict(self.no_agreement)}
                if self.no_agreement is not None
                else {}
            ),
            "information": {
                "preferences": self.information.preferences,
                "winsets": self.information.winsets,
            },
            "game": game_settings_to_dict(self.game),
            "countries": [
                {
                    "key": c.key,
                    "name": c.name,
                    "ratification": {"quota": str(c.quota), "strict": c.strict},
                    "side_payment_budget": c.side_payment_budget,
                    "chief": member_dict(c.chief),
                    "constituents": [member_dict(m) for m in c.constituents],
                }
                for c in self.countries
            ],
        }


def plain_number(value: float | Fraction) -> int | float:
    """A whole number as ``int`` (so it prints as ``4``, not ``4.0``), else a float."""
    as_float = float(value)
    if as_float.is_integer():
        return int(as_float)
    return as_float


def fraction_out(value: Fraction) -> int | float | str:
    """A fraction as plain data that parses back to the same fraction: an ``int`` when whole, a
    ``float`` when its shortest repr is exact (0.5, 0.25), else text such as ``"1/3"``."""
    if value.denominator == 1:
        return int(value)
    as_float = float(value)
    if Fraction(repr(as_float)) == value:
        return as_float
    return str(value)


# --------------------------------------------------------------------------------------------
# Validation


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))


_MISSING = object()


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Fraction)):
        return _format_number(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _format_number(value: float | Fraction) -> str:
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        as_float = float(value)
        return repr(as_float) if Fraction(repr(as_float)) == value else str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Reader:
    """Reads one mapping of the file, reporting unknown keys and wrong types by path."""

    def __init__(
        self,
        out: _Collector,
        data: object,
        path: str,
        known: Sequence[str],
        what: str = "a mapping",
    ) -> None:
        self.out = out
        self.path = path
        self.ok = isinstance(data, Mapping)
        self.data: Mapping[str, object] = cast(Mapping[str, object], data) if self.ok else {}
        if not self.ok:
            out.add(path or "scenario", f"must be {what}, not {_describe(data)}")
            return
        for key in self.data:
            if not isinstance(key, str):
                out.add(path or "scenario", f"key {_describe(key)} must be text")
            elif key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
                known_list = ", ".join(known)
                out.add(_join(path, key), f"is not a known field{suffix}; known: {known_list}")

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def raw(self, key: str) -> object:
        return self.data.get(key, _MISSING)

    def text(self, key: str, *, required: bool, default: str = "", limit: int = 200) -> str:
        value = self.raw(key)
        if value is _MISSING or value is None:
            if required and self.ok:
                self.out.add(self.at(key), "is required")
            return default
        if not isinstance(value, str):
            self.out.add(self.at(key), f"must be text, not {_describe(value)}")
            return default
        if required and not value.strip():
            self.out.add(self.at(key), "must not be empty")
        if len(value) > limit:
            self.out.add(self.at(key), f"is {len(value)} characters long; at most {limit}")
        return value.strip()

    def number(
        self, key: str, *, required: bool, default: Fraction | None = None
    ) -> Fraction | None:
        value = self.raw(key)
        if value is _MISSING or value is None:
            if required and self.ok:
                self.out.add(self.at(key), "is required")
            return default
        return _number(self.out, self.at(key), value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, bool):
            self.out.add(self.at(key), f"must be true or false, not {_describe(value)}")
            return default
        return value

    def choice(self, key: str, options: Sequence[str], default: str | None) -> str | None:
        value = self.raw(key)
        if value is _MISSING or value is None:
            if default is None and self.ok:
                self.out.add(self.at(key), "is required; one of " + ", ".join(options))
            return default
        if value not in options:
            self.out.add(self.at(key), f"{_describe(value)} is not one of " + ", ".join(options))
            return default
        return cast(str, value)

    def whole(self, key: str, default: int | None, *, low: int, high: int) -> int | None:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.out.add(self.at(key), f"must be a whole number, not {_describe(value)}")
            return default
        if not low <= value <= high:
            self.out.add(self.at(key), f"{value} is outside {low}..{high}")
            return default
        return value


def _number(out: _Collector, path: str, value: object) -> Fraction | None:
    """Parse a finite number (int, float or a decimal/fraction string) exactly, within
    ``MAX_MAGNITUDE``."""
    parsed = _parse_number(out, path, value)
    if parsed is not None and abs(parsed) > MAX_MAGNITUDE:
        out.add(path, f"is too large; numbers lie between -{MAX_MAGNITUDE:,} and {MAX_MAGNITUDE:,}")
        return None
    return parsed


def _parse_number(out: _Collector, path: str, value: object) -> Fraction | None:
    if isinstance(value, bool):
        out.add(path, f"must be a number, not {_describe(value)}")
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            out.add(path, f"must be a finite number, not {value}")
            return None
        return Fraction(repr(value))
    if isinstance(value, str):
        try:
            parsed = Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            out.add(path, f"must be a number, not {_describe(value)}")
            return None
        return parsed
    out.add(path, f"must be a number, not {_describe(value)}")
    return None


def _check_range(out: _Collector, path: str, value: Fraction, issue: Issue) -> bool:
    if value < issue.min:
        out.add(path, f"{_format_number(value)} is below min {_format_number(issue.min)}")
        return False
    if value > issue.max:
        out.add(path, f"{_format_number(value)} is above max {_format_number(issue.max)}")
        return False
    return True


def _issue_point(
    out: _Collector, data: object, path: str, issues: Sequence[Issue]
) -> tuple[float, ...] | None:
    """A point given as ``{issue_key: value}`` for every issue, each within range."""
    if data is _MISSING or data is None:
        out.add(path, "is required")
        return None
    keys = [i.key for i in issues]
    reader = _Reader(out, data, path, keys, what="a mapping of issue key to value")
    if not reader.ok:
        return None
    values: list[float] = []
    complete = True
    for issue in issues:
        value = reader.number(issue.key, required=True)
        if value is None or not _check_range(out, reader.at(issue.key), value, issue):
            complete = False
            continue
        values.append(float(value))
    return tuple(values) if complete else None


def _salience(
    out: _Collector, data: object, path: str, issues: Sequence[Issue]
) -> tuple[float, ...] | None:
    if data is _MISSING or data is None:
        return tuple(1.0 for _ in issues)
    keys = [i.key for i in issues]
    reader = _Reader(out, data, path, keys, what="a mapping of issue key to salience")
    if not reader.ok:
        return None
    values: list[float] = []
    for issue in issues:
        value = reader.number(issue.key, required=False, default=Fraction(1))
        if value is None:
            return None
        if value < 0:
            out.add(reader.at(issue.key), f"{_format_number(value)} is negative")
            return None
        values.append(float(value))
    if sum(values) <= 0:
        out.add(path, "at least one salience must be above 0")
        return None
    return tuple(values)


_MEMBER_FIELDS_CHIEF = ("key", "name", "title", "ideal", "salience", "reservation", "briefing")
_MEMBER_FIELDS_CONSTITUENT = (
    "key",
    "name",
    "ideal",
    "salience",
    "weight",
    "reservation",
    "veto",
    "briefing",
)


@dataclass
class _MemberDraft:
    path: str
    reader: _Reader
    key: str
    role: Role
    name: str
    title: str
    ideal: tuple[float, ...] | None
    salience: tuple[float, ...] | None
    weight: Fraction
    reservation: Fraction | None
    veto: bool
    briefing: str


def _member_draft(
    out: _Collector, data: object, path: str, role: Role, issues: Sequence[Issue]
) -> _MemberDraft | None:
    known = _MEMBER_FIELDS_CHIEF if role == "chief" else _MEMBER_FIELDS_CONSTITUENT
    reader = _Reader(out, data, path, known)
    if not reader.ok:
        return None
    key = reader.text("key", required=True, limit=40)
    if key and not KEY_PATTERN.match(key):
        out.add(
            reader.at("key"),
            f"{key!r} must start with a letter and use only letters, digits, '-' and '_'",
        )
    elif key.lower() in RESERVED_MEMBER_KEYS:
        reserved = ", ".join(sorted(RESERVED_MEMBER_KEYS))
        out.add(
            reader.at("key"), f"{key!r} is reserved by the game ({reserved}); choose another key"
        )
    name = reader.text("name", required=role == "constituent", limit=120)
    title = reader.text("title", required=False, limit=120)
    ideal = _issue_point(out, reader.raw("ideal"), reader.at("ideal"), issues)
    salience = _salience(out, reader.raw("salience"), reader.at("salience"), issues)
    weight = Fraction(1)
    veto = False
    if role == "constituent":
        parsed_weight = reader.number("weight", required=False, default=Fraction(1))
        if parsed_weight is not None:
            if parsed_weight <= 0:
                out.add(reader.at("weight"), f"{_format_number(parsed_weight)} must be above 0")
            else:
                weight = parsed_weight
        veto = reader.boolean("veto", False)
    reservation = reader.number("reservation", required=False)
    briefing = reader.text("briefing", required=False, limit=MAX_TEXT)
    return _MemberDraft(
        path=path,
        reader=reader,
        key=key,
        role=role,
        name=name or title or key,
        title=title,
        ideal=ideal,
        salience=salience,
        weight=weight,
        reservation=reservation,
        veto=veto,
        briefing=briefing,
    )


def _issues(out: _Collector, data: object) -> list[Issue]:
    if data is _MISSING or data is None:
        out.add("issues", "is required")
        return []
    if not isinstance(data, list):
        out.add("issues", f"must be a list, not {_describe(data)}")
        return []
    if not 1 <= len(data) <= MAX_ISSUES:
        out.add("issues", f"has {len(data)} issues; a scenario has 1 to {MAX_ISSUES}")
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, raw in enumerate(data[:MAX_ISSUES]):
        path = _join("issues", index)
        reader = _Reader(out, raw, path, ("key", "label", "min", "max", "step", "unit"))
        if not reader.ok:
            continue
        key = reader.text("key", required=True, limit=40)
        if key and not ISSUE_KEY_PATTERN.match(key):
            out.add(
                reader.at("key"),
                f"{key!r} must start with a lowercase letter and use only a-z, 0-9 and '_'",
            )
        elif key in seen:
            out.add(reader.at("key"), f"{key!r} is used by another issue")
        seen.add(key)
        label = reader.text("label", required=False, limit=120) or key
        unit = reader.text("unit", required=False, limit=60)
        low = reader.number("min", required=True)
        high = reader.number("max", required=True)
        step = reader.number("step", required=False, default=Fraction(1))
        if low is None or high is None or step is None:
            continue
        if step <= 0:
            out.add(reader.at("step"), f"{_format_number(step)} must be above 0")
            continue
        if high <= low:
            out.add(
                reader.at("max"),
                f"{_format_number(high)} must be above min {_format_number(low)}",
            )
            continue
        steps = (high - low) / step
        if steps.denominator != 1:
            out.add(
                reader.at("step"),
                f"the range {_format_number(low)}..{_format_number(high)} is not a whole "
                f"number of steps of {_format_number(step)}",
            )
            continue
        if steps + 1 > MAX_GRID_POINTS:
            out.add(reader.at("step"), f"gives {steps + 1} levels; at most {MAX_GRID_POINTS}")
            continue
        issues.append(Issue(key=key, label=label, min=low, max=high, step=step, unit=unit))
    return issues


def _ratification(out: _Collector, data: object, path: str) -> tuple[Fraction, bool]:
    if data is _MISSING or data is None:
        return Fraction(1, 2), True
    reader = _Reader(out, data, path, ("quota", "strict"))
    quota = reader.number("quota", required=False, default=Fraction(1, 2))
    strict = reader.boolean("strict", True)
    if quota is None:
        return Fraction(1, 2), strict
    if not 0 < quota <= 1:
        out.add(reader.at("quota"), f"{_format_number(quota)} must be above 0 and at most 1")
        return Fraction(1, 2), strict
    return quota, strict


def _information(out: _Collector, data: object) -> Information:
    if data is _MISSING or data is None:
        return Information()
    reader = _Reader(out, data, "information", ("preferences", "winsets"))
    preferences = reader.choice("preferences", ("self", "own_country", "all"), "self")
    winsets = reader.choice("winsets", ("none", "own", "all"), "own")
    return Information(
        preferences=cast(PreferenceVisibility, preferences),
        winsets=cast(WinsetVisibility, winsets),
    )


def _game(out: _Collector, data: object) -> GameDefaults:
    if data is _MISSING or data is None:
        return GameDefaults()
    known = ("rounds", "attempts", "compliance", "regime", "payoffs", "deadlines")
    reader = _Reader(out, data, "game", known)
    rounds = reader.whole("rounds", 1, low=1, high=20) or 1
    attempts = reader.whole("attempts", 2, low=1, high=10) or 2
    compliance = reader.boolean("compliance", False)
    regime = reader.boolean("regime", False)
    payoffs = Payoffs()
    raw_payoffs = reader.raw("payoffs")
    if raw_payoffs is not _MISSING and raw_payoffs is not None:
        payoff_reader = _Reader(out, raw_payoffs, reader.at("payoffs"), ("T", "R", "P", "S"))
        t, r, p, s = (
            payoff_reader.number(name, required=False, default=Fraction(default))
            for name, default in (("T", 5), ("R", 3), ("P", 1), ("S", 0))
        )
        if None not in (t, r, p, s):
            assert t is not None and r is not None and p is not None and s is not None
            if not t > r > p > s:
                out.add(reader.at("payoffs"), "must satisfy T > R > P > S (a Prisoner's Dilemma)")
            else:
                payoffs = Payoffs(float(t), float(r), float(p), float(s))
    deadlines = Deadlines()
    raw_deadlines = reader.raw("deadlines")
    if raw_deadlines is not _MISSING and raw_deadlines is not None:
        deadline_reader = _Reader(
            out, raw_deadlines, reader.at("deadlines"), ("level1", "level2", "compliance")
        )
        day = 86_400
        # Read the defaults from an instance: on a slots dataclass the class attributes are
        # member descriptors, not the default values.
        default = Deadlines()
        deadlines = Deadlines(
            level1=deadline_reader.whole("level1", default.level1, low=10, high=day),
            level2=deadline_reader.whole("level2", default.level2, low=10, high=day),
            compliance=deadline_reader.whole("compliance", default.compliance, low=10, high=day),
        )
    return GameDefaults(
        rounds=rounds,
        attempts=attempts,
        compliance=compliance,
        regime=regime,
        payoffs=payoffs,
        deadlines=deadlines,
    )


_TOP_LEVEL = (
    "schema",
    "slug",
    "title",
    "summary",
    "utility",
    "issues",
    "no_agreement",
    "information",
    "game",
    "countries",
)
_COUNTRY_FIELDS = ("key", "name", "ratification", "side_payment_budget", "chief", "constituents")


def parse_scenario(data: object) -> Scenario:
    """Validate plain scenario data (as loaded from JSON or YAML) and build the ``Scenario``.

    Raises ``ScenarioError`` listing every problem found, each with its path.
    """
    out = _Collector()
    top = _Reader(out, data, "", _TOP_LEVEL)
    if not top.ok:
        raise ScenarioError(out.problems)

    schema = top.raw("schema")
    if schema is _MISSING:
        out.add("schema", f"is required and must be {SCHEMA_VERSION}")
    elif schema != SCHEMA_VERSION or isinstance(schema, bool):
        out.add("schema", f"{_describe(schema)} is not supported; this version reads schema 1")
    slug = top.text("slug", required=True, limit=64)
    if slug and not SLUG_PATTERN.match(slug):
        out.add(
            "slug",
            f"{slug!r} must be lowercase letters, digits, '-' or '_', "
            "starting and ending with a letter or digit",
        )
    title = top.text("title", required=True, limit=200)
    summary = top.text("summary", required=False, limit=MAX_TEXT)
    kind = top.choice("utility", ("cityblock", "euclidean"), None) or "cityblock"
    issues = _issues(out, top.raw("issues"))
    grid_size = math.prod(i.levels for i in issues) if issues else 0
    if grid_size > MAX_GRID_POINTS:
        out.add(
            "issues",
            f"the issue grid has {grid_size:,} points; at most {MAX_GRID_POINTS:,} are allowed",
        )
    information = _information(out, top.raw("information"))
    game = _game(out, top.raw("game"))

    no_agreement: tuple[float, ...] | None = None
    raw_reversion = top.raw("no_agreement")
    if raw_reversion is not _MISSING and raw_reversion is not None and issues:
        no_agreement = _issue_point(out, raw_reversion, "no_agreement", issues)

    countries_data = top.raw("countries")
    drafts: list[tuple[_Reader, str, str, Fraction, bool, int, list[_MemberDraft]]] = []
    if countries_data is _MISSING or countries_data is None:
        out.add("countries", "is required")
    elif not isinstance(countries_data, list):
        out.add("countries", f"must be a list, not {_describe(countries_data)}")
    else:
        if not MIN_COUNTRIES <= len(countries_data) <= MAX_COUNTRIES:
            out.add(
                "countries",
                f"has {len(countries_data)} countries; a scenario has "
                f"{MIN_COUNTRIES} to {MAX_COUNTRIES}",
            )
        for index, raw_country in enumerate(countries_data[:MAX_COUNTRIES]):
            path = _join("countries", index)
            reader = _Reader(out, raw_country, path, _COUNTRY_FIELDS)
            if not reader.ok:
                continue
            key = reader.text("key", required=True, limit=40)
            if key and not KEY_PATTERN.match(key):
                out.add(
                    reader.at("key"),
                    f"{key!r} must start with a letter and use only letters, digits, '-' and '_'",
                )
            name = reader.text("name", required=False, limit=120) or key
            quota, strict = _ratification(
                out, reader.raw("ratification"), reader.at("ratification")
            )
            budget_value = reader.number("side_payment_budget", required=False, default=Fraction(0))
            budget = 0
            if budget_value is not None:
                if budget_value < 0 or budget_value.denominator != 1:
                    out.add(
                        reader.at("side_payment_budget"),
                        f"{_format_number(budget_value)} must be a whole number of points, 0 or more",
                    )
                else:
                    budget = int(budget_value)
            members: list[_MemberDraft] = []
            raw_chief = reader.raw("chief")
            if raw_chief is _MISSING or raw_chief is None:
                out.add(reader.at("chief"), "is required")
            elif issues:
                chief = _member_draft(out, raw_chief, reader.at("chief"), "chief", issues)
                if chief is not None:
                    members.append(chief)
            raw_constituents = reader.raw("constituents")
            constituents_path = reader.at("constituents")
            if raw_constituents is _MISSING or raw_constituents is None:
                out.add(constituents_path, "is required")
            elif not isinstance(raw_constituents, list):
                out.add(constituents_path, f"must be a list, not {_describe(raw_constituents)}")
            else:
                if not 1 <= len(raw_constituents) <= MAX_MEMBERS_PER_COUNTRY:
                    out.add(
                        constituents_path,
                        f"has {len(raw_constituents)} members; a country has 1 to "
                        f"{MAX_MEMBERS_PER_COUNTRY}",
                    )
                if issues:
                    for member_index, raw_member in enumerate(
                        raw_constituents[:MAX_MEMBERS_PER_COUNTRY]
                    ):
                        draft = _member_draft(
                            out,
                            raw_member,
                            _join(constituents_path, member_index),
                            "constituent",
                            issues,
                        )
                        if draft is not None:
                            members.append(draft)
            drafts.append((reader, key, name, quota, strict, budget, members))

    _check_unique(
        out,
        ((reader.at("key"), key) for reader, key, *_ in drafts if key),
        "country key",
    )
    _check_unique(
        out,
        (
            (draft.reader.at("key"), draft.key)
            for *_, members in drafts
            for draft in members
            if draft.key
        ),
        "member key",
    )

    countries: list[Country] = []
    for _reader, key, name, quota, strict, budget, members in drafts:
        built: list[Member] = []
        for draft in members:
            member = _finish_member(out, draft, key, kind, issues, no_agreement)
            if member is not None:
                built.append(member)
        built_chief = next((m for m in built if m.role == "chief"), None)
        constituents = tuple(m for m in built if m.role == "constituent")
        if built_chief is None or not constituents:
            continue
        countries.append(
            Country(
                key=key,
                name=name,
                quota=quota,
                strict=strict,
                side_payment_budget=budget,
                chief=built_chief,
                constituents=constituents,
            )
        )

    if out.problems:
        raise ScenarioError(out.problems)
    return Scenario(
        schema=SCHEMA_VERSION,
        slug=slug,
        title=title,
        summary=summary,
        utility=cast(UtilityKind, kind),
        issues=tuple(issues),
        no_agreement=no_agreement,
        countries=tuple(countries),
        information=information,
        game=game,
    )


def _check_unique(out: _Collector, entries: Iterator[tuple[str, str]], what: str) -> None:
    first_seen: dict[str, str] = {}
    for path, key in entries:
        if key in first_seen:
            out.add(path, f"{what} {key!r} is already used at {first_seen[key]}")
        else:
            first_seen[key] = path


def _finish_member(
    out: _Collector,
    draft: _MemberDraft,
    country: str,
    kind: str,
    issues: Sequence[Issue],
    no_agreement: tuple[float, ...] | None,
) -> Member | None:
    if draft.ideal is None or draft.salience is None:
        return None
    ranges = tuple(i.range for i in issues)
    if draft.reservation is not None:
        reservation = float(draft.reservation)
    elif no_agreement is not None:
        reservation = utility(
            cast(UtilityKind, kind), draft.ideal, draft.salience, ranges, no_agreement
        )
    else:
        out.add(
            draft.reader.at("reservation"),
            "is required when the scenario gives no no_agreement point",
        )
        return None
    return Member(
        key=draft.key,
        role=draft.role,
        country=country,
        name=draft.name,
        title=draft.title,
        ideal=draft.ideal,
        salience=draft.salience,
        weight=draft.weight,
        reservation=reservation,
        veto=draft.veto,
        briefing=draft.briefing,
    )


# --------------------------------------------------------------------------------------------
# Loading


TOO_LONG_NUMBER = "contains a number too long to read (more than 4,300 digits)"


class _BoundedComposer(Composer):
    """PyYAML's composer, refusing what would make reading cost more than the text's size:
    aliases (``*name``: a few lines of them, expanded by merge keys or by any walk of the
    data, make an exponential "billion laughs"), nesting deeper than ``MAX_NESTING`` and more
    than ``MAX_NODES`` values. Each refusal is a ``ComposerError`` with the place it was met."""

    if TYPE_CHECKING:  # provided by the parser it is mixed with

        def peek_event(self) -> yaml.Event: ...

        def check_event(self, *choices: type[yaml.Event]) -> bool: ...

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if self.check_event(yaml.AliasEvent):
            _refuse_text(event, "aliases (*name) are not supported; write the value out in full")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            _refuse_text(event, f"it holds more than {MAX_NODES:,} values")
        if self._depth >= MAX_NESTING:
            _refuse_text(event, f"it is nested more than {MAX_NESTING} levels deep")
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node


def _refuse_text(event: yaml.Event, problem: str) -> NoReturn:
    """Raises ``ComposerError`` for ``problem``, met at ``event``."""
    # libyaml's marks are not PyYAML's Mark class, but have the same line and column.
    mark: Any = event.start_mark
    raise ComposerError(None, None, problem, mark)


class _ScenarioLoader(Reader, Scanner, Parser, _BoundedComposer, SafeConstructor, Resolver):
    """``yaml.SafeLoader`` with the limits of ``_BoundedComposer``."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


def load_scenario_text(text: str, *, source: str = "scenario") -> Scenario:
    """Parse JSON or YAML text (YAML is a superset of JSON) and validate it.

    The text is read within limits (no aliases, at most ``MAX_NESTING`` levels and
    ``MAX_NODES`` values), so hostile text costs time and memory in proportion to its size.
    Raises ``ScenarioError`` for unreadable text or an invalid scenario.
    """
    try:
        loader = _ScenarioLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or "it could not be parsed"
        raise ScenarioError(
            [Problem(source, f"is not valid JSON or YAML{where}: {reason}")]
        ) from None
    except ValueError:
        # Python refuses to read integers of more than 4,300 digits.
        raise ScenarioError([Problem(source, TOO_LONG_NUMBER)]) from None
    return parse_scenario(data)


def load_scenario_file(path: str | Path) -> Scenario:
    """Read and validate a ``.json``, ``.yaml`` or ``.yml`` scenario file.

    Raises ``ScenarioError`` when the file cannot be read or is not a valid scenario.
    """
    file_path = Path(path)
    try:
        raw = file_path.read_bytes()
    except OSError as error:
        raise ScenarioError([Problem(str(path), f"cannot be read: {error.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError([Problem(str(path), "is not UTF-8 text")]) from None
    if file_path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ScenarioError(
                [
                    Problem(
                        str(path),
                        f"is not valid JSON at line {error.lineno}, column {error.colno}: "
                        f"{error.msg}",
                    )
                ]
            ) from None
        except ValueError:
            raise ScenarioError([Problem(str(path), TOO_LONG_NUMBER)]) from None
        return parse_scenario(data)
    return load_scenario_text(text, source=str(path))


def builtin_scenario_paths() -> list[Path]:
    """The built-in scenario files, sorted by name."""
    return sorted(
        p for p in BUILTIN_DIR.glob("*") if p.suffix.lower() in {".yaml", ".yml", ".json"}
    )


def load_builtin(slug: str) -> Scenario:
    """The built-in scenario with this slug. Raises ``KeyError`` if there is none."""
    for path in builtin_scenario_paths():
        if path.stem == slug:
            scenario = load_scenario_file(path)
            if scenario.slug == slug:
                return scenario
    for path in builtin_scenario_paths():
        scenario = load_scenario_file(path)
        if scenario.slug == slug:
            return scenario
    raise KeyError(slug)


#: Scenarios rebuilt from their data, by the data's canonical JSON text, the most recently
#: used last. A server holds the states of thousands of games, most of them of a handful of
#: scenarios: games of the same scenario share one frozen ``Scenario`` (a started GATT game's
#: folded state: 5.5 KiB instead of 20), and a game folded from its log again skips validating
#: its scenario.
SHARED_SCENARIOS = 256
_shared_scenarios: OrderedDict[str, Scenario] = OrderedDict()
_shared_lock = threading.Lock()


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """Rebuild a scenario from ``Scenario.to_dict()`` output: the same object for the same
    data. Raises ``ScenarioError``."""
    try:
        key = json.dumps(data, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        # Not plain data (keys that do not sort, say): a corrupt scenario, reported as such.
        return parse_scenario(dict(data))
    with _shared_lock:
        found = _shared_scenarios.get(key)
        if found is not None:
            _shared_scenarios.move_to_end(key)
            return found
    scenario = parse_scenario(dict(data))
    with _shared_lock:
        # Another thread may have built it meanwhile: keep one.
        scenario = _shared_scenarios.setdefault(key, scenario)
        _shared_scenarios.move_to_end(key)
        while len(_shared_scenarios) > SHARED_SCENARIOS:
            _shared_scenarios.popitem(last=False)
    return scenario


def game_settings_from_dict(data: Mapping[str, Any] | None) -> GameDefaults:
    """Game settings from the ``game`` mapping of schema 1. Raises ``ScenarioError``."""
    out = _Collector()
    settings = _game(out, dict(data) if data is not None else None)
    if out.problems:
        raise ScenarioError(out.problems)
    return settings


def game_settings_to_dict(settings: GameDefaults) -> dict[str, Any]:
    payoffs = settings.payoffs
    return {
        "rounds": settings.rounds,
        "attempts": settings.attempts,
        "compliance": settings.compliance,
        "regime": settings.regime,
        "payoffs": {
            "T": plain_number(payoffs.temptation),
            "R": plain_number(payoffs.reward),
            "P": plain_number(payoffs.punishment),
            "S": plain_number(payoffs.sucker),
        },
        "deadlines": {
            "level1": settings.deadlines.level1,
            "level2": settings.deadlines.level2,
            "compliance": settings.deadlines.compliance,
        },
    }
