"""Scenario files, schema 1 (DESIGN §2, notes/schema.md): validation, defaults, loading.

Every refusal is checked by its path and its sentence. The built-in scenarios are checked against
the parameters of DESIGN §6; those tests fail (they never skip) when a built-in file is missing.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import pytest

from negotiation.engine import scenario as scenario_module
from negotiation.engine.scenario import (
    MAX_GRID_POINTS,
    Scenario,
    ScenarioError,
    load_builtin,
    load_scenario_file,
    load_scenario_text,
    parse_scenario,
    scenario_from_dict,
)
from negotiation.engine.utility import utility

Data = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Builders


def member(key: str, ideal: Sequence[float], reservation: float | None = None) -> Data:
    data: Data = {
        "key": key,
        "name": f"Member {key}",
        "ideal": {"a_cut": ideal[0], "b_cut": ideal[1]},
    }
    if reservation is not None:
        data["reservation"] = reservation
    return data


def valid_data() -> Data:
    """A small valid scenario (the GATT example of DESIGN §2, two issues, two countries)."""
    return {
        "schema": 1,
        "slug": "gatt-test",
        "title": "Reciprocal tariff cuts",
        "summary": "One paragraph shown to everyone.",
        "utility": "cityblock",
        "issues": [
            {"key": "a_cut", "label": "Atlantis tariff cut", "min": 0, "max": 10, "step": 1},
            {"key": "b_cut", "label": "Borduria tariff cut", "min": 0, "max": 10},
        ],
        "no_agreement": {"a_cut": 0, "b_cut": 0},
        "countries": [
            {
                "key": "A",
                "name": "Atlantis",
                "ratification": {"quota": "1/2", "strict": True},
                "side_payment_budget": 0,
                "chief": {
                    "key": "A-chief",
                    "title": "Trade Representative",
                    "ideal": {"a_cut": 4, "b_cut": 8},
                    "salience": {"a_cut": 1, "b_cut": 1},
                    "reservation": 60,
                    "briefing": "...",
                },
                "constituents": [
                    {
                        "key": "A1",
                        "name": "Export industries",
                        "ideal": {"a_cut": 6, "b_cut": 9},
                        "salience": {"a_cut": 1, "b_cut": 1},
                        "weight": 1,
                        "reservation": 70,
                        "veto": False,
                        "briefing": "...",
                    },
                    member("A2", (2, 8), 70),
                ],
            },
            {
                "key": "B",
                "name": "Borduria",
                "chief": {"key": "B-chief", "ideal": {"a_cut": 8, "b_cut": 4}, "reservation": 60},
                "constituents": [member("B1", (9, 5), 66), member("B2", (8, 3))],
            },
        ],
    }


def problems_of(data: object) -> list[str]:
    """The problems ``parse_scenario`` reports, as ``path: message`` lines."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    problems = [str(problem) for problem in caught.value.problems]
    assert str(caught.value) == "\n".join(problems)
    return problems


def paths_of(data: object) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    return [problem.path for problem in caught.value.problems]


def changed(change: Callable[[Data], object]) -> Data:
    data = valid_data()
    change(data)
    return data


def a1(data: Data) -> Data:
    constituent: Data = data["countries"][0]["constituents"][0]
    return constituent


def with_all_reservations(data: Data) -> Data:
    """Give B2 (the only member without one) a reservation, so no_agreement is optional."""
    data["countries"][1]["constituents"][1]["reservation"] = 50
    return data


def test_the_valid_example_parses() -> None:
    scenario = parse_scenario(valid_data())
    assert scenario.slug == "gatt-test"
    assert scenario.issue_keys == ("a_cut", "b_cut")
    assert scenario.grid_shape == (11, 11)
    assert [c.key for c in scenario.countries] == ["A", "B"]
    assert [m.key for m in scenario.members] == ["A-chief", "A1", "A2", "B-chief", "B1", "B2"]


# --------------------------------------------------------------------------------------------
# One rule at a time: the exact line reported

EXACT_PROBLEMS: list[tuple[str, Callable[[Data], object], str]] = [
    (
        "ideal above max (DESIGN §2 example)",
        lambda d: d["countries"][1]["constituents"][0]["ideal"].update(b_cut=12),
        "countries[1].constituents[0].ideal.b_cut: 12 is above max 10",
    ),
    (
        "ideal below min",
        lambda d: a1(d)["ideal"].update(a_cut=-0.5),
        "countries[0].constituents[0].ideal.a_cut: -0.5 is below min 0",
    ),
    (
        "ideal missing an issue",
        lambda d: a1(d)["ideal"].pop("b_cut"),
        "countries[0].constituents[0].ideal.b_cut: is required",
    ),
    (
        "ideal not a number",
        lambda d: a1(d)["ideal"].update(a_cut="six"),
        "countries[0].constituents[0].ideal.a_cut: must be a number, not 'six'",
    ),
    ("schema missing", lambda d: d.pop("schema"), "schema: is required and must be 1"),
    (
        "schema 2",
        lambda d: d.update(schema=2),
        "schema: 2 is not supported; this version reads schema 1",
    ),
    ("slug missing", lambda d: d.pop("slug"), "slug: is required"),
    (
        "slug not url-safe",
        lambda d: d.update(slug="Bad Slug"),
        "slug: 'Bad Slug' must be lowercase letters, digits, '-' or '_', starting and ending "
        "with a letter or digit",
    ),
    ("title missing", lambda d: d.pop("title"), "title: is required"),
    ("title blank", lambda d: d.update(title="   "), "title: must not be empty"),
    (
        "utility missing",
        lambda d: d.pop("utility"),
        "utility: is required; one of cityblock, euclidean",
    ),
    (
        "utility unknown",
        lambda d: d.update(utility="manhattan"),
        "utility: 'manhattan' is not one of cityblock, euclidean",
    ),
    (
        "unknown top-level key with a hint",
        lambda d: d.update(titel="x"),
        "titel: is not a known field (did you mean 'title'?); known: schema, slug, title, "
        "summary, utility, issues, no_agreement, information, game, countries",
    ),
    ("issues missing", lambda d: d.pop("issues"), "issues: is required"),
    (
        "issues not a list",
        lambda d: d.update(issues={"a_cut": 1}),
        "issues: must be a list, not a mapping",
    ),
    (
        "issue key not an identifier",
        lambda d: d["issues"][0].update(key="A-cut"),
        "issues[0].key: 'A-cut' must start with a lowercase letter and use only a-z, 0-9 and '_'",
    ),
    (
        "issue key repeated",
        lambda d: d["issues"][1].update(key="a_cut"),
        "issues[1].key: 'a_cut' is used by another issue",
    ),
    ("issue min missing", lambda d: d["issues"][0].pop("min"), "issues[0].min: is required"),
    (
        "issue min not a number",
        lambda d: d["issues"][0].update(min="low"),
        "issues[0].min: must be a number, not 'low'",
    ),
    (
        "issue max not above min",
        lambda d: d["issues"][0].update(max=0),
        "issues[0].max: 0 must be above min 0",
    ),
    (
        "issue step zero",
        lambda d: d["issues"][0].update(step=0),
        "issues[0].step: 0 must be above 0",
    ),
    (
        "issue step negative",
        lambda d: d["issues"][0].update(step=-1),
        "issues[0].step: -1 must be above 0",
    ),
    (
        "issue range not a whole number of steps",
        lambda d: d["issues"][0].update(step=3),
        "issues[0].step: the range 0..10 is not a whole number of steps of 3",
    ),
    (
        "unknown issue field with a hint",
        lambda d: d["issues"][0].update(stpe=1),
        "issues[0].stpe: is not a known field (did you mean 'step'?); known: key, label, min, "
        "max, step, unit",
    ),
    (
        "no_agreement missing an issue",
        lambda d: with_all_reservations(d)["no_agreement"].pop("b_cut"),
        "no_agreement.b_cut: is required",
    ),
    (
        "no_agreement out of range",
        lambda d: with_all_reservations(d)["no_agreement"].update(a_cut=11),
        "no_agreement.a_cut: 11 is above max 10",
    ),
    (
        "no_agreement not a mapping",
        lambda d: with_all_reservations(d).update(no_agreement=[0, 0]),
        "no_agreement: must be a mapping of issue key to value, not a list",
    ),
    ("countries missing", lambda d: d.pop("countries"), "countries: is required"),
    (
        "countries not a list",
        lambda d: d.update(countries="A, B"),
        "countries: must be a list, not 'A, B'",
    ),
    (
        "country key not an identifier",
        lambda d: d["countries"][0].update(key="1A"),
        "countries[0].key: '1A' must start with a letter and use only letters, digits, '-' and '_'",
    ),
    (
        "country key repeated",
        lambda d: d["countries"][1].update(key="A"),
        "countries[1].key: country key 'A' is already used at countries[0].key",
    ),
    (
        "unknown country field with a hint",
        lambda d: d["countries"][0].update(constituent=[]),
        "countries[0].constituent: is not a known field (did you mean 'constituents'?); known: "
        "key, name, ratification, side_payment_budget, chief, constituents",
    ),
    (
        "quota above 1",
        lambda d: d["countries"][0]["ratification"].update(quota="3/2"),
        "countries[0].ratification.quota: 1.5 must be above 0 and at most 1",
    ),
    (
        "quota zero",
        lambda d: d["countries"][0]["ratification"].update(quota="0"),
        "countries[0].ratification.quota: 0 must be above 0 and at most 1",
    ),
    (
        "quota not a number",
        lambda d: d["countries"][0]["ratification"].update(quota="half"),
        "countries[0].ratification.quota: must be a number, not 'half'",
    ),
    (
        "quota dividing by zero",
        lambda d: d["countries"][0]["ratification"].update(quota="1/0"),
        "countries[0].ratification.quota: must be a number, not '1/0'",
    ),
    (
        "strict not a boolean",
        lambda d: d["countries"][0]["ratification"].update(strict="yes"),
        "countries[0].ratification.strict: must be true or false, not 'yes'",
    ),
    (
        "unknown ratification field with a hint",
        lambda d: d["countries"][0]["ratification"].update(qouta="1/2"),
        "countries[0].ratification.qouta: is not a known field (did you mean 'quota'?); known: "
        "quota, strict",
    ),
    (
        "negative budget",
        lambda d: d["countries"][0].update(side_payment_budget=-1),
        "countries[0].side_payment_budget: -1 must be a whole number of points, 0 or more",
    ),
    (
        "fractional budget",
        lambda d: d["countries"][0].update(side_payment_budget=2.5),
        "countries[0].side_payment_budget: 2.5 must be a whole number of points, 0 or more",
    ),
    ("chief missing", lambda d: d["countries"][0].pop("chief"), "countries[0].chief: is required"),
    (
        "constituents missing",
        lambda d: d["countries"][0].pop("constituents"),
        "countries[0].constituents: is required",
    ),
    (
        "constituents empty",
        lambda d: d["countries"][0].update(constituents=[]),
        "countries[0].constituents: has 0 members; a country has 1 to 50",
    ),
    (
        "member key missing",
        lambda d: a1(d).pop("key"),
        "countries[0].constituents[0].key: is required",
    ),
    (
        "member key not an identifier",
        lambda d: a1(d).update(key="A 1"),
        "countries[0].constituents[0].key: 'A 1' must start with a letter and use only letters, "
        "digits, '-' and '_'",
    ),
    (
        "member key repeated in another country",
        lambda d: d["countries"][1]["constituents"][0].update(key="A1"),
        "countries[1].constituents[0].key: member key 'A1' is already used at "
        "countries[0].constituents[0].key",
    ),
    (
        "chief key repeats a constituent's",
        lambda d: d["countries"][1]["chief"].update(key="A2"),
        "countries[1].chief.key: member key 'A2' is already used at "
        "countries[0].constituents[1].key",
    ),
    (
        "constituent name missing",
        lambda d: a1(d).pop("name"),
        "countries[0].constituents[0].name: is required",
    ),
    (
        "negative salience",
        lambda d: a1(d)["salience"].update(a_cut=-1),
        "countries[0].constituents[0].salience.a_cut: -1 is negative",
    ),
    (
        "all saliences zero",
        lambda d: a1(d).update(salience={"a_cut": 0, "b_cut": 0}),
        "countries[0].constituents[0].salience: at least one salience must be above 0",
    ),
    (
        "zero weight",
        lambda d: a1(d).update(weight=0),
        "countries[0].constituents[0].weight: 0 must be above 0",
    ),
    (
        "negative weight",
        lambda d: a1(d).update(weight=-2),
        "countries[0].constituents[0].weight: -2 must be above 0",
    ),
    (
        "veto not a boolean",
        lambda d: a1(d).update(veto="no"),
        "countries[0].constituents[0].veto: must be true or false, not 'no'",
    ),
    (
        "reservation not a number",
        lambda d: a1(d).update(reservation="high"),
        "countries[0].constituents[0].reservation: must be a number, not 'high'",
    ),
    (
        "reservation not finite",
        lambda d: a1(d).update(reservation=float("inf")),
        "countries[0].constituents[0].reservation: must be a finite number, not inf",
    ),
    (
        "boolean where a number belongs",
        lambda d: a1(d).update(weight=True),
        "countries[0].constituents[0].weight: must be a number, not true",
    ),
    (
        "unknown member field with a hint",
        lambda d: a1(d).update(idael={"a_cut": 1}),
        "countries[0].constituents[0].idael: is not a known field (did you mean 'ideal'?); "
        "known: key, name, ideal, salience, weight, reservation, veto, briefing",
    ),
    (
        "a chief has no weight",
        lambda d: d["countries"][0]["chief"].update(weight=1),
        "countries[0].chief.weight: is not a known field; known: key, name, title, ideal, "
        "salience, reservation, briefing",
    ),
    (
        "unknown salience issue with a hint",
        lambda d: a1(d)["salience"].update(a_cutt=1),
        "countries[0].constituents[0].salience.a_cutt: is not a known field (did you mean "
        "'a_cut'?); known: a_cut, b_cut",
    ),
    (
        "member not a mapping",
        lambda d: d["countries"][0]["constituents"].append("A3"),
        "countries[0].constituents[2]: must be a mapping, not 'A3'",
    ),
    (
        "reservation needed without no_agreement",
        lambda d: d.pop("no_agreement"),
        "countries[1].constituents[1].reservation: is required when the scenario gives no "
        "no_agreement point",
    ),
    (
        "information setting unknown",
        lambda d: d.update(information={"preferences": "everyone"}),
        "information.preferences: 'everyone' is not one of self, own_country, all",
    ),
    (
        "payoffs not a Prisoner's Dilemma",
        lambda d: d.update(game={"payoffs": {"T": 3, "R": 5}}),
        "game.payoffs: must satisfy T > R > P > S (a Prisoner's Dilemma)",
    ),
    (
        "deadline too short",
        lambda d: d.update(game={"deadlines": {"level1": 5}}),
        "game.deadlines.level1: 5 is outside 10..86400",
    ),
    ("rounds zero", lambda d: d.update(game={"rounds": 0}), "game.rounds: 0 is outside 1..20"),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(change, expected, id=name) for name, change, expected in EXACT_PROBLEMS],
)
def test_each_rule_reports_its_path_and_sentence(
    change: Callable[[Data], object], expected: str
) -> None:
    problems = problems_of(changed(change))
    assert problems[0] == expected
    # Only a broken issue cascades: every mention of the issue key is reported too.
    assert all(
        p == expected or "is not a known field" in p or p.endswith("is required")
        for p in problems[1:]
    )


def test_a_missing_ideal_is_reported_as_required() -> None:
    assert problems_of(changed(lambda d: a1(d).pop("ideal"))) == [
        "countries[0].constituents[0].ideal: is required"
    ]


def test_a_missing_ideal_is_refused_at_its_path() -> None:
    assert paths_of(changed(lambda d: a1(d).pop("ideal"))) == ["countries[0].constituents[0].ideal"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "scenario: must be a mapping, not a list"),
        (None, "scenario: must be a mapping, not null"),
        ("schema: 1", "scenario: must be a mapping, not 'schema: 1'"),
    ],
)
def test_a_scenario_must_be_a_mapping(data: object, expected: str) -> None:
    assert problems_of(data) == [expected]


def test_all_problems_are_reported_at_once() -> None:
    def break_many(d: Data) -> None:
        d.update(schema=2, utility="manhattan", titel="typo")
        d["issues"][0].update(step=3)
        d["countries"][0]["ratification"].update(quota="3/2")
        d["countries"][1]["constituents"][0]["ideal"].update(b_cut=12)
        d["countries"][1]["constituents"][1].update(weight=0, veto="no")

    problems = problems_of(changed(break_many))
    assert problems == [
        "titel: is not a known field (did you mean 'title'?); known: schema, slug, title, "
        "summary, utility, issues, no_agreement, information, game, countries",
        "schema: 2 is not supported; this version reads schema 1",
        "utility: 'manhattan' is not one of cityblock, euclidean",
        "issues[0].step: the range 0..10 is not a whole number of steps of 3",
        # a_cut was refused, so every mention of it is reported too:
        "no_agreement.a_cut: is not a known field (did you mean 'b_cut'?); known: b_cut",
        "countries[0].ratification.quota: 1.5 must be above 0 and at most 1",
        *[
            f"{path}.{field}.a_cut: is not a known field (did you mean 'b_cut'?); known: b_cut"
            for path in ("countries[0].chief", "countries[0].constituents[0]")
            for field in ("ideal", "salience")
        ],
        "countries[0].constituents[1].ideal.a_cut: is not a known field (did you mean 'b_cut'?); "
        "known: b_cut",
        "countries[1].chief.ideal.a_cut: is not a known field (did you mean 'b_cut'?); "
        "known: b_cut",
        "countries[1].constituents[0].ideal.a_cut: is not a known field (did you mean 'b_cut'?); "
        "known: b_cut",
        "countries[1].constituents[0].ideal.b_cut: 12 is above max 10",
        "countries[1].constituents[1].ideal.a_cut: is not a known field (did you mean 'b_cut'?); "
        "known: b_cut",
        "countries[1].constituents[1].weight: 0 must be above 0",
        "countries[1].constituents[1].veto: must be true or false, not 'no'",
    ]


def test_independent_problems_are_all_listed() -> None:
    """Problems that do not cascade: each one appears once, in file order."""

    def break_some(d: Data) -> None:
        d.update(slug="Bad Slug")
        d["countries"][0]["constituents"][1]["ideal"].update(a_cut=-1)
        d["countries"][1]["constituents"][0]["ideal"].update(b_cut=12)
        d["countries"][1].update(side_payment_budget=-3)
        d["countries"][1]["constituents"][1].update(reservation="high")

    assert paths_of(changed(break_some)) == [
        "slug",
        "countries[0].constituents[1].ideal.a_cut",
        "countries[1].side_payment_budget",
        "countries[1].constituents[0].ideal.b_cut",
        "countries[1].constituents[1].reservation",
    ]


# --------------------------------------------------------------------------------------------
# Limits


def generic_data(issue_levels: Sequence[int], countries: int = 2, constituents: int = 1) -> Data:
    """A valid scenario with the given number of levels per issue (min 0, step 1)."""
    keys = [f"issue_{j}" for j in range(len(issue_levels))]
    origin = {key: 0 for key in keys}
    return {
        "schema": 1,
        "slug": "limits",
        "title": "Limits",
        "utility": "cityblock",
        "issues": [
            {"key": key, "min": 0, "max": max(levels - 1, 0)}
            for key, levels in zip(keys, issue_levels, strict=True)
        ],
        "no_agreement": dict(origin),
        "countries": [
            {
                "key": f"C{c}",
                "chief": {"key": f"C{c}-chief", "ideal": dict(origin)},
                "constituents": [
                    {"key": f"C{c}-{i}", "name": f"Member {i}", "ideal": dict(origin)}
                    for i in range(constituents)
                ],
            }
            for c in range(countries)
        ],
    }


@pytest.mark.parametrize("issue_count", [1, 6])
def test_one_to_six_issues_are_accepted(issue_count: int) -> None:
    scenario = parse_scenario(generic_data([2] * issue_count))
    assert len(scenario.issues) == issue_count


def test_seven_issues_are_refused() -> None:
    problems = problems_of(generic_data([2] * 7))
    assert problems[0] == "issues: has 7 issues; a scenario has 1 to 6"


def test_zero_issues_are_refused() -> None:
    problems = problems_of(generic_data([]))
    assert problems[0] == "issues: has 0 issues; a scenario has 1 to 6"


@pytest.mark.parametrize("country_count", [2, 6])
def test_two_to_six_countries_are_accepted(country_count: int) -> None:
    scenario = parse_scenario(generic_data([3], countries=country_count))
    assert len(scenario.countries) == country_count


@pytest.mark.parametrize("country_count", [1, 7])
def test_fewer_than_two_or_more_than_six_countries_are_refused(country_count: int) -> None:
    problems = problems_of(generic_data([3], countries=country_count))
    assert problems == [f"countries: has {country_count} countries; a scenario has 2 to 6"]


def test_fifty_constituents_are_accepted_and_fifty_one_refused() -> None:
    assert len(parse_scenario(generic_data([3], constituents=50)).countries[0].constituents) == 50
    problems = problems_of(generic_data([3], constituents=51))
    assert problems == [
        "countries[0].constituents: has 51 members; a country has 1 to 50",
        "countries[1].constituents: has 51 members; a country has 1 to 50",
    ]


def test_ten_million_grid_points_are_accepted() -> None:
    scenario = parse_scenario(generic_data([100, 100, 1000]))
    assert scenario.grid_size == MAX_GRID_POINTS


def test_more_than_ten_million_grid_points_are_refused() -> None:
    assert problems_of(generic_data([11, 909_091])) == [
        "issues: the issue grid has 10,000,001 points; at most 10,000,000 are allowed"
    ]


def test_a_single_issue_with_too_many_levels_is_refused() -> None:
    data = generic_data([2])
    data["issues"][0]["max"] = MAX_GRID_POINTS
    problems = problems_of(data)
    assert problems[0] == "issues[0].step: gives 10000001 levels; at most 10000000"


def test_a_long_slug_is_refused() -> None:
    problems = problems_of(changed(lambda d: d.update(slug="a" * 65)))
    assert problems[0] == "slug: is 65 characters long; at most 64"


# --------------------------------------------------------------------------------------------
# Quotas as exact fractions


@pytest.mark.parametrize(
    ("quota", "expected"),
    [
        ("1/2", Fraction(1, 2)),
        ("2/3", Fraction(2, 3)),
        ("3/4", Fraction(3, 4)),
        ("1", Fraction(1)),
        (1, Fraction(1)),
        (0.5, Fraction(1, 2)),
        ("0.75", Fraction(3, 4)),
        (" 2/3 ", Fraction(2, 3)),
        (0.6, Fraction(3, 5)),
    ],
)
def test_quotas_are_parsed_as_exact_fractions(quota: object, expected: Fraction) -> None:
    scenario = parse_scenario(
        changed(lambda d: d["countries"][0]["ratification"].update(quota=quota))
    )
    assert scenario.countries[0].quota == expected
    assert isinstance(scenario.countries[0].quota, Fraction)


def test_two_thirds_is_exact_at_the_boundary() -> None:
    # Three equal members, two of them yes: 2 > 2/3 * 3 is false, 2 >= 2 is true.
    scenario = parse_scenario(
        changed(lambda d: d["countries"][0]["ratification"].update(quota="2/3", strict=False))
    )
    country = scenario.countries[0]
    assert country.quota_met(Fraction(2) * country.total_weight / 2)
    strict = parse_scenario(
        changed(lambda d: d["countries"][0]["ratification"].update(quota="2/3"))
    ).countries[0]
    assert not strict.quota_met(Fraction(4, 3))
    assert strict.quota_met(Fraction(4, 3) + Fraction(1, 10**12))


# --------------------------------------------------------------------------------------------
# Defaults


def test_defaults_are_filled_in() -> None:
    data = valid_data()
    scenario = parse_scenario(data)
    b_country = scenario.countries[1]
    b2 = b_country.constituents[1]
    # issues[1] has no step; B no ratification or budget; B2 no salience, weight, veto or
    # reservation.
    assert scenario.issues[1].step == 1
    assert scenario.issues[1].unit == ""
    assert b_country.quota == Fraction(1, 2)
    assert b_country.strict is True
    assert b_country.side_payment_budget == 0
    assert b2.salience == (1.0, 1.0)
    assert b2.weight == 1
    assert b2.veto is False
    assert b2.briefing == ""
    # Reservation = the member's utility at no_agreement (0, 0): d = 8 + 3 = 11 -> 100 - 55.
    assert b2.reservation == pytest.approx(45)
    assert b2.reservation == scenario.utility_of(b2, (0, 0))
    # A chief's name defaults to its title, then its key; a country's name to its key.
    assert scenario.countries[0].chief.name == "Trade Representative"
    assert b_country.chief.name == "B-chief"
    assert scenario.information.preferences == "self"
    assert scenario.information.winsets == "own"
    assert scenario.game.rounds == 1
    assert scenario.game.attempts == 2
    assert (scenario.game.payoffs.temptation, scenario.game.payoffs.sucker) == (5, 0)


def test_missing_ratification_defaults_to_strict_majority() -> None:
    scenario = parse_scenario(changed(lambda d: d["countries"][0].pop("ratification")))
    assert (scenario.countries[0].quota, scenario.countries[0].strict) == (Fraction(1, 2), True)


def test_inclusive_quota_when_strict_is_false() -> None:
    scenario = parse_scenario(
        changed(lambda d: d["countries"][0]["ratification"].update(strict=False))
    )
    assert scenario.countries[0].strict is False
    assert scenario.countries[0].rule_text == "at least 1/2 of the weighted votes"


def test_partial_salience_defaults_the_rest_to_one() -> None:
    scenario = parse_scenario(changed(lambda d: a1(d).update(salience={"b_cut": 3})))
    assert scenario.member("A1").salience == (1.0, 3.0)


def test_no_agreement_is_optional_when_every_reservation_is_given() -> None:
    def remove_reversion(d: Data) -> None:
        d.pop("no_agreement")
        d["countries"][1]["constituents"][1]["reservation"] = 50

    scenario = parse_scenario(changed(remove_reversion))
    assert scenario.no_agreement is None


def test_missing_no_agreement_and_reservations_are_all_reported() -> None:
    def remove(d: Data) -> None:
        d.pop("no_agreement")
        d["countries"][0]["chief"].pop("reservation")

    assert paths_of(changed(remove)) == [
        "countries[0].chief.reservation",
        "countries[1].constituents[1].reservation",
    ]


def test_a_veto_player_and_rule_text() -> None:
    scenario = parse_scenario(changed(lambda d: a1(d).update(veto=True)))
    assert scenario.member("A1").veto is True
    assert scenario.countries[0].rule_text == (
        "more than 1/2 of the weighted votes, and every veto player (Export industries) votes yes"
    )


# --------------------------------------------------------------------------------------------
# Fractional and negative values


def fractional_data() -> Data:
    data = valid_data()
    data["issues"][0].update(min=-5, max=5, step=0.5)
    data["issues"][1].update(min="-1/2", max="5/2", step="1/4")
    data["no_agreement"] = {"a_cut": -5, "b_cut": -0.5}
    for country in data["countries"]:
        for person in (country["chief"], *country["constituents"]):
            person["ideal"] = {"a_cut": -2.5, "b_cut": 0.3}
    return data


def test_fractional_steps_and_negative_values() -> None:
    scenario = parse_scenario(fractional_data())
    a_cut, b_cut = scenario.issues
    assert (a_cut.min, a_cut.max, a_cut.step) == (Fraction(-5), Fraction(5), Fraction(1, 2))
    assert a_cut.levels == 21
    assert a_cut.values[:3] == (-5.0, -4.5, -4.0)
    assert a_cut.values[-1] == 5.0
    assert (b_cut.min, b_cut.step, b_cut.levels) == (Fraction(-1, 2), Fraction(1, 4), 13)
    assert scenario.grid_shape == (21, 13)
    assert a_cut.index_of(-2.5) == 5
    assert a_cut.index_of(0.25) is None
    assert scenario.snap((-2.5, 0.25)) == (-2.5, 0.25)
    # Ideals need not lie on the grid.
    assert scenario.member("A1").ideal == (-2.5, 0.3)
    assert scenario.no_agreement == (-5.0, -0.5)


def test_fractional_range_must_be_whole_steps() -> None:
    data = fractional_data()
    data["issues"][0]["step"] = 0.75
    assert problems_of(data)[0] == (
        "issues[0].step: the range -5..5 is not a whole number of steps of 0.75"
    )


def test_negative_ideal_below_a_negative_min() -> None:
    data = fractional_data()
    data["countries"][0]["constituents"][0]["ideal"]["a_cut"] = -5.5
    assert problems_of(data) == ["countries[0].constituents[0].ideal.a_cut: -5.5 is below min -5"]


# --------------------------------------------------------------------------------------------
# to_dict round trips


def scenario_variants() -> list[Data]:
    euclidean = valid_data()
    euclidean["utility"] = "euclidean"
    euclidean["information"] = {"preferences": "all", "winsets": "none"}
    euclidean["game"] = {
        "rounds": 3,
        "compliance": True,
        "regime": True,
        "payoffs": {"T": 7, "R": 4, "P": 2, "S": -1},
        "deadlines": {"level1": None, "level2": 60, "compliance": 30},
    }
    weighted = valid_data()
    weighted["countries"][0]["ratification"] = {"quota": "2/3", "strict": False}
    weighted["countries"][0]["side_payment_budget"] = 12
    weighted["countries"][0]["constituents"][0].update(weight=2.5, veto=True)
    weighted["countries"][1]["constituents"][0]["salience"] = {"a_cut": 0, "b_cut": 2.5}
    no_reversion = valid_data()
    no_reversion.pop("no_agreement")
    no_reversion["countries"][1]["constituents"][1]["reservation"] = 62.5
    return [valid_data(), fractional_data(), euclidean, weighted, no_reversion]


@pytest.mark.parametrize("data", scenario_variants())
def test_to_dict_round_trips_through_parse_scenario(data: Data) -> None:
    scenario = parse_scenario(data)
    plain = scenario.to_dict()
    assert parse_scenario(copy.deepcopy(plain)) == scenario
    assert scenario_from_dict(plain) == scenario
    through_json = json.loads(json.dumps(plain))
    assert parse_scenario(through_json) == scenario
    assert parse_scenario(through_json).to_dict() == plain


def test_equal_scenario_data_gives_one_shared_scenario() -> None:
    plain = parse_scenario(valid_data()).to_dict()
    shuffled = json.loads(json.dumps(plain))
    shuffled = dict(reversed(list(shuffled.items())))
    first = scenario_from_dict(plain)
    assert scenario_from_dict(copy.deepcopy(plain)) is first
    # Key order does not matter; what the data says does.
    assert scenario_from_dict(shuffled) is first
    other = copy.deepcopy(plain)
    other["title"] = "Another title"
    different = scenario_from_dict(other)
    assert different is not first
    assert different == parse_scenario(copy.deepcopy(other))
    assert first == parse_scenario(copy.deepcopy(plain))


def test_corrupt_scenario_data_is_refused_every_time() -> None:
    corrupt = parse_scenario(valid_data()).to_dict()
    corrupt["issues"] = []
    for _ in range(2):
        with pytest.raises(ScenarioError):
            scenario_from_dict(corrupt)
    with pytest.raises(ScenarioError):
        scenario_from_dict(cast(Data, {1: "a", "b": 2}))  # keys that do not sort


def test_shared_scenarios_are_bounded_least_recently_used_first(monkeypatch: Any) -> None:
    monkeypatch.setattr(scenario_module, "SHARED_SCENARIOS", 2)
    monkeypatch.setattr(scenario_module, "_shared_scenarios", OrderedDict())
    data = []
    for n in range(3):
        plain = parse_scenario(valid_data()).to_dict()
        plain["title"] = f"Title {n}"
        data.append(plain)
    first, second = scenario_from_dict(data[0]), scenario_from_dict(data[1])
    assert scenario_from_dict(data[0]) is first  # now the most recently used
    scenario_from_dict(data[2])
    assert len(scenario_module._shared_scenarios) == 2
    assert scenario_from_dict(data[0]) is first
    rebuilt = scenario_from_dict(data[1])
    assert rebuilt is not second
    assert rebuilt == second


def test_partial_deadlines_keep_the_other_defaults() -> None:
    scenario = parse_scenario(changed(lambda d: d.update(game={"deadlines": {"level2": 60}})))
    assert (scenario.game.deadlines.level1, scenario.game.deadlines.level2) == (900, 60)
    assert scenario.game.deadlines.compliance == 120
    assert json.loads(json.dumps(scenario.to_dict()))["game"]["deadlines"]["level1"] == 900


def test_to_dict_prints_whole_numbers_as_integers() -> None:
    plain = parse_scenario(valid_data()).to_dict()
    text = json.dumps(plain)
    assert '"min": 0,' in text
    assert '"reservation": 70,' in text
    assert ".0," not in text and ".0}" not in text


def test_to_dict_round_trips_a_step_of_one_third() -> None:
    data = valid_data()
    data["issues"][0].update(min=0, max=1, step="1/3")
    data["no_agreement"]["a_cut"] = 0
    for country in data["countries"]:
        for person in (country["chief"], *country["constituents"]):
            person["ideal"]["a_cut"] = 0
    scenario = parse_scenario(data)
    assert parse_scenario(scenario.to_dict()) == scenario


def test_to_dict_round_trips_a_weight_of_one_third() -> None:
    scenario = parse_scenario(changed(lambda d: a1(d).update(weight="1/3")))
    assert parse_scenario(scenario.to_dict()) == scenario


# --------------------------------------------------------------------------------------------
# Loading text and files: bad YAML and bad JSON are problems, never tracebacks


def test_yaml_and_json_text_load() -> None:
    as_json = json.dumps(valid_data(), indent=2)
    assert load_scenario_text(as_json) == parse_scenario(valid_data())


def test_bad_yaml_reports_the_line() -> None:
    text = "schema: 1\nslug: gatt\ntitle: [unclosed\nutility: cityblock\n"
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text, source="bad.yaml")
    (problem,) = caught.value.problems
    assert problem.path == "bad.yaml"
    assert problem.message.startswith("is not valid JSON or YAML at line ")
    assert problem.message == (
        "is not valid JSON or YAML at line 4, column 8: expected ',' or ']', but got ':'"
    )


def test_bad_yaml_indentation_reports_the_line() -> None:
    text = "schema: 1\nissues:\n  - key: a\n   min: 0\n"
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text)
    (problem,) = caught.value.problems
    assert problem.path == "scenario"
    assert "at line 4, column 4" in problem.message


def test_bad_json_file_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "schema": 1,\n  "slug": "x",\n  "title": \n}\n', encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(path)
    (problem,) = caught.value.problems
    assert problem.path == str(path)
    assert problem.message == "is not valid JSON at line 5, column 1: Expecting value"


def test_json_file_with_yaml_only_syntax_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "yaml-in-disguise.json"
    path.write_text("schema: 1\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(path)
    assert "is not valid JSON at line 1, column 1" in str(caught.value)


def test_valid_files_load(tmp_path: Path) -> None:
    json_path = tmp_path / "s.json"
    json_path.write_text(json.dumps(valid_data()), encoding="utf-8")
    yaml_path = tmp_path / "s.yml"
    yaml_path.write_text(json.dumps(valid_data(), indent=1), encoding="utf-8")
    expected = parse_scenario(valid_data())
    assert load_scenario_file(json_path) == expected
    assert load_scenario_file(str(yaml_path)) == expected


def test_invalid_file_lists_problems_by_path(tmp_path: Path) -> None:
    data = valid_data()
    data["countries"][1]["constituents"][0]["ideal"]["b_cut"] = 12
    data["countries"][0]["constituents"][0]["wieght"] = 2
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(path)
    assert str(caught.value).splitlines() == [
        "countries[0].constituents[0].wieght: is not a known field (did you mean 'weight'?); "
        "known: key, name, ideal, salience, weight, reservation, veto, briefing",
        "countries[1].constituents[0].ideal.b_cut: 12 is above max 10",
    ]


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(missing)
    assert str(caught.value) == f"{missing}: cannot be read: No such file or directory"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(latin)
    assert str(caught.value) == f"{latin}: is not UTF-8 text"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "scenario: must be a mapping, not null"),
        ("- a\n- b\n", "scenario: must be a mapping, not a list"),
        ("42", "scenario: must be a mapping, not 42"),
    ],
)
def test_yaml_that_is_not_a_mapping(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text)
    assert str(caught.value) == expected


def test_yaml_non_text_keys_and_dates_are_problems() -> None:
    text = json.dumps(valid_data()).replace('"summary"', "1", 1)
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text)
    assert str(caught.value) == "scenario: key 1 must be text"
    data = valid_data()
    data["issues"][0]["min"] = "DATE"
    dated = json.dumps(data).replace('"DATE"', "2020-01-01")
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(dated)
    assert caught.value.problems[0].path == "issues[0].min"
    assert caught.value.problems[0].message == "must be a number, not date"


OVERFLOW_CASES = [
    pytest.param(lambda d: a1(d).update(reservation=10**400), id="reservation-as-a-huge-integer"),
    pytest.param(lambda d: a1(d).update(reservation="1e400"), id="reservation-1e400-as-text"),
    pytest.param(lambda d: a1(d).update(salience={"a_cut": 10**400}), id="huge-salience"),
]


@pytest.mark.parametrize("change", OVERFLOW_CASES)
def test_numbers_beyond_float_range_are_problems(change: Callable[[Data], object]) -> None:
    problems_of(changed(change))


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_5000_digit_number_is_a_problem(tmp_path: Path, suffix: str) -> None:
    data = valid_data()
    data["title"] = "DIGITS"
    path = tmp_path / f"digits{suffix}"
    path.write_text(json.dumps(data).replace('"DIGITS"', "1" * 5000), encoding="utf-8")
    with pytest.raises(ScenarioError):
        load_scenario_file(path)


# --------------------------------------------------------------------------------------------
# Built-in scenarios: exactly the parameters of DESIGN §6

# (ideal, salience, weight, reservation or None for "derived from no_agreement", veto)
MemberSpec = tuple[tuple[float, ...], tuple[float, ...], float, float | None, bool]
# (quota, strict, side-payment budget, chief (ideal, salience, reservation), constituents)
CountrySpec = tuple[
    Fraction, bool, int, tuple[tuple[float, ...], tuple[float, ...], float | None], list[MemberSpec]
]

EVEN = (1.0, 1.0)
HALF = Fraction(1, 2)
TWO_THIRDS = Fraction(2, 3)

BONN_ISSUES = [("stimulus", 0, 8, 1), ("oil", 50, 100, 5)]
IMF_ISSUES = [("deficit", 0, 12, 1), ("loan", 0, 10, 1)]
GATT_ISSUES = [("a_cut", 0, 10, 1), ("b_cut", 0, 10, 1)]
CLIMATE_ISSUES = [("us_cut", 0, 10, 1), ("dev_commit", 0, 10, 1)]


def imf_countries(debtor_quota: Fraction) -> list[CountrySpec]:
    return [
        (
            debtor_quota,
            True,
            0,
            ((8, 10), EVEN, 60),
            [
                ((12, 10), (3, 1), 35, 70, False),
                ((6, 10), (2, 1), 40, 60, False),
                ((10, 10), (2, 1), 25, 65, False),
            ],
        ),
        (
            HALF,
            True,
            0,
            ((4, 5), EVEN, 60),
            [
                ((2, 3), (2, 1), 40, 75, False),
                ((4, 5), (1, 1), 35, 70, False),
                ((8, 10), (1, 1), 25, 50, False),
            ],
        ),
    ]


def climate_countries(usa_quota: Fraction) -> list[CountrySpec]:
    return [
        (
            usa_quota,
            True,
            0,
            ((8, 6), EVEN, 50),
            [
                ((8, 6), (1, 1), 40, 55, False),
                ((2, 10), (1, 2), 15, 65, False),
                ((1, 10), (2, 3), 45, 62, False),
            ],
        ),
        (
            HALF,
            True,
            0,
            ((10, 4), EVEN, 50),
            [
                ((10, 3), (1, 2), 20, 55, True),
                ((10, 0), (1, 3), 45, 70, False),
                ((10, 6), (1, 1), 35, 55, False),
            ],
        ),
    ]


BUILTINS: dict[
    str, tuple[list[tuple[str, int, int, int]], tuple[float, ...] | None, list[CountrySpec]]
] = {
    "bonn-1978": (
        BONN_ISSUES,
        (0, 60),
        [
            (
                HALF,
                True,
                0,
                ((2, 100), EVEN, None),
                [
                    ((4, 100), (2, 1), 42, None, False),
                    ((0, 100), (1, 1), 13, None, False),
                    ((0, 100), (3, 1), 45, None, False),
                ],
            ),
            (
                HALF,
                True,
                10,
                ((6, 100), EVEN, None),
                [
                    ((8, 100), (1, 2), 30, None, False),
                    ((8, 50), (1, 2), 45, None, False),
                    ((8, 65), (1, 1), 25, None, False),
                ],
            ),
        ],
    ),
    "imf-strong": (IMF_ISSUES, None, imf_countries(HALF)),
    "imf-weak": (IMF_ISSUES, None, imf_countries(TWO_THIRDS)),
    "gatt": (
        GATT_ISSUES,
        None,
        [
            (
                HALF,
                True,
                0,
                ((4, 8), EVEN, 60),
                [
                    ((6, 9), EVEN, 1, 70, False),
                    ((2, 8), EVEN, 1, 70, False),
                    ((1, 5), EVEN, 1, 75, False),
                ],
            ),
            (
                HALF,
                True,
                0,
                ((8, 4), EVEN, 60),
                [
                    ((9, 5), EVEN, 1, 66, False),
                    ((8, 3), EVEN, 1, 68, False),
                    ((5, 0), EVEN, 1, 73, False),
                ],
            ),
        ],
    ),
    "climate-treaty": (CLIMATE_ISSUES, None, climate_countries(TWO_THIRDS)),
    "climate-executive": (CLIMATE_ISSUES, None, climate_countries(HALF)),
}


def member_spec(
    scenario: Scenario,
    ideal: tuple[float, ...],
    salience: tuple[float, ...],
    reservation: float | None,
) -> float:
    """The expected reservation: as given, or the utility at no_agreement when derived."""
    if reservation is not None:
        return float(reservation)
    assert scenario.no_agreement is not None
    return utility("cityblock", ideal, salience, scenario.ranges, scenario.no_agreement)


@pytest.mark.parametrize("slug", list(BUILTINS))
def test_builtin_scenario_has_the_parameters_of_design_section_6(slug: str) -> None:
    scenario = load_builtin(slug)  # a missing file raises KeyError: the test fails, never skips
    issues, no_agreement, countries = BUILTINS[slug]
    assert scenario.slug == slug
    assert scenario.utility == "cityblock"
    assert scenario.title and scenario.summary
    assert [(i.key, i.min, i.max, i.step) for i in scenario.issues] == [
        (key, Fraction(low), Fraction(high), Fraction(step)) for key, low, high, step in issues
    ]
    if no_agreement is not None:
        assert scenario.no_agreement == no_agreement
    assert len(scenario.countries) == len(countries)
    for country, (quota, strict, budget, chief, constituents) in zip(
        scenario.countries, countries, strict=True
    ):
        assert (country.quota, country.strict) == (quota, strict), country.key
        assert country.side_payment_budget == budget, country.key
        chief_ideal, chief_salience, chief_reservation = chief
        assert country.chief.ideal == chief_ideal, country.key
        assert country.chief.salience == chief_salience, country.key
        assert country.chief.reservation == member_spec(
            scenario, chief_ideal, chief_salience, chief_reservation
        )
        actual = sorted(
            (m.ideal, m.salience, float(m.weight), m.reservation, m.veto)
            for m in country.constituents
        )
        expected = sorted(
            (
                tuple(float(v) for v in ideal),
                tuple(float(s) for s in salience),
                float(weight),
                member_spec(scenario, ideal, salience, reservation),
                veto,
            )
            for ideal, salience, weight, reservation, veto in constituents
        )
        assert actual == expected, country.key
        assert all(m.name and m.briefing for m in country.members), country.key
    # The file round-trips like any other scenario.
    assert parse_scenario(scenario.to_dict()) == scenario


def test_bonn_reservations_are_the_utilities_at_the_status_quo() -> None:
    scenario = load_builtin("bonn-1978")
    assert scenario.no_agreement == (0, 60)
    for person in scenario.members:
        assert person.reservation == scenario.utility_of(person, (0, 60)), person.key


def test_builtin_keys_are_unique_across_the_six_files() -> None:
    slugs = [load_builtin(slug).slug for slug in BUILTINS]
    assert sorted(slugs) == sorted(BUILTINS)


@pytest.mark.parametrize("key", ["instructor", "spectator", "system", "bot", "Instructor"])
def test_member_keys_the_game_reserves_are_refused(key: str) -> None:
    # A seat keyed "instructor" would be shown everything the instructor sees.
    assert problems_of(changed(lambda d: a1(d).update(key=key))) == [
        f"countries[0].constituents[0].key: {key!r} is reserved by the game "
        "(bot, instructor, spectator, system); choose another key"
    ]
