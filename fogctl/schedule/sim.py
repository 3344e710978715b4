"""``fogctl schedule sim``: a discrete-event simulation of a fog cluster under load.

Sans-IO and deterministic: the clock is simulated and all randomness comes from one
seeded generator, so the same arguments give the same figures.

* **Workload**: Poisson arrivals at the rate that keeps ``load`` of the cluster's
  free cpu busy on average; jobs from :func:`~fogctl.schedule.workload.generate_jobs`
  (10% SLA S, 30% A, 60% B); a job's real run time is its estimate times the node's
  slowdown times a uniform 0.8-1.2 error.
* **Deadlines** (from arrival): S ``3 x estimate + 60 s`` (hard: the scheduler must
  meet it), A ``6 x estimate``, B ``12 x estimate`` (soft: only measured).
* **Failures**: each node fails after an exponential time (mean ``mtbf``) and comes
  back after an exponential repair (mean ``mttr``); its running jobs go back to the
  queue (restarts).
* **Scheduling**: every ``interval`` seconds while jobs wait, the queue (S first, then
  by deadline) is placed on the free capacity of the live nodes by the algorithm
  under test; jobs it cannot place wait. With ``preempt``, an SLA-S job that fits
  nowhere evicts lower-priority running jobs (they go back to the queue).

Per algorithm: SLA on-time % per class, time-averaged cpu/memory utilisation of live
nodes' free capacity while jobs arrive (after a warm-up of the first fifth),
makespan, mean wait, restarts, preemptions, and the mean time one placement took.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fogctl.errors import InvalidInput
from fogctl.records import NodeRecord
from fogctl.schedule.heuristics import HEURISTICS, run_heuristic
from fogctl.schedule.instance import Instance
from fogctl.schedule.model import Job, Node, Running, node_from_record
from fogctl.schedule.preempt import plan_preemptions
from fogctl.schedule.records import SimulationRecord
from fogctl.schedule.workload import generate_jobs, generate_nodes

__all__ = ["SIM_ALGORITHMS", "SimConfig", "simulate"]

SIM_ALGORITHMS = ("nsga2", "nsga3", *HEURISTICS, "heft")
SOFT_FACTOR = {"S": 3.0, "A": 6.0, "B": 12.0}
S_SLACK = 60.0
MAX_EVENTS = 2_000_000


@dataclass
class SimConfig:
    jobs: int = 300
    nodes: int = 30
    load: float = 0.7
    mtbf: float = 4 * 3600.0
    mttr: float = 300.0
    interval: float = 5.0
    preempt: bool = True
    seed: int = 0
    budget: float = 0.03  # seconds per NSGA placement call
    node_records: Sequence[NodeRecord] | None = None


@dataclass
class _SimJob:
    job: Job
    arrival: float
    deadline: float  # absolute
    actual_factor: float
    start: float = -1.0
    finish: float = -1.0
    node: int = -1
    restarts: int = 0
    run_id: int = 0


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    kind: str = field(compare=False)
    ref: int = field(compare=False, default=-1)
    run_id: int = field(compare=False, default=0)


def _workload(cfg: SimConfig, rng: np.random.Generator) -> tuple[list[Node], list[_SimJob]]:
    records = (
        list(cfg.node_records) if cfg.node_records is not None else generate_nodes(cfg.nodes, rng)
    )
    # the nodes' background load holds cores for the whole run (strict headroom)
    nodes = [
        n
        for n in (node_from_record(r, headroom="strict") for r in records)
        if n is not None and n.accepts_work
    ]
    if not nodes:
        raise InvalidInput("sim: no usable nodes")
    free = sum(n.free_cpu for n in nodes)
    base = generate_jobs(
        cfg.jobs, rng, prefix="sim", median_seconds=60.0, sigma=0.6, max_seconds=900.0
    )
    biggest = max(n.free_cpu for n in nodes)
    jobs = [dataclasses.replace(j, cpu=min(j.cpu, biggest)) for j in base]
    mean_slow = float(np.mean([n.slowdown for n in nodes]))
    work = float(np.mean([j.cpu * j.estimate_seconds * mean_slow for j in jobs])) if jobs else 1.0
    rate = cfg.load * free / max(work, 1e-9)  # arrivals per second
    t = 0.0
    out = []
    for j in jobs:
        t += float(rng.exponential(1.0 / rate))
        rel = SOFT_FACTOR[j.sla] * j.estimate_seconds + (S_SLACK if j.sla == "S" else 0.0)
        out.append(
            _SimJob(
                job=dataclasses.replace(j, deadline_seconds=rel, depends_on=(), gang=None),
                arrival=t,
                deadline=t + rel,
                actual_factor=float(rng.uniform(0.8, 1.2)),
            )
        )
    return nodes, out


def simulate(algorithms: Sequence[str], cfg: SimConfig) -> list[SimulationRecord]:
    """Run the same generated workload (and failures) under each algorithm."""
    for a in algorithms:
        if a not in SIM_ALGORITHMS:
            raise InvalidInput(
                f"sim: unknown algorithm {a!r}: choose from {', '.join(SIM_ALGORITHMS)}"
            )
    if not 0 < cfg.load <= 1.5:
        raise InvalidInput("sim: --load must be in (0, 1.5]")
    if cfg.jobs < 1 or cfg.nodes < 1:
        raise InvalidInput("sim: need at least one job and one node")
    return [_run(a, cfg) for a in algorithms]


def _run(algorithm: str, cfg: SimConfig) -> SimulationRecord:
    rng = np.random.default_rng(cfg.seed)
    nodes, jobs = _workload(cfg, rng)
    frng = np.random.default_rng(cfg.seed + 1)  # failures: same for every algorithm
    N = len(nodes)
    cap_c = np.array([n.free_cpu for n in nodes])
    cap_m = np.array([n.free_memory for n in nodes])
    used_c = np.zeros(N)
    used_m = np.zeros(N)
    up = np.ones(N, dtype=bool)
    events: list[_Event] = []
    seq = 0

    def push(t: float, kind: str, ref: int = -1, run_id: int = 0) -> None:
        nonlocal seq
        heapq.heappush(events, _Event(t, seq, kind, ref, run_id))
        seq += 1

    for i, sj in enumerate(jobs):
        push(sj.arrival, "arrive", i)
    arrivals_end = jobs[-1].arrival
    warm_up = 0.2 * arrivals_end  # utilisation is measured in the steady state after it
    horizon = arrivals_end * 3 + 24 * 3600
    for n in range(N):
        push(float(frng.exponential(cfg.mtbf)), "fail", n)
    queue: list[int] = []
    running: dict[int, int] = {}  # job -> node
    tick_pending = False
    failures = restarts = preemptions = 0
    sched_time = 0.0
    sched_calls = 0
    util_c = util_m = 0.0
    last_t = 0.0
    done = 0
    n_events = 0

    def start(i: int, n: int, now: float) -> None:
        sj = jobs[i]
        sj.node, sj.start = n, (now if sj.start < 0 else sj.start)
        sj.run_id += 1
        used_c[n] += sj.job.cpu
        used_m[n] += sj.job.memory
        running[i] = n
        run = sj.job.estimate_seconds * nodes[n].slowdown * sj.actual_factor
        push(now + nodes[n].latency_ms / 1000 + run, "finish", i, sj.run_id)

    def stop(i: int) -> None:
        n = running.pop(i)
        used_c[n] -= jobs[i].job.cpu
        used_m[n] -= jobs[i].job.memory

    while events and n_events < MAX_EVENTS and done < len(jobs):
        ev = heapq.heappop(events)
        n_events += 1
        now = ev.time
        if now > horizon:
            break
        live_c = cap_c[up].sum()
        live_m = cap_m[up].sum()
        window = min(now, arrivals_end) - min(max(last_t, warm_up), arrivals_end)
        if live_c > 0 and window > 0:
            util_c += window * used_c[up].sum() / live_c
            util_m += window * used_m[up].sum() / max(live_m, 1.0)
        last_t = now
        if ev.kind == "arrive":
            queue.append(ev.ref)
        elif ev.kind == "finish":
            sj = jobs[ev.ref]
            if ev.run_id != sj.run_id or ev.ref not in running:
                continue  # a run that was killed by a failure or preemption
            stop(ev.ref)
            sj.finish = now
            done += 1
        elif ev.kind == "fail":
            n = ev.ref
            up[n] = False
            failures += 1
            for i in [i for i, m in running.items() if m == n]:
                stop(i)
                jobs[i].restarts += 1
                jobs[i].run_id += 1
                restarts += 1
                queue.append(i)
            push(now + float(frng.exponential(cfg.mttr)), "recover", n)
        elif ev.kind == "recover":
            up[ev.ref] = True
            push(now + float(frng.exponential(cfg.mtbf)), "fail", ev.ref)
        elif ev.kind == "tick":
            tick_pending = False
            t0 = time.perf_counter()
            placed, evicted = _place(
                algorithm, cfg, nodes, jobs, queue, running, used_c, used_m, cap_c, cap_m, up, now
            )
            sched_time += time.perf_counter() - t0
            sched_calls += 1
            for i in evicted:
                stop(i)
                jobs[i].run_id += 1
                preemptions += 1
                queue.append(i)
            for i, n in placed:
                queue.remove(i)
                start(i, n, now)
        if queue and not tick_pending:
            nxt = (np.floor(now / cfg.interval) + 1) * cfg.interval
            push(float(nxt), "tick")
            tick_pending = True

    on_time: dict[str, float] = {}
    for cls in ("S", "A", "B"):
        group = [sj for sj in jobs if sj.job.sla == cls]
        if group:
            ok = sum(1 for sj in group if 0 <= sj.finish <= sj.deadline + 1e-9)
            on_time[cls] = round(100.0 * ok / len(group), 2)
    ok_all = sum(1 for sj in jobs if 0 <= sj.finish <= sj.deadline + 1e-9)
    on_time["all"] = round(100.0 * ok_all / len(jobs), 2)
    finished = [sj for sj in jobs if sj.finish >= 0]
    span = max((sj.finish for sj in finished), default=0.0)
    waits = [sj.start - sj.arrival for sj in jobs if sj.start >= 0]
    return SimulationRecord(
        algorithm=algorithm,
        jobs=len(jobs),
        completed=len(finished),
        on_time=on_time,
        utilization={
            "cpu": round(float(util_c / (arrivals_end - warm_up)), 4) if arrivals_end > 0 else 0.0,
            "memory": round(float(util_m / (arrivals_end - warm_up)), 4)
            if arrivals_end > 0
            else 0.0,
        },
        makespan=round(span, 3),
        mean_wait=round(float(np.mean(waits)), 3) if waits else 0.0,
        node_failures=failures,
        restarts=restarts,
        preemptions=preemptions,
        schedule_ms=round(1000 * sched_time / max(sched_calls, 1), 3),
    )


def _place(
    algorithm: str,
    cfg: SimConfig,
    nodes: list[Node],
    jobs: list[_SimJob],
    queue: list[int],
    running: dict[int, int],
    used_c: np.ndarray,
    used_m: np.ndarray,
    cap_c: np.ndarray,
    cap_m: np.ndarray,
    up: np.ndarray,
    now: float,
) -> tuple[list[tuple[int, int]], list[int]]:
    """Place what fits from the queue now; returns (job, node) pairs and evictions."""
    live = [n for n in range(len(nodes)) if up[n]]
    if not live:
        return [], []
    view = []
    for n in live:
        base = nodes[n]
        util_c = 1.0 - (cap_c[n] - used_c[n]) / base.cpu if base.cpu > 0 else 1.0
        util_m = 1.0 - (cap_m[n] - used_m[n]) / base.memory if base.memory > 0 else 1.0
        view.append(
            dataclasses.replace(
                base,
                cpu_util=float(np.clip(util_c, 0.0, 1.0)),
                memory_util=float(np.clip(util_m, 0.0, 1.0)),
            )
        )
    # the batch: what could fit somewhere now, S first, then earliest deadline
    order = sorted(
        queue, key=lambda i: ({"S": 0, "A": 1, "B": 2}[jobs[i].job.sla], jobs[i].deadline)
    )
    batch: list[Job] = []
    ids: list[int] = []
    free_c = np.array([v.free_cpu for v in view])
    free_m = np.array([v.free_memory for v in view])
    lat = np.array([v.latency_ms / 1000 for v in view])
    slow = np.array([v.slowdown for v in view])
    for i in order[:200]:
        sj = jobs[i]
        left = sj.deadline - now
        job = sj.job
        room = (free_c >= job.cpu - 1e-9) & (free_m >= job.memory - 1e-6)
        if not room.any():
            continue  # waits for capacity
        # an S job keeps a hard deadline while some node with room can still meet it
        hard = job.sla == "S" and bool((room & (lat + job.estimate_seconds * slow <= left)).any())
        batch.append(
            dataclasses.replace(
                job,
                deadline_seconds=left if hard else None,
                sla=job.sla if hard else ("A" if job.sla == "S" else job.sla),
            )
        )
        ids.append(i)
    evicted: list[int] = []
    pins: dict[str, str] = {}
    if cfg.preempt:
        urgent = [jobs[i].job for i in order if jobs[i].job.sla == "S"]
        if urgent:
            run = [
                Running(
                    id=str(i),
                    node=nodes[n].id,
                    cpu=jobs[i].job.cpu,
                    memory=jobs[i].job.memory,
                    priority=jobs[i].job.priority,
                    sla=jobs[i].job.sla,
                )
                for i, n in running.items()
                if up[n]
            ]
            # an S job whose deadline is near and that fits nowhere may evict
            urgent_now = []
            for i in order:
                sj = jobs[i]
                if sj.job.sla != "S" or sj.deadline - now <= 0:
                    continue
                fits = any(
                    sj.job.cpu <= v.free_cpu + 1e-9 and sj.job.memory <= v.free_memory for v in view
                )
                if not fits:
                    urgent_now.append(
                        dataclasses.replace(
                            sj.job,
                            id=f"q{i}",
                            deadline_seconds=sj.deadline - now,
                            priority=max(sj.job.priority, 10**6),
                        )
                    )
            if urgent_now and run:
                pre = plan_preemptions(urgent_now, view, run)
                for jid, victims in pre.evicts.items():
                    evicted.extend(int(v) for v in victims)
                    pins[jid] = pre.pins[jid]
                if evicted:
                    return [], evicted  # capacity is freed now; place on the next tick
    if not batch:
        return [], evicted
    inst = Instance(tuple(batch), tuple(view))
    results = (
        {h: run_heuristic(inst, h) for h in (*HEURISTICS, "heft")}
        if algorithm in ("nsga2", "nsga3")
        else {algorithm: run_heuristic(inst, algorithm)}
    )
    if algorithm in ("nsga2", "nsga3"):
        x = _nsga(inst, algorithm, results, cfg)
    else:
        x = results[algorithm]
    placed = [(ids[k], live[int(x[k])]) for k in range(len(ids)) if x[k] >= 0]
    return placed, evicted


def _nsga(
    inst: Instance, algorithm: str, results: dict[str, np.ndarray], cfg: SimConfig
) -> np.ndarray:
    """NSGA over the jobs the best heuristic could place; the rest wait."""
    from fogctl.schedule.optimize import auto_settings, optimize
    from fogctl.schedule.select import choose

    best = max(results.values(), key=lambda x: int((x >= 0).sum()))
    keep = np.nonzero(best >= 0)[0]
    if len(keep) < 2:
        return best
    sub = Instance(tuple(inst.jobs[k] for k in keep), inst.nodes, inst.objectives)
    seeds = [x[keep] for x in results.values() if (x[keep] >= 0).all()]
    seeds = [s for s in seeds if sub.violation(s[None, :])[0] <= 1e-9]
    if not seeds:
        return best
    settings = auto_settings(sub, algorithm, seed=cfg.seed)
    settings.time_limit = cfg.budget
    settings.pop_size = min(settings.pop_size, 24) if algorithm == "nsga2" else settings.pop_size
    res = optimize(sub, seeds, settings)
    if len(res.X) == 0:
        return best
    pick = choose(sub.select(res.F), sub.objectives, pick="knee")
    out = np.full(inst.J, -1, dtype=np.int64)
    out[keep] = res.X[pick]
    return out
