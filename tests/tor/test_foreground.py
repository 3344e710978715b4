"""``fogctl tor up --foreground`` as a service: progress on a terminal, clean SIGTERM."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.tor.conftest import poll


def test_foreground_shows_progress_on_a_tty_and_stops_on_sigterm(
    testnet: Any, short_tmp: Path
) -> None:
    home = short_tmp / "fg"
    master, slave = pty.openpty()
    env = {**os.environ, "FOGCTL_HOME": str(home), "COLUMNS": "200"}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fogctl.cli.main",
            "tor",
            "up",
            "--foreground",
            "--json",
            "--testnet",
            str(testnet.directory),
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    os.close(slave)
    tor_pid: int | None = None
    try:
        line = child.stdout.readline() if child.stdout else b""  # the tor record
        assert line, child.poll()
        rec = json.loads(line)
        assert rec["state"] == "running" and rec["managed"]
        tor_pid = rec["pid"]
        err = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and b"bootstrap 100%" not in err:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                err += os.read(master, 4096)
        assert b"bootstrap 100%" in err, err  # progress on a terminal
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=20)
        while select.select([master], [], [], 0.1)[0]:
            try:
                err += os.read(master, 4096)
            except OSError:
                break
        assert code == 0, err
        from fogctl.tor import proc

        poll(lambda: not proc.pid_alive(rec["pid"]), timeout=10, what="tor to stop")
        assert not (home / "tor" / "daemon.json").exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        from fogctl.tor import proc

        if tor_pid is not None:  # its owner is gone; do not wait for tor to notice
            proc.stop_pids([tor_pid], timeout=2)
        os.close(master)
