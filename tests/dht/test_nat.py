"""NAT traversal for real: network namespaces, iptables NATs, coturn, fogctl in each host.

Endpoint-independent NATs (plain MASQUERADE) get a hole-punched direct path; behind a
symmetric NAT (MASQUERADE --random) ICE falls back to the TURN relay. ICE offers travel
as signed values through a DHT node serving in the public namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need, need_binary

from .netns import Topology

FOGCTL = [sys.executable, "-m", "fogctl.cli.main"]
STUN = ["--stun", "198.18.0.1:3478", "--stun", "198.18.0.2:3478"]


def _require() -> None:
    need(sys.platform == "linux", "network namespaces need Linux")
    need(os.geteuid() == 0, "network namespace tests need root (CAP_NET_ADMIN)")
    for binary in ("ip", "iptables", "turnserver", "ss"):
        need_binary(binary)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGCTL_")}
    env["FOGCTL_HOME"] = str(home)
    env.update(extra)
    return env


def _init(home: Path) -> str:
    out = subprocess.run(
        [*FOGCTL, "init", "--json"], env=_env(home), capture_output=True, text=True, check=True
    )
    return str(json.loads(out.stdout)["id"])


@pytest.fixture(params=[False, True], ids=["cone", "symmetric"])
def topo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Topology, Path]]:
    _require()
    t = Topology(symmetric=request.param)
    try:
        t.build()
        t.start_coturn()
        yield t, tmp_path
    finally:
        t.close()


def test_nat_reports_mapping_behaviour(topo: tuple[Topology, Path]) -> None:
    t, tmp = topo
    _init(tmp / "h")
    out = {}
    for host in ("P", "H1", "H2"):
        res = subprocess.run(
            ["ip", "netns", "exec", t.ns(host), *FOGCTL, "dht", "nat", *STUN, "--json"],
            env=_env(tmp / "h"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert res.returncode == 0, res.stderr
        out[host] = json.loads(res.stdout)
    assert out["P"]["reachability"] == "public" and out["P"]["nat"] == "none"
    assert out["H1"]["nat"] == "endpoint-independent"
    assert out["H1"]["reflexive"].startswith("198.18.0.11:")
    assert out["H1"]["reflexive"].split(":")[1] == out["H1"]["local"].split(":")[1]
    want = "symmetric" if t.symmetric else "endpoint-independent"
    assert out["H2"]["nat"] == want and out["H2"]["reflexive"].startswith("198.18.0.12:")


def test_connect_punches_or_relays(topo: tuple[Topology, Path]) -> None:
    t, tmp = topo
    _init(tmp / "seed")
    seed = t.spawn(
        "P",
        *FOGCTL,
        "dht",
        "serve",
        "--host",
        "198.18.0.1",
        "--port",
        "8468",
        "--json",
        "--no-announce",
        env=_env(tmp / "seed"),
    )
    t.wait_udp("P", ["198.18.0.1:8468"])
    ids = {h: _init(tmp / h) for h in ("h1", "h2")}
    # the cone case runs without TURN: aioice nominates the first pair that works
    relay: list[str] = []
    if t.symmetric:
        relay = ["--turn", "198.18.0.1:3478", "--turn-user", "fog"]
    procs: dict[str, Any] = {}
    for host, me, peer in (("H1", "h1", "h2"), ("H2", "h2", "h1")):
        procs[me] = t.spawn(
            host,
            *FOGCTL,
            "dht",
            "connect",
            ids[peer],
            "--stun",
            "198.18.0.1:3478",
            *relay,
            "--bootstrap",
            "198.18.0.1:8468",
            "--timeout",
            "25",
            "--json",
            env=_env(tmp / me, FOGCTL_DHT_TURN_PASSWORD="fogpass"),
        )
    results = {}
    for me, proc in procs.items():
        out, err = proc.communicate(timeout=40)
        assert proc.returncode == 0, err.decode()[-2000:]
        results[me] = json.loads(out)
    assert seed.poll() is None
    for me, peer in (("h1", "h2"), ("h2", "h1")):
        rec = results[me]
        assert rec["peer"] == ids[peer]
        assert rec["received"] == f"hello from {ids[peer]}"
        if t.symmetric:
            assert rec["path"] == "relay"
        else:
            assert rec["path"] == "direct"
            # the peer's NAT mapping (hole punched), neither a relay nor a private address
            assert rec["remote"].split(":")[0] == ("198.18.0.12" if me == "h1" else "198.18.0.11")
            assert "relay" not in (rec["local_type"], rec["remote_type"])
