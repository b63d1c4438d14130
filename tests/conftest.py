"""Shared fixtures: paths of the project and its built-in scenario files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = ROOT / "negotiation" / "scenarios"
SCENARIO_SUFFIXES = frozenset({".yaml", ".yml", ".json"})

#: Every game a test plays through ``services`` must fold back from its stored log to the
#: states the live path held (see tests/consistency.py).
pytest_plugins = ["tests.consistency"]


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


@pytest.fixture
async def fresh_server(settings: Any) -> AsyncIterator[None]:
    """A clean server process for a test: no cached states, timers, bots or channel layers, and
    bots that move at once. Work the runtime started (timers firing, presence checks) is finished
    before the test's database is flushed, so it cannot hold a table when the flush comes."""
    from channels.layers import channel_layers

    from negotiation import services
    from negotiation.runtime import runtime

    settings.RATIFY_BOT_DELAY = 0
    channel_layers.backends.clear()
    services.state_cache.clear()
    runtime.reset()
    yield
    await runtime.settle()
    runtime.reset()
    services.state_cache.clear()
