"""The marketplace price model: what running a job on a node costs its submitter.

A quote is built from the node's base rate and four market factors:

* **base rate** per core-hour: the node's asking ``price`` per hour spread over its
  cores, or, when it states none, the default rate of its ``tier``
  (basic 0.02, standard 0.04, premium 0.08 per core-hour);
* **bid type**: ``spot`` capacity can be reclaimed and sells at 0.6x,
  ``reserved`` at 0.8x, ``on-demand`` at 1x;
* **utilisation**: a busy node charges more, ``1 + max(0, cpu_util - 0.5)``
  (up to 1.5x when full), so demand spreads across the market;
* **trust premium**: ``1 + 0.3 * (trust - 0.5)``, from 0.85x for an unknown node
  to 1.15x for a fully trusted one;

plus memory at 0.005 per GiB-hour and the job's SLA class (S 1.5x, A 1.2x, B 1x).
Hours are the job's estimate times the node's slowdown, at least one minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fogctl.schedule.model import Job, Node

__all__ = [
    "BID_FACTOR",
    "SLA_FACTOR",
    "TIER_RATE",
    "Quote",
    "base_rate",
    "billed_hours",
    "matrices",
    "operating_cost",
    "quote",
]

TIER_RATE = {"basic": 0.02, "standard": 0.04, "premium": 0.08}  # per core-hour
BID_FACTOR = {"spot": 0.6, "on-demand": 1.0, "reserved": 0.8}
SLA_FACTOR = {"S": 1.5, "A": 1.2, "B": 1.0}
MEMORY_RATE = 0.005  # per GiB-hour
MIN_HOURS = 1.0 / 60.0
GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Quote:
    """The price of one job on one node, with the factors that made it."""

    job: str
    node: str
    bid: str
    tier: str
    hours: float
    rate: float
    bid_factor: float
    utilization_factor: float
    trust_factor: float
    sla_factor: float
    price: float


def base_rate(node: Node) -> float:
    """The node's rate per core-hour before market factors."""
    if node.price is not None and node.cpu > 0:
        return node.price / node.cpu
    return TIER_RATE[node.tier]


def billed_hours(job: Job, node: Node) -> float:
    return max(MIN_HOURS, job.estimate_seconds * node.slowdown / 3600.0)


def utilization_factor(node: Node) -> float:
    return 1.0 + max(0.0, node.cpu_util - 0.5)


def trust_factor(node: Node) -> float:
    return 1.0 + 0.3 * (node.trust - 0.5)


def quote(job: Job, node: Node) -> Quote:
    """What ``job`` costs its submitter on ``node``."""
    hours = billed_hours(job, node)
    rate = base_rate(node)
    bid = BID_FACTOR[node.bid]
    util = utilization_factor(node)
    trust = trust_factor(node)
    sla = SLA_FACTOR.get(job.sla, 1.0)
    compute = rate * job.cpu + MEMORY_RATE * job.memory / GIB
    price = compute * hours * bid * util * trust * sla
    return Quote(
        job=job.id,
        node=node.id,
        bid=node.bid,
        tier=node.tier,
        hours=hours,
        rate=rate,
        bid_factor=bid,
        utilization_factor=util,
        trust_factor=trust,
        sla_factor=sla,
        price=price,
    )


def matrices(jobs: Sequence[Job], nodes: Sequence[Node]) -> tuple[Any, Any]:
    """``(cost, price)`` as ``(jobs, nodes)`` numpy arrays: :func:`operating_cost`
    and :func:`quote` for every pair, vectorised (the same numbers)."""
    import numpy as np

    J, N = len(jobs), len(nodes)
    if J == 0 or N == 0:
        return np.zeros((J, N)), np.zeros((J, N))
    est = np.array([j.estimate_seconds for j in jobs], dtype=float)
    cpu = np.array([j.cpu for j in jobs], dtype=float)
    mem = np.array([float(j.memory) for j in jobs], dtype=float)
    sla = np.array([SLA_FACTOR.get(j.sla, 1.0) for j in jobs], dtype=float)
    slow = np.array([n.slowdown for n in nodes], dtype=float)
    ncpu = np.array([n.cpu for n in nodes], dtype=float)
    ncost = np.array([n.cost for n in nodes], dtype=float)
    rate = np.array([base_rate(n) for n in nodes], dtype=float)
    factor = np.array(
        [BID_FACTOR[n.bid] * utilization_factor(n) * trust_factor(n) for n in nodes], dtype=float
    )
    hours = np.maximum(MIN_HOURS, est[:, None] * slow[None, :] / 3600.0)
    compute = rate[None, :] * cpu[:, None] + (MEMORY_RATE * mem / GIB)[:, None]
    price = compute * hours * factor[None, :] * sla[:, None]
    share = np.divide(cpu[:, None], ncpu[None, :], out=np.zeros((J, N)), where=ncpu[None, :] > 0)
    cost = ncost[None, :] * share * hours
    return cost, price


def operating_cost(job: Job, node: Node) -> float:
    """The node operator's running cost for ``job``: its share of ``cost`` per hour."""
    if node.cpu <= 0:
        return 0.0
    return node.cost * (job.cpu / node.cpu) * billed_hours(job, node)
