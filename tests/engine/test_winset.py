"""Win-sets, zones, pivotal surplus, Nash points and side payments (DESIGN §3).

The first half checks hand-computed answers on the GATT scenario of DESIGN §6, built inline, and
on small scenarios made to test one rule each. The second half checks the vectorised code against
plain Python loops on random small scenarios (hypothesis).

On GATT every salience is 1 and both ranges are 10, so ``U(x) = 100 - 5 * d`` with ``d`` the
city-block distance from the member's ideal point; a member votes yes iff ``d < (100 - r) / 5``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from negotiation.engine.scenario import Country, Member, Scenario, parse_scenario
from negotiation.engine.utility import TIE_EPSILON, UtilityKind, utility, votes_yes
from negotiation.engine.winset import (
    Analysis,
    cheapest_side_payment,
    grid_axes,
    grid_points,
    pivotal_surplus,
    transfer_needed,
    utility_grid,
    winset_mask,
)

Point = tuple[float, ...]

# --------------------------------------------------------------------------------------------
# Scenario builders


def member_data(
    key: str,
    ideal: Sequence[float],
    reservation: float | None = None,
    *,
    issue_keys: Sequence[str] = ("a_cut", "b_cut"),
    salience: Sequence[float] | None = None,
    weight: float | str | None = None,
    veto: bool | None = None,
) -> dict[str, Any]:
    """Plain data of one member (chief or constituent) for ``parse_scenario``."""
    data: dict[str, Any] = {
        "key": key,
        "name": key,
        "ideal": dict(zip(issue_keys, ideal, strict=True)),
    }
    if reservation is not None:
        data["reservation"] = reservation
    if salience is not None:
        data["salience"] = dict(zip(issue_keys, salience, strict=True))
    if weight is not None:
        data["weight"] = weight
    if veto is not None:
        data["veto"] = veto
    return data


def gatt_data() -> dict[str, Any]:
    """DESIGN §6, GATT round: equal weights and saliences, majority in both countries."""
    return {
        "schema": 1,
        "slug": "gatt-inline",
        "title": "GATT round",
        "utility": "cityblock",
        "issues": [
            {"key": "a_cut", "label": "A tariff cut", "min": 0, "max": 10},
            {"key": "b_cut", "label": "B tariff cut", "min": 0, "max": 10},
        ],
        "countries": [
            {
                "key": "A",
                "name": "Atlantis",
                "ratification": {"quota": "1/2", "strict": True},
                "chief": member_data("A-chief", (4, 8), 60),
                "constituents": [
                    member_data("A1", (6, 9), 70),
                    member_data("A2", (2, 8), 70),
                    member_data("A3", (1, 5), 75),
                ],
            },
            {
                "key": "B",
                "name": "Borduria",
                "ratification": {"quota": "1/2", "strict": True},
                "chief": member_data("B-chief", (8, 4), 60),
                "constituents": [
                    member_data("B1", (9, 5), 66),
                    member_data("B2", (8, 3), 68),
                    member_data("B3", (5, 0), 73),
                ],
            },
        ],
    }


def gatt(**changes: Any) -> Scenario:
    """The GATT scenario; ``changes`` maps a member key to fields to overwrite, or a country
    key to ``{"ratification": ...}``."""
    data = gatt_data()
    for country in data["countries"]:
        if country["key"] in changes:
            country.update(changes[country["key"]])
        for member in (country["chief"], *country["constituents"]):
            member.update(changes.get(member["key"], {}))
    return parse_scenario(data)


def one_issue_scenario(
    constituents_a: Sequence[dict[str, Any]],
    *,
    quota: str = "1/2",
    strict: bool = True,
    constituents_b: Sequence[dict[str, Any]] | None = None,
    chief_reservations: tuple[float, float] = (0, 0),
) -> Scenario:
    """Issue ``x`` in 0..10; country A has the given members, B by default one member who
    accepts everything."""
    keys = ("x",)
    b_members = (
        list(constituents_b)
        if constituents_b is not None
        else [member_data("B1", (5,), -1, issue_keys=keys)]
    )
    return parse_scenario(
        {
            "schema": 1,
            "slug": "one-issue",
            "title": "One issue",
            "utility": "cityblock",
            "issues": [{"key": "x", "min": 0, "max": 10}],
            "countries": [
                {
                    "key": "A",
                    "ratification": {"quota": quota, "strict": strict},
                    "chief": member_data("A-chief", (0,), chief_reservations[0], issue_keys=keys),
                    "constituents": list(constituents_a),
                },
                {
                    "key": "B",
                    "chief": member_data("B-chief", (10,), chief_reservations[1], issue_keys=keys),
                    "constituents": b_members,
                },
            ],
        }
    )


# --------------------------------------------------------------------------------------------
# Brute-force references: plain loops over the grid with the scalar functions of ``utility``


def all_points(scenario: Scenario) -> list[Point]:
    """Every grid point in row-major order (the order of the engine's flat indices)."""
    return list(itertools.product(*(issue.values for issue in scenario.issues)))


def member_utility(scenario: Scenario, member: Member, point: Sequence[float]) -> float:
    return utility(scenario.utility, member.ideal, member.salience, scenario.ranges, point)


def ratifies(
    scenario: Scenario,
    country: Country,
    point: Sequence[float],
    transfers: dict[str, float] | None = None,
) -> bool:
    """The ratification rule of DESIGN §3, with exact fractions for the quota."""
    yes_weight = Fraction(0)
    for member in country.constituents:
        transfer = (transfers or {}).get(member.key, 0.0)
        if votes_yes(member_utility(scenario, member, point), member.reservation, transfer):
            yes_weight += member.weight
        elif member.veto:
            return False
    threshold = country.quota * country.total_weight
    return yes_weight > threshold if country.strict else yes_weight >= threshold


def brute_force_winset(
    scenario: Scenario, country: Country, transfers: dict[str, float] | None = None
) -> set[Point]:
    return {p for p in all_points(scenario) if ratifies(scenario, country, p, transfers)}


def chiefs_accept(scenario: Scenario, point: Sequence[float]) -> bool:
    return all(
        votes_yes(member_utility(scenario, chief, point), chief.reservation)
        for chief in scenario.chiefs
    )


def brute_force_surplus(scenario: Scenario, country: Country, point: Sequence[float]) -> float:
    """DESIGN §3 read literally: sort by margin, add weights until the quota is met."""
    margins = [
        member_utility(scenario, m, point) - (m.reservation + TIE_EPSILON)
        for m in country.constituents
    ]
    order = sorted(range(len(margins)), key=lambda i: -margins[i])
    weight = Fraction(0)
    surplus = -math.inf
    for i in order:
        weight += country.constituents[i].weight
        if country.quota_met(weight):
            surplus = margins[i]
            break
    for i, member in enumerate(country.constituents):
        if member.veto:
            surplus = min(surplus, margins[i])
    return surplus


def brute_force_cheapest_total(
    scenario: Scenario, country: Country, point: Sequence[float]
) -> int | None:
    """The cheapest winning coalition over all subsets of members."""
    costs = []
    for member in country.constituents:
        value = member_utility(scenario, member, point)
        cost = 0
        while not votes_yes(value, member.reservation, float(cost)):
            cost += 1
        costs.append(cost)
    members = country.constituents
    best: int | None = None
    for size in range(len(members) + 1):
        for coalition in itertools.combinations(range(len(members)), size):
            if any(m.veto and i not in coalition for i, m in enumerate(members)):
                continue
            if not country.quota_met(sum((members[i].weight for i in coalition), Fraction(0))):
                continue
            total = sum(costs[i] for i in coalition)
            best = total if best is None else min(best, total)
    return best


def mask_points(scenario: Scenario, mask: np.ndarray[Any, Any]) -> set[Point]:
    return {tuple(row) for row in grid_points(scenario, np.flatnonzero(mask)).tolist()}


# --------------------------------------------------------------------------------------------
# GATT by hand

GATT_WINSET_SIZES = {"A": 41, "B": 58}
GATT_ZONE = {(4.0, 5.0), (5.0, 5.0), (5.0, 6.0), (6.0, 7.0), (7.0, 8.0)}


def test_gatt_winset_sizes_by_a_double_loop() -> None:
    scenario = gatt()
    analysis = Analysis(scenario)
    for country in scenario.countries:
        by_loop = {
            (a, b)
            for a in range(11)
            for b in range(11)
            if sum(
                votes_yes(
                    utility("cityblock", m.ideal, m.salience, (10, 10), (a, b)), m.reservation
                )
                for m in country.constituents
            )
            >= 2
        }
        assert len(by_loop) == GATT_WINSET_SIZES[country.key]
        assert int(analysis.winsets[country.key].sum()) == GATT_WINSET_SIZES[country.key]
        assert mask_points(scenario, analysis.winsets[country.key]) == {
            (float(a), float(b)) for a, b in by_loop
        }


def test_gatt_winsets_by_integer_distance_thresholds() -> None:
    """Independent of floating point: yes iff city-block distance < (100 - r) / 5."""

    def distance(point: tuple[int, int], ideal: tuple[int, int]) -> int:
        return abs(point[0] - ideal[0]) + abs(point[1] - ideal[1])

    ideals_and_reservations = {
        "A": [((6, 9), 70), ((2, 8), 70), ((1, 5), 75)],
        "B": [((9, 5), 66), ((8, 3), 68), ((5, 0), 73)],
    }
    analysis = Analysis(gatt())
    for key, members in ideals_and_reservations.items():
        limits = [(ideal, Fraction(100 - reservation, 5)) for ideal, reservation in members]
        expected = {
            (float(a), float(b))
            for a in range(11)
            for b in range(11)
            if sum(distance((a, b), ideal) < limit for ideal, limit in limits) >= 2
        }
        assert mask_points(analysis.scenario, analysis.winsets[key]) == expected


def test_gatt_zone_playable_zone_and_nash_point() -> None:
    analysis = Analysis(gatt())
    assert mask_points(analysis.scenario, analysis.zone) == GATT_ZONE
    assert mask_points(analysis.scenario, analysis.playable_zone) == GATT_ZONE
    assert analysis.points(analysis.nash_indices).tolist() == [[5.0, 5.0]]
    surpluses = analysis.surpluses((5, 5))
    assert surpluses["A"] == pytest.approx(5)
    assert surpluses["B"] == pytest.approx(7)


@pytest.mark.parametrize(
    ("point", "surplus_a", "surplus_b"),
    [
        # Margins U - r of (A1, A2, A3) and (B1, B2, B3); with three equal members and a strict
        # majority the pivot is the second best margin.
        ((4, 5), 5, 2),  # A: 0, 5, 10     B: 9, 2, -3
        ((5, 5), 5, 7),  # A: 5, 0, 5      B: 14, 7, 2
        ((5, 6), 5, 2),  # A: 10, 5, 0     B: 9, 2, -3
        ((6, 7), 5, 2),  # A: 20, 5, -10   B: 9, 2, -13
        ((7, 8), 5, 2),  # A: 20, 5, -20   B: 9, 2, -23
        ((4, 8), 15, -13),  # A: 15, 20, -5   B: -6, -13, -18
        ((0, 0), -20, -23),  # A: -45, -20, -5   B: -36, -23, 2
    ],
)
def test_gatt_pivotal_surplus_by_hand(
    point: tuple[int, int], surplus_a: float, surplus_b: float
) -> None:
    scenario = gatt()
    expected = {"A": surplus_a, "B": surplus_b}
    row = np.array([point], dtype=np.float64)
    for country in scenario.countries:
        value = float(pivotal_surplus(scenario, country, row)[0])
        assert value == pytest.approx(expected[country.key] - TIE_EPSILON, abs=1e-12)
        assert (value > 0) == ratifies(scenario, country, point)


def test_gatt_tie_at_the_reservation_votes_no() -> None:
    """A1 at (6, 3): d = 6, U = 70 = r exactly; it is a no, so A fails there (A2, A3 too)."""
    scenario = gatt()
    a1 = scenario.member("A1")
    assert scenario.utility_of(a1, (6, 3)) == pytest.approx(70)
    assert not votes_yes(scenario.utility_of(a1, (6, 3)), 70)
    # At (4, 5) A1 is tied (d = 6) and votes no, yet A2 and A3 carry the vote.
    analysis = Analysis(scenario)
    assert analysis.contains(analysis.winsets["A"], (4, 5))
    # Lowering A1's reservation by a hair turns the tie into a yes.
    relaxed = Analysis(gatt(A1={"reservation": 69.999999}))
    assert int(relaxed.winsets["A"].sum()) > GATT_WINSET_SIZES["A"]


def test_gatt_chief_reservations_cut_the_playable_zone() -> None:
    # B's chief (8, 4) at r = 75 needs d < 5: only (5, 5) at d = 4; the others are ties (d = 5).
    analysis = Analysis(gatt(**{"B-chief": {"reservation": 75}}))
    assert mask_points(analysis.scenario, analysis.zone) == GATT_ZONE
    assert mask_points(analysis.scenario, analysis.playable_zone) == {(5.0, 5.0)}
    closed = Analysis(gatt(**{"B-chief": {"reservation": 80}}))
    assert not closed.playable_zone.any()
    assert int(closed.zone.sum()) == len(GATT_ZONE)


def test_gatt_is_not_in_harmony() -> None:
    assert Analysis(gatt()).harmony is False


# --------------------------------------------------------------------------------------------
# Quotas, weights, vetoes, transfers


def four_members(point_utilities: Sequence[float]) -> list[dict[str, Any]]:
    """Members whose utility at x = 0 is ``100 - 10 * ideal``; reservation 55."""
    return [
        member_data(f"A{i}", (ideal,), 55, issue_keys=("x",))
        for i, ideal in enumerate(point_utilities)
    ]


def test_strict_quota_refuses_exactly_half_and_inclusive_accepts_it() -> None:
    # At x = 0: members with ideal 0 and 2 are at 100 and 80 (yes); ideal 6 and 8: 40, 20 (no).
    members = four_members((0, 2, 6, 8))
    strict = one_issue_scenario(members, quota="1/2", strict=True)
    inclusive = one_issue_scenario(members, quota="1/2", strict=False)
    assert not ratifies(strict, strict.countries[0], (0,))
    assert not Analysis(strict).contains(Analysis(strict).winsets["A"], (0,))
    assert ratifies(inclusive, inclusive.countries[0], (0,))
    assert Analysis(inclusive).contains(Analysis(inclusive).winsets["A"], (0,))


# Ideals 0, 0, 3, 7 with reservation 55: a member says yes iff |x - ideal| <= 4, so the yes
# counts (of 4 equal members) at x = 0..10 are:
LINE_YES_COUNTS = [3, 3, 3, 4, 4, 2, 2, 2, 1, 1, 1]


@pytest.mark.parametrize(
    ("quota", "strict", "expected"),
    [
        ("1/2", True, {0, 1, 2, 3, 4}),  # more than 2 of 4
        ("1/2", False, {0, 1, 2, 3, 4, 5, 6, 7}),  # at least 2
        ("2/3", True, {0, 1, 2, 3, 4}),  # more than 8/3
        ("3/4", False, {0, 1, 2, 3, 4}),  # at least 3
        ("3/4", True, {3, 4}),  # more than 3
        ("1", False, {3, 4}),  # all 4
        ("1", True, set()),  # more than 4: never
    ],
)
def test_quota_rules_on_a_line(quota: str, strict: bool, expected: set[int]) -> None:
    scenario = one_issue_scenario(four_members((0, 0, 3, 7)), quota=quota, strict=strict)
    country = scenario.countries[0]
    assert [
        sum(abs(x - ideal) <= 4 for ideal in (0, 0, 3, 7)) for x in range(11)
    ] == LINE_YES_COUNTS
    mask = winset_mask(scenario, country)
    assert {int(p[0]) for p in mask_points(scenario, mask)} == expected
    assert brute_force_winset(scenario, country) == {(float(x),) for x in expected}


def test_weights_let_a_heavy_member_ratify_alone() -> None:
    # Weight 3 of 5 is more than half: the heavy member (ideal 0) carries x <= 4 by itself.
    members = [
        member_data("A0", (0,), 55, issue_keys=("x",), weight=3),
        member_data("A1", (10,), 55, issue_keys=("x",), weight=1),
        member_data("A2", (10,), 55, issue_keys=("x",), weight=1),
    ]
    scenario = one_issue_scenario(members)
    mask = winset_mask(scenario, scenario.countries[0])
    assert {p[0] for p in mask_points(scenario, mask)} == {0.0, 1.0, 2.0, 3.0, 4.0}
    # With weights 2, 1, 1 nobody ratifies alone and the two light members need the heavy one.
    lighter = one_issue_scenario([{**members[0], "weight": 2}, members[1], members[2]])
    assert not winset_mask(lighter, lighter.countries[0]).any()


def test_fractional_weights_are_exact() -> None:
    # 1/3 + 1/6 = 1/2 of a total of 1: exactly half, so strict fails and inclusive passes.
    members = [
        member_data("A0", (0,), 55, issue_keys=("x",), weight="1/3"),
        member_data("A1", (0,), 55, issue_keys=("x",), weight="1/6"),
        member_data("A2", (10,), 55, issue_keys=("x",), weight="1/2"),
    ]
    strict = one_issue_scenario(members)
    inclusive = one_issue_scenario(members, strict=False)
    assert not winset_mask(strict, strict.countries[0])[0]
    assert winset_mask(inclusive, inclusive.countries[0])[0]


def test_veto_member_blocks_a_majority() -> None:
    members = [
        member_data("A0", (0,), 55, issue_keys=("x",)),
        member_data("A1", (1,), 55, issue_keys=("x",)),
        member_data("A2", (9,), 55, issue_keys=("x",), veto=True),
    ]
    scenario = one_issue_scenario(members)
    country = scenario.countries[0]
    # Without the veto: yes iff two of |x|, |x-1|, |x-9| are <= 4, i.e. x in 0..5.
    # With A2's veto x must also be >= 5: only x = 5 remains.
    mask = winset_mask(scenario, country)
    assert {p[0] for p in mask_points(scenario, mask)} == {5.0}
    # Margins at x = 0: A0 45, A1 35, A2 -45: the pivot is 35, lowered to the veto's -45.
    # At x = 5: A0 -5, A1 5, A2 5: the pivot is 5 and the veto's margin is 5.
    row = np.array([[0.0], [5.0]])
    surplus = pivotal_surplus(scenario, country, row)
    assert surplus[0] == pytest.approx(-45 - TIE_EPSILON)
    assert surplus[1] == pytest.approx(5 - TIE_EPSILON)


def test_transfers_turn_a_tie_into_a_yes() -> None:
    scenario = gatt()
    country = scenario.country("A")
    base = winset_mask(scenario, country)
    # (6, 3): A1 is exactly tied (d = 6), A2 d = 9, A3 d = 7: no majority.
    analysis = Analysis(scenario)
    index = analysis.index_of((6, 3))
    assert index is not None and not base.flat[index]
    # A transfer of 1 to A1 is not enough (A2 and A3 still say no) ...
    assert not winset_mask(scenario, country, transfers={"A1": 1}).flat[index]
    # ... but A3 at d = 7 has U = 65 < 75: 10 points make a tie (no), 11 a yes.
    assert not winset_mask(scenario, country, transfers={"A1": 1, "A3": 10}).flat[index]
    assert winset_mask(scenario, country, transfers={"A1": 1, "A3": 11}).flat[index]
    assert winset_mask(scenario, country, transfers={"A1": 1, "A3": 10.5}).flat[index]
    with_transfers = winset_mask(scenario, country, transfers={"A1": 0.5})
    assert mask_points(scenario, with_transfers) == brute_force_winset(
        scenario, country, {"A1": 0.5}
    )
    assert with_transfers.sum() > base.sum()


def test_transfer_needed_respects_the_tie_rule() -> None:
    assert transfer_needed(70.0, 70.0) == 1
    assert transfer_needed(65.0, 70.0) == 6
    assert transfer_needed(70.5, 70.0) == 0
    assert transfer_needed(69.5, 70.0) == 1
    assert transfer_needed(70.0 + 5e-10, 70.0) == 1


# --------------------------------------------------------------------------------------------
# Nash points


def test_nash_points_tie_on_a_line() -> None:
    # A (ideal 0, r 35): margin 65 - 10x. B (ideal 9, r 35): U = 100 - 10|x - 9|, margin
    # 10x - 25 for x <= 9. Zone: x in 3..6. Products: 35*5, 25*15, 15*25, 5*35 -> tie at 4, 5.
    scenario = one_issue_scenario(
        [member_data("A1", (0,), 35, issue_keys=("x",))],
        constituents_b=[member_data("B1", (9,), 35, issue_keys=("x",))],
    )
    analysis = Analysis(scenario)
    assert mask_points(scenario, analysis.zone) == {(3.0,), (4.0,), (5.0,), (6.0,)}
    assert analysis.points(analysis.nash_indices).tolist() == [[4.0], [5.0]]
    assert analysis.surpluses((4,)) == pytest.approx({"A": 25, "B": 15})
    assert analysis.surpluses((5,)) == pytest.approx({"A": 15, "B": 25})


def test_nash_point_unique_when_the_product_peaks_once() -> None:
    # B ideal 10, r 30: margin 10x - 30; A margin 70 - 10x; zone 4..6; products 300, 400, 300.
    scenario = one_issue_scenario(
        [member_data("A1", (0,), 30, issue_keys=("x",))],
        constituents_b=[member_data("B1", (10,), 30, issue_keys=("x",))],
    )
    analysis = Analysis(scenario)
    assert mask_points(scenario, analysis.zone) == {(4.0,), (5.0,), (6.0,)}
    assert analysis.points(analysis.nash_indices).tolist() == [[5.0]]


def test_no_zone_means_no_nash_point() -> None:
    scenario = one_issue_scenario(
        [member_data("A1", (0,), 60, issue_keys=("x",))],
        constituents_b=[member_data("B1", (10,), 60, issue_keys=("x",))],
    )
    analysis = Analysis(scenario)
    assert not analysis.zone.any()
    assert analysis.nash_indices.size == 0
    assert analysis.points(analysis.nash_indices).shape == (0, 1)


# --------------------------------------------------------------------------------------------
# Cheapest side payment


def test_cheapest_side_payment_by_hand_at_b_chiefs_ideal() -> None:
    # At (8, 4): A1 d=7 U=65 needs 6 (5 would tie); A2 d=10 U=50 needs 21; A3 d=8 U=60 needs 16.
    scenario = gatt()
    plan = cheapest_side_payment(scenario, scenario.country("A"), (8, 4))
    assert plan is not None
    assert plan.country == "A"
    assert dict(plan.transfers) == {"A1": 6, "A3": 16}
    assert plan.total == 22
    paid = winset_mask(scenario, scenario.country("A"), transfers=dict(plan.transfers))
    assert Analysis(scenario).contains(paid, (8, 4))


def test_cheapest_side_payment_must_pay_veto_members() -> None:
    scenario = gatt(A2={"veto": True})
    plan = cheapest_side_payment(scenario, scenario.country("A"), (8, 4))
    assert plan is not None
    assert dict(plan.transfers) == {"A1": 6, "A2": 21}
    assert plan.total == 27


def test_cheapest_side_payment_is_free_inside_the_winset() -> None:
    scenario = gatt()
    plan = cheapest_side_payment(scenario, scenario.country("A"), (5, 5))
    assert plan is not None
    assert plan.total == 0
    assert dict(plan.transfers) == {}


def test_cheapest_side_payment_with_unanimity() -> None:
    strict = gatt(A={"ratification": {"quota": "1", "strict": True}})
    assert cheapest_side_payment(strict, strict.country("A"), (8, 4)) is None
    assert cheapest_side_payment(strict, strict.country("A"), (5, 5)) is None
    inclusive = gatt(A={"ratification": {"quota": "1", "strict": False}})
    plan = cheapest_side_payment(inclusive, inclusive.country("A"), (8, 4))
    assert plan is not None
    assert plan.total == 6 + 21 + 16


def test_cheapest_side_payment_prefers_weight_for_the_money() -> None:
    # At x = 0: A0 yes (weight 1); A1 (weight 1) and A2 (weight 3) both need 6 points.
    # Total 5, strict half needs > 2.5: A0 + A1 = 2 fails, A0 + A2 = 4 passes.
    members = [
        member_data("A0", (0,), 55, issue_keys=("x",)),
        member_data("A1", (5,), 55, issue_keys=("x",)),
        member_data("A2", (5,), 55, issue_keys=("x",), weight=3),
    ]
    scenario = one_issue_scenario(members)
    plan = cheapest_side_payment(scenario, scenario.countries[0], (0,))
    assert plan is not None
    assert dict(plan.transfers) == {"A2": 6}


def test_cheapest_side_payment_breaks_cost_ties_towards_earlier_members() -> None:
    # Inclusive half of 4 needs 2: A0 (yes) + A1 and A0 + A2 both cost 3 points.
    members = [
        member_data("A0", (0,), 50, issue_keys=("x",)),
        member_data("A1", (5,), 52, issue_keys=("x",)),
        member_data("A2", (5,), 52, issue_keys=("x",), weight=2),
    ]
    scenario = one_issue_scenario(members, strict=False)
    plan = cheapest_side_payment(scenario, scenario.countries[0], (0,))
    assert plan is not None
    assert plan.total == 3
    assert dict(plan.transfers) == {"A1": 3}


# --------------------------------------------------------------------------------------------
# Euclidean utility


def euclidean_disk_scenario(reservation: float) -> Scenario:
    data = gatt_data()
    data["utility"] = "euclidean"
    data["countries"][0]["constituents"] = [member_data("A1", (5, 5), reservation)]
    return parse_scenario(data)


def test_euclidean_utility_by_hand() -> None:
    scenario = euclidean_disk_scenario(80)
    member = scenario.member("A1")
    # From (5, 5) to (8, 9): sqrt(((3/10)^2 + (4/10)^2) / 2) = sqrt(0.125).
    assert scenario.utility_of(member, (8, 9)) == pytest.approx(100 * (1 - math.sqrt(0.125)))
    grid = utility_grid(scenario, member, grid_axes(scenario))
    assert grid[8, 9] == scenario.utility_of(member, (8, 9))
    assert grid[5, 5] == 100.0


def test_euclidean_winset_is_a_disk_without_its_boundary() -> None:
    # U > 80 iff (dx^2 + dy^2) / 200 < 0.04, i.e. dx^2 + dy^2 < 8: 21 lattice points.
    # The four points with dx = dy = 2 are ties (U = 80) and vote no.
    scenario = euclidean_disk_scenario(80)
    mask = winset_mask(scenario, scenario.countries[0])
    expected = {
        (5.0 + dx, 5.0 + dy) for dx in range(-5, 6) for dy in range(-5, 6) if dx * dx + dy * dy < 8
    }
    assert len(expected) == 21
    assert mask_points(scenario, mask) == expected
    assert scenario.utility_of(scenario.member("A1"), (7, 7)) == pytest.approx(80)


# --------------------------------------------------------------------------------------------
# Property tests against brute force

QUOTAS = ("1/2", "2/3", "3/4", "1")


def issue_values(issue: dict[str, Any]) -> list[float]:
    levels = round((issue["max"] - issue["min"]) / issue["step"]) + 1
    return [issue["min"] + k * issue["step"] for k in range(levels)]


@st.composite
def small_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Plain data of a random small scenario in which ties at reservations actually occur."""
    issue_count = draw(st.integers(1, 3))
    issues: list[dict[str, Any]] = []
    for j in range(issue_count):
        levels = draw(st.integers(2, 7))
        step = draw(st.sampled_from((1, 0.5, 2)))
        low = draw(st.integers(-3, 3))
        issues.append({"key": f"i{j}", "min": low, "max": low + (levels - 1) * step, "step": step})
    keys = [issue["key"] for issue in issues]
    grid = list(itertools.product(*(issue_values(issue) for issue in issues)))
    kind: UtilityKind = draw(st.sampled_from(("cityblock", "euclidean")))
    ranges = [issue["max"] - issue["min"] for issue in issues]
    no_agreement = draw(st.sampled_from(grid))
    use_no_agreement = draw(st.booleans())

    def half_integer_in(issue: dict[str, Any]) -> float:
        low, high = issue["min"], issue["max"]
        doubled = draw(st.integers(math.ceil(2 * low), math.floor(2 * high)))
        return doubled / 2

    def member(key: str, *, chief: bool) -> dict[str, Any]:
        ideal = [half_integer_in(issue) for issue in issues]
        salience = draw(
            st.lists(
                st.sampled_from((0, 1, 2, 3)), min_size=issue_count, max_size=issue_count
            ).filter(lambda values: sum(values) > 0)
        )
        data: dict[str, Any] = {
            "key": key,
            "name": key,
            "ideal": dict(zip(keys, ideal, strict=True)),
            "salience": dict(zip(keys, salience, strict=True)),
        }
        how = draw(st.sampled_from(("tie", "tie", "integer", "derived")))
        if how == "derived" and not use_no_agreement:
            how = "tie"
        if how == "tie":
            anchor = draw(st.sampled_from(grid))
            data["reservation"] = utility(kind, ideal, salience, ranges, anchor)
        elif how == "integer":
            data["reservation"] = draw(st.integers(0, 100))
        if not chief:
            data["weight"] = draw(st.integers(1, 5))
            data["veto"] = draw(st.integers(0, 3)) == 0
        return data

    countries = []
    for c in range(draw(st.integers(2, 3))):
        members = [member(f"C{c}M{i}", chief=False) for i in range(draw(st.integers(1, 6)))]
        countries.append(
            {
                "key": f"C{c}",
                "ratification": {
                    "quota": draw(st.sampled_from(QUOTAS)),
                    "strict": draw(st.booleans()),
                },
                "chief": member(f"C{c}chief", chief=True),
                "constituents": members,
            }
        )
    data: dict[str, Any] = {
        "schema": 1,
        "slug": "random",
        "title": "Random",
        "utility": kind,
        "issues": issues,
        "countries": countries,
    }
    if use_no_agreement:
        data["no_agreement"] = dict(zip(keys, no_agreement, strict=True))
    return data


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(small_scenarios())
def test_winset_mask_equals_brute_force(data: dict[str, Any]) -> None:
    scenario = parse_scenario(data)
    analysis = Analysis(scenario)
    points = all_points(scenario)
    for country in scenario.countries:
        mask = analysis.winsets[country.key]
        assert mask.shape == scenario.grid_shape
        expected = [ratifies(scenario, country, p) for p in points]
        assert mask.ravel().tolist() == expected


@PROPERTY_SETTINGS
@given(small_scenarios(), st.data())
def test_winset_mask_with_transfers_equals_brute_force(
    data: dict[str, Any], choices: st.DataObject
) -> None:
    scenario = parse_scenario(data)
    country = scenario.countries[0]
    transfers = {
        m.key: choices.draw(st.sampled_from((0, 0.5, 1, 3, 10))) for m in country.constituents
    }
    mask = winset_mask(scenario, country, transfers=transfers)
    points = all_points(scenario)
    assert mask.ravel().tolist() == [ratifies(scenario, country, p, transfers) for p in points]


@PROPERTY_SETTINGS
@given(small_scenarios())
def test_zone_and_playable_zone_equal_brute_force(data: dict[str, Any]) -> None:
    scenario = parse_scenario(data)
    analysis = Analysis(scenario)
    points = all_points(scenario)
    zone = [all(ratifies(scenario, c, p) for c in scenario.countries) for p in points]
    playable = [
        inside and chiefs_accept(scenario, p) for inside, p in zip(zone, points, strict=True)
    ]
    assert analysis.zone.ravel().tolist() == zone
    assert analysis.playable_zone.ravel().tolist() == playable
    intersection = np.logical_and.reduce(list(analysis.winsets.values()))
    assert np.array_equal(analysis.zone, intersection)
    assert analysis.zone_indices.tolist() == [i for i, inside in enumerate(zone) if inside]


@PROPERTY_SETTINGS
@given(small_scenarios())
def test_pivotal_surplus_is_positive_exactly_on_the_winset(data: dict[str, Any]) -> None:
    scenario = parse_scenario(data)
    analysis = Analysis(scenario)
    every_point = grid_points(scenario, np.arange(scenario.grid_size))
    points = all_points(scenario)
    assert [tuple(row) for row in every_point.tolist()] == points
    for country in scenario.countries:
        surplus = pivotal_surplus(scenario, country, every_point)
        assert (surplus > 0).tolist() == analysis.winsets[country.key].ravel().tolist()
        expected = [brute_force_surplus(scenario, country, p) for p in points]
        assert surplus.tolist() == pytest.approx(expected, abs=1e-9)


@PROPERTY_SETTINGS
@given(small_scenarios())
def test_nash_points_maximise_the_product_of_surpluses(data: dict[str, Any]) -> None:
    scenario = parse_scenario(data)
    analysis = Analysis(scenario)
    points = all_points(scenario)
    products = {
        i: math.prod(brute_force_surplus(scenario, c, p) for c in scenario.countries)
        for i, p in enumerate(points)
        if all(ratifies(scenario, c, p) for c in scenario.countries)
    }
    nash = set(analysis.nash_indices.tolist())
    if not products:
        assert nash == set()
        return
    best = max(products.values())
    assert best > 0
    surely_best = {i for i, value in products.items() if value >= best * (1 - 0.5e-9)}
    maybe_best = {i for i, value in products.items() if value >= best * (1 - 2e-9)}
    assert surely_best <= nash <= maybe_best


@PROPERTY_SETTINGS
@given(small_scenarios(), st.data())
def test_cheapest_side_payment_equals_brute_force_minimum(
    data: dict[str, Any], choices: st.DataObject
) -> None:
    scenario = parse_scenario(data)
    points = all_points(scenario)
    for country in scenario.countries:
        point = choices.draw(st.sampled_from(points))
        plan = cheapest_side_payment(scenario, country, point)
        expected = brute_force_cheapest_total(scenario, country, point)
        if expected is None:
            assert plan is None
            continue
        assert plan is not None
        assert plan.total == expected
        assert plan.total == sum(plan.transfers.values())
        assert all(value > 0 for value in plan.transfers.values())
        assert set(plan.transfers) <= {m.key for m in country.constituents}
        assert ratifies(scenario, country, point, {k: float(v) for k, v in plan.transfers.items()})


def test_the_random_scenarios_contain_exact_ties() -> None:
    """Guard on the generator: some member sits exactly at its reservation at a grid point."""

    def has_tie(data: dict[str, Any]) -> bool:
        scenario = parse_scenario(data)
        return any(
            member_utility(scenario, member, point) == member.reservation
            for country in scenario.countries
            for member in country.constituents
            for point in all_points(scenario)
        )

    found = find(
        small_scenarios(), has_tie, settings=settings(database=None, phases=[Phase.generate])
    )
    assert has_tie(found)
