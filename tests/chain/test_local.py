"""The local chain's lifecycle: persistence across restarts and kill -9, clock, time travel."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

import pytest

from tests.chain.conftest import DAY, anvil_or_skip, free_port


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return
        time.sleep(0.02)
    raise AssertionError(f"anvil {pid} did not die")


def test_local_chain_survives_restart_and_kill_9(cli: Any, fog_home: Any) -> None:
    anvil_or_skip()
    port = free_port()
    up = cli("stake", "chain", "up", "--port", str(port), "--json")
    assert up.code == 0, up.stderr
    node = up.record()
    try:
        assert node["running"] is True and node["chain_id"] == 31337
        again = cli("stake", "chain", "up", "--port", str(port), "--json").record()
        assert again["pid"] == node["pid"]  # idempotent

        assert cli("stake", "deploy", "--json").code == 0
        redeploy = cli("stake", "deploy", "--json").records()
        assert len(redeploy) == 1 and redeploy[0]["created"] is False  # once per chain
        assert cli("stake", "deposit", "1500", "--json").code == 0
        adv = cli("stake", "chain", "advance", "8d", "--json").record()
        assert adv["advanced"] == 8 * DAY
        travelled = adv["timestamp"]
        assert travelled >= time.time() + 8 * DAY - 60
        assert cli("stake", "unstake", "500", "--json").code == 0

        # kill -9: nothing fogctl confirmed may be lost.
        os.kill(node["pid"], signal.SIGKILL)
        _wait_dead(node["pid"])
        assert cli("stake", "chain", "status", "--json").record()["running"] is False
        up2 = cli("stake", "chain", "up", "--port", str(port), "--json").record()
        assert up2["pid"] != node["pid"]
        assert up2["timestamp"] >= travelled  # the clock did not fall back to wall time
        st = cli("stake", "status", "--json").record()
        assert st["stake"] == "1000" and st["unbonding"] == "500"

        # The clock keeps moving forward after the restart: new blocks too.
        assert cli("stake", "chain", "advance", "1h", "--json").record()["timestamp"] > travelled

        down = cli("stake", "chain", "down", "--json").record()
        assert down["running"] is False
        up3 = cli("stake", "chain", "up", "--port", str(port), "--json").record()
        assert cli("stake", "status", "--json").record()["unbonding"] == "500"
        node = up3
    finally:
        cli("stake", "chain", "down")
    assert cli("stake", "chain", "down", "--json").record()["running"] is False  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(node["pid"], 0)


def test_damaged_autosave_is_ignored(cli: Any, fog_home: Any) -> None:
    anvil_or_skip()
    port = free_port()
    assert cli("stake", "chain", "up", "--port", str(port)).code == 0
    try:
        assert cli("stake", "deploy", "--json").code == 0
        assert cli("stake", "deposit", "1200", "--json").code == 0
        assert cli("stake", "chain", "down").code == 0
        # A kill in the middle of anvil's own (in-place) dump leaves a torn file.
        (fog_home / "chain" / "autosave.json").write_text('{"block": {"num')
        assert cli("stake", "chain", "up", "--port", str(port)).code == 0
        assert cli("stake", "status", "--json").record()["stake"] == "1200"
    finally:
        cli("stake", "chain", "down")


def test_time_travel_refused_on_other_chains(cli: Any, fog_home: Any) -> None:
    anvil_or_skip()
    from fogctl.chain.local import LocalChain

    # A chain this state directory did not start (another home's) is not "local" here.
    other = LocalChain(fog_home.parent / "other" / "chain")
    rec = other.start(port=free_port())
    try:
        res = cli("stake", "chain", "advance", "1d", "--rpc-url", rec.rpc_url)
        assert res.code == 4 and "time travel refused" in res.stderr
        head = other.record().timestamp
        assert head is not None and head < time.time() + 3600
    finally:
        other.stop()


def test_up_fails_clearly_when_port_is_taken(cli: Any, fog_home: Any) -> None:
    anvil_or_skip()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = cli("stake", "chain", "up", "--port", str(port))
    assert res.code == 1 and "Address already in use" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (fog_home / "chain" / "node.json").exists()
