"""A whole stratified mixnet in one event loop on loopback (tests, bench, demos).

Every node is a real :class:`NodeService` on its own UDP/TCP port with its own epoch
keys, replay filters and Ed25519 signing key under ``root``; descriptors are signed,
published to the first provider over TCP and fetched back by every node, exactly as
``fogctl mix directory publish/fetch`` do between machines.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fogctl.mix.directory import sign_descriptor
from fogctl.mix.keys import KeyRing, epoch_of, load_signer
from fogctl.mix.net import DirectoryStore, NodeService, fetch_directory, publish_descriptor
from fogctl.mix.node import MixNode, Params
from fogctl.mix.records import MixDescriptor

__all__ = ["LocalNet", "start_local_network"]


def ring_keys(ring: KeyRing) -> Callable[[float], list[tuple[bytes, Callable[[bytes], bool]]]]:
    """A MixNode key source over a KeyRing: live keys with their replay guards."""
    return lambda t: [(k.private, k.guard.seen) for k in ring.live(t)]


def ring_private_keys(ring: KeyRing) -> Callable[[float], list[bytes]]:
    return lambda t: [k.private for k in ring.live(t)]


@dataclass
class LocalNet:
    services: list[NodeService]
    descriptors: list[MixDescriptor]
    rings: list[KeyRing]

    @property
    def providers(self) -> list[MixDescriptor]:
        return [d for d in self.descriptors if d.layer == 0]

    def service(self, node_id: str) -> NodeService:
        return next(s for s in self.services if s.core.node_id.hex() == node_id)

    async def stop(self) -> None:
        for s in self.services:
            await s.stop()
        for r in self.rings:
            r.close()


def build_descriptor(
    ring: KeyRing,
    signer_seed_dir: Path,
    name: str,
    *,
    layer: int,
    address: str,
    operator: str,
    region: str,
    now: float,
) -> tuple[MixDescriptor, str]:
    signer = load_signer(signer_seed_dir, name)
    epoch = epoch_of(now, ring.epoch_s)
    desc = MixDescriptor(
        id=signer.node_id,
        layer=layer,
        public_key=ring.public_key(epoch).hex(),
        address=address,
        epoch=epoch,
        expires=float((epoch + 1) * ring.epoch_s + ring.overlap_s),
        operator=operator,
        region=region,
        signing_key=signer.public.hex(),
    )
    return sign_descriptor(desc, signer.sign), signer.node_id


async def start_local_network(
    root: Path,
    *,
    layers: int = 5,
    per_layer: int = 1,
    providers: int = 2,
    params: Params | None = None,
    replay_capacity: int = 100_000,
    seed: int | None = None,
    transport: str = "udp",
) -> LocalNet:
    params = params or Params(hops=layers)
    # no loop cover until every node knows every other (else a loop sent mid-sync
    # meets a node that cannot route it yet)
    quiet = dataclasses.replace(params, lambda_m=0.0)
    now = time.time()
    services: list[NodeService] = []
    descs: list[MixDescriptor] = []
    rings: list[KeyRing] = []
    rng = random.Random(seed)
    plan = [(0, i) for i in range(providers)]
    plan += [(layer, i) for layer in range(1, layers + 1) for i in range(per_layer)]
    for layer, i in plan:
        name = f"l{layer}n{i}"
        ring = KeyRing(root / name / "keys", root / name / "replay", name, capacity=replay_capacity)
        rings.append(ring)
        core = MixNode(
            b"\0" * 20,
            ring_keys(ring),
            layer=layer,
            params=quiet,
            rng=random.Random(rng.random()),
        )
        svc = NodeService(
            core,
            DirectoryStore(),
            live_keys=ring_private_keys(ring),
            transport=transport,
        )
        await svc.start()
        desc, node_id = build_descriptor(
            ring,
            root / name / "keys",
            name,
            layer=layer,
            address=f"127.0.0.1:{svc.port}",
            operator=f"operator-{layer}-{i}",
            region=f"region-{(layer + i) % 4}",
            now=now,
        )
        core.node_id = bytes.fromhex(node_id)
        svc.directory.add(desc, now)
        services.append(svc)
        descs.append(desc)
    first = services[0]
    for d in descs[1:]:
        await publish_descriptor("127.0.0.1", first.port, d)
    first.refresh_routes()
    everything = await fetch_directory("127.0.0.1", first.port)
    for svc in services:  # no await in this loop: all nodes switch together
        svc.directory.add_many(everything, now)
        svc.refresh_routes()
        svc.core.params = params
    return LocalNet(services, descs, rings)
