"""Shared fixtures: paths of the project and its built-in scenario files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = ROOT / "negotiation" / "scenarios"
SCENARIO_SUFFIXES = frozenset({".yaml", ".yml", ".json"})


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def builtin_scenario_files() -> list[Path]:
    """Every built-in scenario file; fails (never skips) when there is none."""
    files = sorted(
        p for p in SCENARIO_DIR.glob("*") if p.is_file() and p.suffix.lower() in SCENARIO_SUFFIXES
    )
    assert files, f"no built-in scenario files in {SCENARIO_DIR}"
    return files
