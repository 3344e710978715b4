"""A keystore asks for its password on a terminal (a real pseudo-terminal here)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.chain.conftest import ADDRESSES, DEV_KEYS


def _read_until(fd: int, needle: bytes, timeout: float = 30.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} in {buf!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_password_prompt_on_a_terminal(tmp_path: Path, fog_home: Path) -> None:
    from eth_account import Account

    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(Account.encrypt(DEV_KEYS["voter"], "pw", kdf="scrypt", iterations=2))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGCTL_CHAIN")}
    env["FOGCTL_HOME"] = str(fog_home)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fogctl.cli.main",
            "stake",
            "account",
            "--keystore",
            str(path),
            "--json",
        ],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    try:
        prompt = _read_until(primary, b"Password for key.json:")
        assert b"Password" in prompt
        os.write(primary, b"pw\n")
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    rec = json.loads(out)
    assert rec["address"] == ADDRESSES["voter"] and rec["source"] == f"keystore {path}"
