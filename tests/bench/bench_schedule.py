"""fogctl schedule benchmarks, each figure beside a reference measured in the same run.

    python tests/bench/bench_schedule.py [--section latency|ablation|quality|sim|all]
                                         [--runs N]

Sections (targets from the schedule issue):

* latency: ``schedule()`` end to end (heuristics, NSGA-III search, polish, choice)
  on 100 jobs x 20 nodes (target: median under 500 ms) and 1,000 x 100 (under 2 s),
  beside a plain pymoo NSGA-II with a capacity repair (population 50, 100
  generations) on the same instance; hypervolume of each front against the best
  heuristic's plan, in one normalised space per instance.
* ablation: NSGA-III vs NSGA-II at five objectives, with and without the heuristic
  seeds, by hypervolume.
* quality: gaps of the front to exact optima (HiGHS MILP for latency, trust, cost,
  price and weighted sums; enumeration for balance) on small instances, at the
  default time budget and at 1.5 s (target: within 5%).
* sim: ``fogctl schedule sim`` at 70% load: SLA-S on-time % for each algorithm
  (target: at least 95%), utilisation, makespan, mean placement time.

Timings depend on the machine and on what else runs on it: compare the figures to
the reference printed beside them, not to absolute numbers.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fogctl.schedule.engine import _complete, hypervolume_ratio, schedule
from fogctl.schedule.heuristics import SEEDS, run_heuristic
from fogctl.schedule.instance import Instance
from fogctl.schedule.model import check_problem, node_from_record
from fogctl.schedule.optimize import nondominated
from fogctl.schedule.workload import generate_jobs, generate_nodes


def instance(
    n_jobs: int, n_nodes: int, seed: int, *, capacity_only: bool = False
) -> tuple[list[Any], list[Any], Instance]:
    """A generated instance: 60% load, 10% of jobs in a DAG, gangs, SLA-S deadlines;
    ``capacity_only`` keeps just the capacity constraint (what the plain reference
    repairs)."""
    import dataclasses

    rng = np.random.default_rng(seed)
    records = generate_nodes(n_nodes, rng)
    nodes = [n for n in (node_from_record(r) for r in records) if n is not None]
    free = sum(n.free_cpu for n in nodes if n.accepts_work)
    if capacity_only:
        jobs = [
            dataclasses.replace(j, deadline_seconds=None)
            for j in generate_jobs(n_jobs, rng, free_cpu=free, load=0.6)
        ]
    else:
        jobs = generate_jobs(
            n_jobs, rng, free_cpu=free, load=0.6, dag=0.1, gangs=max(1, n_jobs // 50)
        )
    problem = check_problem(jobs, nodes)
    return records, jobs, Instance(problem.jobs, problem.nodes)


# -- the reference: a straightforward pymoo NSGA-II with a capacity repair ------------


def plain_nsga2(inst: Instance, *, pop: int = 50, gens: int = 100, seed: int = 0) -> Any:
    """pymoo NSGA-II on the integer encoding (SBX and PM with rounding, random
    initial population) with a per-individual capacity repair: jobs on an overloaded
    node move to a random node with room. No seeding, no early stop."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.core.repair import Repair
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    rng = np.random.default_rng(seed)

    class P(Problem):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(n_var=inst.J, n_obj=5, n_ieq_constr=1, xl=0, xu=inst.N - 1, vtype=int)

        def _evaluate(self, X: Any, out: dict[str, Any], *a: Any, **k: Any) -> None:
            F, G = inst.evaluate(np.asarray(X, dtype=np.int64))
            out["F"] = F
            out["G"] = G[:, None]

    class CapacityRepair(Repair):  # type: ignore[misc]
        def _do(self, problem: Any, X: Any, **kw: Any) -> Any:
            X = np.asarray(X, dtype=np.int64)
            for x in X:
                res = inst.free_cpu - np.bincount(x, weights=inst.cpu, minlength=inst.N)
                resm = inst.free_mem - np.bincount(x, weights=inst.mem, minlength=inst.N)
                for j in rng.permutation(inst.J):
                    n = x[j]
                    if res[n] >= -1e-9 and resm[n] >= -1e-9:
                        continue
                    room = np.nonzero((res >= inst.cpu[j]) & (resm >= inst.mem[j]))[0]
                    if len(room):
                        m = int(room[rng.integers(len(room))])
                        res[n] += inst.cpu[j]
                        resm[n] += inst.mem[j]
                        res[m] -= inst.cpu[j]
                        resm[m] -= inst.mem[j]
                        x[j] = m
            return X

    algo = NSGA2(
        pop_size=pop,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        repair=CapacityRepair(),
        eliminate_duplicates=True,
    )
    return minimize(P(), algo, ("n_gen", gens), seed=seed, verbose=False)


def feasible_front(inst: Instance, X: np.ndarray) -> np.ndarray:
    if X is None or len(X) == 0:
        return np.zeros((0, 5))
    X = np.atleast_2d(np.asarray(X, dtype=np.int64))
    F, G = inst.evaluate(X)
    F = F[G <= 1e-9]
    return F[nondominated(F)] if len(F) else F


def bench_latency(runs: int) -> None:
    print("\n== latency: schedule() end to end vs plain pymoo NSGA-II (pop 50, 100 gens)")
    print("   full: DAG, gangs, SLA-S deadlines; cap-only: capacity is the only constraint")
    print(
        f"{'size':>12} {'ours median':>12} {'target':>8} {'plain NSGA-II':>14} "
        f"{'speed-up':>9} {'HV ours':>8} {'HV plain':>9} {'HV best heur':>13} "
        f"{'plain feasible':>15}"
    )
    for n_jobs, n_nodes, target, n_runs, ref_runs, cap_only in (
        (100, 20, 0.5, runs, 3, False),
        (1000, 100, 2.0, max(3, runs // 2), 1, False),
        (100, 20, 0.5, runs, 3, True),
    ):
        records, jobs, inst = instance(n_jobs, n_nodes, seed=n_jobs, capacity_only=cap_only)
        schedule(records, jobs, seed=0)  # warm-up: imports are not part of the figure
        times = []
        plan = None
        for r in range(n_runs):
            t0 = time.perf_counter()
            plan = schedule(records, jobs, seed=r)
            times.append(time.perf_counter() - t0)
        ours = statistics.median(times)
        assert plan is not None
        X_ours = plan.X  # the same instance: schedule() builds it identically
        assert [j.id for j in plan.instance.jobs] == [j.id for j in inst.jobs]
        ref_times = []
        res = None
        for r in range(ref_runs):
            t0 = time.perf_counter()
            res = plain_nsga2(inst, seed=r)
            ref_times.append(time.perf_counter() - t0)
        ref = statistics.median(ref_times)
        F_ours = feasible_front(inst, X_ours)
        F_ref = feasible_front(inst, None if res is None else res.pop.get("X"))
        heur = _complete(inst, {h: run_heuristic(inst, h) for h in SEEDS})
        F_h = inst.evaluate(np.stack(list(heur.values())))[0]
        both = np.concatenate([F_ours, F_ref, F_h]) if len(F_ref) else np.concatenate([F_ours, F_h])
        hv = {}
        for name, F in (("ours", F_ours), ("plain", F_ref)):
            hv[name] = hypervolume_ratio(F, both)[0] if len(F) else 0.0
        best_h = max(hypervolume_ratio(p[None, :], both)[0] for p in F_h)
        kind = "cap-only" if cap_only else "full"
        print(
            f"{n_jobs:>4}x{n_nodes:<3}{kind:>5} {ours * 1000:>9.0f} ms {target * 1000:>5.0f} ms "
            f"{ref * 1000:>11.0f} ms {ref / ours:>8.1f}x {hv['ours']:>8.4f} {hv['plain']:>9.4f} "
            f"{best_h:>13.4f} {len(F_ref):>8} plans"
        )
        print(
            f"{'':>12} ours: runs {[round(t * 1000) for t in times]} ms, "
            f"{plan.stats.get('generations')} generations, front {len(F_ours)}, "
            f"dominates every heuristic: {plan.stats.get('dominates_heuristics')}"
        )


def _small(n_jobs: int, n_nodes: int, seed: int, load: float = 0.7) -> Instance:
    rng = np.random.default_rng(seed)
    recs = generate_nodes(n_nodes, rng)
    nodes = [n for n in (node_from_record(r) for r in recs) if n is not None]
    free = sum(n.free_cpu for n in nodes if n.accepts_work)
    jobs = generate_jobs(n_jobs, rng, free_cpu=free, load=load, gangs=1)
    p = check_problem(jobs, nodes)
    return Instance(p.jobs, p.nodes)


def bench_ablation() -> None:
    """NSGA-III vs NSGA-II at five objectives, and what seeding with the heuristics
    adds: hypervolume of each front in one space normalised over all of them."""
    from fogctl.schedule.optimize import auto_settings, optimize

    print("\n== ablation: 5 objectives, same (default) time budget, 3 seeds per instance")
    print("   hypervolume in one space normalised over every front of the instance")
    variants = (
        ("nsga3 + seeds (default)", "nsga3", True),
        ("nsga2 + seeds", "nsga2", True),
        ("nsga3, random start", "nsga3", False),
        ("nsga2, random start", "nsga2", False),
    )
    table: dict[str, list[float]] = {}
    wins = 0
    cases = 0
    for size, inst_seed in (((100, 20), 100), ((100, 20), 101), ((40, 8), 7)):
        _, _, inst = instance(*size, seed=inst_seed)
        heur = _complete(inst, {h: run_heuristic(inst, h) for h in SEEDS})
        seeds = list(heur.values())
        fronts: dict[str, list[np.ndarray]] = {}
        for label, algo, use_seeds in variants:
            for seed in range(3):
                st = auto_settings(inst, algo, seed=seed)
                res = optimize(inst, seeds if use_seeds else [], st)
                fronts.setdefault(label, []).append(res.F)
        F_h = inst.evaluate(np.stack(seeds))[0]
        everything = np.concatenate([F_h, *[f for fs in fronts.values() for f in fs]])
        best_h = max(hypervolume_ratio(p[None, :], everything)[0] for p in F_h)
        hv = {
            label: [hypervolume_ratio(f, everything)[0] for f in fs] for label, fs in fronts.items()
        }
        for label, values in hv.items():
            table.setdefault(label, []).extend(v / best_h for v in values)
        a, b = hv[variants[0][0]], hv[variants[1][0]]
        wins += sum(x >= y for x, y in zip(a, b, strict=True))
        cases += len(a)
        print(
            f"   {size[0]}x{size[1]} #{inst_seed}: "
            + ", ".join(
                f"{label.split(' (')[0]} {statistics.median(v):.4f}" for label, v in hv.items()
            )
            + f", best heuristic {best_h:.4f}"
        )
    print(f"{'variant':>26} {'median HV / best heuristic':>27}")
    for label, ratios in table.items():
        print(f"{label:>26} {statistics.median(ratios):>26.2f}x")
    print(f"   NSGA-III >= NSGA-II (both seeded) in {wins} of {cases} runs (same instance, seed)")


def bench_quality() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "schedule"))
    from fogctl.schedule.instance import OBJECTIVES
    from fogctl.schedule.optimize import auto_settings, optimize
    from tests.schedule.milp import LINEAR, balance_optimum, milp_optimum, weighted

    print("\n== quality: gap of the front to the exact optimum (HiGHS MILP), target <= 5%")
    print("   each objective alone; weighted: 3 pairs and 3 random weightings of all four")
    print("   (each objective scaled by its optimum); worst over the instances, then mean")
    print(
        f"{'instances':>16} {'budget':>8} {'time':>7} "
        + " ".join(f"{n:>8}" for n in [*LINEAR, "weighted"])
        + f" {'mean':>7}"
    )
    for n_jobs, n_nodes, count, budgets in QUALITY_SIZES:
        insts = [_small(n_jobs, n_nodes, seed) for seed in range(count)]
        exact: list[dict[str, Any]] = []
        for k, inst in enumerate(insts):
            opt = {n: milp_optimum(inst, {n: 1.0}) for n in LINEAR}
            ws = [{n: 1.0 / abs(opt[n]) for n in pair} for pair in PAIRS]
            wr = np.random.default_rng(1000 + k)
            for _ in range(3):
                d = wr.dirichlet(np.ones(len(LINEAR)))
                ws.append({n: float(d[i]) / abs(opt[n]) for i, n in enumerate(LINEAR)})
            exact.append({"opt": opt, "ws": ws, "w_opt": [milp_optimum(inst, w) for w in ws]})
        for budget in budgets:
            worst = dict.fromkeys([*LINEAR, "weighted"], 0.0)
            every: list[float] = []
            times = []
            for seed, (inst, ex) in enumerate(zip(insts, exact, strict=True)):
                t0 = time.perf_counter()
                seeds = _complete(inst, {h: run_heuristic(inst, h) for h in SEEDS})
                s = auto_settings(inst, "nsga3", seed=seed)
                if budget is not None:
                    s.time_limit = budget
                res = optimize(inst, list(seeds.values()), s)
                times.append(time.perf_counter() - t0)
                for n in LINEAR:
                    best = res.F[:, OBJECTIVES.index(n)].min()
                    g = (best - ex["opt"][n]) / abs(ex["opt"][n])
                    worst[n] = max(worst[n], g)
                    every.append(g)
                for w, w_opt in zip(ex["ws"], ex["w_opt"], strict=True):
                    g = (weighted(res.F, w).min() - w_opt) / abs(w_opt)
                    worst["weighted"] = max(worst["weighted"], g)
                    every.append(g)
            label = f"{count} x {n_jobs}x{n_nodes}"
            b = "default" if budget is None else f"{budget:g} s"
            print(
                f"{label:>16} {b:>8} {1000 * statistics.median(times):>5.0f}ms "
                + " ".join(f"{100 * v:>7.2f}%" for v in worst.values())
                + f" {100 * float(np.mean(every)):>6.2f}%"
            )
    # balance (a variance): exact by enumeration on tiny instances
    gaps = []
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        recs = generate_nodes(5, rng)
        nodes = [n for n in (node_from_record(r) for r in recs) if n is not None]
        free = sum(n.free_cpu for n in nodes if n.accepts_work)
        p = check_problem(generate_jobs(7, rng, free_cpu=free, load=0.7), nodes)
        inst = Instance(p.jobs, p.nodes)
        seeds = _complete(inst, {h: run_heuristic(inst, h) for h in SEEDS})
        res = optimize(inst, list(seeds.values()), auto_settings(inst, "nsga3", seed=seed))
        exact_b = balance_optimum(inst)
        gaps.append((res.F[:, 1].min() - exact_b) / exact_b)
    print(f"{'4 x 7x5 balance':>16} {'default':>8} worst gap {100 * max(gaps):.2f}%")


PAIRS = (("latency", "cost"), ("price", "trust"), ("latency", "trust"))
# (jobs, nodes, instances, budgets); --large adds 60x10 and a 1.5 s budget (~60 s more)
QUALITY_SIZES: list[tuple[int, int, int, tuple[float | None, ...]]] = [
    (8, 5, 3, (None,)),
    (20, 6, 4, (None,)),
    (40, 8, 6, (None,)),
]
QUALITY_LARGE = [(40, 8, 6, (1.5,)), (60, 10, 3, (None,))]


def bench_early_stop() -> None:
    """The hypervolume-plateau stop against the same search with the stop disabled."""
    from fogctl.schedule.optimize import auto_settings, optimize

    print("\n== early stop: default (plateau: < 1% hypervolume gain in 5 generations)")
    print("   vs the same search with the plateau stop disabled; 3 instances each")
    print(
        f"{'size':>8} {'time early':>11} {'time full':>10} {'gens early/full':>16} "
        f"{'HV early / full':>16} {'stopped (early runs)':>24}"
    )
    for n_jobs, n_nodes in ((8, 5), (20, 6), (40, 8), (100, 20)):
        rows = []
        reasons: dict[str, int] = {}
        for seed in range(3):
            _, _, inst = instance(n_jobs, n_nodes, seed=seed)
            seeds = list(_complete(inst, {h: run_heuristic(inst, h) for h in SEEDS}).values())
            out = {}
            for label in ("early", "full"):
                st = auto_settings(inst, "nsga3", seed=seed)
                if label == "full":
                    st.patience = 10**6
                t0 = time.perf_counter()
                r = optimize(inst, seeds, st)
                out[label] = (time.perf_counter() - t0, r)
            reasons[out["early"][1].stopped] = reasons.get(out["early"][1].stopped, 0) + 1
            both = np.concatenate([out["early"][1].F, out["full"][1].F])
            hv_e = hypervolume_ratio(out["early"][1].F, both)[0]
            hv_f = hypervolume_ratio(out["full"][1].F, both)[0]
            rows.append(
                (
                    out["early"][0],
                    out["full"][0],
                    out["early"][1].generations,
                    out["full"][1].generations,
                    hv_e / hv_f if hv_f else 1.0,
                )
            )
        r = np.array(rows)
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        t_early, t_full = 1000 * r[:, 0].mean(), 1000 * r[:, 1].mean()
        print(
            f"{n_jobs:>4}x{n_nodes:<3} {t_early:>8.0f} ms {t_full:>7.0f} ms "
            f"{r[:, 2].mean():>8.0f}/{r[:, 3].mean():<7.0f} {r[:, 4].mean():>9.4f} "
            f"(min {r[:, 4].min():.3f}) {why:>16}"
        )


def bench_sim() -> None:
    from fogctl.schedule.sim import SimConfig, simulate

    algos = [
        "nsga2",
        "greedy-latency",
        "least-loaded",
        "trust-first",
        "cost",
        "ffd",
        "round-robin",
        "heft",
    ]
    for title, cfg in (
        ("70% load, MTBF 1 h (the target)", SimConfig(jobs=1000, nodes=30, load=0.7, seed=0)),
        (
            "stress: 100% load, MTBF 10 min",
            SimConfig(jobs=1000, nodes=30, load=1.0, seed=0, mtbf=600.0, mttr=120.0),
        ),
    ):
        print(f"\n== sim: 1000 jobs on 30 nodes, {title}, MTTR {cfg.mttr:g} s")
        t0 = time.perf_counter()
        recs = simulate(algos, cfg)
        print(
            f"{'algorithm':>15} {'S on-time':>10} {'all':>7} {'cpu util':>9} {'makespan':>9} "
            f"{'wait':>6} {'restarts':>8} {'preempt':>7} {'ms/placement':>12}"
        )
        for r in recs:
            print(
                f"{r.algorithm:>15} {r.on_time['S']:>9.1f}% {r.on_time['all']:>6.1f}% "
                f"{r.utilization['cpu']:>9.3f} {r.makespan:>8.0f}s {r.mean_wait:>5.1f}s "
                f"{r.restarts:>8} {r.preemptions:>7} {r.schedule_ms:>12.2f}"
            )
        print(f"(target: S on-time >= 95% at 70% load; {time.perf_counter() - t0:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--section",
        default="all",
        choices=["latency", "ablation", "quality", "earlystop", "sim", "all"],
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--large", action="store_true", help="quality: also 60x10 and a 1.5 s budget"
    )
    args = parser.parse_args()
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{__import__('os').cpu_count()} cpus"
    )
    if args.section in ("latency", "all"):
        bench_latency(args.runs)
    if args.section in ("ablation", "all"):
        bench_ablation()
    if args.section in ("quality", "all"):
        if args.large:
            QUALITY_SIZES.extend(QUALITY_LARGE)
        bench_quality()
    if args.section in ("earlystop", "all"):
        bench_early_stop()
    if args.section in ("sim", "all"):
        bench_sim()
    return 0


if __name__ == "__main__":
    sys.exit(main())
