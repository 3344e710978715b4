"""NSGA-II / NSGA-III placement on pymoo, with integer encoding and a repair operator.

* **Encoding**: one integer gene per job, the index of its node.
* **Initial population**: the heuristics' solutions (so the front never loses to
  them), then random eligible assignments (for big problems: seeds with a tenth of
  their jobs moved at random), all repaired.
* **Variation**: two-point crossover on short segments; a mutation that moves a
  few jobs, half the time to a random eligible node and otherwise to one of the three
  best nodes for a random objective, or swaps two jobs' nodes; then the repair
  operator (:class:`~fogctl.schedule.repair.Repairer`).
* **Adaptive size**: population and reference directions grow with jobs x nodes.
* **Exact extremes**: for problems up to :data:`~fogctl.schedule.exact.MAX_PAIRS`
  eligible pairs, each linear objective's optimum by MILP, then supported points
  between pairs of them (up to 40% of the time).
* **Early stop**: when the hypervolume of the archive of feasible non-dominated plans
  (normalised by its first ideal and nadir points) has improved by less than 0.1%
  over the last ``patience`` generations, or at 85% of the time limit.
* **Polish**: local search from the archive's extremes and a few weighted directions
  (:mod:`fogctl.schedule.polish`) in the time that is left.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fogctl.schedule.instance import OBJECTIVES, FloatArray, Instance, IntArray
from fogctl.schedule.polish import IteratedSearch
from fogctl.schedule.repair import Repairer

__all__ = ["OptimizeResult", "Settings", "auto_settings", "nondominated", "optimize"]


@dataclass
class Settings:
    algorithm: str = "nsga2"  # nsga2 | nsga3
    pop_size: int = 40
    partitions: int = 0  # NSGA-III reference-direction partitions (0: derived)
    max_gen: int = 200
    min_gen: int = 8
    patience: int = 5  # generations the hypervolume plateau is measured over
    tol: float = 0.01  # relative hypervolume gain below which it is a plateau
    time_limit: float = 2.0
    seed: int = 0
    directions: int = 12  # scalarised local searches after the evolution
    kicks: int = 8  # iterated local search perturbations per direction
    exact_share: float = 0.2  # MILP extremes end at this share of the time limit
    seed_share: float = 0.4  # scalarised seeds end at this share of the time limit
    evolve_share: float = 0.85  # the evolution ends at this share of the time limit


@dataclass
class OptimizeResult:
    X: IntArray  # the feasible non-dominated assignments, one row each
    F: FloatArray  # their five objectives
    generations: int
    evaluations: int
    elapsed: float
    hv_history: list[float] = field(default_factory=list)
    settings: Settings | None = None
    exact: bool = False  # the whole front, by enumerating every assignment
    stopped: str = "time"  # why the evolution ended: time, plateau, generations, exact


def auto_settings(inst: Instance, algorithm: str, *, seed: int = 0) -> Settings:
    """Population, directions and limits by problem size (jobs x nodes, objectives)."""
    M = len(inst.objectives)
    scale = inst.J * max(inst.N, 1)
    pop = 32 if scale <= 2_000 else 48 if scale <= 20_000 else 64
    partitions = 0
    if algorithm == "nsga3":
        # Das-Dennis directions: C(p + M - 1, M - 1) for p partitions; the most that
        # fit the population (15 for 5 objectives and 32 plans, 35 for 48 or 64)
        partitions = 1
        while math.comb(partitions + M, M - 1) <= pop and partitions < 12:
            partitions += 1
        n_dirs = math.comb(partitions + M - 1, M - 1)
        pop = max(pop, (n_dirs + 3) // 4 * 4)
    time_limit = min(1.6, 0.38 + scale * 1.2e-5)
    if scale <= 1_000:  # small batches: half a second buys the last few % of the front
        time_limit = max(time_limit, 0.5)  # (40x8: worst weighted-sum gap 1.2-2.1% vs 1.3-4.8%)
    directions, kicks, share = (
        (32, 12, 0.6) if scale <= 2_000 else (16, 6, 0.75) if scale <= 20_000 else (8, 0, 0.85)
    )
    return Settings(
        algorithm=algorithm,
        pop_size=pop,
        partitions=partitions,
        time_limit=time_limit,
        seed=seed,
        directions=directions,
        kicks=kicks,
        evolve_share=share,
    )


def nondominated(F: FloatArray) -> IntArray:
    """Indices of the rows of ``F`` no other row dominates (minimisation); equal
    rows are all kept."""
    n = len(F)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n > 64:
        from moocore import is_nondominated

        return np.nonzero(is_nondominated(F, keep_weakly=True))[0]
    le = (F[:, None, :] <= F[None, :, :]).all(axis=2)
    lt = (F[:, None, :] < F[None, :, :]).any(axis=2)
    dominated = (le & lt).any(axis=0)
    return np.nonzero(~dominated)[0]


def _unique_rows(X: IntArray) -> IntArray:
    """Indices of the first occurrence of each distinct row."""
    seen: set[bytes] = set()
    keep = []
    for i, row in enumerate(np.ascontiguousarray(X, dtype=np.int64)):
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.array(keep, dtype=np.int64)


STALE = 4  # random directions in a row with nothing new, or kicks without a gain


def _merge(
    inst: Instance, arch_X: IntArray, arch_F: FloatArray, new: IntArray
) -> tuple[IntArray, FloatArray]:
    """The archive with the feasible rows of ``new`` added, non-dominated only."""
    F, G = inst.evaluate(new)
    ok = G <= 1e-9
    X = np.concatenate([arch_X, new[ok]])
    F = np.concatenate([arch_F, F[ok]])
    keep = _unique_rows(X)
    X, F = X[keep], F[keep]
    front = nondominated(inst.select(F))
    return X[front], F[front]


def _scales(lin: Sequence[str], F: FloatArray) -> dict[str, float]:
    """1 / the best value of each objective on ``F``: weights then compare relative gaps."""
    best = np.abs(F.min(axis=0))
    return {o: 1.0 / max(float(best[OBJECTIVES.index(o)]), 1e-12) for o in lin}


def fixed_directions(lin: Sequence[str], F: FloatArray) -> list[dict[str, float]]:
    """Weightings of the linear objectives ``lin`` for the scalarised search: each
    alone, each pair and all together (each objective scaled by its best value on
    ``F``, so the weights compare relative gaps), all together scaled by ``F``'s span."""
    scale = _scales(lin, F)
    out: list[dict[str, float]] = [{o: 1.0} for o in lin]
    if len(lin) > 1:
        for a in range(len(lin)):
            for b in range(a + 1, len(lin)):
                out.append({lin[a]: scale[lin[a]], lin[b]: scale[lin[b]]})
        out.append(scale)
        span = np.ptp(F, axis=0)
        out.append({o: 1.0 / max(float(span[OBJECTIVES.index(o)]), 1e-12) for o in lin})
    return out


def random_direction(
    lin: Sequence[str], F: FloatArray, rng: np.random.Generator
) -> dict[str, float]:
    """A uniformly random weighting of ``lin`` (relative gaps, as :func:`fixed_directions`)."""
    scale = _scales(lin, F)
    w = rng.dirichlet(np.ones(len(lin)))
    return {o: float(w[i]) * scale[o] for i, o in enumerate(lin)}


def optimize(inst: Instance, seeds: list[IntArray], settings: Settings) -> OptimizeResult:
    """Run NSGA-II or NSGA-III; return the feasible front (seeds included)."""
    from fogctl.schedule.exact import enumerate_front

    started = time.perf_counter()
    # a tiny problem: every assignment evaluated, the exact front, no search
    found = enumerate_front(inst)
    if found is not None:
        return OptimizeResult(
            X=found[0],
            F=found[1],
            generations=0,
            evaluations=int(np.prod([len(e) for e in inst.elig])),
            elapsed=time.perf_counter() - started,
            settings=settings,
            exact=True,
            stopped="exact",
        )
    from moocore import hypervolume  # type: ignore[import-untyped]
    from pymoo.core.crossover import Crossover
    from pymoo.core.duplicate import DuplicateElimination
    from pymoo.core.mutation import Mutation
    from pymoo.core.problem import Problem
    from pymoo.core.repair import Repair

    if settings.algorithm == "nsga3":
        from pymoo.algorithms.moo.nsga3 import NSGA3
    else:
        from pymoo.algorithms.moo.nsga2 import NSGA2
    from fogctl.schedule.exact import load_solver

    load_solver()  # imports are not part of the time budget
    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    repairer = Repairer(inst, rng)
    n_eval = [0]

    class AssignmentProblem(Problem):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(
                n_var=inst.J,
                n_obj=len(inst.objectives),
                n_ieq_constr=1,
                xl=0,
                xu=inst.N - 1,
                vtype=int,
            )

        def _evaluate(self, X: Any, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            F, G = inst.evaluate(np.asarray(X, dtype=np.int64))
            n_eval[0] += len(F)
            out["F"] = inst.select(F)
            out["G"] = G[:, None]

    class SegmentCrossover(Crossover):  # type: ignore[misc]
        """Two-point crossover on the job vector, segments up to a twentieth long:
        children stay close to their parents, so repair has little to undo."""

        def __init__(self) -> None:
            super().__init__(n_parents=2, n_offsprings=2, prob=0.9)

        def _do(self, problem: Any, X: Any, *args: Any, random_state: Any = None, **kw: Any) -> Any:
            a, b = X[0].astype(np.int64), X[1].astype(np.int64)
            n_mat, J = a.shape
            length = rng.integers(1, max(2, min(J // 4, 8 + J // 20) + 1), size=n_mat)
            begin = rng.integers(0, J, size=n_mat)
            pos = (np.arange(J)[None, :] - begin[:, None]) % J
            mask = pos < length[:, None]
            return np.stack([np.where(mask, b, a), np.where(mask, a, b)])

    # the three best eligible nodes of each job for latency, trust, cost and price
    guides: list[IntArray] = []
    for crit in (inst.lat, -inst.trust, None, None):
        top = np.zeros((inst.J, 3), dtype=np.int64)
        for j in range(inst.J):
            e = inst.elig[j]
            score = crit[e] if crit is not None else None
            if score is None:
                score = inst.cost[j, e] if len(guides) == 2 else inst.price[j, e]
            pick = e[np.argsort(score, kind="stable")[:3]]
            top[j] = np.resize(pick, 3)
        guides.append(top)

    class MoveMutation(Mutation):  # type: ignore[misc]
        def _do(self, problem: Any, X: Any, *args: Any, random_state: Any = None, **kw: Any) -> Any:
            X = np.asarray(X, dtype=np.int64).copy()
            for row in X:
                k = int(min(inst.J, rng.geometric(0.45)))
                if rng.random() < 0.15 and inst.J > 1:
                    a, b = rng.choice(inst.J, 2, replace=False)
                    row[a], row[b] = row[b], row[a]
                    continue
                for j in rng.choice(inst.J, k, replace=False) if inst.J else ():
                    if rng.random() < 0.5:
                        e = inst.elig[j]
                        row[j] = e[rng.integers(len(e))]
                    else:
                        row[j] = guides[rng.integers(4)][j, rng.integers(3)]
            return X

    class FeasibleRepair(Repair):  # type: ignore[misc]
        def _do(self, problem: Any, X: Any, **kwargs: Any) -> Any:
            return repairer.repair(np.asarray(X, dtype=np.int64))

    class BytesDuplicates(DuplicateElimination):  # type: ignore[misc]
        def _do(self, pop: Any, other: Any, is_duplicate: Any) -> Any:
            seen = set()
            if other is not None:
                seen = {ind.X.astype(np.int64).tobytes() for ind in other}
            for i, ind in enumerate(pop):
                h = ind.X.astype(np.int64).tobytes()
                if h in seen:
                    is_duplicate[i] = True
                else:
                    seen.add(h)
            return is_duplicate

    # exact extremes (MILP) for the linear objectives, when the problem is small enough
    from fogctl.schedule.exact import MAX_PAIRS, MAX_RELAXED_PAIRS, Model, exact_balance
    from fogctl.schedule.polish import LINEAR, cost_matrix

    seeds = list(seeds)
    if "balance" in inst.objectives:
        x_balance = exact_balance(inst)
        if x_balance is not None:
            seeds.append(x_balance)
    lin = [o for o in inst.objectives if o in LINEAR]
    pairs = int(inst.elig_mask.sum())
    model = Model(inst) if lin and pairs <= MAX_RELAXED_PAIRS else None
    # with a generation budget (no clock) only tiny problems get MILP extremes, so the
    # run stays short and reproducible
    timed = bool(np.isfinite(settings.time_limit))
    if model is not None and pairs <= (MAX_PAIRS if timed else 150):
        exact_end = started + settings.exact_share * settings.time_limit
        for k, name in enumerate(lin):
            C = cost_matrix(inst, {name: 1.0})
            if timed:
                left = exact_end - time.perf_counter()
                x_exact = model.solve(C, left / (len(lin) - k))
            else:  # a generation budget: a node budget keeps the result reproducible
                x_exact = model.solve(C, np.inf, node_limit=200)
            if x_exact is not None:
                seeds.append(x_exact)

    # scalarised seeds: for each fixed direction (see fixed_directions) the best of the
    # relaxation's rounded plan and the best seed, polished; their searches go on
    # (kicks) after the evolution
    searches: list[IteratedSearch] = []
    jrow = np.arange(inst.J)[None, :]

    def start_search(weights: Mapping[str, float], pool: IntArray, end: float) -> None:
        C = cost_matrix(inst, weights)
        starts = [pool[int(np.argmin(C[jrow, pool].sum(axis=1)))]]
        if model is not None:
            relaxed = model.round_relaxation(C, repairer.repair_one)
            if relaxed is not None:
                starts.append(relaxed)
        searches.append(IteratedSearch(inst, starts, C, rng, deadline=end))

    pending: list[dict[str, float]] = []  # fixed directions not searched yet
    if lin and seeds:
        pool = np.stack([np.asarray(x, dtype=np.int64) for x in seeds])
        pool_F, pool_G = inst.evaluate(pool)
        pool, pool_F = pool[pool_G <= 1e-9], pool_F[pool_G <= 1e-9]
        seed_end = started + settings.seed_share * settings.time_limit
        if len(pool):
            pending = fixed_directions(lin, pool_F)
            while pending and time.perf_counter() < seed_end:
                start_search(pending.pop(0), pool, started + settings.time_limit)
            seeds.extend(s.best for s in searches)

    # initial population: seeds first, then random eligible assignments
    pop = settings.pop_size
    init = [np.asarray(s, dtype=np.int64) for s in seeds]
    if len(init) < pop:
        fresh = inst.random_rows(rng, pop - len(init))
        if init and inst.J * inst.N > 20_000:
            # big problems: random plans cost a full repair each; start instead from
            # the seeds with a tenth of their jobs moved at random
            base = np.stack(init)[rng.integers(len(init), size=len(fresh))]
            unmoved = rng.random(fresh.shape) >= 0.1
            fresh = np.where(unmoved, base, fresh)
        init.extend(fresh)
    X0 = repairer.repair(np.stack(init))
    X0 = X0[_unique_rows(X0)]
    while len(X0) < pop:  # duplicates removed: top up with fresh random rows
        extra = inst.random_rows(rng, pop - len(X0))
        before = len(X0)
        X0 = np.concatenate([X0, repairer.repair(extra)])
        X0 = X0[_unique_rows(X0)]
        if len(X0) == before:
            break  # a tiny problem: fewer distinct assignments than the population

    common: dict[str, Any] = dict(
        sampling=X0,
        crossover=SegmentCrossover(),
        mutation=MoveMutation(),
        repair=FeasibleRepair(),
        eliminate_duplicates=BytesDuplicates(),
    )
    if settings.algorithm == "nsga3":
        from pymoo.util.ref_dirs import get_reference_directions

        dirs = get_reference_directions(
            "das-dennis", len(inst.objectives), n_partitions=max(settings.partitions, 1)
        )
        algo = NSGA3(ref_dirs=dirs, pop_size=max(len(X0), len(dirs)), **common)
    else:
        algo = NSGA2(pop_size=len(X0), **common)
    algo.setup(
        AssignmentProblem(),
        termination=("n_gen", settings.max_gen),
        seed=settings.seed,
        verbose=False,
    )

    # archive of every feasible non-dominated assignment seen (seeds included):
    # its hypervolume never falls, so it is what the early stop watches
    arch_X = np.zeros((0, inst.J), dtype=np.int64)
    arch_F = np.zeros((0, len(OBJECTIVES)))
    if seeds:
        seed_X = np.stack([np.asarray(s, dtype=np.int64) for s in seeds])
        seed_F, seed_G = inst.evaluate(seed_X)
        arch_X, arch_F = seed_X[seed_G <= 1e-9], seed_F[seed_G <= 1e-9]
    ideal: FloatArray | None = None
    span: FloatArray | None = None
    history: list[float] = []
    gen = 0
    stopped = "time"
    while algo.has_next():
        algo.next()
        gen += 1
        G = algo.pop.get("G")[:, 0]
        ok = G <= 1e-9
        if ok.any():
            X_new = algo.pop.get("X")[ok].astype(np.int64)
            F_new = inst.evaluate(X_new)[0]
            arch_X = np.concatenate([arch_X, X_new])
            arch_F = np.concatenate([arch_F, F_new])
            keep = _unique_rows(arch_X)
            arch_X, arch_F = arch_X[keep], arch_F[keep]
            front = nondominated(inst.select(arch_F))
            arch_X, arch_F = arch_X[front], arch_F[front]
        if len(arch_F) == 0:
            history.append(0.0)
        else:
            sel = inst.select(arch_F)
            if ideal is None:
                ideal = sel.min(axis=0)
                nadir = sel.max(axis=0)
                span = np.where(nadir - ideal > 1e-12, nadir - ideal, 1.0)
            assert span is not None
            norm = (sel - ideal) / span
            norm = norm[(norm < 1.1).all(axis=1)]
            hv = float(hypervolume(norm, ref=np.full(norm.shape[1], 1.1))) if len(norm) else 0.0
            history.append(hv)
        if time.perf_counter() - started > settings.evolve_share * settings.time_limit:
            break
        if gen >= max(settings.min_gen, settings.patience + 1):
            old = history[-settings.patience - 1]
            if history[-1] - old <= settings.tol * max(abs(history[-1]), 1e-12):
                stopped = "plateau"
                break
    else:
        stopped = "generations"

    # scalarised local search: the fixed directions' searches get kicks, a few each
    # in turn, and random directions get searches of their own, while time is left
    if len(arch_X):
        from fogctl.schedule.polish import polish_balance

        polish_end = started + settings.time_limit
        for s in searches:
            s.deadline = polish_end
        if lin and not searches and not pending:
            pending = fixed_directions(lin, arch_F)
        # random directions until a few in a row find nothing new for the archive;
        # then kicks, two at a time for each search still improving
        stale = 0
        rounds = 0
        while time.perf_counter() < polish_end:
            if pending:
                start_search(pending.pop(0), arch_X, polish_end)
            elif len(searches) < settings.directions and len(lin) > 1 and stale < STALE:
                start_search(random_direction(lin, arch_F, rng), arch_X, polish_end)
                best = searches[-1].best
                known = bool((arch_X == best).all(axis=1).any())
                arch_X, arch_F = _merge(inst, arch_X, arch_F, best[None, :])
                news = not known and bool((arch_X == best).all(axis=1).any())
                stale = 0 if news else stale + 1
            elif rounds * 2 < settings.kicks and any(s.stale < STALE for s in searches):
                rounds += 1
                for search in searches:
                    if search.stale < STALE:
                        search.run(2)
            else:
                break
        polished: list[IntArray] = [s.best for s in searches]
        if "balance" in inst.objectives:
            for start in np.argsort(arch_F[:, OBJECTIVES.index("balance")])[:3]:
                polished.append(
                    polish_balance(
                        inst, arch_X[start], moves=min(200, 2 * inst.J), deadline=polish_end
                    )
                )
        if polished:
            arch_X, arch_F = _merge(inst, arch_X, arch_F, np.stack(polished))

    X_all, F_all = arch_X, arch_F
    return OptimizeResult(
        X=X_all,
        F=F_all,
        generations=gen,
        evaluations=n_eval[0],
        elapsed=time.perf_counter() - started,
        hv_history=history,
        settings=settings,
        stopped=stopped,
    )
