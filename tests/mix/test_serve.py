"""``fogctl mix serve`` as a real process: publishes, answers, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _start(home: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "FOGCTL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fogctl.cli.main", "mix", "serve", "--json", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        m = re.search(r"serving \w+ layer \d+ at 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError(f"serve did not start: {proc.stderr.read()}")


def test_provider_and_mix_serve_sync_directory_and_stop_on_sigterm(
    cli: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    prov, pport = _start(
        tmp_path / "p",
        "--provider",
        "--port",
        "0",
        "--sync",
        "0.3",
        "--operator",
        "a",
        "--region",
        "eu",
        "--replay-capacity",
        "10000",
    )
    mix = None
    try:
        mix, mport = _start(
            tmp_path / "m",
            "--layer",
            "1",
            "--port",
            "0",
            "--sync",
            "0.3",
            "--bootstrap",
            f"127.0.0.1:{pport}",
            "--replay-capacity",
            "10000",
        )
        monkeypatch.setenv("FOGCTL_HOME", str(tmp_path / "client"))
        layers: list[int] = []
        deadline = time.monotonic() + 20
        while sorted(layers) != [0, 1] and time.monotonic() < deadline:
            res = cli("mix", "directory", "fetch", "--from", f"127.0.0.1:{pport}", "--json")
            assert res.code == 0, res.stderr
            layers = [r["layer"] for r in res.records()]
            time.sleep(0.1)
        assert sorted(layers) == [0, 1]
        ls = cli("mix", "directory", "ls", "--json").records()
        assert {d["operator"] for d in ls} == {"a", "unknown"}
        stats = cli("mix", "stats", "--node", f"127.0.0.1:{mport}", "--json").record()
        assert stats["kind"] == "mix_stats"
        # the replay filter lives in the node's state dir, its key files are private
        assert list((tmp_path / "m" / "mix").glob("mix-*/replay-*.bloom"))
        for key in (tmp_path / "m" / "keys").glob("mix-*"):
            assert key.stat().st_mode & 0o077 == 0
    finally:
        for p in (mix, prov):
            if p is not None:
                p.send_signal(signal.SIGTERM)
        for p in (mix, prov):
            if p is not None:
                out, err = p.communicate(timeout=20)
                assert p.returncode == 0, err
                rec = json.loads(out.strip().splitlines()[-1])
                assert rec["kind"] == "mix_stats"
                assert "Traceback" not in err, err
