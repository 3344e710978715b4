"""The local chain: an anvil process whose state lives in the state directory.

Files under ``<state>/chain/``:

``state.json``       the chain state, written by fogctl (``anvil_dumpState`` over RPC,
                     written to a temp file and renamed) after each transaction it sends,
                     after time travel and on ``chain down``: what fogctl confirmed is on
                     disk before it says so, so a ``kill -9`` of anvil loses none of it.
``autosave.json``    anvil's own dump every second (``--dump-state --state-interval 1``)
                     for transactions other clients send; anvil writes it in place, so
                     a kill during that write can damage it: start-up then ignores it.
``node.json``        the running node: pid, port, RPC URL, chain id.
``anvil.log``        anvil's output of the current run.

On start fogctl loads the newer valid state file and sets anvil's clock past the head
block's timestamp: after loading state anvil falls back to wall time, which would move
time backwards after ``chain advance``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fogctl.chain.records import ChainRecord
from fogctl.chain.rpc import rpc_call
from fogctl.errors import InvalidInput, OperationFailed, Refused, ServiceUnavailable
from fogctl.state.atomic import write_atomic

__all__ = [
    "DEFAULT_CHAIN_ID",
    "DEFAULT_PORT",
    "LocalChain",
    "find_anvil",
]

DEFAULT_PORT = 8545
DEFAULT_CHAIN_ID = 31337
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system(), "")
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"anvil-{system}-{arch}"


def find_anvil(setting: str | None = None) -> str:
    """anvil's native binary: the ``chain.anvil`` setting, PATH, or npm's node_modules."""
    if setting:
        path = shutil.which(setting) or (setting if Path(setting).is_file() else None)
        if not path:
            raise InvalidInput(f"chain.anvil {setting!r}: no such executable")
        return path
    found = shutil.which("anvil")
    if found:
        return found
    pkg = _platform_package()
    roots = [PROJECT_ROOT / "contracts", Path.cwd() / "contracts", Path.cwd()]
    for root in roots:
        exe = root / "node_modules" / "@foundry-rs" / pkg / "bin" / "anvil"
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    raise OperationFailed(
        "anvil not found",
        hint="'npm ci' in contracts/ installs it, or set chain.anvil / put anvil on PATH",
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as dead
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_anvil(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
    except OSError:
        return _pid_alive(pid)  # no /proc: trust the pid file
    return "anvil" in cmd and marker in cmd


def _state_block(path: Path) -> int | None:
    """The head block number recorded in a state file, or None if it is unusable."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "accounts" not in data:
        return None
    best = data.get("best_block_number")
    if best is None and isinstance(data.get("block"), dict):
        best = data["block"].get("number")
    try:
        return int(best, 16) if isinstance(best, str) else int(best or 0)
    except (TypeError, ValueError):
        return None


@dataclass
class NodeInfo:
    pid: int
    port: int
    rpc_url: str
    chain_id: int


class LocalChain:
    """The anvil fogctl manages in ``<state>/chain`` (one per state directory)."""

    def __init__(self, directory: Path, *, anvil: str | None = None) -> None:
        self.dir = directory
        self.anvil_setting = anvil
        self.state_file = directory / "state.json"
        self.autosave_file = directory / "autosave.json"
        self.node_file = directory / "node.json"
        self.log_file = directory / "anvil.log"

    # -- inspection ----------------------------------------------------------------------

    def node(self) -> NodeInfo | None:
        """The running node recorded in node.json, if its process is alive."""
        try:
            data = json.loads(self.node_file.read_text(encoding="utf-8"))
            info = NodeInfo(
                int(data["pid"]), int(data["port"]), str(data["rpc_url"]), int(data["chain_id"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _is_our_anvil(info.pid, str(self.dir)):
            return None
        return info

    def is_local(self, rpc_url: str) -> bool:
        """Is ``rpc_url`` this state directory's running local chain?"""
        node = self.node()
        return node is not None and _same_url(node.rpc_url, rpc_url)

    def record(self, rpc_url: str | None = None) -> ChainRecord:
        node = self.node()
        url = node.rpc_url if node else (rpc_url or f"http://127.0.0.1:{DEFAULT_PORT}")
        rec = ChainRecord(
            rpc_url=url, local=True, running=node is not None, state_file=str(self.state_file)
        )
        if node is None:
            return rec
        head = rpc_call(url, "eth_getBlockByNumber", ["latest", False])
        return ChainRecord(
            rpc_url=url,
            chain_id=node.chain_id,
            local=True,
            running=True,
            pid=node.pid,
            block=int(head["number"], 16),
            timestamp=int(head["timestamp"], 16),
            state_file=str(self.state_file),
            client=str(rpc_call(url, "web3_clientVersion")),
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _best_state(self) -> Path | None:
        best: tuple[int, Path] | None = None
        for path in (self.state_file, self.autosave_file):
            if not path.exists():
                continue
            block = _state_block(path)
            if block is None:
                continue
            if best is None or block > best[0]:
                best = (block, path)
        return best[1] if best else None

    def start(
        self, *, port: int = DEFAULT_PORT, chain_id: int = DEFAULT_CHAIN_ID, host: str = "127.0.0.1"
    ) -> ChainRecord:
        """Start anvil (idempotent: an already running node is left as it is)."""
        if self.node() is not None:
            return self.record()
        if not 0 < port < 65536:
            raise InvalidInput(f"--port {port}: not a TCP port")
        exe = find_anvil(self.anvil_setting)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        source = self._best_state()
        if (self.state_file.exists() or self.autosave_file.exists()) and source is None:
            raise OperationFailed(
                f"{self.dir}: no readable chain state (state.json and autosave.json are damaged)"
            )
        rpc_url = f"http://{host}:{port}"
        with contextlib.suppress(ServiceUnavailable):
            rpc_call(rpc_url, "eth_chainId", timeout=0.5)
            raise OperationFailed(f"{rpc_url}: something is already listening there (try --port)")
        args = [
            exe,
            "--host",
            host,
            "--port",
            str(port),
            "--chain-id",
            str(chain_id),
            "--dump-state",
            str(self.autosave_file),
            "--state-interval",
            "1",
            "--accounts",
            "10",
        ]
        if source is not None:
            args += ["--load-state", str(source)]
        log = open(self.log_file, "wb")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise OperationFailed(f"cannot run {exe}: {exc.strerror}") from None
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
                why = " | ".join(tail) or f"exit {proc.returncode}"
                raise OperationFailed(f"anvil exited at start: {why}")
            try:
                got = rpc_call(rpc_url, "eth_chainId", timeout=0.5)
                break
            except ServiceUnavailable:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise OperationFailed(
                        f"anvil did not answer on {rpc_url} within {START_TIMEOUT:.0f}s"
                    ) from None
                time.sleep(0.05)
        actual_id = int(got, 16)
        head = rpc_call(rpc_url, "eth_getBlockByNumber", ["latest", False])
        head_ts = int(head["timestamp"], 16)
        # After --load-state anvil's clock restarts at wall time: never go back in time.
        rpc_call(rpc_url, "evm_setTime", [max(int(time.time()), head_ts + 1)])
        node = {
            "pid": proc.pid,
            "port": port,
            "rpc_url": rpc_url,
            "chain_id": actual_id,
            "loaded": str(source) if source else None,
        }
        write_atomic(self.node_file, json.dumps(node).encode(), mode=0o600)
        if source == self.autosave_file or source is None:
            self.checkpoint(rpc_url)
        return self.record()

    def checkpoint(self, rpc_url: str | None = None) -> None:
        """Write the chain's state to state.json atomically (over RPC)."""
        url = rpc_url
        if url is None:
            node = self.node()
            if node is None:
                return
            url = node.rpc_url
        import fcntl

        # Dump and rename under one lock: with two fogctl processes checkpointing at once,
        # a dump taken earlier must not replace one taken later.
        with open(self.dir / "state.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            dumped = rpc_call(url, "anvil_dumpState", timeout=30)
            raw = bytes.fromhex(str(dumped).removeprefix("0x"))
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            write_atomic(self.state_file, raw, mode=0o600)

    def stop(self) -> ChainRecord:
        """Checkpoint and stop anvil (SIGTERM, then SIGKILL after a bound). Idempotent."""
        node = self.node()
        if node is None:
            with contextlib.suppress(FileNotFoundError):
                self.node_file.unlink()
            return ChainRecord(
                rpc_url=f"http://127.0.0.1:{DEFAULT_PORT}",
                local=True,
                running=False,
                state_file=str(self.state_file),
            )
        with contextlib.suppress(ServiceUnavailable, OperationFailed):
            self.checkpoint(node.rpc_url)
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _pid_alive(node.pid) and time.monotonic() < deadline:
            _reap(node.pid)
            time.sleep(0.05)
        if _pid_alive(node.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
        _reap(node.pid)
        with contextlib.suppress(FileNotFoundError):
            self.node_file.unlink()
        return ChainRecord(
            rpc_url=node.rpc_url,
            chain_id=node.chain_id,
            local=True,
            running=False,
            pid=node.pid,
            state_file=str(self.state_file),
        )

    def advance(self, rpc_url: str, seconds: int) -> ChainRecord:
        """Move the local chain's clock forward and mine a block. Refused on other chains."""
        node = self.node()
        if node is None and _same_url(rpc_url, f"http://127.0.0.1:{DEFAULT_PORT}"):
            raise ServiceUnavailable(
                "the local chain is not running", hint="start it with 'fogctl stake chain up'"
            )
        if not self.is_local(rpc_url):
            raise Refused(
                f"time travel refused: {rpc_url} is not the local chain this state directory "
                "runs ('fogctl stake chain up')"
            )
        if seconds <= 0:
            raise InvalidInput("advance: the duration must be positive")
        rpc_call(rpc_url, "evm_increaseTime", [seconds])
        rpc_call(rpc_url, "evm_mine", [])
        self.checkpoint(rpc_url)
        rec = self.record(rpc_url)
        return ChainRecord(**{**_fields(rec), "advanced": seconds})


def _fields(rec: ChainRecord) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in rec.__dataclass_fields__}


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _same_url(a: str, b: str) -> bool:
    from urllib.parse import urlparse

    pa, pb = urlparse(a), urlparse(b)
    loop = {"127.0.0.1", "localhost", "::1"}
    host_a = "127.0.0.1" if pa.hostname in loop else pa.hostname
    host_b = "127.0.0.1" if pb.hostname in loop else pb.hostname
    return (pa.scheme, host_a, pa.port) == (pb.scheme, host_b, pb.port)
