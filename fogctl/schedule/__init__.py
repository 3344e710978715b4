"""fogctl schedule: multi-objective placement of jobs on fog nodes.

Public API (importing this package is cheap; numpy and pymoo load on first use):

* :func:`schedule` — place a batch: nodes and jobs in, a :class:`Plan` out
  (``assignment`` records, the Pareto front as ``solution`` records, statistics).
* :func:`load_nodes`, :func:`load_jobs`, :func:`load_running` — the inputs.
* :func:`quote_jobs` — marketplace quotes (:mod:`fogctl.schedule.pricing`).
* :func:`simulate` — the discrete-event simulation behind ``fogctl schedule sim``.
* :class:`Job`, :class:`Node`, :class:`Running` — the placement model.
"""

from __future__ import annotations

from typing import Any

from fogctl.schedule.model import Job, Node, Running

__all__ = [
    "ALGORITHMS",
    "Job",
    "Node",
    "Plan",
    "Running",
    "load_jobs",
    "load_nodes",
    "load_running",
    "quote_jobs",
    "schedule",
    "simulate",
]

_ENGINE = {
    "ALGORITHMS",
    "Plan",
    "load_jobs",
    "load_nodes",
    "load_running",
    "quote_jobs",
    "schedule",
}


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from fogctl.schedule import engine

        return getattr(engine, name)
    if name == "simulate":
        from fogctl.schedule import sim

        return sim.simulate
    raise AttributeError(name)
