"""fogctl dht as a user runs it: real `dht serve` processes, one-shot commands, pipes."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FOGCTL = [sys.executable, "-m", "fogctl.cli.main"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGCTL_")}
    env["FOGCTL_HOME"] = str(home)
    return env


def _init(home: Path) -> None:
    subprocess.run([*FOGCTL, "init", "-q"], env=_env(home), check=True, capture_output=True)


class Node:
    def __init__(self, home: Path, *args: str) -> None:
        _init(home)
        self.home = home
        self.proc = subprocess.Popen(
            [*FOGCTL, "dht", "serve", "--host", "127.0.0.1", "--port", "0", "--json", *args],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.record = json.loads(_readline(self.proc, 20))
        self.address = self.record["address"]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError(
            f"no output within {timeout}s: {proc.stderr.read() if proc.stderr else ''}"
        )
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return line


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    base = tmp_path_factory.mktemp("dhtcli")
    a = Node(base / "a")
    b = Node(base / "b", "--bootstrap", a.address)
    # b announced itself after joining; a re-announces when asked
    yield [a, b]
    for n in (a, b):
        n.stop()


def _as(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("FOGCTL_HOME", str(home))


def test_put_via_control_socket_get_via_brief_join(
    nodes: list[Node], cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a, b = nodes
    _as(monkeypatch, b.home)
    res = cli("dht", "put", "greeting", "hello", "--json")
    assert res.code == 0, res.stderr
    put = res.record()
    assert put["kind"] == "dht_put" and put["stored_on"] >= 1
    _init(tmp_path / "c")
    _as(monkeypatch, tmp_path / "c")
    res = cli("dht", "get", "greeting", "--bootstrap", a.address, "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["value"] == "hello" and rec["signer"] == b.record["id"]
    assert not (tmp_path / "c" / "dht.sock").exists()  # the brief client left nothing
    res = cli("dht", "get", "absent", "--bootstrap", a.address, "--json")
    assert res.code == 1 and "no value found" in res.stderr


def test_peers_find_node_and_providers_pipe(
    nodes: list[Node], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = nodes
    _as(monkeypatch, a.home)
    peers = cli("dht", "peers", "--json").records()
    assert [p["id"] for p in peers] == [b.record["id"]]
    found = cli("dht", "find-node", b.record["id"], "--json").records()
    assert found[0]["id"] == b.record["id"] and found[0]["distance_bits"] == 0
    assert cli("dht", "announce", "--json").record()["stored_on"] >= 1
    res = cli("dht", "providers", "--json")
    assert res.code == 0, res.stderr
    recs = res.records()
    assert {r["id"] for r in recs} == {a.record["id"], b.record["id"]}
    assert all(
        r["kind"] == "node" and r["addresses"][0].startswith("/ip4/127.0.0.1/udp/") for r in recs
    )
    # the records are what `fogctl schedule` reads: shared NodeRecord, round-trips
    import io

    from fogctl.records import read_records

    parsed = list(read_records(io.StringIO(res.stdout), kinds=["node"]))
    assert len(parsed) == 2


def test_pub_sub_between_nodes(
    nodes: list[Node], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = nodes
    sub = subprocess.Popen(
        [*FOGCTL, "dht", "sub", "news", "--count", "1", "--json"],
        env=_env(b.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _as(monkeypatch, a.home)
    got = None
    try:
        for i in range(20):  # publish until the subscriber (joining in parallel) sees one
            res = cli("dht", "pub", "news", "-", "--json", input=f"update {i}\n")
            assert res.code == 0, res.stderr
            assert res.record()["kind"] == "dht_message"
            ready, _, _ = select.select([sub.stdout], [], [], 0.5)
            if ready:
                got = json.loads(sub.stdout.readline())
                break
    finally:
        sub.kill()
        sub.wait()
    assert got is not None and got["data"].startswith("update ") and got["source"] == a.record["id"]


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["get", "k", "--bootstrap", "not-an-ip"], 2, "expected IP:PORT"),
        (["get", "k", "--bootstrap", "127.0.0.1:99999"], 2, "port must be"),
        (["find-node", "xyz"], 2, "40 hex digits"),
        (["put", "k", "x" * 5000], 2, "limit is 4096"),
        (["nat"], 2, "no STUN server"),
        (["get", "k", "--bootstrap", "127.0.0.1:9"], 3, "no DHT peer answered"),
    ],
)
def test_bad_input_is_one_line(
    cli: Any, fresh_state: Any, args: list[str], code: int, text: str
) -> None:
    res = cli("dht", *args)
    assert res.code == code, res.stderr
    assert text in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_pub_needs_messages(cli: Any, fresh_state: Any) -> None:
    res = cli("dht", "pub", "t", "-", input="")
    assert res.code == 2 and "no messages" in res.stderr


def test_serve_stops_cleanly_and_restarts_without_bootstrap(tmp_path: Path) -> None:
    a = Node(tmp_path / "a")
    b = Node(tmp_path / "b", "--bootstrap", a.address)
    deadline = time.monotonic() + 10
    sock = b.home / "dht.sock"
    assert sock.exists()
    twice = subprocess.run(
        [*FOGCTL, "dht", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=_env(b.home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert twice.returncode == 1 and "already serving" in twice.stderr
    assert sock.exists()  # the running node's socket is untouched
    assert b.stop() == 0
    assert not sock.exists()
    with sqlite3.connect(b.home / "state.db") as db:
        assert db.execute("SELECT count(*) FROM dht_contacts").fetchone()[0] == 1
    b2 = Node(b.home)  # no --bootstrap: the saved table is enough
    while time.monotonic() < deadline:
        peers = subprocess.run(
            [*FOGCTL, "dht", "peers", "--json"], env=_env(b.home), capture_output=True, text=True
        )
        if peers.stdout.strip():
            break
    assert json.loads(peers.stdout.splitlines()[0])["id"] == a.record["id"]
    assert b2.stop() == 0 and a.stop() == 0
    assert "Traceback" not in (b2.proc.stderr.read() if b2.proc.stderr else "")
