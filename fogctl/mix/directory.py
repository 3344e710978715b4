"""Signed mix descriptors, the stratified topology and path selection (sans-IO).

Topology (Loopix): ``provider -> layer 1 -> ... -> layer n -> provider``. Every
descriptor names its ``layer`` (0 = provider). Clients accept a descriptor only if
its Ed25519 signature verifies, its ``id`` is the node id bound to its signing key,
and it has not expired; anything else is refused with a reason, never used.

Path selection draws one node per layer uniformly from the ``rng`` it is given, and
keeps operators and regions distinct along the path (providers included) whenever
the directory allows; when it cannot, it relaxes region first, then operator, and
says so in :attr:`Path.diversity`.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath

from fogctl.errors import InvalidInput, Refused
from fogctl.mix.records import MixDescriptor

__all__ = [
    "Path",
    "Topology",
    "descriptor_bytes",
    "load_directory",
    "select_path",
    "sign_descriptor",
    "verify_descriptor",
]

_DOMAIN = b"fogctl-mix-descriptor-v1\n"


def descriptor_bytes(desc: MixDescriptor) -> bytes:
    """The signed bytes: a domain prefix and canonical JSON of every field but the signature."""
    fields = desc.to_dict()
    fields.pop("signature", None)
    return _DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign_descriptor(desc: MixDescriptor, sign: Callable[[bytes], bytes]) -> MixDescriptor:
    """``desc`` with its signature filled in by ``sign`` (an Ed25519 signer)."""
    unsigned = dataclasses.replace(desc, signature="")
    return dataclasses.replace(unsigned, signature=sign(descriptor_bytes(unsigned)).hex())


def verify_descriptor(desc: MixDescriptor, now: float) -> MixDescriptor:
    """Return ``desc`` if it is signed, bound to its id and unexpired; else raise Refused."""
    from fogctl.state.identity import node_id_for, verify

    if not desc.signature:
        raise Refused(f"descriptor {desc.id[:12]}: unsigned")
    try:
        key = bytes.fromhex(desc.signing_key)
        sig = bytes.fromhex(desc.signature)
        pub = bytes.fromhex(desc.public_key)
    except ValueError:
        raise Refused(f"descriptor {desc.id[:12]}: keys are not hex") from None
    if len(key) != 32 or len(pub) != 32:
        raise Refused(f"descriptor {desc.id[:12]}: bad key length")
    if node_id_for(key) != desc.id:
        raise Refused(f"descriptor {desc.id[:12]}: id is not bound to its signing key")
    if not verify(key, sig, descriptor_bytes(desc)):
        raise Refused(f"descriptor {desc.id[:12]}: bad signature")
    if desc.expires <= now:
        raise Refused(f"descriptor {desc.id[:12]}: expired")
    if desc.layer < 0:
        raise Refused(f"descriptor {desc.id[:12]}: negative layer")
    return desc


def load_directory(path: FsPath) -> list[MixDescriptor]:
    """Descriptors from a JSON Lines file (unverified; pass them through Topology)."""
    from fogctl.records import read_records

    out = []
    for rec in read_records(path):
        if isinstance(rec, MixDescriptor):
            out.append(rec)
    return out


@dataclass(frozen=True, slots=True)
class Path:
    """A chosen route: entry provider, one node per layer, exit provider."""

    nodes: tuple[MixDescriptor, ...]
    diversity: str  # "full", "region-relaxed", "operator-relaxed"


class Topology:
    """The verified, unexpired descriptors, by layer."""

    def __init__(self, descriptors: Iterable[MixDescriptor], now: float) -> None:
        self.refused: list[tuple[str, str]] = []
        self.by_id: dict[str, MixDescriptor] = {}
        for d in descriptors:
            try:
                verify_descriptor(d, now)
            except Refused as exc:
                self.refused.append((d.id, exc.message))
                continue
            old = self.by_id.get(d.id)
            if old is None or (d.epoch, d.expires) > (old.epoch, old.expires):
                self.by_id[d.id] = d
        self.layers: dict[int, list[MixDescriptor]] = {}
        for d in sorted(self.by_id.values(), key=lambda x: x.id):
            self.layers.setdefault(d.layer, []).append(d)

    @property
    def providers(self) -> list[MixDescriptor]:
        return self.layers.get(0, [])

    @property
    def depth(self) -> int:
        """Number of consecutive mix layers 1..n present."""
        n = 0
        while self.layers.get(n + 1):
            n += 1
        return n

    def node(self, node_id: bytes | str) -> MixDescriptor | None:
        key = node_id.hex() if isinstance(node_id, bytes) else node_id
        return self.by_id.get(key)


def _pick(
    candidates: Sequence[MixDescriptor],
    used_ops: set[str],
    used_regions: set[str],
    rng: random.Random,
    avoid: set[str],
) -> tuple[MixDescriptor, str]:
    pool = list(candidates)
    rng.shuffle(pool)
    fresh = [d for d in pool if d.id not in avoid] or pool
    for d in fresh:
        if d.operator not in used_ops and d.region not in used_regions:
            return d, "full"
    for d in fresh:
        if d.operator not in used_ops:
            return d, "region-relaxed"
    if fresh:
        return fresh[0], "operator-relaxed"
    raise InvalidInput("no candidate node")  # unreachable: pool is non-empty


_ORDER = {"full": 0, "region-relaxed": 1, "operator-relaxed": 2}


def select_path(
    topology: Topology,
    hops: int,
    rng: random.Random,
    *,
    entry: str | None = None,
    exit: str | None = None,
    avoid: Iterable[str] = (),
) -> Path:
    """entry provider, one node from each of layers 1..hops, exit provider.

    ``entry``/``exit`` pin providers by id; ``avoid`` names nodes to steer clear of
    (a resend after a loss takes a different path).
    """
    if hops < 1:
        raise InvalidInput("--hops must be at least 1")
    if topology.depth < hops:
        raise InvalidInput(
            f"the directory has {topology.depth} complete mix layers; {hops} hops asked"
        )
    if not topology.providers:
        raise InvalidInput("the directory has no provider (layer 0)")
    avoid_set = set(avoid)

    def provider(pinned: str | None) -> MixDescriptor:
        if pinned is None:
            return rng.choice(topology.providers)
        d = topology.by_id.get(pinned)
        if d is None or d.layer != 0:
            raise InvalidInput(f"provider {pinned[:12]} is not in the directory")
        return d

    first, last = provider(entry), provider(exit)
    used_ops = {first.operator, last.operator}
    used_regions = {first.region, last.region}
    worst = "full"
    middle = []
    for layer in range(1, hops + 1):
        d, level = _pick(topology.layers[layer], used_ops, used_regions, rng, avoid_set)
        used_ops.add(d.operator)
        used_regions.add(d.region)
        middle.append(d)
        if _ORDER[level] > _ORDER[worst]:
            worst = level
    return Path((first, *middle, last), worst)
