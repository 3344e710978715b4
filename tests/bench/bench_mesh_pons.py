"""The issue's scenario in pons-dtn (an independent simulator), for bench_mesh.py.

Run with the Python of a virtual environment holding ``pons-dtn`` (it is not a fogctl
dependency): ``python3 -m venv /tmp/pons && /tmp/pons/bin/pip install pons-dtn==0.2.1``,
then ``PONS_PYTHON=/tmp/pons/bin/python python tests/bench/bench_mesh.py``.
Prints one JSON object per router.

Contacts come from pons's own random-waypoint model (an independent realisation with
the same parameters); the messages are the very ones ``fogctl mesh sim`` makes for the
seed (same times, sources and destinations: the generator below repeats
``fogctl.mesh.sim.make_messages``), injected identically for every router. pons's
built-in generator is not used: it draws from the global RNG that its network model
also consumes, so each router would see different messages, and it makes messages
with source == destination, which are never delivered there.

Counting is per message, as the ONE simulator's MessageStatsReport and ``fogctl mesh
sim`` do: only messages created in ``[0, DURATION - TTL)`` count; delivery = delivered
/ created; overhead = (relayed - delivered) / delivered where *relayed* is every
reception of a counted message (pons's own ``relayed`` counter, duplicates included).
Only receptions within the message's lifetime count: pons 0.2.1's direct-delivery,
spray-and-wait and PRoPHET routers never drop an expired message from an unbounded
store (``store_cleanup`` runs only when the store is full), so without this check they
"deliver" messages hours after they expired. pons's whole-run totals are printed too.
"""

import json
import random
import sys

import pons
import pons.routing

NODES, SIZE, RANGE, DURATION, TTL = 40, 1000, 50, 7200, 3600
COPIES = 8  # binary spray-and-wait L (argument copies=N)


class Counter:
    def __init__(self) -> None:
        self.created: dict[str, tuple[float, int, int]] = {}
        self.delivered: set[str] = set()
        self.relayed: dict[str, int] = {}

    def counted(self, uid: str) -> bool:
        c = self.created.get(uid)
        return c is not None and c[0] < DURATION - TTL and c[1] != c[2]


COUNT = Counter()
_orig_rx = pons.routing.Router._on_msg_received


def _rx(self, msg, remote_id):  # type: ignore[no-untyped-def]
    uid = msg.unique_id()
    if not msg.is_expired(self.env.now):
        COUNT.relayed[uid] = COUNT.relayed.get(uid, 0) + 1
        if msg.dst == self.my_id and not self.is_msg_known(msg):
            COUNT.delivered.add(uid)
    return _orig_rx(self, msg, remote_id)


pons.routing.Router._on_msg_received = _rx


def counting(cls):  # type: ignore[no-untyped-def]
    class Counting(cls):  # type: ignore[misc,valid-type]
        def add(self, msg):  # type: ignore[no-untyped-def]
            COUNT.created[msg.unique_id()] = (msg.created, msg.src, msg.dst)
            if msg.metadata is None:  # pons 0.2.1's spray-and-wait indexes it
                msg.metadata = {}
            return super().add(msg)

        def on_msg_received(self, msg, remote_id, was_known):  # type: ignore[no-untyped-def]
            if msg.metadata is None:
                msg.metadata = {}
            return super().on_msg_received(msg, remote_id, was_known)

    return Counting


def messages(seed: int, interval: float = 30.0) -> list[tuple[float, int, int]]:
    """fogctl.mesh.sim.make_messages for the same seed: (time, source, destination)."""
    rng = random.Random(seed + 1)
    out = []
    t = rng.uniform(0.5, 1.5) * interval
    while t < DURATION:
        src = rng.randrange(NODES)
        dst = rng.randrange(NODES - 1)
        dst += dst >= src
        out.append((t, src, dst))
        t += rng.uniform(0.5, 1.5) * interval
    return out


def inject(sim, msgs):  # type: ignore[no-untyped-def]
    for i, (t, src, dst) in enumerate(msgs):
        yield sim.env.timeout(t - sim.env.now)
        sim.routing_stats["created"] += 1
        sim.nodes[src].router.add(pons.Message(f"M{i}", src, dst, 100, sim.env.now, ttl=TTL))


def run(name: str, seed: int) -> dict[str, object]:
    random.seed(seed)
    moves = pons.generate_randomwaypoint_movement(
        DURATION, NODES, SIZE, SIZE, min_speed=1.0, max_speed=5.0, min_pause=0, max_pause=0
    )
    routers = {
        "epidemic": lambda: counting(pons.routing.EpidemicRouter)(),
        "prophet": lambda: counting(pons.routing.PRoPHETRouter)(),
        "spray": lambda: counting(pons.routing.SprayAndWaitRouter)(copies=COPIES, binary=True),
        "direct": lambda: counting(pons.routing.DirectDeliveryRouter)(),
    }
    net = pons.NetworkSettings("radio", range=RANGE)
    nodes = pons.generate_nodes(NODES, net=[net], router=routers[name]())
    sim = pons.NetSim(
        DURATION,
        nodes,
        world_size=(SIZE, SIZE),
        movements=moves,
        config={"movement_logger": False, "peers_logger": False},
    )
    sim.setup()
    sim.env.process(inject(sim, messages(seed)))
    sim.run()
    s = sim.routing_stats
    ids = [u for u in COUNT.created if COUNT.counted(u)]
    nd = sum(u in COUNT.delivered for u in ids)
    relayed = sum(COUNT.relayed.get(u, 0) for u in ids)
    return {
        "router": name,
        "messages": len(ids),
        "delivery": round(nd / len(ids), 4) if ids else 0.0,
        "overhead": round((relayed - nd) / nd, 3) if nd else None,
        "pons_created": s["created"],
        "pons_delivery_prob": round(s["delivery_prob"], 4),
        "pons_overhead_ratio": round(s["overhead_ratio"], 3),
        "pons_dups": s["dups"],
        "copies": COPIES if name == "spray" else None,
    }


if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    args = sys.argv[2:]
    for a in args:
        if a.startswith("copies="):
            COPIES = int(a.split("=", 1)[1])
    names = [a for a in args if "=" not in a] or ["epidemic", "prophet", "spray", "direct"]
    for r in names:
        COUNT.__init__()  # type: ignore[misc]
        print(json.dumps(run(r, seed)), flush=True)
