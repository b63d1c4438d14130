"""A role's briefing in words and pictures: what it wants, how much, and its bottom line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from negotiation.engine.scenario import Issue, Member, Scenario, plain_number
from negotiation.engine.winset import grid_axes, utility_grid

#: The chart of a two-issue scenario draws at most this many levels per issue.
CHART_MAX_LEVELS = 41
CHART_CELL = 12


@dataclass(frozen=True, slots=True)
class IssueLine:
    """How one issue enters a member's utility."""

    issue: Issue
    ideal: int | float
    share: float
    points_per_step: float

    @property
    def low(self) -> str:
        return _number(float(self.issue.min))

    @property
    def high(self) -> str:
        return _number(float(self.issue.max))

    @property
    def step(self) -> str:
        return _number(float(self.issue.step))

    @property
    def ideal_text(self) -> str:
        return _number(float(self.ideal))

    @property
    def cost_text(self) -> str:
        return _number(self.points_per_step)


def _number(value: float) -> str:
    shown = plain_number(round(value, 2))
    return f"{shown:,}" if isinstance(shown, int) else f"{shown:,.2f}".rstrip("0").rstrip(".")


def issue_lines(scenario: Scenario, member: Member) -> list[IssueLine]:
    total = sum(member.salience)
    return [
        IssueLine(
            issue=issue,
            ideal=plain_number(ideal),
            share=salience / total,
            # cityblock: moving one step on the issue costs 100 * s_j * step / (R_j * sum s).
            points_per_step=100 * salience * float(issue.step) / (issue.range * total),
        )
        for issue, ideal, salience in zip(
            scenario.issues, member.ideal, member.salience, strict=True
        )
    ]


def in_words(scenario: Scenario, member: Member) -> list[str]:
    """The member's utility function as sentences."""
    lines = issue_lines(scenario, member)
    ideal = ", ".join(f"{line.issue.label} {_number(float(line.ideal))}" for line in lines)
    sentences = [
        f"A deal is worth 100 points to you at your ideal point ({ideal}) and less the further "
        "it lies from it.",
    ]
    weights = ", ".join(f"{line.issue.label} {line.share:.0%}" for line in lines)
    sentences.append(f"How much each issue matters to you: {weights}.")
    if scenario.utility == "cityblock":
        costs = "; ".join(
            f"on {line.issue.label}, each step"
            f"{'' if line.step == '1' else ' of ' + line.step}"
            f" away from {line.ideal_text} costs {line.cost_text} points"
            for line in lines
            if line.share > 0
        )
        sentences.append(f"Distances add up: {costs}.")
    else:
        sentences.append(
            "Distances combine like a straight line across the issues (euclidean): small "
            "misses on several issues cost less than one large miss."
        )
    reservation = _number(member.reservation)
    if member.role == "chief":
        sentences.append(
            f"Your bottom line is {reservation} points: a deal worth no more than that is no "
            "better for you than no agreement, and you may refuse it."
        )
    else:
        sentences.append(
            f"Your bottom line is {reservation} points: you should vote yes only on a deal worth "
            f"more than {reservation} to you, counting any side payment promised to you. A tie "
            "is a no."
        )
    return sentences


def chart(scenario: Scenario, member: Member) -> dict[str, Any] | None:
    """A heat map of the member's utility over a two-issue grid, or None for other scenarios.

    Cells the member prefers to no agreement are marked; the ideal point is a ring.
    """
    if len(scenario.issues) != 2:
        return None
    x_issue, y_issue = scenario.issues
    if x_issue.levels > CHART_MAX_LEVELS or y_issue.levels > CHART_MAX_LEVELS:
        return None
    utilities = utility_grid(scenario, member, grid_axes(scenario))
    cells = []
    for i, x in enumerate(x_issue.values):
        for j, y in enumerate(y_issue.values):
            value = float(utilities[i, j])
            cells.append(
                {
                    "x": i * CHART_CELL,
                    "y": (y_issue.levels - 1 - j) * CHART_CELL,
                    "shade": max(0, min(100, round(value))),
                    "good": value > member.reservation + 1e-9,
                    "title": f"{x_issue.label} {_number(x)}, {y_issue.label} {_number(y)}: "
                    f"{_number(value)} points",
                }
            )
    ideal_x = (member.ideal[0] - float(x_issue.min)) / float(x_issue.step)
    ideal_y = (member.ideal[1] - float(y_issue.min)) / float(y_issue.step)
    status_quo = None
    if scenario.no_agreement is not None:
        quo_x = (scenario.no_agreement[0] - float(x_issue.min)) / float(x_issue.step)
        quo_y = (scenario.no_agreement[1] - float(y_issue.min)) / float(y_issue.step)
        status_quo = {
            "x": quo_x * CHART_CELL + CHART_CELL * 0.2,
            "y": (y_issue.levels - 1 - quo_y) * CHART_CELL + CHART_CELL * 0.2,
            "size": CHART_CELL * 0.6,
            "label": f"{x_issue.label} {_number(scenario.no_agreement[0])}, "
            f"{y_issue.label} {_number(scenario.no_agreement[1])}",
        }
    good = sum(1 for cell in cells if cell["good"])
    return {
        "width": x_issue.levels * CHART_CELL,
        "height": y_issue.levels * CHART_CELL,
        "cell": CHART_CELL,
        "cells": cells,
        "x_label": x_issue.label,
        "y_label": y_issue.label,
        "ideal_x": ideal_x * CHART_CELL + CHART_CELL / 2,
        "ideal_y": (y_issue.levels - 1 - ideal_y) * CHART_CELL + CHART_CELL / 2,
        "x_range": (_number(float(x_issue.min)), _number(float(x_issue.max))),
        "y_range": (_number(float(y_issue.min)), _number(float(y_issue.max))),
        "status_quo": status_quo,
        "good": good,
        "total": len(cells),
    }


def bars(scenario: Scenario, member: Member) -> list[dict[str, Any]]:
    """Per issue, the member's utility as that issue varies with the others at its ideal point
    (a small line chart each), for any number of issues."""
    result = []
    for j, issue in enumerate(scenario.issues):
        values = issue.values
        if len(values) > 200:
            picks = np.linspace(0, len(values) - 1, 200).round().astype(int)
            values = tuple(values[k] for k in picks)
        points = []
        for k, value in enumerate(values):
            point = list(member.ideal)
            point[j] = value
            utility = scenario.utility_of(member, point)
            x = 4 + 192 * k / max(1, len(values) - 1)
            y = 4 + 52 * (1 - max(0.0, min(100.0, utility)) / 100)
            points.append(f"{x:.1f},{y:.1f}")
        reservation_y = 4 + 52 * (1 - max(0.0, min(100.0, member.reservation)) / 100)
        result.append(
            {
                "issue": issue,
                "polyline": " ".join(points),
                "reservation_y": round(reservation_y, 1),
                "low": _number(float(issue.min)),
                "high": _number(float(issue.max)),
            }
        )
    return result


def context(scenario: Scenario, member: Member) -> dict[str, Any]:
    """Everything the briefing page shows a member about itself."""
    country = scenario.country(member.country)
    return {
        "scenario": scenario,
        "member": member,
        "country": country,
        "rule": country.rule_text,
        "weight": _number(float(member.weight)) if member.role == "constituent" else None,
        "total_weight": _number(float(country.total_weight)),
        "budget": country.side_payment_budget if member.role == "chief" else None,
        "sentences": in_words(scenario, member),
        "lines": issue_lines(scenario, member),
        "chart": chart(scenario, member),
        "bars": bars(scenario, member),
        "reservation": _number(member.reservation),
    }
