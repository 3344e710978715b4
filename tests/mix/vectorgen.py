"""Golden Sphinx vectors: made once by ``python -m tests.mix.vectorgen`` and kept as files.

The inputs are fixed (keys, ids, delays, bodies) and the randomness comes from a
SHA-256 counter DRBG, so the same code always makes the same bytes; the test
rebuilds every packet and checks each hop's output against the stored file. A change
to the wire format shows up as a vector mismatch, and then the format version must
change with it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fogctl.mix import sphinx
from fogctl.mix.primitives import x25519_base

VECTORS = Path(__file__).parent / "vectors" / "sphinx-v1.json"


class Drbg:
    """SHA-256 in counter mode: deterministic bytes for vectors (never for real use)."""

    def __init__(self, seed: bytes) -> None:
        self.seed, self.counter = seed, 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
            self.counter += 1
        return out[:n]


def _h(label: str, n: int = 32) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:n]


def _hops(n: int) -> tuple[list[bytes], list[sphinx.Hop]]:
    sks = [_h(f"hop-sk-{i}") for i in range(n)]
    hops = [
        sphinx.Hop(_h(f"hop-id-{i}", 20), x25519_base(sk), 1000 * (i + 1))
        for i, sk in enumerate(sks)
    ]
    return sks, hops


def _walk(packet: bytes, sks: list[bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for sk in sks:
        res = sphinx.process(packet, sk)
        if isinstance(res, sphinx.Relay):
            out.append(
                {
                    "next_hop": res.next_hop.hex(),
                    "delay_us": res.delay_us,
                    "replay_tag": res.replay_tag.hex(),
                    "packet_sha256": hashlib.sha256(res.packet).hexdigest(),
                }
            )
            packet = res.packet
        else:
            out.append(
                {
                    "address": res.address.hex(),
                    "identifier": res.identifier.hex(),
                    "delay_us": res.delay_us,
                    "replay_tag": res.replay_tag.hex(),
                    "payload": res.payload.hex(),
                }
            )
    return out


def make() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for n in (1, 3, 5, sphinx.MAX_HOPS):
        sks, hops = _hops(n)
        seed = f"forward-{n}".encode()
        body = f"golden forward body over {n} hops".encode()
        pkt = sphinx.create_forward(hops, _h("dest", 20), _h("ident", 16), body, Drbg(seed))
        cases.append(
            {
                "kind": "forward",
                "hops": n,
                "drbg_seed": seed.hex(),
                "body": body.hex(),
                "packet": pkt.hex(),
                "processing": _walk(pkt, sks),
            }
        )
    sks, hops = _hops(4)
    seed = b"surb-4"
    surb, keys = sphinx.create_surb(hops, _h("me", 20), _h("surb-id", 16), Drbg(seed))
    body = b"golden reply body"
    _, pkt = sphinx.use_surb(surb, body)
    cases.append(
        {
            "kind": "surb",
            "hops": 4,
            "drbg_seed": seed.hex(),
            "body": body.hex(),
            "surb": surb.to_bytes().hex(),
            "surb_keys": keys.to_bytes().hex(),
            "packet": pkt.hex(),
            "processing": _walk(pkt, sks),
        }
    )
    return {
        "format": "fogctl-sphinx-v1",
        "sizes": {
            "header": sphinx.HEADER_SIZE,
            "payload": sphinx.PAYLOAD_SIZE,
            "packet": sphinx.PACKET_SIZE,
            "max_hops": sphinx.MAX_HOPS,
        },
        "inputs": "hop i: sk = sha256('hop-sk-i'), id = sha256('hop-id-i')[:20], "
        "delay_us = 1000*(i+1); dest = sha256('dest')[:20]; ident = sha256('ident')[:16]",
        "cases": cases,
    }


if __name__ == "__main__":
    VECTORS.parent.mkdir(exist_ok=True)
    VECTORS.write_text(json.dumps(make(), indent=1) + "\n")
    print(f"wrote {VECTORS}")
