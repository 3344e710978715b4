"""The repair operator: turn any assignment into a feasible one where one exists.

Order of repair, per row that violates anything:

1. pinned jobs go back to their node; jobs on a node they cannot use leave it;
2. gang members outside their gang's region (the region most members are in) leave;
3. an overloaded node sheds randomly chosen jobs until it fits;
4. every job that left is re-placed, largest first, on an eligible node with room
   (in its gang's region): half the time a random one (diversity), otherwise the best
   one for a randomly chosen objective (pressure towards the front's extremes); when
   no node has room, smaller jobs are ejected from the roomiest node and re-queued
   (a bounded number of times);
5. an SLA-S job that would miss its deadline moves to the node where it finishes first.

Rows that are already feasible are left untouched.
"""

from __future__ import annotations

import numpy as np

from fogctl.schedule.instance import FloatArray, Instance, IntArray

__all__ = ["Repairer"]

EPS = 1e-9


class Repairer:
    def __init__(self, inst: Instance, rng: np.random.Generator) -> None:
        self.inst = inst
        self.rng = rng
        room = np.bincount(inst.region, weights=inst.free_cpu, minlength=inst.n_regions)
        self.region_room = 0.5 * room / max(float(room.max()), 1e-9)  # < 1: a tie-break

    def repair(self, X: IntArray) -> IntArray:
        """A repaired copy of population ``X``; feasible rows are unchanged."""
        X = np.array(X, dtype=np.int64, copy=True)
        if X.size == 0:
            return X
        bad = np.nonzero(self.inst.violation(X) > EPS)[0]
        for p in bad:
            X[p] = self.repair_one(X[p], deadlines=False)
        if self.inst.has_deadlines and len(bad):
            finish = self.inst.timing(X[bad]).finish
            late = (finish > self.inst.deadline[None, :] + 1e-9).any(axis=1)
            for k in np.nonzero(late)[0]:
                X[bad[k]] = self._deadlines(X[bad[k]], finish[k])
        return X

    def _choose(self, j: int, ok: IntArray, res_c: FloatArray) -> int:
        inst = self.inst
        if len(ok) == 1:
            return int(ok[0])
        r = self.rng.random()
        if r < 0.5:
            return int(ok[self.rng.integers(len(ok))])
        which = self.rng.integers(5)
        if which == 0:
            score = inst.lat[ok]
        elif which == 1:
            score = -res_c[ok] / inst.node_cpu[ok]
        elif which == 2:
            score = -inst.trust[ok]
        elif which == 3:
            score = inst.cost[j, ok]
        else:
            score = inst.price[j, ok]
        return int(ok[int(np.argmin(score))])

    def repair_one(self, x: IntArray, *, deadlines: bool = True) -> IntArray:
        """Repair one assignment (capacity, eligibility, gangs, then deadlines)."""
        inst = self.inst
        x = x.copy()
        pinned = inst.pinned >= 0
        x[pinned] = inst.pinned[pinned]
        x = np.clip(x, 0, inst.N - 1)
        jidx = np.arange(inst.J)
        loose = ~inst.elig_mask[jidx, x]
        gang_region = np.full(len(inst.gangs), -1, dtype=np.int64)
        for g, members in enumerate(inst.gangs):
            regs = inst.region[x[members]]
            counts = np.bincount(regs, minlength=inst.n_regions).astype(float)
            # most members already there; ties go to the region with most room
            target = int(np.argmax(counts + self.region_room))
            gang_region[g] = target
            loose[members[regs != target]] = True
        keep = ~loose
        res_c: FloatArray = inst.free_cpu - np.bincount(
            x[keep], weights=inst.cpu[keep], minlength=inst.N
        ).astype(float)
        res_m: FloatArray = inst.free_mem - np.bincount(
            x[keep], weights=inst.mem[keep], minlength=inst.N
        ).astype(float)
        over = np.nonzero((res_c < -EPS) | (res_m < -EPS))[0]
        for node in over:
            n = int(node)
            on = np.nonzero((x == n) & keep & ~pinned)[0]
            self.rng.shuffle(on)
            for victim in on:
                if res_c[n] >= -EPS and res_m[n] >= -EPS:
                    break
                res_c[n] += inst.cpu[victim]
                res_m[n] += inst.mem[victim]
                loose[victim] = True
        todo = np.nonzero(loose)[0]
        if len(todo):
            size = inst.cpu[todo] / inst.node_cpu.max() + inst.mem[todo] / inst.node_mem.max()
            todo = todo[np.argsort(-size, kind="stable")]
        queue = [int(j) for j in todo]
        placed = ~loose
        budget = 4 * len(queue) + 16  # ejections are bounded
        head = 0
        while head < len(queue):
            j = queue[head]
            head += 1
            cand = inst.elig[j]
            g = int(inst.gang_of[j])
            if g >= 0:
                in_region = cand[inst.region[cand] == gang_region[g]]
                cand = in_region if len(in_region) else cand
            ok = cand[(res_c[cand] >= inst.cpu[j] - EPS) & (res_m[cand] >= inst.mem[j] - EPS)]
            if len(ok):
                n = self._choose(j, ok, res_c)
            else:
                # no room anywhere: take the roomiest eligible node and eject smaller
                # movable jobs from it until this one fits; they go back in the queue
                n = int(cand[int(np.argmax(res_c[cand] / inst.node_cpu[cand]))])
                if budget > 0:
                    # smaller jobs make way; any job makes way for a gang member,
                    # which cannot leave its region
                    ejectable = placed & ~pinned & (inst.gang_of < 0)
                    if g < 0:
                        ejectable &= inst.cpu <= inst.cpu[j]
                    free_c = res_c + np.bincount(
                        x[ejectable], weights=inst.cpu[ejectable], minlength=inst.N
                    )
                    free_m = res_m + np.bincount(
                        x[ejectable], weights=inst.mem[ejectable], minlength=inst.N
                    )
                    able = cand[
                        (free_c[cand] >= inst.cpu[j] - EPS) & (free_m[cand] >= inst.mem[j] - EPS)
                    ]
                    if len(able):
                        # the node needing the fewest cores ejected
                        n = int(able[int(np.argmax(res_c[able]))])
                    on = np.nonzero((x == n) & ejectable)[0]
                    self.rng.shuffle(on)
                    for victim in on:
                        if res_c[n] >= inst.cpu[j] - EPS and res_m[n] >= inst.mem[j] - EPS:
                            break
                        res_c[n] += inst.cpu[victim]
                        res_m[n] += inst.mem[victim]
                        placed[victim] = False
                        queue.append(int(victim))
                        budget -= 1
            x[j] = n
            placed[j] = True
            res_c[n] -= inst.cpu[j]
            res_m[n] -= inst.mem[j]
        if deadlines and inst.has_deadlines:
            x = self._deadlines(x, inst.timing(x[None, :]).finish[0])
        return x

    def _deadlines(self, x: IntArray, finish: FloatArray) -> IntArray:
        """Move SLA-S jobs that finish late to the node where they finish first."""
        inst = self.inst
        x = x.copy()
        late = np.nonzero(finish > inst.deadline + 1e-9)[0]
        if not len(late):
            return x
        late = late[np.argsort(inst.topo_pos[late], kind="stable")]
        finish = finish.copy()
        res_c = inst.free_cpu - np.bincount(x, weights=inst.cpu, minlength=inst.N).astype(float)
        res_m = inst.free_mem - np.bincount(x, weights=inst.mem, minlength=inst.N).astype(float)
        for j in late:
            if inst.pinned[j] >= 0 or inst.gang_of[j] >= 0:
                continue
            cand = inst.elig[j]
            ok = cand[
                (res_c[cand] + (cand == x[j]) * inst.cpu[j] >= inst.cpu[j] - EPS)
                & (res_m[cand] + (cand == x[j]) * inst.mem[j] >= inst.mem[j] - EPS)
            ]
            if not len(ok):
                continue
            ready = np.zeros(len(ok))
            for d in inst.deps[j]:
                ready = np.maximum(ready, finish[d] + inst.transfer[x[d], ok])
            fin = ready + inst.lat[ok] / 1000.0 + inst.dur[j, ok]
            k = int(np.argmin(fin))
            n = int(ok[k])
            if n != x[j]:
                res_c[x[j]] += inst.cpu[j]
                res_m[x[j]] += inst.mem[j]
                res_c[n] -= inst.cpu[j]
                res_m[n] -= inst.mem[j]
                x[j] = n
            finish[j] = float(fin[k])
        return x
