"""Engine benchmark: win-sets over a million-point grid, and folding a 10,000-event game.

Run with ``make bench``. Prints a table and exits 1 if a target is missed. Every baseline is
measured in the same run: the win-set's plain-Python loop is timed on a random sample of grid
points and scaled to the whole grid.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from negotiation.engine import commands as c
from negotiation.engine.rules import apply, create_game, fold, initial_state
from negotiation.engine.scenario import (
    GameDefaults,
    Scenario,
    load_builtin,
    parse_scenario,
)
from negotiation.engine.utility import votes_yes
from negotiation.engine.winset import Analysis, winset_mask

ISSUES = 4
LEVELS = 32
MEMBERS = 20
LOOP_SAMPLE = 4000
WINSET_TARGET_SECONDS = 1.0
SPEEDUP_TARGET = 100.0
FOLD_EVENTS = 10_000
FOLD_TARGET_SECONDS = 0.2


def large_scenario(seed: int = 7) -> Scenario:
    rng = random.Random(seed)
    keys = [f"issue_{j}" for j in range(ISSUES)]

    def member(key: str, *, chief: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": key,
            "name": key,
            "ideal": {k: rng.randint(0, LEVELS - 1) for k in keys},
            "salience": {k: rng.randint(1, 3) for k in keys},
            "reservation": rng.uniform(45, 75),
        }
        if not chief:
            data["weight"] = rng.randint(1, 5)
        return data

    return parse_scenario(
        {
            "schema": 1,
            "slug": "bench-large",
            "title": "Benchmark: four issues of 32 levels",
            "utility": "cityblock",
            "issues": [{"key": k, "min": 0, "max": LEVELS - 1} for k in keys],
            "countries": [
                {
                    "key": country,
                    "name": country,
                    "ratification": {"quota": "1/2"},
                    "chief": member(f"{country}-chief", chief=True),
                    "constituents": [member(f"{country}{i}") for i in range(MEMBERS)],
                }
                for country in ("A", "B")
            ],
        }
    )


def best_of(repeats: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def python_loop_zone(scenario: Scenario, points: list[tuple[float, ...]]) -> int:
    """The zone of agreement by a plain loop: every member's vote at every point."""
    inside = 0
    for point in points:
        ratified_everywhere = True
        for country in scenario.countries:
            yes_weight = Fraction(0)
            vetoed = False
            for member in country.constituents:
                if votes_yes(scenario.utility_of(member, point), member.reservation):
                    yes_weight += member.weight
                elif member.veto:
                    vetoed = True
            if vetoed or not country.quota_met(yes_weight):
                ratified_everywhere = False
                break
        inside += ratified_everywhere
    return inside


def bench_winset() -> list[tuple[str, float, str, bool]]:
    scenario = large_scenario()
    points_total = scenario.grid_size

    def numpy_zone() -> int:
        return int(Analysis(scenario).zone.sum())

    numpy_seconds = best_of(3, numpy_zone)
    rng = np.random.default_rng(11)
    sample_indices = rng.choice(points_total, size=LOOP_SAMPLE, replace=False)
    coordinates = np.unravel_index(sample_indices, scenario.grid_shape)
    sample = [tuple(float(v) for v in row) for row in np.stack(coordinates, axis=1)]
    loop_seconds = best_of(1, lambda: python_loop_zone(scenario, sample))
    loop_full = loop_seconds * points_total / LOOP_SAMPLE
    speedup = loop_full / numpy_seconds

    # The vectorised masks must agree with the loop on the sample.
    masks = [winset_mask(scenario, country) for country in scenario.countries]
    zone = np.logical_and.reduce(masks).ravel()
    assert int(zone[sample_indices].sum()) == python_loop_zone(scenario, sample)

    grid = f"{ISSUES} issues x {LEVELS} levels = {points_total:,} points, 2 x {MEMBERS} members"
    return [
        (
            f"win-sets + zone, numpy ({grid})",
            numpy_seconds,
            f"<= {WINSET_TARGET_SECONDS} s",
            numpy_seconds <= WINSET_TARGET_SECONDS,
        ),
        (
            f"same, plain Python loop ({LOOP_SAMPLE:,}-point sample, scaled)",
            loop_full,
            "baseline",
            True,
        ),
        (
            "speed-up of numpy over the loop",
            speedup,
            f">= {SPEEDUP_TARGET:.0f}x",
            speedup >= SPEEDUP_TARGET,
        ),
    ]


def long_game() -> list[Any]:
    """A real game of at least 10,000 events, every one produced by ``decide``."""
    scenario = load_builtin("gatt")
    settings = GameDefaults(rounds=20, attempts=2)
    created = create_game(scenario, settings)
    state = initial_state(created)
    log: list[Any] = [created]
    now = 1_000_000.0
    rng = random.Random(3)

    def run(command: c.Command) -> None:
        nonlocal state, now
        now += 1.0
        state, events = apply(state, command, now)
        log.extend(events)

    for seat in (m.key for m in scenario.members):
        run(c.TakeSeat(c.SYSTEM, seat, f"player-{seat}"))
    run(c.StartGame(c.INSTRUCTOR))
    chiefs = [country.chief.key for country in scenario.countries]
    while len(log) < FOLD_EVENTS and not state.ended:
        for _ in range(260):
            # The chiefs' texts never coincide (identical texts would be an agreement).
            side = rng.randrange(2)
            chief = chiefs[side]
            run(c.Chat(chief, "table", "What about this?"))
            a_cut = rng.randint(0, 4) if side == 0 else rng.randint(6, 10)
            run(c.Propose(chief, (float(a_cut), float(rng.randint(3, 7)))))
        run(c.Propose(chiefs[0], (5.0, 5.0)))
        run(c.Accept(chiefs[1], state.next_proposal_id - 1))
        for country in scenario.countries:
            for member in country.constituents:
                run(c.CastBallot(member.key, True))
    assert len(log) >= FOLD_EVENTS, f"the game produced only {len(log)} events"
    return log


def bench_fold() -> list[tuple[str, float, str, bool]]:
    log = long_game()
    seconds = best_of(5, lambda: fold(log))
    per_event = statistics.mean([seconds / len(log)]) * 1e6
    return [
        (
            f"fold a {len(log):,}-event game",
            seconds,
            f"<= {FOLD_TARGET_SECONDS} s",
            seconds <= FOLD_TARGET_SECONDS,
        ),
        ("  per event", per_event, "(microseconds)", True),
    ]


def main() -> int:
    rows = bench_winset() + bench_fold()
    width = max(len(name) for name, *_ in rows)
    print(f"{'measurement'.ljust(width)}  {'result':>12}  {'target':<14}  ok")
    print("-" * (width + 36))
    for name, value, target, ok in rows:
        if "speed-up" in name:
            shown = f"{value:,.0f}x"
        elif "microseconds" in target:
            shown = f"{value:.1f} us"
        else:
            shown = f"{value:.3f} s"
        print(f"{name.ljust(width)}  {shown:>12}  {target:<14}  {'yes' if ok else 'NO'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
