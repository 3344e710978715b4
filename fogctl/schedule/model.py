"""The placement model: jobs, nodes and the checks that make a problem well posed.

Plain data, no numpy: :class:`Job` is the scheduler's own job type (adapted from a
``fogctl submit`` job spec by :func:`job_from_spec`), :class:`Node` is a usable node
(built from a ``node`` record by :func:`node_from_record`), :class:`Running` is a job
already running on a node (a candidate for preemption).

Capacity model: a plan places the batch at once onto the nodes' *free* capacity, as a
Kubernetes scheduler places pods against allocatable resources minus the requests
of the pods already there; a job then waits only for its dependencies.

* cpu (time-shared): with the default ``soft`` headroom a node offers all its cores
  minus the requests of the running jobs the scheduler is told about (``--running``);
  its measured ``cpu_util`` does not take cores away but makes jobs there slower
  (slowdown ``1 + cpu_util / 2``), raises its price and counts in the balance
  objective, so busy nodes are avoided when there is a choice. With ``strict``
  headroom a node offers only ``cpu * (1 - cpu_util)`` cores.
* memory (not time-shared): always ``memory * (1 - memory_util)`` bytes, the
  memory the node reports available.

A job runs ``estimate_seconds`` times the node's slowdown (contention and heat) and
starts after the node's dispatch latency; results cross between nodes in one round
trip.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fogctl.errors import InvalidInput
from fogctl.records import NodeRecord

__all__ = [
    "BIDS",
    "DEFAULT_ESTIMATE_SECONDS",
    "DEFAULT_LATENCY_MS",
    "DEFAULT_TRUST",
    "HEADROOM",
    "SLA_CLASSES",
    "TIERS",
    "Job",
    "Node",
    "Running",
    "check_problem",
    "job_from_spec",
    "node_from_record",
    "reserve",
    "topological_order",
]

SLA_CLASSES = ("S", "A", "B")
HEADROOM = ("soft", "strict")
BIDS = ("spot", "on-demand", "reserved")
TIERS = ("basic", "standard", "premium")
DEFAULT_ESTIMATE_SECONDS = 60.0
DEFAULT_LATENCY_MS = 100.0
DEFAULT_TRUST = 0.5
MIN_BATTERY = 0.15  # below this a battery node takes no new work
MAX_TEMPERATURE_C = 85.0  # at or above this a node takes no new work
HOT_TEMPERATURE_C = 75.0  # above this a node is throttled


@dataclass(frozen=True, slots=True)
class Job:
    """One job to place. ``cpu`` in cores, ``memory`` in bytes, times in seconds."""

    id: str
    cpu: float
    memory: int
    priority: int = 0
    sla: str = "B"
    deadline_seconds: float | None = None
    depends_on: tuple[str, ...] = ()
    gang: str | None = None
    estimate_seconds: float = DEFAULT_ESTIMATE_SECONDS
    node: str | None = None
    spec: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def hard_deadline(self) -> float | None:
        """The deadline the plan must meet: only SLA class S deadlines are hard."""
        return self.deadline_seconds if self.sla == "S" else None


@dataclass(frozen=True, slots=True)
class Running:
    """A job already running on ``node``: it holds capacity and may be preempted."""

    id: str
    node: str
    cpu: float
    memory: int
    priority: int = 0
    sla: str = "B"


@dataclass(frozen=True, slots=True)
class Node:
    """A node that can take work, with defaults filled in for unknown fields."""

    id: str
    cpu: float
    memory: int
    cpu_util: float = 0.0
    memory_util: float = 0.0
    latency_ms: float = DEFAULT_LATENCY_MS
    trust: float = DEFAULT_TRUST
    cost: float = 0.0
    price: float | None = None
    bid: str = "on-demand"
    tier: str = "standard"
    region: str = ""
    operator: str = ""
    battery: float | None = None
    temperature_c: float | None = None
    headroom: str = "soft"  # soft: cpu_util is a penalty; strict: it takes cores away
    reserved_cpu: float = 0.0  # cores requested by running jobs the scheduler knows

    @property
    def free_cpu(self) -> float:
        """Cores a plan may use (see the capacity model above)."""
        if self.headroom == "strict":
            return self.cpu * (1.0 - self.cpu_util)
        return max(self.cpu - self.reserved_cpu, 0.0)

    @property
    def busy_cpu(self) -> float:
        """Cores in use before the plan: measured, or requested by running jobs."""
        return max(self.cpu * self.cpu_util, self.reserved_cpu)

    @property
    def free_memory(self) -> float:
        return self.memory * (1.0 - self.memory_util)

    @property
    def slowdown(self) -> float:
        """How much longer a job runs here than its estimate (contention, throttling)."""
        factor = 1.0 + 0.5 * self.cpu_util
        if self.temperature_c is not None and self.temperature_c > HOT_TEMPERATURE_C:
            factor *= 1.3
        return factor

    @property
    def accepts_work(self) -> bool:
        """False for a node that is draining its battery or overheating."""
        if self.battery is not None and self.battery < MIN_BATTERY:
            return False
        return not (self.temperature_c is not None and self.temperature_c >= MAX_TEMPERATURE_C)


def _unit(value: float | None, name: str, node: str, default: float) -> float:
    if value is None:
        return default
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"node {node}: {name} must be between 0 and 1, got {value}")
    return float(value)


def node_from_record(rec: NodeRecord, *, headroom: str = "soft") -> Node | None:
    """A :class:`Node` from a ``node`` record; ``None`` when it offers no capacity.

    ``headroom`` is ``soft`` (measured cpu use is a penalty) or ``strict`` (it takes
    cores away); see the capacity model above. Raises :class:`InvalidInput` naming
    the node for an out-of-range field.
    """
    if headroom not in HEADROOM:
        raise InvalidInput(f"--headroom: choose from {', '.join(HEADROOM)}, got {headroom!r}")
    if rec.cpu is None or rec.memory is None:
        return None
    if not math.isfinite(rec.cpu) or rec.cpu < 0 or rec.memory < 0:
        raise InvalidInput(f"node {rec.id}: cpu and memory must be non-negative")
    for name in ("latency_ms", "cost", "price", "temperature_c"):
        value = getattr(rec, name)
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"node {rec.id}: {name} must be a finite number")
    for name in ("latency_ms", "cost", "price"):
        value = getattr(rec, name)
        if value is not None and value < 0:
            raise InvalidInput(f"node {rec.id}: {name} must not be negative, got {value}")
    bid = rec.bid or "on-demand"
    if bid not in BIDS:
        raise InvalidInput(f"node {rec.id}: bid must be one of {', '.join(BIDS)}, got {bid!r}")
    tier = rec.tier or "standard"
    if tier not in TIERS:
        raise InvalidInput(f"node {rec.id}: tier must be one of {', '.join(TIERS)}, got {tier!r}")
    return Node(
        id=rec.id,
        cpu=float(rec.cpu),
        memory=int(rec.memory),
        cpu_util=_unit(rec.cpu_util, "cpu_util", rec.id, 0.0),
        memory_util=_unit(rec.memory_util, "memory_util", rec.id, 0.0),
        latency_ms=DEFAULT_LATENCY_MS if rec.latency_ms is None else float(rec.latency_ms),
        trust=_unit(rec.trust, "trust", rec.id, DEFAULT_TRUST),
        cost=0.0 if rec.cost is None else float(rec.cost),
        price=None if rec.price is None else float(rec.price),
        bid=bid,
        tier=tier,
        region=rec.region or "",
        operator=rec.operator or "",
        battery=None if rec.battery is None else _unit(rec.battery, "battery", rec.id, 1.0),
        temperature_c=rec.temperature_c,
        headroom=headroom,
    )


def reserve(nodes: Sequence[Node], running: Sequence[Running]) -> list[Node]:
    """``nodes`` with the cores the ``running`` jobs request on each set aside."""
    held: dict[str, float] = {}
    for r in running:
        held[r.node] = held.get(r.node, 0.0) + r.cpu
    return [dataclasses.replace(n, reserved_cpu=held[n.id]) if n.id in held else n for n in nodes]


def job_from_spec(spec: Any) -> Job:
    """Adapt a ``fogctl submit`` job spec (:class:`fogctl.jobs.JobSpec`) to a :class:`Job`.

    Every dependency orders the job after its parent, whatever its condition.
    """
    deps = tuple(str(d[0]) if isinstance(d, tuple | list) else str(d) for d in spec.depends_on)
    raw = getattr(spec, "raw", None)
    estimate = getattr(spec, "estimate_seconds", None)
    return Job(
        id=str(spec.id),
        cpu=float(spec.cpu),
        memory=int(spec.memory),
        priority=int(spec.priority or 0),
        sla=str(spec.sla or "B"),
        deadline_seconds=None if spec.deadline_seconds is None else float(spec.deadline_seconds),
        depends_on=deps,
        gang=spec.gang or None,
        estimate_seconds=DEFAULT_ESTIMATE_SECONDS if estimate is None else float(estimate),
        node=getattr(spec, "node", None) or None,
        spec=dict(raw) if isinstance(raw, Mapping) else None,
    )


def topological_order(jobs: Sequence[Job]) -> list[int]:
    """Indices of ``jobs`` with every job after its dependencies (Kahn, stable).

    Raises :class:`InvalidInput` naming the jobs on a cycle, or an unknown dependency.
    """
    index = {j.id: i for i, j in enumerate(jobs)}
    indeg = [0] * len(jobs)
    children: list[list[int]] = [[] for _ in jobs]
    for i, job in enumerate(jobs):
        for dep in job.depends_on:
            if dep not in index:
                raise InvalidInput(f"job {job.id}: depends on unknown job {dep!r}")
            children[index[dep]].append(i)
            indeg[i] += 1
    ready = [i for i in range(len(jobs)) if indeg[i] == 0]
    order: list[int] = []
    head = 0
    while head < len(ready):
        i = ready[head]
        head += 1
        order.append(i)
        for c in children[i]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if len(order) < len(jobs):
        cycle = _find_cycle(jobs, index, {i for i in range(len(jobs)) if indeg[i] > 0})
        raise InvalidInput(f"dependency cycle: {' -> '.join(cycle)}")
    return order


def _find_cycle(jobs: Sequence[Job], index: Mapping[str, int], left: set[int]) -> list[str]:
    """Names of one cycle among the jobs Kahn's algorithm could not order."""
    start = min(left)
    seen: dict[int, int] = {}
    path: list[int] = []
    cur = start
    while cur not in seen:
        seen[cur] = len(path)
        path.append(cur)
        nxt = [index[d] for d in jobs[cur].depends_on if index[d] in left]
        cur = nxt[0]
    cycle = path[seen[cur] :]
    cycle.reverse()
    return [jobs[i].id for i in [*cycle, cycle[0]]]


@dataclass(frozen=True, slots=True)
class Problem:
    """A checked problem: the jobs the plan must place and the nodes it may use.

    ``dropped`` maps a job left out (only with ``allow_partial``) to the reason.
    """

    jobs: tuple[Job, ...]
    nodes: tuple[Node, ...]
    running: tuple[Running, ...] = ()
    dropped: Mapping[str, str] = field(default_factory=dict)


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:g}"  # pragma: no cover


def _fmt_jobs(ids: Iterable[str], limit: int = 8) -> str:
    ids = list(ids)
    text = ", ".join(ids[:limit])
    return text + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check_problem(
    jobs: Sequence[Job],
    nodes: Sequence[Node],
    *,
    running: Sequence[Running] = (),
    allow_partial: bool = False,
) -> Problem:
    """Check that the jobs can be placed on the nodes at all; name the jobs that cannot.

    Structural errors (duplicate ids, unknown or cyclic dependencies, bad fields) are
    always :class:`InvalidInput`. Jobs that cannot fit (larger than any node, an SLA-S
    deadline no node can meet, a gang bigger than any region, a pin to an unknown node)
    are an error too, unless ``allow_partial``: then they, their gang and everything
    that depends on them are dropped with a reason.
    """
    if not nodes:
        raise InvalidInput("no usable nodes: give node records with cpu and memory")
    seen: set[str] = set()
    for job in jobs:
        if job.id in seen:
            raise InvalidInput(f"job {job.id}: duplicate job id")
        seen.add(job.id)
        if job.sla not in SLA_CLASSES:
            raise InvalidInput(f"job {job.id}: sla must be S, A or B, got {job.sla!r}")
        if not (math.isfinite(job.cpu) and job.cpu >= 0 and job.memory >= 0):
            raise InvalidInput(f"job {job.id}: cpu and memory must be non-negative")
        if not (math.isfinite(job.estimate_seconds) and job.estimate_seconds >= 0):
            raise InvalidInput(f"job {job.id}: estimate_seconds must be non-negative")
        if job.deadline_seconds is not None and not job.deadline_seconds > 0:
            raise InvalidInput(f"job {job.id}: deadline_seconds must be positive")
    node_ids = [n.id for n in nodes]
    if len(set(node_ids)) != len(node_ids):
        dup = next(i for i in node_ids if node_ids.count(i) > 1)
        raise InvalidInput(f"node {dup}: duplicate node id")
    order = topological_order(jobs)  # unknown deps and cycles are always errors
    by_id = {n.id: n for n in nodes}
    # capacity a preemption could free on each node
    freeable_cpu: dict[str, float] = {}
    freeable_mem: dict[str, float] = {}
    for r in running:
        freeable_cpu[r.node] = freeable_cpu.get(r.node, 0.0) + r.cpu
        freeable_mem[r.node] = freeable_mem.get(r.node, 0.0) + r.memory
    usable = [n for n in nodes if n.accepts_work]
    if not usable:
        raise InvalidInput("no node accepts work (all low on battery or overheating)")

    problems: dict[str, str] = {}

    def fits(job: Job, node: Node) -> bool:
        extra_cpu = freeable_cpu.get(node.id, 0.0) if job.sla == "S" else 0.0
        extra_mem = freeable_mem.get(node.id, 0.0) if job.sla == "S" else 0.0
        if job.cpu > node.free_cpu + extra_cpu + 1e-9:
            return False
        if job.memory > node.free_memory + extra_mem + 1e-6:
            return False
        deadline = job.hard_deadline
        return (
            deadline is None
            or node.latency_ms / 1000 + (job.estimate_seconds * node.slowdown) <= deadline + 1e-9
        )

    for job in jobs:
        if job.node is not None:
            pinned = by_id.get(job.node)
            if pinned is None:
                problems[job.id] = f"pinned to unknown node {job.node}"
            elif not pinned.accepts_work or not fits(job, pinned):
                problems[job.id] = f"does not fit its pinned node {job.node}"
            continue
        if not any(fits(job, n) for n in usable):
            if job.hard_deadline is not None and any(
                job.cpu <= n.free_cpu + freeable_cpu.get(n.id, 0.0) for n in usable
            ):
                problems[job.id] = f"no node can meet its SLA-S deadline of {job.hard_deadline:g}s"
            else:
                problems[job.id] = (
                    f"needs {job.cpu:g} cpu and {_size(job.memory)}, more than any node offers"
                )
    # SLA-S deadlines against the fastest possible chain of dependencies
    by_job = {j.id: j for j in jobs}
    fastest = min(n.latency_ms / 1000 + n.slowdown for n in usable)  # per estimate-second
    best_slow = min(n.slowdown for n in usable)
    best_lat = min(n.latency_ms for n in usable) / 1000
    earliest: dict[str, float] = {}
    for i in order:
        job = jobs[i]
        ready = max((earliest[d] for d in job.depends_on), default=0.0)
        earliest[job.id] = ready + best_lat + job.estimate_seconds * best_slow
        deadline = job.hard_deadline
        if (
            deadline is not None
            and job.id not in problems
            and job.depends_on
            and earliest[job.id] > deadline + 1e-9
        ):
            problems[job.id] = (
                f"its dependencies finish too late for its SLA-S deadline of {deadline:g}s"
            )
    del by_job, fastest
    # gangs: all members on nodes of one region
    gangs: dict[str, list[Job]] = {}
    for job in jobs:
        if job.gang:
            gangs.setdefault(job.gang, []).append(job)
    regions: dict[str, list[Node]] = {}
    for n in usable:
        regions.setdefault(n.region, []).append(n)
    for name, members in gangs.items():
        if any(m.id in problems for m in members):
            continue
        cpu = sum(m.cpu for m in members)
        mem = sum(m.memory for m in members)
        ok = any(
            cpu <= sum(n.free_cpu for n in rn) + 1e-9
            and mem <= sum(n.free_memory for n in rn) + 1e-6
            and all(any(fits(m, n) for n in rn) for m in members)
            for rn in regions.values()
        )
        if not ok:
            why = f"gang {name} needs {cpu:g} cpu in one region, more than any region offers"
            for m in members:
                problems[m.id] = why
    if problems and not allow_partial:
        groups: dict[str, list[str]] = {}
        for jid, why in problems.items():
            groups.setdefault(why, []).append(jid)
        parts = [f"{_fmt_jobs(ids)}: {why}" for why, ids in groups.items()]
        noun = "job" if len(problems) == 1 else "jobs"
        raise InvalidInput(
            f"cannot place {len(problems)} {noun}: " + "; ".join(parts),
            hint="--allow-partial places the rest",
        )
    dropped = dict(problems)
    # a dropped job takes its gang and every dependent with it
    index = {j.id: i for i, j in enumerate(jobs)}
    changed = True
    while changed:
        changed = False
        for i in order:
            job = jobs[i]
            if job.id in dropped:
                continue
            lost = [d for d in job.depends_on if d in dropped]
            if lost:
                dropped[job.id] = f"depends on unplaced job {lost[0]}"
                changed = True
            elif job.gang and any(m.id in dropped for m in gangs[job.gang]):
                dropped[job.id] = f"gang {job.gang} cannot be placed whole"
                changed = True
    kept = tuple(jobs[i] for i in sorted(index[j.id] for j in jobs if j.id not in dropped))
    return Problem(jobs=kept, nodes=tuple(usable), running=tuple(running), dropped=dropped)
