"""``manage.py analyze_scenario``: JSON and human output, and refusals with exit status 2.

The JSON output for GATT (DESIGN §6, written inline to a file) is checked against a brute-force
double loop over the grid with ``utility.utility`` and ``utility.votes_yes``.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from django.apps import apps
from django.core.management import call_command

from negotiation.engine.scenario import Country, Scenario, load_scenario_file, parse_scenario
from negotiation.engine.utility import utility, votes_yes
from negotiation.engine.winset import Analysis
from negotiation.management.commands import analyze_scenario

ROOT = Path(__file__).resolve().parent.parent
JSON_KEYS = {
    "scenario",
    "points",
    "countries",
    "zone_size",
    "zone",
    "playable_zone_size",
    "playable_zone",
    "nash",
}
SUMMARY_KEYS = {"scenario", "points", "countries", "zone_size", "playable_zone_size"}

Data = dict[str, Any]


def person(key: str, ideal: tuple[float, float], reservation: float, **extra: Any) -> Data:
    return {
        "key": key,
        "name": key,
        "ideal": {"a_cut": ideal[0], "b_cut": ideal[1]},
        "reservation": reservation,
        **extra,
    }


def gatt_data() -> Data:
    """DESIGN §6, GATT round."""
    return {
        "schema": 1,
        "slug": "gatt-file",
        "title": "GATT round (test file)",
        "utility": "cityblock",
        "issues": [
            {"key": "a_cut", "label": "Atlantis tariff cut", "min": 0, "max": 10},
            {"key": "b_cut", "label": "Borduria tariff cut", "min": 0, "max": 10},
        ],
        "countries": [
            {
                "key": "A",
                "name": "Atlantis",
                "ratification": {"quota": "1/2", "strict": True},
                "chief": person("A-chief", (4, 8), 60),
                "constituents": [
                    person("A1", (6, 9), 70),
                    person("A2", (2, 8), 70),
                    person("A3", (1, 5), 75),
                ],
            },
            {
                "key": "B",
                "name": "Borduria",
                "ratification": {"quota": "1/2", "strict": True},
                "chief": person("B-chief", (8, 4), 60),
                "constituents": [
                    person("B1", (9, 5), 66),
                    person("B2", (8, 3), 68),
                    person("B3", (5, 0), 73),
                ],
            },
        ],
    }


def write_yaml(directory: Path, data: Data, name: str = "scenario.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run(*arguments: str) -> tuple[int, str, str]:
    """Run the command in-process: (exit status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        call_command("analyze_scenario", *arguments, stdout=stdout, stderr=stderr)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        return code, stdout.getvalue(), stderr.getvalue()
    return 0, stdout.getvalue(), stderr.getvalue()


def run_json(*arguments: str) -> tuple[dict[str, Any], str]:
    code, out, err = run(*arguments, "--json")
    assert (code, err) == (0, "")
    return json.loads(out), out


# --------------------------------------------------------------------------------------------
# Brute force


def grid(scenario: Scenario) -> list[tuple[float, float]]:
    first, second = scenario.issues
    return [(a, b) for a in first.values for b in second.values]


def ratifies(scenario: Scenario, country: Country, point: tuple[float, ...]) -> bool:
    yes_weight = Fraction(0)
    for member in country.constituents:
        value = utility(scenario.utility, member.ideal, member.salience, scenario.ranges, point)
        if votes_yes(value, member.reservation):
            yes_weight += member.weight
        elif member.veto:
            return False
    return country.quota_met(yes_weight)


def chiefs_accept(scenario: Scenario, point: tuple[float, ...]) -> bool:
    return all(
        votes_yes(
            utility(scenario.utility, c.ideal, c.salience, scenario.ranges, point), c.reservation
        )
        for c in scenario.chiefs
    )


def as_lists(points: list[tuple[float, float]]) -> list[list[float]]:
    return [list(p) for p in sorted(points)]


# --------------------------------------------------------------------------------------------
# --json


def test_json_output_matches_brute_force(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, gatt_data())
    report, _ = run_json(str(path))
    scenario = load_scenario_file(path)
    points = grid(scenario)
    assert set(report) == JSON_KEYS
    assert report["scenario"] == "gatt-file"
    assert report["points"] == 121
    assert set(report["countries"]) == {"A", "B"}
    zone = set(points)
    for country in scenario.countries:
        entry = report["countries"][country.key]
        assert set(entry) == {"winset_size", "winset"}
        winset = [p for p in points if ratifies(scenario, country, p)]
        assert entry["winset"] == as_lists(winset)
        assert entry["winset_size"] == len(winset)
        zone &= set(winset)
    assert (report["countries"]["A"]["winset_size"], report["countries"]["B"]["winset_size"]) == (
        41,
        58,
    )
    assert report["zone"] == as_lists(list(zone))
    assert report["zone_size"] == len(zone) == 5
    playable = [p for p in zone if chiefs_accept(scenario, p)]
    assert report["playable_zone"] == as_lists(playable)
    assert report["playable_zone_size"] == len(playable)
    # By hand (see tests/engine/test_winset.py): the products m_A * m_B over the zone are
    # 10, 35, 10, 10, 10 with the maximum at (5, 5).
    assert report["nash"] == [[5, 5]]


def test_json_is_one_object_with_integers_and_sorted_lists(tmp_path: Path) -> None:
    report, raw = run_json(str(write_yaml(tmp_path, gatt_data())))
    assert raw.endswith("}\n") and raw.count("\n") == 1
    assert raw.startswith('{"scenario": "gatt-file", "points": 121, "countries": {"A": ')
    assert '"zone": [[4, 5], [5, 5], [5, 6], [6, 7], [7, 8]]' in raw
    assert '"nash": [[5, 5]]' in raw
    assert not re.search(r"\d\.0\b", raw)
    lists = [entry["winset"] for entry in report["countries"].values()]
    lists += [report["zone"], report["playable_zone"], report["nash"]]
    for points in lists:
        assert points == sorted(points)
        assert all(isinstance(v, int) for point in points for v in point)


def test_json_summary_leaves_out_the_point_lists(tmp_path: Path) -> None:
    report, raw = run_json(str(write_yaml(tmp_path, gatt_data())), "--summary")
    assert set(report) == SUMMARY_KEYS
    assert report == {
        "scenario": "gatt-file",
        "points": 121,
        "countries": {"A": {"winset_size": 41}, "B": {"winset_size": 58}},
        "zone_size": 5,
        "playable_zone_size": 5,
    }
    assert "[" not in raw


def fractional_data() -> Data:
    """Issues in steps of 0.5 (a_cut) and 0.25 from -1 (b_cut); one member per country."""
    data = gatt_data()
    data["slug"] = "halves"
    data["issues"][0].update(min=0, max=2, step=0.5)
    data["issues"][1].update(min=-1, max=0, step=0.25)
    for country in data["countries"]:
        for member in (country["chief"], *country["constituents"]):
            member["ideal"] = {"a_cut": 1, "b_cut": -0.5}
            member["reservation"] = 50
    data["countries"][0]["constituents"][0]["ideal"] = {"a_cut": 0.5, "b_cut": -1}
    data["countries"][0]["constituents"][0]["reservation"] = 80
    return data


def test_json_prints_fractional_values(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, fractional_data(), "halves.yaml")
    report, raw = run_json(str(path))
    scenario = load_scenario_file(path)
    assert report["points"] == 5 * 5
    for country in scenario.countries:
        expected = [p for p in grid(scenario) if ratifies(scenario, country, p)]
        assert report["countries"][country.key]["winset"] == as_lists(expected)
    assert "[0.5, -0.75]" in raw
    assert "[1, -1]" in raw and "[1, -0.5]" in raw
    assert not re.search(r"\d\.0\b", raw)
    assert report["nash"] and all(point in report["zone"] for point in report["nash"])


@pytest.mark.django_db
def test_builtin_slug_is_found() -> None:
    report, _ = run_json("gatt", "--summary")
    assert report == {
        "scenario": "gatt",
        "points": 121,
        "countries": {"A": {"winset_size": 41}, "B": {"winset_size": 58}},
        "zone_size": 5,
        "playable_zone_size": 5,
    }


@pytest.mark.django_db
def test_a_stored_scenario_comes_before_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = gatt_data()
    stored["slug"] = "gatt"
    stored["countries"][0]["ratification"] = {"quota": "1", "strict": True}
    looked_up: list[str] = []

    def fake_stored(slug: str) -> Scenario | None:
        looked_up.append(slug)
        return parse_scenario(stored) if slug == "gatt" else None

    monkeypatch.setattr(analyze_scenario, "stored_scenario", fake_stored)
    report, _ = run_json("gatt", "--summary")
    assert looked_up == ["gatt"]
    assert report["countries"]["A"]["winset_size"] == 0
    report, _ = run_json("climate-treaty", "--summary")
    assert looked_up == ["gatt", "climate-treaty"]
    assert report["scenario"] == "climate-treaty"


@pytest.mark.django_db
def test_a_scenario_stored_in_the_database_is_found() -> None:
    try:
        model = apps.get_model(analyze_scenario.STORED_SCENARIO_MODEL)
    except LookupError:
        pytest.skip("negotiation.Scenario does not exist yet")
    data = gatt_data()
    data["slug"] = "stored-gatt"
    definition = parse_scenario(data).to_dict()
    fields = {f.name for f in model._meta.get_fields()}
    values: dict[str, Any] = {"slug": "stored-gatt", "definition": definition}
    for name, value in (("title", data["title"]), ("summary", "")):
        if name in fields:
            values[name] = value
    model._default_manager.create(**values)
    report, _ = run_json("stored-gatt", "--summary")
    assert report["scenario"] == "stored-gatt"
    assert report["zone_size"] == 5


# --------------------------------------------------------------------------------------------
# Refusals: exit status 2, problems on stderr, nothing on stdout


def test_a_bad_file_exits_2_with_every_problem_by_path(tmp_path: Path) -> None:
    data = gatt_data()
    data["countries"][1]["constituents"][0]["ideal"]["b_cut"] = 12
    data["countries"][0]["constituents"][2]["weight"] = 0
    data["countries"][0]["constituents"][1]["idael"] = {"a_cut": 1}
    code, out, err = run(str(write_yaml(tmp_path, data, "bad.yaml")))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "countries[0].constituents[1].idael: is not a known field (did you mean 'ideal'?); "
        "known: key, name, ideal, salience, weight, reservation, veto, briefing",
        "countries[0].constituents[2].weight: 0 must be above 0",
        "countries[1].constituents[0].ideal.b_cut: 12 is above max 10",
    ]


@pytest.mark.parametrize("flags", [(), ("--json",), ("--json", "--summary"), ("--summary",)])
def test_a_bad_file_exits_2_whatever_the_flags(tmp_path: Path, flags: tuple[str, ...]) -> None:
    data = gatt_data()
    data["schema"] = 2
    code, out, err = run(str(write_yaml(tmp_path, data)), *flags)
    assert (code, out) == (2, "")
    assert err == "schema: 2 is not supported; this version reads schema 1\n"


def test_bad_yaml_exits_2_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("schema: 1\nslug: x\ntitle: [oops\nutility: cityblock\n", encoding="utf-8")
    code, out, err = run(str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"{path}: is not valid JSON or YAML at line 4, column 8")
    assert len(err.splitlines()) == 1


def test_bad_json_exits_2_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema": 1,\n "slug": }\n', encoding="utf-8")
    code, out, err = run(str(path), "--json")
    assert (code, out) == (2, "")
    assert err == f"{path}: is not valid JSON at line 2, column 10: Expecting value\n"


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    code, out, err = run(str(missing), "--json")
    assert (code, out) == (2, "")
    assert err == f"{missing}: no such file\n"


@pytest.mark.django_db
def test_an_unknown_slug_exits_2() -> None:
    code, out, err = run("no-such-scenario", "--json")
    assert (code, out) == (2, "")
    assert err.startswith("no-such-scenario: no such file, and no stored or built-in scenario")
    assert "gatt" in err
    assert len(err.splitlines()) == 1


def test_a_real_process_exits_2_without_a_traceback(tmp_path: Path) -> None:
    data = gatt_data()
    data["countries"][1]["constituents"][0]["ideal"]["b_cut"] = 12
    path = write_yaml(tmp_path, data, "bad.yaml")
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "analyze_scenario", str(path), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "countries[1].constituents[0].ideal.b_cut: 12 is above max 10" in result.stderr


# --------------------------------------------------------------------------------------------
# The report for a person

GATT_MAP = """\
10 | . . A A A A . . . . .
 9 | . A A A A A A . B . .
 8 | A A A A A A A * B B .
 7 | A A A A A A * B B B B
 6 | A A A A A * B B B B B
 5 | A A A A * N B B B B B
 4 | . A A A B B B B B B B
 3 | . . A B B B B B B B B
 2 | . . . B B B B B B B B
 1 | . . . . B B B B B B B
 0 | . . . . . B B B B B B
   +----------------------
     0 1 2 3 4 5 6 7 8 9 10"""


def test_human_report_for_gatt(tmp_path: Path) -> None:
    code, out, err = run(str(write_yaml(tmp_path, gatt_data())))
    assert (code, err) == (0, "")
    assert "Scenario: GATT round (test file) (gatt-file)" in out
    assert "Utility: cityblock" in out
    assert "Grid: 121 points (11 x 11)" in out
    assert "a_cut: Atlantis tariff cut, 0 to 10 in steps of 1, 11 levels" in out
    assert "b_cut: Borduria tariff cut, 0 to 10 in steps of 1, 11 levels" in out
    assert "A: Atlantis\n    ratifies with more than 1/2 of the weighted votes\n" in out
    assert "win-set: 41 points (33.9% of the grid)" in out
    assert "win-set: 58 points (47.9% of the grid)" in out
    assert "Zone of agreement: 5 points (4.1% of the grid)" in out
    assert "Playable zone (every chief accepts too): 5 points (4.1% of the grid)" in out
    assert "  (5, 5): A 5, B 7\n" in out
    assert "Harmony: no" in out
    assert GATT_MAP in out
    assert "b_cut (Borduria tariff cut) up, a_cut (Atlantis tariff cut) across" in out
    for legend in (
        ". in no win-set",
        "A only Atlantis's win-set",
        "B only Borduria's win-set",
        "+ zone of agreement",
        "* playable zone",
        "N Nash point",
    ):
        assert f"  {legend}\n" in out


def test_human_map_marks_zone_points_the_chiefs_refuse(tmp_path: Path) -> None:
    # B's chief at r = 75 accepts only (5, 5) of the zone: the other zone points become '+'.
    data = gatt_data()
    data["countries"][1]["chief"]["reservation"] = 75
    code, out, _ = run(str(write_yaml(tmp_path, data)))
    assert code == 0
    assert " 5 | A A A A + N B B B B B" in out
    assert " 8 | A A A A A A A + B B ." in out
    assert "Playable zone (every chief accepts too): 1 point (0.8% of the grid)" in out


def test_human_summary_has_no_map_and_no_point_list(tmp_path: Path) -> None:
    code, out, _ = run(str(write_yaml(tmp_path, gatt_data())), "--summary")
    assert code == 0
    assert "Zone of agreement: 5 points" in out
    assert "Nash points: 1" in out
    assert "(5, 5)" not in out
    assert "Legend" not in out and " | " not in out


def test_human_report_without_a_map_for_other_than_two_issues(tmp_path: Path) -> None:
    data = gatt_data()
    data["issues"].append({"key": "c_cut", "label": "Third", "min": 0, "max": 2})
    for country in data["countries"]:
        for member in (country["chief"], *country["constituents"]):
            member["ideal"]["c_cut"] = 1
    code, out, _ = run(str(write_yaml(tmp_path, data)))
    assert code == 0
    assert "Grid: 363 points (11 x 11 x 3)" in out
    assert "No map: a map is drawn for two-issue scenarios; this one has 3." in out


def test_human_report_without_a_map_for_more_than_80_levels(tmp_path: Path) -> None:
    data = gatt_data()
    data["issues"][0].update(max=100)
    code, out, _ = run(str(write_yaml(tmp_path, data)))
    assert code == 0
    assert (
        "No map: the grid is 101 x 11 levels; a map is drawn when both issues have at most "
        "80 levels." in out
    )
    data["issues"][0].update(max=79)
    code, out, _ = run(str(write_yaml(tmp_path, data)))
    assert "Legend:" in out


def test_human_map_with_three_countries(tmp_path: Path) -> None:
    data = gatt_data()
    third = {
        "key": "NOR",
        "name": "Norland",
        "chief": person("N-chief", (5, 5), 0),
        "constituents": [person("N1", (10, 10), 60)],
    }
    data["countries"].append(third)
    code, out, _ = run(str(write_yaml(tmp_path, data)))
    assert code == 0
    # 'N' marks Nash points, so Norland gets the next letter of its key.
    assert "O only Norland's win-set" in out
    assert ": in several win-sets, not all" in out


# --------------------------------------------------------------------------------------------
# Helpers of the command


def test_country_symbols_avoid_the_map_symbols() -> None:
    data = gatt_data()
    data["countries"][0]["key"] = "NA"
    data["countries"][1]["key"] = "NB"
    symbols = analyze_scenario.country_symbols(parse_scenario(data))
    assert symbols == {"NA": "A", "NB": "B"}


@pytest.mark.parametrize(
    ("count", "total", "expected"),
    [(0, 10, "0.0%"), (1, 3, "33.3%"), (1, 10_000, "<0.1%"), (10, 10, "100.0%")],
)
def test_share(count: int, total: int, expected: str) -> None:
    assert analyze_scenario.share(count, total) == expected


def test_json_report_equals_the_streamed_text(tmp_path: Path) -> None:
    scenario = parse_scenario(fractional_data())
    analysis = Analysis(scenario)
    for summary in (False, True):
        text = "".join(analyze_scenario.json_chunks(analysis, summary=summary))
        assert json.loads(text) == analyze_scenario.json_report(analysis, summary=summary)
        assert text == json.dumps(json.loads(text))


def test_point_list_of_flat_indices() -> None:
    analysis = Analysis(parse_scenario(gatt_data()))
    points = analyze_scenario.point_list(analysis, np.array([120, 0, 11], dtype=np.int64))
    assert points == [[0, 0], [1, 0], [10, 10]]
    assert analyze_scenario.point_list(analysis, np.array([], dtype=np.int64)) == []
