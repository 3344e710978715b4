"""Choosing one plan from the front: ``--prefer`` weights or ``--pick``.

Objectives are first normalised over the front to 0..1 (0 the best value on the
front, 1 the worst). ``--prefer latency=3,cost=1`` picks the plan with the lowest
weighted sum of normalised objectives (unnamed objectives weigh 0). ``--pick knee``
picks the knee: the plan farthest below the hyperplane through the front's extreme
points, which in normalised space is the lowest equal-weight sum; ``--pick NAME``
picks the best plan for one objective (ties: the knee among them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fogctl.errors import InvalidInput
from fogctl.schedule.instance import OBJECTIVES, FloatArray

__all__ = ["PICKS", "choose", "knee_index", "normalise", "parse_prefer"]

PICKS = ("knee", *OBJECTIVES)


def parse_prefer(text: str) -> dict[str, float]:
    """``"latency=3,cost=1"`` -> ``{"latency": 3.0, "cost": 1.0}``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in OBJECTIVES:
            raise InvalidInput(
                f"--prefer: unknown objective {name!r}: choose from {', '.join(OBJECTIVES)}"
            )
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise InvalidInput(f"--prefer: weight of {name} is not a number: {value!r}") from None
        if not np.isfinite(weight) or weight < 0:
            raise InvalidInput(f"--prefer: weight of {name} must be a non-negative number")
        out[name] = weight
    if not out or not any(out.values()):
        raise InvalidInput("--prefer: give at least one positive weight, e.g. latency=3,cost=1")
    return out


def normalise(F: FloatArray) -> FloatArray:
    lo = F.min(axis=0)
    span = F.max(axis=0) - lo
    span = np.where(span > 1e-12, span, 1.0)
    out: FloatArray = (F - lo) / span
    return out


def knee_index(F: FloatArray, names: Sequence[str] = OBJECTIVES) -> int:
    """The knee of front ``F`` (columns named ``names``, all minimised)."""
    return int(np.argmin(normalise(F).sum(axis=1)))


def choose(
    F: FloatArray,
    names: Sequence[str],
    *,
    prefer: Mapping[str, float] | None = None,
    pick: str = "knee",
) -> int:
    """Index of the chosen row of ``F`` (columns named ``names``, minimised)."""
    if len(F) == 0:
        raise ValueError("empty front")
    norm = normalise(F)
    if prefer:
        w = np.array([prefer.get(n, 0.0) for n in names])
        if not w.any():
            raise InvalidInput("--prefer names no objective this plan optimises")
        score = norm @ w + 1e-9 * norm.sum(axis=1)
        return int(np.argmin(score))
    if pick == "knee":
        return knee_index(F, names)
    if pick not in names:
        raise InvalidInput(f"--pick: choose from {', '.join(['knee', *names])}, got {pick!r}")
    col = norm[:, list(names).index(pick)]
    best = np.nonzero(col <= col.min() + 1e-12)[0]
    return int(best[int(np.argmin(norm[best].sum(axis=1)))])
