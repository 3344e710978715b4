"""The issue's scenario in pons-dtn (an independent simulator), for bench_mesh.py.

Run with the Python of a virtual environment holding ``pons-dtn`` (it is not a fogctl
dependency): ``PONS_PYTHON=/path/to/venv/bin/python python tests/bench/bench_mesh.py``.
Prints one JSON object per router: delivery probability and overhead ratio.
"""

import json
import random
import sys

import pons
import pons.routing

NODES, SIZE, RANGE, DURATION = 40, 1000, 50, 7200


class BinarySpray(pons.routing.SprayAndWaitRouter):  # type: ignore[misc]
    """pons-dtn 0.2.1's spray-and-wait indexes msg.metadata, which is None for
    generated messages; give it a dict."""

    def add(self, msg):  # type: ignore[no-untyped-def]
        if msg.metadata is None:
            msg.metadata = {}
        super().add(msg)

    def on_msg_received(self, msg, remote_id, was_known):  # type: ignore[no-untyped-def]
        if msg.metadata is None:
            msg.metadata = {}
        super().on_msg_received(msg, remote_id, was_known)


def run(name: str, seed: int) -> dict[str, object]:
    random.seed(seed)
    moves = pons.generate_randomwaypoint_movement(
        DURATION, NODES, SIZE, SIZE, min_speed=1.0, max_speed=5.0, min_pause=0, max_pause=0
    )
    routers = {
        "epidemic": lambda: pons.routing.EpidemicRouter(),
        "prophet": lambda: pons.routing.PRoPHETRouter(),
        "spray": lambda: BinarySpray(copies=8, binary=True),
        "direct": lambda: pons.routing.DirectDeliveryRouter(),
    }
    net = pons.NetworkSettings("radio", range=RANGE)
    nodes = pons.generate_nodes(NODES, net=[net], router=routers[name]())
    gen = {
        "type": "single",
        "interval": (15, 45),
        "src": (0, NODES),
        "dst": (0, NODES),
        "size": 100,
        "id": "M",
        "ttl": 3600,
    }
    sim = pons.NetSim(
        DURATION,
        nodes,
        world_size=(SIZE, SIZE),
        movements=moves,
        config={"movement_logger": False, "peers_logger": False},
        msggens=[gen],
    )
    sim.setup()
    sim.run()
    s = sim.routing_stats
    return {
        "router": name,
        "delivery": round(s["delivery_prob"], 4),
        "overhead": round(s["overhead_ratio"], 3),
        "created": s["created"],
    }


if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for r in sys.argv[2:] or ["epidemic", "prophet", "spray", "direct"]:
        print(json.dumps(run(r, seed)), flush=True)
