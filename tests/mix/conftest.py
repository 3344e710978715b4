"""Shared helpers: an in-memory stratified network of signed descriptors and node cores."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from fogctl.mix.directory import Topology, sign_descriptor
from fogctl.mix.keys import Signer
from fogctl.mix.node import MixNode, Params
from fogctl.mix.primitives import x25519_base
from fogctl.mix.records import MixDescriptor


@dataclass
class Net:
    descriptors: list[MixDescriptor]
    secrets: dict[str, bytes]
    topology: Topology


def make_descriptors(
    layers: int, per_layer: int, providers: int = 2, *, now: float = 1000.0, base_port: int = 0
) -> Net:
    descs: list[MixDescriptor] = []
    secrets: dict[str, bytes] = {}
    port = base_port
    for layer in range(layers + 1):
        for i in range(providers if layer == 0 else per_layer):
            signer = Signer(os.urandom(32))
            sk = os.urandom(32)
            port += 1
            d = MixDescriptor(
                id=signer.node_id,
                layer=layer,
                public_key=x25519_base(sk).hex(),
                address=f"127.0.0.1:{port}",
                epoch=0,
                expires=now + 3600,
                operator=f"op-{layer}-{i}",
                region=f"r-{layer}-{i % 3}",
                signing_key=signer.public.hex(),
            )
            descs.append(sign_descriptor(d, signer.sign))
            secrets[d.id] = sk
    return Net(descs, secrets, Topology(descs, now))


def key_source(sk: bytes):  # type: ignore[no-untyped-def]
    seen: set[bytes] = set()

    def check(tag: bytes) -> bool:
        if tag in seen:
            return True
        seen.add(tag)
        return False

    return lambda now: [(sk, check)]


def make_nodes(net: Net, params: Params, seed: int = 1) -> dict[bytes, MixNode]:
    return {
        bytes.fromhex(d.id): MixNode(
            bytes.fromhex(d.id),
            key_source(net.secrets[d.id]),
            layer=d.layer,
            params=params,
            topology=net.topology,
            rng=random.Random(seed + i),
        )
        for i, d in enumerate(net.descriptors)
    }


@pytest.fixture
def tmp_state(tmp_path: Path) -> Path:
    return tmp_path
