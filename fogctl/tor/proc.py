"""Running tor processes: torrc text, launch, liveness, stop. No stem here."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from fogctl.errors import OperationFailed

__all__ = [
    "free_port",
    "launch",
    "pid_alive",
    "read_pid",
    "render_torrc",
    "stop_pids",
    "tail",
]


def render_torrc(options: Iterable[tuple[str, str]]) -> str:
    """torrc text from (option, value) pairs; values never contain newlines."""
    lines = []
    for key, value in options:
        if "\n" in key or "\n" in value or "\r" in value:
            raise ValueError(f"torrc option {key!r} has a newline")
        lines.append(f"{key} {value}")
    return "\n".join(lines) + "\n"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launch(
    tor: str,
    torrc: Path,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    new_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``tor -f torrc`` with stdout/stderr to ``log``; returns at once."""
    defaults = torrc.with_name("torrc-defaults")
    if not defaults.exists():
        defaults.write_text("")
    with open(log, "ab") as out:
        try:
            return subprocess.Popen(
                [tor, "-f", str(torrc), "--defaults-torrc", str(defaults)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
                env=dict(env) if env is not None else None,
                close_fds=True,
            )
        except OSError as exc:
            raise OperationFailed(f"cannot start {tor}: {exc.strerror}") from None


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pids(pids: Iterable[int], *, timeout: float = 10.0) -> None:
    """SIGTERM each pid, wait up to ``timeout`` (polling), then SIGKILL what is left."""
    live = [p for p in pids if pid_alive(p)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        for pid in live:
            _reap(pid)
        live = [p for p in live if pid_alive(p)]
        if live:
            time.sleep(0.05)
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)


def tail(path: Path, lines: int = 3) -> str:
    """The last ``lines`` lines of a log, joined with ' | ' (for one-line errors)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
