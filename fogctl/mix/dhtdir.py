"""Mix descriptors in the DHT (through :mod:`fogctl.dht.api`).

Layout: 16 well-known keys ``fogctl:mix/descriptors/0`` .. ``/f``; a descriptor lives
under the key of the first hex digit of its id. The DHT keeps one slot per signer
under a key, so each publishing node's slot holds a bundle: JSON Lines of the
descriptors it publishes in that shard (at most 4,096 bytes, about eight
descriptors). Publishing merges into this node's previous bundle (newest epoch per
id; expired ones leave), so a mix that publishes its own descriptor never erases
another one published earlier from the same state dir.

The DHT signature only says which node put a bundle. What a client trusts is each
descriptor's own Ed25519 signature: descriptors fetched from the DHT go through
exactly the check of directory ones (:func:`fogctl.mix.directory.verify_descriptor`:
signed, bound to its id, unexpired); the rest are refused and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from fogctl.errors import InvalidInput, Refused
from fogctl.mix.directory import verify_descriptor
from fogctl.mix.records import MixDescriptor

if TYPE_CHECKING:
    from fogctl.dht.api import Stored
    from fogctl.state import State

__all__ = ["SHARDS", "bundle", "fetch", "publish", "shard_key", "shard_of"]

SHARDS = 16
PREFIX = "fogctl:mix/descriptors/"


def shard_key(shard: int) -> str:
    return f"{PREFIX}{shard:x}"


def shard_of(desc: MixDescriptor) -> int:
    return int(desc.id[:1] or "0", 16) % SHARDS


def bundle(descs: Iterable[MixDescriptor]) -> str:
    """The JSON Lines value of one shard (sorted by layer, id); InvalidInput if too big."""
    from fogctl.dht.api import MAX_VALUE
    from fogctl.records import to_json_line

    items = sorted(descs, key=lambda d: (d.layer, d.id))
    text = "".join(to_json_line(d) + "\n" for d in items)
    if len(text.encode("utf-8")) > MAX_VALUE:
        raise InvalidInput(
            f"{len(items)} descriptors in DHT shard {shard_key(shard_of(items[0]))} take "
            f"{len(text.encode())} bytes; a DHT value holds {MAX_VALUE}: publish fewer at once"
        )
    return text


def _merge(
    old: Iterable[MixDescriptor], new: Iterable[MixDescriptor], now: float
) -> list[MixDescriptor]:
    out: dict[str, MixDescriptor] = {}
    for d in [*old, *new]:
        try:
            verify_descriptor(d, now)
        except Refused:
            continue
        cur = out.get(d.id)
        if cur is None or (d.epoch, d.expires) >= (cur.epoch, cur.expires):
            out[d.id] = d
    return list(out.values())


def publish(
    state: State,
    descriptors: Sequence[MixDescriptor],
    now: float,
    *,
    bootstrap: Sequence[str] | None = None,
) -> list[Stored]:
    """Put ``descriptors`` (each verified first) into the DHT, merged with this node's
    earlier bundles; one put per shard touched."""
    from fogctl.dht import api

    for d in descriptors:
        verify_descriptor(d, now)  # never publish what clients would refuse
    shards: dict[int, list[MixDescriptor]] = {}
    for d in descriptors:
        shards.setdefault(shard_of(d), []).append(d)
    me = state.identity().node_id
    keys = {shard_key(s): s for s in shards}
    previous = api.get_many(state, keys, signer=me, bootstrap=bootstrap)
    values = {}
    for key, shard in keys.items():
        old = [d for v in previous.get(key, []) for d in parse(v.value)]
        values[key] = bundle(_merge(old, shards[shard], now))
    return api.put_many(state, dict(values), bootstrap=bootstrap)


def parse(data: bytes) -> list[MixDescriptor]:
    """Descriptors in a bundle (lines that are not descriptors are skipped)."""
    from fogctl.mix.net import parse_descriptors

    return parse_descriptors(data)


def fetch(state: State, *, bootstrap: Sequence[str] | None = None) -> list[MixDescriptor]:
    """Every descriptor found under the 16 keys, unverified (callers verify each)."""
    from fogctl.dht import api

    found = api.get_many(state, [shard_key(s) for s in range(SHARDS)], bootstrap=bootstrap)
    return [d for values in found.values() for v in values for d in parse(v.value)]
