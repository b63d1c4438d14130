"""Smoke test of the websocket load benchmark: ``bench/ws_load.py --quick --json`` runs every
system on loopback (2 games, a few seconds each) and reports every figure, with nothing lost,
duplicated or refused. Speed targets are the benchmark's business, not this test's."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from negotiation import consumers
from tests.live import ROOT, require

pytestmark = pytest.mark.timeout(400)

ROW_FIELDS = {
    "games",
    "sockets",
    "rate",
    "seconds",
    "commands",
    "commands_per_s",
    "deliveries",
    "deliveries_per_s",
    "visible_deliveries",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "ack_p50_ms",
    "ack_p99_ms",
    "lost",
    "gaps",
    "undelivered",
    "undelivered_total",
    "duplicates",
    "errors",
    "error_codes",
    "unanswered",
    "stale_deliveries",
    "drained",
    "server_cpu_cores",
    "client_cpu_cores",
    "services_cpu_cores",
    "idle_cores",
    "late_sends",
    "max_send_lag_ms",
    "actions",
    "passed",
    "settle_after",
}
SYSTEMS = {"ratify", "raw", "asgi", "channels", "channels_layer"}


def run_quick(*options: str) -> dict[str, Any]:
    """The JSON report of ``bench/ws_load.py --quick --json`` with ``options``."""
    result = subprocess.run(
        [sys.executable, "bench/ws_load.py", "--quick", "--json", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_quick()


def test_every_system_reports_every_figure(report: dict[str, Any]) -> None:
    assert set(report) == {"config", "machine", "systems", "ratios", "targets"}
    assert set(report["systems"]) == SYSTEMS
    for name, system in report["systems"].items():
        assert set(system) >= {"label", "server_pids", "connect", "fixed", "memory", "saturation"}
        assert system["connect"]["seats"] == 16 and system["connect"]["failed"] == 0, name
        rows = [system["fixed"], *system["saturation"]["steps"]]
        for row in rows:
            assert set(row) >= ROW_FIELDS, (name, ROW_FIELDS - set(row))
            assert 0 <= row["idle_cores"] <= report["machine"]["cpus"] + 0.1, (name, row)
            assert row["services_cpu_cores"] >= 0 and row["server_cpu_cores"] >= 0, (name, row)
        memory = system["memory"]
        assert memory["idle_rss_kib"] > 0 and memory["loaded_rss_kib"] > 0, name
        assert "deliveries_per_s" in system["saturation"], name
    assert set(report["ratios"]) == {
        f"{kind}_vs_{name}" for kind in ("saturation", "fixed_p99") for name in SYSTEMS - {"ratify"}
    }


def test_every_event_reaches_every_seat_once_without_errors(report: dict[str, Any]) -> None:
    for name, system in report["systems"].items():
        fixed = system["fixed"]
        assert fixed["commands"] > 0, name
        assert fixed["deliveries"] > 0 and fixed["p99_ms"] is not None, name
        assert fixed["lost"] == 0, (name, fixed)
        assert fixed["duplicates"] == 0, (name, fixed)
        assert fixed["errors"] == 0, (name, fixed["error_codes"])
        assert fixed["drained"], name


def test_players_make_moves_of_the_rules_not_only_chat(report: dict[str, Any]) -> None:
    ratify = report["systems"]["ratify"]
    actions: dict[str, int] = {}
    for row in [ratify["fixed"], *ratify["saturation"]["steps"]]:
        for name, count in row["actions"].items():
            actions[name] = actions.get(name, 0) + count
    assert actions.get("chat", 0) > 0
    assert set(actions) - {"chat", "statement", "skipped"}, actions


@pytest.mark.parametrize("spread", ["games", "seats"])
def test_two_processes_are_measured_against_one_process_in_the_same_run(spread: str) -> None:
    require("127.0.0.1", 6379, "Redis")
    report = run_quick(
        "--systems",
        "ratify",
        "--processes",
        "2",
        "--layer",
        "redis",
        "--saturate",
        "--spread",
        spread,
    )
    systems = report["systems"]
    assert list(systems) == ["ratify1", "ratify"]
    assert len(systems["ratify1"]["server_pids"]) == 1
    assert len(systems["ratify"]["server_pids"]) == 2
    # Two games of 8 seats: each on a process of its own, or each across both.
    notes = systems["ratify"]["notes"]
    assert notes["sockets_per_process"] == [8, 8]
    assert notes["games_across_processes"] == (0 if spread == "games" else 2)
    assert systems["ratify1"]["notes"]["sockets_per_process"] == [16]
    for name, system in systems.items():
        fixed = system["fixed"]
        assert fixed["deliveries"] > 0 and fixed["lost"] == 0 and fixed["errors"] == 0, name
        assert system["saturation"]["deliveries_per_s"] > 0, name
    expected = round(
        systems["ratify"]["saturation"]["deliveries_per_s"]
        / systems["ratify1"]["saturation"]["deliveries_per_s"],
        3,
    )
    assert report["ratios"] == {"saturation_vs_one_process": expected}


@pytest.fixture
def ws_load(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``bench/ws_load.py`` as a module."""
    spec = importlib.util.spec_from_file_location("bench_ws_load", ROOT / "bench" / "ws_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_after_a_failed_step_the_benchmark_waits_out_the_servers_rate_window(ws_load: Any) -> None:
    assert ws_load.SERVER_RATE_WINDOW_SECONDS >= consumers.RATE_LIMIT_SECONDS


def test_a_steps_cores_are_differences_of_the_counters_read_around_it(ws_load: Any) -> None:
    # PostgreSQL backend 11 ran through the step, 12 started during it, 13 ended during it.
    before = ws_load.MachineSample(servers=[10.0, 20.0], services={11: 5.0, 13: 1.0}, idle=100.0)
    after = ws_load.MachineSample(servers=[14.0, 23.0], services={11: 6.0, 12: 0.5}, idle=104.0)
    assert before.cores_until(after, 10.0) == {
        "server_cpu_cores": 0.7,
        "services_cpu_cores": 0.15,
        "idle_cores": 0.4,
    }


def test_the_machine_of_a_real_step_is_read_from_proc(ws_load: Any) -> None:
    require("127.0.0.1", 5432, "PostgreSQL")
    sample = ws_load.MachineSample.take([os.getpid()])
    assert sample.services, "no PostgreSQL process found by its command name"
    assert sample.servers[0] > 0 and sample.idle > 0


def test_the_two_process_target_shows_what_one_process_left_of_the_machine(
    ws_load: Any,
) -> None:
    best = {
        "idle_cores": 0.4,
        "server_cpu_cores": 0.81,
        "client_cpu_cores": 0.62,
        "services_cpu_cores": 0.13,
    }
    note = ws_load.scaling_ceiling({"saturation": {"best": best}}, 2)
    assert note == (
        "at most 1.25x on this machine: one process's best step kept 1.60 of 2 cores busy "
        "(server 0.81, clients 0.62, PostgreSQL and Redis 0.13)"
    )
    assert ws_load.scaling_ceiling({"saturation": {"best": None}}, 2) is None


def fake_system(limit: float) -> Any:
    """A ``run_step`` of a system that passes while it is offered at most ``limit`` commands
    per second, recording each step's (games, rate)."""
    offered: list[tuple[int, float]] = []

    def run_step(games: int, rate: float, seconds: float) -> dict[str, Any]:
        offered.append((games, rate))
        load = games * rate
        return {"passed": load <= limit, "deliveries_per_s": load * 8, "games": games}

    run_step.offered = offered  # type: ignore[attr-defined]
    return run_step


def test_past_the_top_rate_per_game_the_ladder_spreads_its_load_over_more_games(
    ws_load: Any,
) -> None:
    options = ws_load.parse(["--games", "200", "--saturation-games", "100"])
    assert ws_load.spread_load(1600, options) == (100, 16.0)
    assert ws_load.spread_load(6400, options) == (100, 64.0)
    assert ws_load.spread_load(9050, options) == (142, 63.732)
    assert ws_load.spread_load(12800, options) == (200, 64.0)
    # Beyond every connected game at the top rate, the load cannot be offered.
    assert ws_load.spread_load(25600, options) == (200, 64.0)

    # A system that takes 9,000 commands per second is found above the 6,400 that 100 games
    # at the top rate offer: the ladder goes on with more games and bisects.
    run_step = fake_system(9000)
    result = ws_load.saturate(run_step, options)
    assert not result["capped"]
    assert 8000 * 8 < result["deliveries_per_s"] <= 9000 * 8
    # The lowest failing load is reported: the saturation lies between the two.
    assert 9000 * 8 < result["failed_at"] < result["deliveries_per_s"] * 1.1
    assert (200, 64.0) in run_step.offered and max(g for g, _ in run_step.offered) == 200
    assert all(rate <= ws_load.MAX_RATE for _, rate in run_step.offered)


def test_the_ladder_is_capped_only_when_every_connected_game_at_the_top_rate_passes(
    ws_load: Any,
) -> None:
    options = ws_load.parse(["--games", "200", "--saturation-games", "100"])
    run_step = fake_system(10**9)
    result = ws_load.saturate(run_step, options)
    assert result["capped"] and result["failed_at"] is None
    assert run_step.offered[-1] == (200, 64.0)
    assert result["deliveries_per_s"] == 200 * 64 * 8

    # Below the top rate the ladder keeps to its own games, as before: doubling, then
    # bisecting between the last passing rate and the first failing one.
    run_step = fake_system(2000)
    result = ws_load.saturate(run_step, options)
    assert {g for g, _ in run_step.offered} == {100}
    assert [r for _, r in run_step.offered][:9] == [0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32]
    assert 16 * 100 * 8 <= result["deliveries_per_s"] <= 2000 * 8


def test_a_saturation_ratio_is_bracketed_by_each_systems_failing_step(ws_load: Any) -> None:
    ours = {"saturation": {"deliveries_per_s": 24000.0, "failed_at": 25500.0}}
    other = {"saturation": {"deliveries_per_s": 50000.0, "failed_at": 55000.0}}
    assert ws_load.ratio_range(ours, other) == "between 0.436 and 0.510 within the ladder's steps"
    # A server that collapsed at the failing load delivered less there than it sustained.
    collapsed = {"saturation": {"deliveries_per_s": 24000.0, "failed_at": 20000.0}}
    assert ws_load.ratio_range(collapsed, other) == (
        "between 0.436 and 0.480 within the ladder's steps"
    )
    capped = {"saturation": {"deliveries_per_s": 50000.0, "failed_at": None}}
    assert ws_load.ratio_range(ours, capped) is None
