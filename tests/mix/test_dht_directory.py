"""Mix descriptors published into and fetched from a real DHT on loopback.

A DHT node serves from the mix operator's state dir (`fogctl dht serve`, in a
thread); `fogctl mix directory publish` puts the signed descriptors there, and a
client that runs no DHT node fetches them by joining briefly. Forged, unsigned,
expired and re-bound descriptors planted in the same DHT keys are refused exactly
as from a directory node.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fogctl.dht import api
from fogctl.mix import dhtdir
from fogctl.mix.directory import sign_descriptor
from fogctl.mix.keys import Signer
from fogctl.records import to_json_line
from fogctl.state import State
from tests.dht.test_api import ServingNode
from tests.mix.conftest import make_descriptors


@pytest.fixture(scope="module")
def dht(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServingNode]]:
    base = tmp_path_factory.mktemp("mixdht")
    a = ServingNode(base / "op")  # the mix operator's own DHT node
    b = ServingNode(base / "peer", [a.address])
    yield [a, b]
    b.close()
    a.close()


def _jsonl(path: Path, descs: list[Any]) -> Path:
    path.write_text("".join(to_json_line(d) + "\n" for d in descs))
    return path


def test_publish_into_the_dht_and_fetch_verified_descriptors(
    dht: list[ServingNode], cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, peer = dht
    now = time.time()
    net = make_descriptors(3, 1, now=now)
    good = net.descriptors
    monkeypatch.setenv("FOGCTL_HOME", str(op.root))
    res = cli("mix", "directory", "publish", str(_jsonl(tmp_path / "d.jsonl", good)), "--json")
    assert res.code == 0, res.stderr
    assert len(res.records()) == len(good)
    assert f"published {len(good)} descriptor(s) in the DHT" in res.stderr

    # an attacker's node plants bad descriptors under the same well-known keys
    evil, _ = State.create(tmp_path / "evil")
    victim = good[1]
    other = Signer(os.urandom(32))
    unsigned = dataclasses.replace(victim, signature="", address="203.0.113.1:1")
    forged = dataclasses.replace(victim, address="203.0.113.2:1")  # signature no longer fits
    rebound = sign_descriptor(
        dataclasses.replace(victim, signing_key=other.public.hex(), address="203.0.113.3:1"),
        other.sign,
    )
    s_old = Signer(os.urandom(32))
    expired = sign_descriptor(
        dataclasses.replace(
            victim, id=s_old.node_id, signing_key=s_old.public.hex(), expires=now - 10
        ),
        s_old.sign,
    )
    planted = {}
    for d in (unsigned, forged, rebound, expired):
        key = dhtdir.shard_key(dhtdir.shard_of(d))
        planted[key] = planted.get(key, "") + to_json_line(d) + "\n"
    planted[dhtdir.shard_key(0)] = planted.get(dhtdir.shard_key(0), "") + "{not json\n"
    api.put_many(evil, dict(planted), bootstrap=[peer.address])

    # a client with no DHT node of its own joins briefly and keeps only what verifies
    monkeypatch.setenv("FOGCTL_HOME", str(tmp_path / "client"))
    State.create(tmp_path / "client")
    res = cli("mix", "directory", "fetch", "--dht-bootstrap", peer.address, "--json")
    assert res.code == 0, res.stderr
    got = {r["id"]: r for r in res.records()}
    assert set(got) == {d.id for d in good}
    assert got[victim.id]["address"] == victim.address  # no planted variant won
    assert "unsigned" in res.stderr and "expired" in res.stderr
    assert "not bound" in res.stderr and "bad signature" in res.stderr
    assert "refused" in res.stderr
    ls = cli("mix", "directory", "ls", "--json")
    assert {r["id"] for r in ls.records()} == set(got)
    hops = cli("mix", "route", "--hops", "3", "--json").records()
    assert [h["layer"] for h in hops] == [0, 1, 2, 3, 0]


def test_a_later_publish_merges_and_bad_ones_are_not_published(
    dht: list[ServingNode], cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, peer = dht
    now = time.time()
    first = make_descriptors(1, 1, providers=1, now=now).descriptors
    second = make_descriptors(1, 1, providers=1, now=now).descriptors
    monkeypatch.setenv("FOGCTL_HOME", str(op.root))
    for batch, name in ((first, "1"), (second, "2")):
        res = cli("mix", "directory", "publish", str(_jsonl(tmp_path / name, batch)))
        assert res.code == 0, res.stderr
    # publishing an expired descriptor is refused before anything is sent
    [stale] = make_descriptors(0, 0, providers=1, now=now - 7200).descriptors  # signed, old
    res = cli("mix", "directory", "publish", str(_jsonl(tmp_path / "stale", [stale])))
    assert res.code == 4 and "expired" in res.stderr and "Traceback" not in res.stderr
    # both batches are there (the second did not erase the first), and nothing else
    # from this operator: read straight from the DHT through the other node
    found = {d.id for d in dhtdir.fetch(State(peer.root))}
    assert {d.id for d in first + second} <= found
    mine = api.get_many(State(peer.root), [dhtdir.shard_key(s) for s in range(16)], signer=op.id)
    published = [d for vs in mine.values() for v in vs for d in dhtdir.parse(v.value)]
    assert len(published) == len({d.id for d in published})  # one entry per descriptor
    # --no-dht and no --to: a clear usage error
    res = cli("mix", "directory", "publish", "--no-dht", str(tmp_path / "1"))
    assert res.code == 2 and "nowhere to publish" in res.stderr


def test_a_serving_mix_publishes_its_descriptor_in_the_local_dht(
    dht: list[ServingNode], tmp_path: Path
) -> None:
    import signal

    from tests.mix.test_serve import _start

    op, peer = dht
    proc, port = _start(op.root, "--layer", "2", "--port", "0", "--replay-capacity", "10000")
    try:
        deadline = time.monotonic() + 20
        mine: list[Any] = []
        while not mine and time.monotonic() < deadline:
            found = dhtdir.fetch(State(peer.root))
            mine = [d for d in found if d.address == f"127.0.0.1:{port}"]
            if not mine:
                time.sleep(0.1)
        assert mine and mine[0].layer == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "published in the DHT" in err, err
