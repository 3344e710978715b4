"""The commands as a user runs them, against a real loopback network."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fogctl.mix.localnet import LocalNet, start_local_network
from fogctl.mix.node import Params


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LocalNet]:
    loop = asyncio.new_event_loop()
    box: dict[str, LocalNet] = {}
    ready = threading.Event()

    async def boot() -> None:
        box["net"] = await start_local_network(
            tmp_path / "net", layers=5, params=Params(hops=5, mean_delay=0.005, lambda_m=1)
        )
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(boot(), loop).result(60)
    assert ready.wait(10)
    yield box["net"]
    asyncio.run_coroutine_threadsafe(box["net"].stop(), loop).result(60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _use(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("FOGCTL_HOME", str(home))
    monkeypatch.setenv("FOGCTL_MIX_MEAN_DELAY", "0.005")
    monkeypatch.setenv("FOGCTL_MIX_LAMBDA_P", "20")
    monkeypatch.setenv("FOGCTL_MIX_ACK_TIMEOUT", "5")


def test_send_recv_reply_through_the_cli(
    cli: Any, network: LocalNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fogctl.mix import engine
    from fogctl.state import State

    p0, p1 = network.providers
    entry = f"127.0.0.1:{network.service(p0.id).port}"
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"

    _use(monkeypatch, bob_home)
    res = cli("mix", "directory", "fetch", "--from", entry, "--json")
    assert res.code == 0, res.stderr
    assert sorted(r["layer"] for r in res.records()) == [0, 0, 1, 2, 3, 4, 5]
    bob = cli("mix", "address", "--provider", p1.id, "--json").record()["address"]

    _use(monkeypatch, alice_home)
    monkeypatch.setenv("FOGCTL_MIX_VRF_DELAYS", "1")  # alice's delays are verifiable
    assert cli("mix", "directory", "fetch", "--from", entry, "--json").code == 0
    me = cli("mix", "address", "--provider", p0.id, "--json").record()
    vrf_pk = bytes.fromhex(me["vrf_public_key"])
    hops = cli("mix", "route", "--hops", "5", "--json").records()
    assert [h["layer"] for h in hops] == [0, 1, 2, 3, 4, 5, 0]
    assert len({h["operator"] for h in hops[1:-1]}) == 5

    # bob polls (library call, his own state dir) while alice's send waits for the ack
    got: dict[str, Any] = {}

    def bob_recv() -> None:
        got["msgs"] = engine.recv(State(bob_home), wait=20)

    t = threading.Thread(target=bob_recv)
    t.start()
    sent = cli(
        "mix",
        "send",
        "--to",
        bob,
        "--hops",
        "5",
        "--wait",
        "25",
        "--json",
        input="hello bob, via five mixes",
    )
    t.join(30)
    assert sent.code == 0, sent.stderr
    rec = sent.record()
    assert rec["kind"] == "mix_sent" and rec["hops"] == 5 and rec["reply_surb"] is True
    [msg] = got["msgs"]
    assert msg.data == "hello bob, via five mixes" and msg.can_reply and msg.id == rec["id"]
    from fogctl.mix import vrf

    proofs = State(alice_home).db.query("SELECT alpha, proof FROM mix_vrf")
    assert len(proofs) >= 6  # one per delayed hop of every packet alice built
    for row in proofs:
        vrf.verify(vrf_pk, bytes(row["alpha"]), bytes(row["proof"]))

    _use(monkeypatch, bob_home)
    r = cli("mix", "reply", msg.id[:10], "--json", input="hello alice")
    assert r.code == 0, r.stderr
    again = cli("mix", "reply", msg.id, input="twice?")
    assert again.code == 2 and "no reply block" in again.stderr

    _use(monkeypatch, alice_home)
    deadline = time.time() + 15
    replies: list[dict[str, Any]] = []
    while not replies and time.time() < deadline:
        replies = cli("mix", "recv", "--wait", "2", "--json").records()
    assert [x["data"] for x in replies] == ["hello alice"]
    assert replies[0]["type"] == "reply" and replies[0]["in_reply_to"] == rec["id"]


def test_bad_input_is_one_line_and_a_usage_exit(cli: Any) -> None:
    res = cli("mix", "send", "--to", "not-an-address", input="x")
    assert res.code == 2 and "mix address" in res.stderr and "Traceback" not in res.stderr
    res = cli("mix", "route")
    assert res.code == 2 and "directory fetch" in res.stderr
    res = cli("mix", "directory", "fetch", "--from", "127.0.0.1:1")
    assert res.code == 3 and "unreachable" in res.stderr
    res = cli("mix", "stats", "--node", "nohostport")
    assert res.code == 2


def test_anonymity_is_reported_honestly(cli: Any) -> None:
    one = cli("mix", "anonymity", "--senders", "1", "--json").record()
    assert one["entropy_bits"] == 0 and "set of one" in one["note"]
    many = cli("mix", "anonymity", "--senders", "50", "--rate", "5", "--json").record()
    assert many["entropy_bits"] > 3


def test_bench_prints_figures_beside_the_floor(cli: Any) -> None:
    recs = cli("mix", "bench", "--repeat", "3", "--json").records()
    assert {r["name"] for r in recs} == {"per_hop_processing", "create_5_hop_packet"}
    for r in recs:  # the floor is part of the work: far below it is impossible
        assert r["reference_value"] > 0 and r["value"] > 0.5 * r["reference_value"]
        assert r["ratio"] > 0.5 and r["best_ratio"] > 0.5


def test_client_daemons_keep_cover_running_and_carry_send_recv_reply(
    network: LocalNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fogctl.mix import daemon, engine
    from fogctl.mix.node import Params
    from fogctl.state import State

    p0, p1 = network.providers
    entry = f"127.0.0.1:{network.service(p0.id).port}"
    params = Params(hops=5, mean_delay=0.005, lambda_p=20, lambda_l=5, lambda_d=5, ack_timeout=5)
    homes = {"alice": (tmp_path / "a", p0.id), "bob": (tmp_path / "b", p1.id)}
    stops: dict[str, threading.Event] = {}
    threads = []
    results: dict[str, Any] = {}
    for name, (home, prov) in homes.items():
        st = State(home)
        engine.directory_fetch(st, entry)
        engine.client_address(st, prov)
        stops[name] = threading.Event()

        def run(home: Path = home, name: str = name) -> None:
            # its own State: SQLite connections stay in the thread that made them
            results[name] = daemon.run_client(
                State(home), params, poll=0.05, stop=stops[name], directory_every=0.5
            )

        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
    try:
        alice, bob = State(homes["alice"][0]), State(homes["bob"][0])
        deadline = time.time() + 10
        while not (daemon.running(alice) and daemon.running(bob)) and time.time() < deadline:
            time.sleep(0.05)
        assert daemon.running(alice) and daemon.running(bob)
        assert (daemon.socket_path(alice).stat().st_mode & 0o077) == 0
        bob_addr = daemon.call(bob, {"op": "ping"})["address"]
        sent = engine.send(alice, bob_addr, b"via the daemons", wait=20)
        [msg] = engine.recv(bob, wait=10)
        assert msg.data == "via the daemons" and msg.id == sent.id and msg.can_reply
        engine.reply(bob, msg.id, b"answer through the payload stream")
        [rep] = engine.recv(alice, wait=10)
        assert rep.type == "reply" and rep.in_reply_to == sent.id
        assert rep.data == "answer through the payload stream"
        big = os.urandom(1500).hex().encode()  # 3,000 bytes: three packets
        sent2 = engine.send(alice, bob_addr, big, wait=20)
        assert sent2.packets == 3
        [m2] = engine.recv(bob, wait=10)
        assert m2.data == big.decode() and m2.id == sent2.id
        seen = engine.observed_anonymity(alice, entry, window=0.5)
        assert "packets/s at" in seen.note and seen.senders >= 1  # two clients' cover
        counters = daemon.call(alice, {"op": "stats"})["counters"]
        assert counters["payload_cover_out"] > 0 and counters["loop_cover_out"] > 0
        assert counters["real_out"] >= 4 and counters["acked"] == 2
    finally:
        for ev in stops.values():
            ev.set()
        for t in threads:
            t.join(15)
    assert results["alice"].role == "client"
    assert not daemon.socket_path(State(homes["alice"][0])).exists()


def test_directory_publish_to_a_node_without_the_dht(
    cli: Any, network: LocalNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fogctl.records import to_json_line
    from tests.mix.conftest import make_descriptors

    entry = f"127.0.0.1:{network.service(network.providers[0].id).port}"
    extra = make_descriptors(1, 1, providers=1, now=time.time()).descriptors
    path = tmp_path / "extra.jsonl"
    path.write_text("".join(to_json_line(d) + "\n" for d in extra))
    _use(monkeypatch, tmp_path / "op")
    res = cli("mix", "directory", "publish", "--to", entry, "--no-dht", str(path), "--json")
    assert res.code == 0, res.stderr
    assert "DHT" not in res.stderr and len(res.records()) == 2
    got = cli("mix", "directory", "fetch", "--from", entry, "--no-dht", "--json").records()
    assert {d.id for d in extra} <= {r["id"] for r in got} and len(got) == 9
    assert not (tmp_path / "op" / "dht.sock").exists()


def test_client_daemon_refreshes_its_directory_from_the_local_dht(
    network: LocalNet, tmp_path: Path
) -> None:
    """With a DHT node serving from its state dir, the client's periodic refresh also
    takes the (verified) descriptors published in the DHT, not only its provider's."""
    from fogctl.mix import daemon, dhtdir, engine
    from fogctl.mix.node import Params
    from fogctl.state import State
    from tests.dht.test_api import ServingNode
    from tests.mix.conftest import make_descriptors

    p0 = network.providers[0]
    entry = f"127.0.0.1:{network.service(p0.id).port}"
    mine = ServingNode(tmp_path / "client")  # the client's own DHT node
    other = ServingNode(tmp_path / "other", [mine.address])
    stop = threading.Event()
    t: threading.Thread | None = None
    try:
        st = State(mine.root)
        engine.directory_fetch(st, entry, dht=False)
        engine.client_address(st, p0.id)
        [extra] = make_descriptors(0, 0, providers=1, now=time.time()).descriptors
        dhtdir.publish(State(other.root), [extra], time.time())
        directory = engine._directory_path(st)
        assert extra.id not in directory.read_text()
        params = Params(hops=5, mean_delay=0.005, lambda_p=5, lambda_l=1, lambda_d=1)
        t = threading.Thread(
            target=daemon.run_client,
            args=(State(mine.root), params),
            kwargs={"poll": 0.05, "stop": stop, "directory_every": 0.3},
        )
        t.start()
        deadline = time.time() + 20
        while extra.id not in directory.read_text() and time.time() < deadline:
            time.sleep(0.1)
        assert extra.id in directory.read_text()
    finally:
        stop.set()
        if t is not None:
            t.join(15)
        other.close()
        mine.close()
