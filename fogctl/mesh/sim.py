"""Contact simulator for ``fogctl mesh sim``: the routers of :mod:`fogctl.mesh.routing`
run unchanged over a random-waypoint or trace-file contact plan.

Model (all routers see the same contacts and the same messages):

* contacts come from :func:`random_waypoint` (nodes move in a W x H area between
  uniformly drawn waypoints at a uniform speed, optional pause; two nodes are in
  contact while within ``range_m``; sampled every ``step`` seconds) or from
  :func:`read_trace` (lines ``TIME CONN A B up|down``, the ONE simulator's format);
* a message is created every ``interval`` seconds (uniform +-50 %) between two
  distinct random nodes, with a lifetime;
* links have no bandwidth limit; each contact runs the exchange described in
  :mod:`fogctl.mesh.routing` (summary vectors, then router decisions), and a node
  that receives something new re-offers it to its other current neighbours;
* buffers hold ``buffer`` bundles per node (``None``: unlimited) and drop with the
  store's policy: expired first, then relayed bundles expiring soonest, own last;
* metrics follow the ONE simulator's MessageStatsReport: delivery ratio =
  delivered / created; latency from creation to first delivery; overhead ratio =
  (relayed - delivered) / delivered, where *relayed* counts every completed bundle
  transfer (to relays and to the destination, duplicates and transfers of bundles
  later dropped included);
* measurement window: messages are created over the whole run (so the load is
  steady), but only those created in ``[warmup, duration - cooldown)`` are counted
  -- the ONE's ``Report.warmup`` and its mirror at the end. With the default cool-down
  of one lifetime every counted message has its whole lifetime inside the run: a
  message made at 1:59 of a 2 h run, still in flight at the cut-off, is neither a
  success nor a failure (counting it as a failure measures the cut-off, not the
  router). Transfers of uncounted messages are not counted either.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fogctl.errors import InvalidInput
from fogctl.mesh.records import MeshSimRecord
from fogctl.mesh.routing import Carried, Router, make_router

__all__ = [
    "Contact",
    "Message",
    "Scenario",
    "make_messages",
    "plot_results",
    "random_waypoint",
    "read_trace",
    "run",
    "simulate",
]


@dataclass(frozen=True, slots=True)
class Contact:
    t: float
    a: int
    b: int
    up: bool


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    t: float
    src: int
    dst: int
    lifetime: float


def random_waypoint(
    nodes: int,
    *,
    duration: float,
    rng: random.Random,
    width: float = 1000.0,
    height: float = 1000.0,
    speed: tuple[float, float] = (1.0, 5.0),
    pause: tuple[float, float] = (0.0, 0.0),
    range_m: float = 50.0,
    step: float = 1.0,
) -> list[Contact]:
    """Contact up/down events of a random-waypoint mobility run."""
    import numpy as np

    pos = np.array([[rng.uniform(0, width), rng.uniform(0, height)] for _ in range(nodes)])
    dest = np.array([[rng.uniform(0, width), rng.uniform(0, height)] for _ in range(nodes)])
    spd = np.array([rng.uniform(*speed) for _ in range(nodes)])
    wait = np.zeros(nodes)
    r2 = range_m * range_m
    iu = np.triu_indices(nodes, 1)
    prev = np.zeros(len(iu[0]), dtype=bool)
    out: list[Contact] = []
    t = 0.0
    while t <= duration:
        diff = pos[:, None, :] - pos[None, :, :]
        d2 = (diff**2).sum(-1)[iu]
        now_c = d2 <= r2
        changed = np.nonzero(now_c != prev)[0]
        for k in changed:
            out.append(Contact(t, int(iu[0][k]), int(iu[1][k]), bool(now_c[k])))
        prev = now_c
        # move
        vec = dest - pos
        dist = np.sqrt((vec**2).sum(-1))
        moving = wait <= 0
        stepd = spd * step
        arrive = moving & (dist <= stepd)
        go = moving & ~arrive
        pos[go] += vec[go] / dist[go][:, None] * stepd[go][:, None]
        for i in np.nonzero(arrive)[0]:
            pos[i] = dest[i]
            dest[i] = (rng.uniform(0, width), rng.uniform(0, height))
            spd[i] = rng.uniform(*speed)
            wait[i] = rng.uniform(*pause)
        wait[~moving] -= step
        t += step
    return out


def read_trace(path: str | Path) -> tuple[int, list[Contact]]:
    """Read a contact trace: ``TIME CONN A B up|down`` per line (ONE format; ``#``
    comments); node names may be any tokens. Returns (node count, contacts)."""
    names: dict[str, int] = {}
    out: list[Contact] = []
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{p}: {exc.strerror or exc}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 5 or parts[1].upper() != "CONN" or parts[4].lower() not in ("up", "down"):
            raise InvalidInput(f"{p}:{lineno}: expected 'TIME CONN A B up|down'")
        try:
            t = float(parts[0])
        except ValueError:
            raise InvalidInput(f"{p}:{lineno}: bad time {parts[0]!r}") from None
        if t < 0 or t != t:
            raise InvalidInput(f"{p}:{lineno}: bad time {parts[0]!r}")
        a = names.setdefault(parts[2], len(names))
        b = names.setdefault(parts[3], len(names))
        if a == b:
            raise InvalidInput(f"{p}:{lineno}: a node cannot contact itself")
        out.append(Contact(t, min(a, b), max(a, b), parts[4].lower() == "up"))
    out.sort(key=lambda c: c.t)
    return len(names), out


def make_messages(
    nodes: int,
    *,
    duration: float,
    interval: float,
    lifetime: float,
    rng: random.Random,
    start: float = 0.0,
) -> list[Message]:
    out: list[Message] = []
    t = start + rng.uniform(0.5, 1.5) * interval
    i = 0
    while t < duration:
        src = rng.randrange(nodes)
        dst = rng.randrange(nodes - 1)
        dst += dst >= src
        out.append(Message(f"m{i}", t, src, dst, lifetime))
        i += 1
        t += rng.uniform(0.5, 1.5) * interval
    return out


@dataclass
class _Node:
    idx: int
    router: Router
    held: dict[str, Carried] = field(default_factory=dict)
    own: set[str] = field(default_factory=set)
    got: set[str] = field(default_factory=set)  # delivered to this node
    acked: set[str] = field(default_factory=set)  # known delivered (routers with acks)
    neighbours: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Scenario:
    nodes: int
    contacts: Sequence[Contact]
    messages: Sequence[Message]
    duration: float
    seed: int = 0
    #: creation-time window of the messages that count (``None``: all of them)
    measure: tuple[float, float] | None = None


def simulate(
    scenario: Scenario,
    router: str,
    *,
    buffer: int | None = None,
    options: dict[str, float] | None = None,
) -> MeshSimRecord:
    """Run one router over the scenario; returns its :class:`MeshSimRecord`."""
    opts = options or {}
    nodes = [_Node(i, make_router(router, str(i), **opts)) for i in range(scenario.nodes)]
    expires = {m.id: m.t + m.lifetime for m in scenario.messages}
    created = {m.id: m.t for m in scenario.messages}
    lo, hi = scenario.measure or (-math.inf, math.inf)
    counted = {m.id for m in scenario.messages if lo <= m.t < hi}
    delivered: dict[str, float] = {}
    tx = 0  # transfers of counted messages
    dropped = 0

    def store(n: _Node, item: Carried, now: float) -> None:
        nonlocal dropped
        n.held[item.id] = item
        if buffer is not None and len(n.held) > buffer:
            for k in [k for k in n.held if expires[k] <= now]:
                del n.held[k]
            while len(n.held) > buffer:
                victim = min(n.held, key=lambda k: (k in n.own, expires[k]))
                del n.held[victim]
                dropped += 1

    def exchange(a: _Node, b: _Node, now: float) -> bool:
        """a offers to b; True if b got something new."""
        nonlocal tx
        new = False
        sv = b.held.keys() | b.got  # b's summary vector
        for key in list(a.held):
            item = a.held[key]
            if expires[key] <= now:
                del a.held[key]
                continue
            if key in sv:
                continue
            d = a.router.decide(item, str(b.idx), now)
            if d is None:
                continue
            tx += key in counted
            if d.keep <= 0:
                del a.held[key]
            else:
                item.copies = d.keep
            if str(b.idx) == item.destination:
                b.got.add(key)
                if b.router.acks:
                    b.acked.add(key)
                delivered.setdefault(key, now)
            else:
                store(b, Carried(key, item.destination, d.give, item.hops + 1, now), now)
                new = new or key in b.held
        return new

    def settle(work: list[tuple[int, int]], now: float) -> None:
        # each link runs at most twice per instant: with finite buffers two nodes could
        # otherwise evict and re-offer bundles to each other forever
        runs: dict[tuple[int, int], int] = {}
        while work:
            i, j = work.pop()
            a, b = nodes[i], nodes[j]
            link = (min(i, j), max(i, j))
            if j not in a.neighbours or runs.get(link, 0) >= 2:
                continue
            runs[link] = runs.get(link, 0) + 1
            if exchange(a, b, now):
                work.extend((j, k) for k in b.neighbours if k != i)
            if exchange(b, a, now):
                work.extend((i, k) for k in a.neighbours if k != j)

    events: list[tuple[float, int, object]] = [(c.t, 0, c) for c in scenario.contacts]
    events += [(m.t, 1, m) for m in scenario.messages]
    events.sort(key=lambda e: (e[0], e[1]))
    for t, _, ev in events:
        if t > scenario.duration:
            break
        if isinstance(ev, Contact):
            a, b = nodes[ev.a], nodes[ev.b]
            if ev.up:
                if ev.b in a.neighbours:
                    continue
                a.neighbours.add(ev.b)
                b.neighbours.add(ev.a)
                a.router.contact_up(str(ev.b), t)
                b.router.contact_up(str(ev.a), t)
                adv_a, adv_b = a.router.advertise(t), b.router.advertise(t)
                a.router.learn(str(ev.b), adv_b, t)
                b.router.learn(str(ev.a), adv_a, t)
                if a.router.acks and b.router.acks:
                    a.acked |= b.acked
                    b.acked |= a.acked
                    for n in (a, b):
                        for k in n.acked & n.held.keys():
                            del n.held[k]
                work = [(ev.a, ev.b)]
                work += [(ev.a, k) for k in a.neighbours if k != ev.b]
                work += [(ev.b, k) for k in b.neighbours if k != ev.a]
                settle(work, t)
            else:
                a.neighbours.discard(ev.b)
                b.neighbours.discard(ev.a)
                a.router.contact_down(str(ev.b), t)
                b.router.contact_down(str(ev.a), t)
        else:
            assert isinstance(ev, Message)
            n = nodes[ev.src]
            n.own.add(ev.id)
            store(n, Carried(ev.id, str(ev.dst), n.router.initial_copies(), 0, t), t)
            settle([(ev.src, k) for k in n.neighbours], t)
    lat = [delivered[k] - created[k] for k in delivered if k in counted]
    nmsg = len(counted)
    nd = len(lat)
    nall = len(scenario.messages)
    return MeshSimRecord(
        router=router,
        nodes=scenario.nodes,
        messages=nmsg,
        delivered=nd,
        delivery_ratio=round(nd / nmsg, 4) if nmsg else 0.0,
        generated=nall,
        delivery_ratio_all=round(len(delivered) / nall, 4) if nall else 0.0,
        warmup_s=max(lo, 0.0) if scenario.measure else 0.0,
        cooldown_s=max(scenario.duration - hi, 0.0) if scenario.measure else 0.0,
        latency_median_s=round(statistics.median(lat), 1) if lat else None,
        latency_mean_s=round(statistics.fmean(lat), 1) if lat else None,
        overhead=round((tx - nd) / nd, 3) if nd else None,
        transmissions=tx,
        dropped=dropped,
        buffer=buffer,
        seed=scenario.seed,
    )


def run(
    routers: Iterable[str],
    *,
    nodes: int = 40,
    duration: float = 7200.0,
    seed: int = 1,
    trace: str | Path | None = None,
    width: float = 1000.0,
    height: float = 1000.0,
    range_m: float = 50.0,
    speed: tuple[float, float] = (1.0, 5.0),
    interval: float = 30.0,
    lifetime: float = 3600.0,
    buffer: int | None = None,
    warmup: float = 0.0,
    cooldown: float | None = None,
    options: dict[str, dict[str, float]] | None = None,
) -> list[MeshSimRecord]:
    """The engine behind ``fogctl mesh sim``: one scenario, each router over it.

    Contacts and message creation span ``duration`` seconds; the messages counted are
    those created in ``[warmup, duration - cooldown)`` (``cooldown`` defaults to one
    ``lifetime``: each counted message lives its whole lifetime inside the run; 0
    counts every message, those cut off in flight at the end as undelivered)."""
    if nodes < 2 and trace is None:
        raise InvalidInput("--nodes must be at least 2")
    if duration <= 0 or interval <= 0 or lifetime <= 0 or range_m <= 0:
        raise InvalidInput("--duration, --interval, --lifetime and --range must be positive")
    cool = lifetime if cooldown is None else cooldown
    if warmup < 0 or cool < 0:
        raise InvalidInput("--warmup and --cooldown must be >= 0")
    if warmup + cool >= duration:
        raise InvalidInput(
            f"--warmup {warmup:g} + --cooldown {cool:g} leave no messages to count in "
            f"--duration {duration:g}; lengthen --duration or set --cooldown "
            "(it defaults to --lifetime)"
        )
    rng = random.Random(seed)
    if trace is not None:
        nodes, contacts = read_trace(trace)
        if nodes < 2:
            raise InvalidInput(f"{trace}: the trace names fewer than two nodes")
    else:
        contacts = random_waypoint(
            nodes,
            duration=duration,
            rng=rng,
            width=width,
            height=height,
            speed=speed,
            range_m=range_m,
        )
    msgs = make_messages(
        nodes, duration=duration, interval=interval, lifetime=lifetime, rng=random.Random(seed + 1)
    )
    sc = Scenario(nodes, contacts, msgs, duration, seed, measure=(warmup, duration - cool))
    opts = options or {}
    return [simulate(sc, r, buffer=buffer, options=opts.get(r)) for r in routers]


def plot_results(records: Sequence[MeshSimRecord], path: str | Path) -> Path:
    """A bar chart of delivery ratio and overhead per router (PNG/SVG by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.router + (f" (buf {r.buffer})" if r.buffer else "") for r in records]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.6))
    ax1.bar(names, [r.delivery_ratio for r in records], color="tab:blue")
    ax1.set_ylim(0, 1)
    ax1.set_title("delivery ratio")
    ax2.bar(names, [r.overhead or 0 for r in records], color="tab:orange")
    ax2.set_title("overhead (copies / delivered)")
    ax3.bar(names, [(r.latency_median_s or 0) / 60 for r in records], color="tab:green")
    ax3.set_title("median latency (min)")
    for ax in (ax1, ax2, ax3):
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(
        f"{records[0].nodes} nodes, {records[0].messages} messages, seed {records[0].seed}"
    )
    fig.tight_layout()
    out = Path(path)
    try:
        fig.savefig(out)
    except OSError as exc:
        raise InvalidInput(f"{out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return out
