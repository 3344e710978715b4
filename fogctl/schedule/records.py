"""Records written by ``fogctl schedule`` besides the shared ``assignment``."""

from __future__ import annotations

from typing import Any

from fogctl.records import Record, record

__all__ = ["QuoteRecord", "SimulationRecord", "SolutionRecord"]


@record("solution")
class SolutionRecord(Record):
    """One plan on the Pareto front (``fogctl schedule --front``).

    ``objectives`` are plan-wide: mean latency_ms, balance (utilisation variance),
    mean trust (higher is better), cost and price (sums); ``makespan`` is when the last
    job finishes (seconds); ``assignments`` maps job id to node id; ``heuristics``
    names the heuristics whose plan this is (or whose plan it equals); ``knee`` marks
    the knee point; ``chosen`` the plan ``--prefer``/``--pick`` selected.
    """

    index: int
    objectives: dict[str, Any]
    makespan: float
    assignments: dict[str, Any]
    algorithm: str
    heuristics: tuple[str, ...] = ()
    knee: bool = False
    chosen: bool = False


@record("quote")
class QuoteRecord(Record):
    """The marketplace price of a job on a node (``fogctl schedule price``).

    ``price`` = ``rate`` (per core-hour, plus memory) x cpu x ``hours`` x the
    ``factors`` (bid, utilization, trust, sla); ``cheapest`` marks the job's best quote.
    """

    job: str
    node: str
    bid: str
    tier: str
    hours: float
    rate: float
    factors: dict[str, Any]
    price: float
    cheapest: bool = False


@record("simulation")
class SimulationRecord(Record):
    """One algorithm's results over a simulated workload (``fogctl schedule sim``).

    ``on_time`` maps SLA class (S, A, B, all) to the percentage of jobs finished by
    their deadline; ``utilization`` holds mean cpu and memory use of live nodes (0..1);
    ``makespan`` is when the last job finished (seconds); ``restarts`` counts jobs
    re-queued by node failures; ``preemptions`` jobs evicted for SLA-S work.
    """

    algorithm: str
    jobs: int
    completed: int
    on_time: dict[str, Any]
    utilization: dict[str, Any]
    makespan: float
    mean_wait: float
    node_failures: int
    restarts: int
    preemptions: int
    schedule_ms: float
