"""The documentation says what the code does: README's commands and example, the rule codes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from negotiation.engine.scenario import parse_scenario
from negotiation.engine.winset import Analysis

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_opens_with_make_run_and_make_test() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```", 2)[1]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings[:2] == ["What the game is", "Authoring a scenario"]


def test_the_readme_scenario_is_valid_and_has_a_zone_of_agreement() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = parse_scenario(yaml.safe_load(example))
    assert Analysis(scenario).zone.any()


def test_every_refusal_code_of_the_rules_is_documented_and_no_other() -> None:
    source = (ROOT / "negotiation" / "engine" / "rules.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'_refuse\(\s*"([a-z_]+)"', source))
    table = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8").split("## Refusals", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))
    assert codes and documented == codes
