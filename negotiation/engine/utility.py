"""Utility and voting arithmetic of DESIGN §3, for one member at one point.

These scalar functions are the reference: the vectorised grid code in ``winset`` performs the
same floating-point operations in the same order, so both agree to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

UtilityKind = Literal["cityblock", "euclidean"]

#: A vote is yes only when utility (plus transfer) beats the reservation by more than this:
#: a tie goes to the status quo.
TIE_EPSILON = 1e-9


def utility(
    kind: UtilityKind,
    ideal: Sequence[float],
    salience: Sequence[float],
    ranges: Sequence[float],
    point: Sequence[float],
) -> float:
    """Return a member's utility (100 at its ideal point) for ``point``.

    ``ranges`` holds ``max - min`` for each issue. Raises ``ValueError`` for an unknown kind.
    """
    total_salience = math.fsum(salience)
    weighted_distance = 0.0
    if kind == "cityblock":
        for s, r, x, p in zip(salience, ranges, point, ideal, strict=True):
            weighted_distance += s * abs(x - p) / r
        return 100.0 * (1.0 - weighted_distance / total_salience)
    if kind == "euclidean":
        for s, r, x, p in zip(salience, ranges, point, ideal, strict=True):
            scaled = (x - p) / r
            weighted_distance += s * (scaled * scaled)
        return 100.0 * (1.0 - math.sqrt(weighted_distance / total_salience))
    raise ValueError(f"unknown utility kind {kind!r}")


def votes_yes(utility_value: float, reservation: float, transfer: float = 0.0) -> bool:
    """A member votes yes iff ``U + t > r + 1e-9`` (DESIGN §3)."""
    return utility_value + transfer > reservation + TIE_EPSILON
