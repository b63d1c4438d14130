"""Win-sets, the zone of agreement and the quantities built on them (DESIGN §3), over the grid.

Every function here works on the whole issue grid at once with numpy. Grid points are
numbered in row-major order of the scenario's issues, so ascending flat indices are the points
in ascending lexicographic order. Utilities are computed with exactly the floating-point
operations of ``utility.utility`` and votes with the tie rule of ``utility.votes_yes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from negotiation.engine.scenario import Country, Member, Scenario
from negotiation.engine.utility import TIE_EPSILON

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Nash products within this relative distance of the maximum count as tied.
NASH_RELATIVE_TOLERANCE = 1e-9


def grid_axes(scenario: Scenario) -> list[FloatArray]:
    """One array of grid values per issue."""
    return [np.array(issue.values, dtype=np.float64) for issue in scenario.issues]


def grid_points(scenario: Scenario, flat_indices: Sequence[int] | IntArray) -> FloatArray:
    """The points (rows of issue values) at the given flat grid indices."""
    indices = np.asarray(flat_indices, dtype=np.int64)
    coordinates = np.unravel_index(indices, scenario.grid_shape)
    axes = grid_axes(scenario)
    if len(indices) == 0:
        return np.empty((0, len(axes)), dtype=np.float64)
    return np.stack([axes[j][c] for j, c in enumerate(coordinates)], axis=1)


def _broadcast(vector: FloatArray, axis: int, dimensions: int) -> FloatArray:
    shape = [1] * dimensions
    shape[axis] = vector.shape[0]
    return vector.reshape(shape)


def utility_grid(scenario: Scenario, member: Member, axes: Sequence[FloatArray]) -> FloatArray:
    """The member's utility at every grid point, shaped like the grid.

    The per-issue terms are one-dimensional; summing them with broadcasting in issue order
    touches the full grid only at the last addition.
    """
    dimensions = len(axes)
    total_salience = math.fsum(member.salience)
    accumulated: FloatArray | None = None
    for j, values in enumerate(axes):
        salience = member.salience[j]
        issue_range = scenario.issues[j].range
        if scenario.utility == "cityblock":
            term = salience * np.abs(values - member.ideal[j]) / issue_range
        else:
            scaled = (values - member.ideal[j]) / issue_range
            term = salience * (scaled * scaled)
        term = _broadcast(term, j, dimensions)
        accumulated = term if accumulated is None else accumulated + term
    assert accumulated is not None
    grid = np.broadcast_to(accumulated, scenario.grid_shape).astype(np.float64, copy=True)
    grid /= total_salience
    if scenario.utility == "euclidean":
        np.sqrt(grid, out=grid)
    np.subtract(1.0, grid, out=grid)
    grid *= 100.0
    return grid


def utility_at_points(scenario: Scenario, member: Member, points: FloatArray) -> FloatArray:
    """The member's utility at each row of ``points`` (same operations as the scalar code)."""
    total_salience = math.fsum(member.salience)
    accumulated = np.zeros(points.shape[0], dtype=np.float64)
    for j, issue in enumerate(scenario.issues):
        difference = points[:, j] - member.ideal[j]
        if scenario.utility == "cityblock":
            accumulated += member.salience[j] * np.abs(difference) / issue.range
        else:
            scaled = difference / issue.range
            accumulated += member.salience[j] * (scaled * scaled)
    accumulated /= total_salience
    if scenario.utility == "euclidean":
        np.sqrt(accumulated, out=accumulated)
    return 100.0 * (1.0 - accumulated)


@dataclass(frozen=True, slots=True)
class IntegerWeights:
    """A country's weights and quota scaled to integers, so quota tests are exact."""

    weights: tuple[int, ...]
    quota_numerator: int
    quota_denominator: int
    total: int
    strict: bool

    @classmethod
    def of(cls, country: Country) -> IntegerWeights:
        denominators = [m.weight.denominator for m in country.constituents]
        scale = math.lcm(*denominators)
        weights = tuple(int(m.weight * scale) for m in country.constituents)
        return cls(
            weights=weights,
            quota_numerator=country.quota.numerator,
            quota_denominator=country.quota.denominator,
            total=sum(weights),
            strict=country.strict,
        )

    def met(self, yes_weight: IntArray) -> BoolArray:
        """Whether each yes-weight meets the quota."""
        left = yes_weight * self.quota_denominator
        right = self.quota_numerator * self.total
        return left > right if self.strict else left >= right

    def met_scalar(self, yes_weight: int) -> bool:
        left = yes_weight * self.quota_denominator
        right = self.quota_numerator * self.total
        return left > right if self.strict else left >= right


def winset_mask(
    scenario: Scenario,
    country: Country,
    axes: Sequence[FloatArray] | None = None,
    transfers: Mapping[str, float] | None = None,
) -> BoolArray:
    """Boolean grid: True where the country ratifies the point (DESIGN §3).

    ``transfers`` maps member keys to side payments they would receive.
    """
    axes = grid_axes(scenario) if axes is None else axes
    weights = IntegerWeights.of(country)
    yes_weight = np.zeros(scenario.grid_shape, dtype=np.int64)
    vetoes_agree = np.ones(scenario.grid_shape, dtype=np.bool_)
    for member, weight in zip(country.constituents, weights.weights, strict=True):
        utility = utility_grid(scenario, member, axes)
        transfer = (transfers or {}).get(member.key, 0.0)
        if transfer:
            utility += transfer
        yes = utility > member.reservation + TIE_EPSILON
        yes_weight += yes * weight
        if member.veto:
            vetoes_agree &= yes
    mask: BoolArray = weights.met(yes_weight) & vetoes_agree
    return mask


def margins_at_points(scenario: Scenario, country: Country, points: FloatArray) -> FloatArray:
    """Each member's margin ``(U + t) - (r + 1e-9)`` at each point: shape (points, members).

    A margin is positive exactly when the member votes yes, so the pivotal surplus built from
    margins is positive exactly on the win-set.
    """
    columns = [
        utility_at_points(scenario, member, points) - (member.reservation + TIE_EPSILON)
        for member in country.constituents
    ]
    return np.stack(columns, axis=1)


def pivotal_surplus(scenario: Scenario, country: Country, points: FloatArray) -> FloatArray:
    """The pivotal surplus ``m_c`` of the country at each point (DESIGN §3).

    Members are sorted by margin, best first, and weights added until the quota is met; the
    margin of the member that met it, lowered to the smallest veto member's margin. ``-inf``
    where the quota can never be met. A point is in the win-set iff its ``m_c > 0``.
    """
    if points.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    margins = margins_at_points(scenario, country, points)
    weights = IntegerWeights.of(country)
    order = np.argsort(-margins, axis=1, kind="stable")
    sorted_margins = np.take_along_axis(margins, order, axis=1)
    weight_array = np.array(weights.weights, dtype=np.int64)
    cumulative = np.cumsum(weight_array[order], axis=1)
    reached = weights.met(cumulative)
    any_reached = reached.any(axis=1)
    pivot = np.argmax(reached, axis=1)
    surplus = np.where(
        any_reached, sorted_margins[np.arange(points.shape[0]), pivot], -np.inf
    ).astype(np.float64)
    veto_columns = [i for i, m in enumerate(country.constituents) if m.veto]
    if veto_columns:
        surplus = np.minimum(surplus, margins[:, veto_columns].min(axis=1))
    return surplus


@dataclass(frozen=True, slots=True)
class SidePaymentPlan:
    """The cheapest whole-point transfers that make a country ratify a point."""

    country: str
    transfers: Mapping[str, int]
    total: int


def transfer_needed(utility_value: float, reservation: float) -> int:
    """The smallest whole number of points ``t >= 0`` with ``U + t > r + 1e-9``."""
    needed = max(0, math.floor(reservation + TIE_EPSILON - utility_value) + 1)
    while needed > 0 and utility_value + (needed - 1) > reservation + TIE_EPSILON:
        needed -= 1
    while not utility_value + needed > reservation + TIE_EPSILON:
        needed += 1
    return needed


def cheapest_side_payment(
    scenario: Scenario, country: Country, point: Sequence[float]
) -> SidePaymentPlan | None:
    """The cheapest set of whole-point transfers to a winning coalition for ``point``.

    A winning coalition meets the quota and holds every veto member. Members who already vote
    yes cost nothing; veto members are always paid what they need. Returns None when no
    coalition can meet the quota (e.g. quota 1 with ``strict: true``). Among coalitions of the
    same lowest cost, the one that pays members earlier in the scenario's order is chosen (the
    lexicographically smallest list of paid members).
    """
    weights = IntegerWeights.of(country)
    costs = [
        transfer_needed(scenario.utility_of(m, point), m.reservation) for m in country.constituents
    ]
    base_members = [i for i, m in enumerate(country.constituents) if m.veto or costs[i] == 0]
    base_weight = sum(weights.weights[i] for i in base_members)
    optional = [i for i in range(len(costs)) if i not in base_members]
    cap = sum(costs[i] for i in optional)
    # suffix[k][b]: the most weight the optional members k, k+1, ... add for at most b points
    # (a 0/1 knapsack over each suffix, so the greedy pass below can test feasibility).
    suffix = np.zeros((len(optional) + 1, cap + 1), dtype=np.int64)
    for k in range(len(optional) - 1, -1, -1):
        cost, weight = costs[optional[k]], weights.weights[optional[k]]
        suffix[k] = suffix[k + 1]
        suffix[k, cost:] = np.maximum(
            suffix[k + 1, cost:], suffix[k + 1, : cap + 1 - cost] + weight
        )
    reachable = weights.met(base_weight + suffix[0])
    if not reachable.any():
        return None
    budget = int(np.argmax(reachable))
    chosen: list[int] = []
    weight_so_far = base_weight
    for k, i in enumerate(optional):
        left = budget - costs[i]
        if left >= 0 and weights.met_scalar(
            weight_so_far + weights.weights[i] + int(suffix[k + 1, left])
        ):
            chosen.append(i)
            budget = left
            weight_so_far += weights.weights[i]
    paid = sorted(set(base_members) | set(chosen))
    transfers = {country.constituents[i].key: costs[i] for i in paid if costs[i] > 0}
    return SidePaymentPlan(country=country.key, transfers=transfers, total=sum(transfers.values()))


class Analysis:
    """Win-sets, zones and Nash points of a scenario, computed once on demand."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.axes = grid_axes(scenario)

    @cached_property
    def winsets(self) -> dict[str, BoolArray]:
        return {c.key: winset_mask(self.scenario, c, self.axes) for c in self.scenario.countries}

    @cached_property
    def zone(self) -> BoolArray:
        masks = list(self.winsets.values())
        zone = masks[0].copy()
        for mask in masks[1:]:
            zone &= mask
        return zone

    @cached_property
    def chiefs_accept(self) -> BoolArray:
        accept = np.ones(self.scenario.grid_shape, dtype=np.bool_)
        for chief in self.scenario.chiefs:
            accept &= utility_grid(self.scenario, chief, self.axes) > (
                chief.reservation + TIE_EPSILON
            )
        return accept

    @cached_property
    def playable_zone(self) -> BoolArray:
        playable: BoolArray = self.zone & self.chiefs_accept
        return playable

    @cached_property
    def zone_indices(self) -> IntArray:
        return np.flatnonzero(self.zone)

    @cached_property
    def nash_indices(self) -> IntArray:
        """Flat indices of the zone points that maximise the product of pivotal surpluses."""
        indices = self.zone_indices
        if indices.size == 0:
            return indices
        points = grid_points(self.scenario, indices)
        product = np.ones(indices.size, dtype=np.float64)
        for country in self.scenario.countries:
            product *= pivotal_surplus(self.scenario, country, points)
        best = product.max()
        nash: IntArray = indices[product >= best * (1.0 - NASH_RELATIVE_TOLERANCE)]
        return nash

    def points(self, mask_or_indices: BoolArray | IntArray) -> FloatArray:
        if mask_or_indices.dtype == np.bool_:
            return grid_points(self.scenario, np.flatnonzero(mask_or_indices))
        return grid_points(self.scenario, mask_or_indices.astype(np.int64, copy=False))

    def contains(self, mask: BoolArray, point: Sequence[float]) -> bool:
        index = self.index_of(point)
        return index is not None and bool(mask.flat[index])

    def index_of(self, point: Sequence[float]) -> int | None:
        """The flat grid index of a point, or None if it is off the grid."""
        coordinates = []
        for issue, value in zip(self.scenario.issues, point, strict=True):
            index = issue.index_of(value)
            if index is None:
                return None
            coordinates.append(index)
        return int(np.ravel_multi_index(tuple(coordinates), self.scenario.grid_shape))

    def surpluses(self, point: Sequence[float]) -> dict[str, float]:
        """Each country's pivotal surplus at one point."""
        row = np.array([list(point)], dtype=np.float64)
        return {
            c.key: float(pivotal_surplus(self.scenario, c, row)[0]) for c in self.scenario.countries
        }

    @cached_property
    def best_points(self) -> dict[str, IntArray]:
        """Per country, the grid points that maximise its own pivotal surplus."""
        result: dict[str, IntArray] = {}
        all_indices = np.arange(self.scenario.grid_size, dtype=np.int64)
        for country in self.scenario.countries:
            best_value = -math.inf
            best: list[IntArray] = []
            for start in range(0, all_indices.size, 262_144):
                chunk = all_indices[start : start + 262_144]
                values = pivotal_surplus(self.scenario, country, grid_points(self.scenario, chunk))
                chunk_best = float(values.max())
                if chunk_best > best_value + 1e-12:
                    best_value = chunk_best
                    best = [chunk[values >= chunk_best - 1e-12]]
                elif abs(chunk_best - best_value) <= 1e-12:
                    best.append(chunk[values >= chunk_best - 1e-12])
            result[country.key] = np.concatenate(best) if best else all_indices[:0]
        return result

    @cached_property
    def harmony(self) -> bool:
        """Whether every country's best point already lies in every other country's win-set."""
        for country in self.scenario.countries:
            others = [self.winsets[c.key] for c in self.scenario.countries if c is not country]
            if not any(
                all(bool(mask.flat[i]) for mask in others) for i in self.best_points[country.key]
            ):
                return False
        return True
