"""mDNS discovery between two network namespaces the test creates (no real LAN traffic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need, need_binary

from .netns import sh

FOGCTL = [sys.executable, "-m", "fogctl.cli.main"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGCTL_")}
    env["FOGCTL_HOME"] = str(home)
    return env


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    need(sys.platform == "linux" and os.geteuid() == 0, "mDNS test needs root for namespaces")
    need_binary("ip")
    a, b = f"fogm{os.getpid() % 100000}a", f"fogm{os.getpid() % 100000}b"
    try:
        for n in (a, b):
            sh("ip", "netns", "add", n)
            sh("ip", "link", "set", "lo", "up", ns=n)
        sh(
            "ip",
            "link",
            "add",
            "eth0",
            "netns",
            a,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            b,
        )
        for n, addr in ((a, "10.9.0.1/24"), (b, "10.9.0.2/24")):
            sh("ip", "addr", "add", addr, "dev", "eth0", ns=n)
            sh("ip", "link", "set", "eth0", "up", ns=n)
            sh("ip", "link", "set", "eth0", "multicast", "on", ns=n)
        yield a, b
    finally:
        for n in (a, b):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def test_nodes_find_each_other_on_the_lan(lan: tuple[str, str], tmp_path: Path) -> None:
    a, b = lan
    ids = {}
    for h in ("a", "b"):
        out = subprocess.run(
            [*FOGCTL, "init", "--json"],
            env=_env(tmp_path / h),
            capture_output=True,
            text=True,
            check=True,
        )
        ids[h] = json.loads(out.stdout)["id"]
    serve_a = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            a,
            *FOGCTL,
            "dht",
            "serve",
            "--host",
            "10.9.0.1",
            "--port",
            "8468",
            "--mdns",
            "--json",
        ],
        env=_env(tmp_path / "a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    serve_b = None
    try:
        found: list[dict[str, str]] = []
        end = time.monotonic() + 20
        while time.monotonic() < end and not found:
            res = subprocess.run(
                ["ip", "netns", "exec", b, *FOGCTL, "dht", "discover", "--timeout", "2", "--json"],
                env=_env(tmp_path / "b"),
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert res.returncode == 0, res.stderr
            found = [json.loads(line) for line in res.stdout.splitlines()]
        assert found == [
            {
                "kind": "dht_peer",
                "id": ids["a"],
                "address": "10.9.0.1:8468",
                "ed25519": found[0]["ed25519"],
                "distance_bits": None,
            }
        ]
        # a node started with --mdns and no bootstrap address joins the one it finds
        serve_b = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                b,
                *FOGCTL,
                "dht",
                "serve",
                "--host",
                "10.9.0.2",
                "--port",
                "8468",
                "--mdns",
                "--json",
            ],
            env=_env(tmp_path / "b"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        peers: list[str] = []
        end = time.monotonic() + 20
        while time.monotonic() < end and ids["a"] not in peers:
            if (tmp_path / "b" / "dht.sock").exists():
                res = subprocess.run(
                    [*FOGCTL, "dht", "peers", "--json"],
                    env=_env(tmp_path / "b"),
                    capture_output=True,
                    text=True,
                )
                peers = [json.loads(line)["id"] for line in res.stdout.splitlines()]
            time.sleep(0.2)
        assert ids["a"] in peers
    finally:
        for proc in (serve_a, serve_b):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    assert serve_a.returncode == 0, serve_a.stderr.read().decode()[-1000:] if serve_a.stderr else ""
