"""The embedded WASM executor: WASI preview 1 modules run by wasmtime.

Sandbox: the module sees only ``/work`` (the job's work dir) and, with a checkpoint,
the checkpoint dir at the spec's ``checkpoint.path``; no other file, no network, no
clock beyond what WASI gives, its own environment (the spec's ``env`` plus
``FOGCTL_*``). Limits:

* memory: ``Store.set_limits(memory_size=cap)``; a module whose memory would grow past
  the cap gets ``memory.grow == -1`` (reason ``oom`` if it then traps or cannot start);
* CPU time: ``resources.limits.fuel`` (instructions; reason ``fuel``) and the deadline,
  enforced by epoch interruption (reason ``deadline``). Each run has its own engine
  whose epoch deadline is 1 tick: a timer increments the epoch at the deadline, and
  :meth:`WasmExecutor.stop` increments it after the grace period, so a running module
  costs nothing until it must stop.
* CPU share (``isolation="process"`` only): the module runs in a child process
  (``python -m fogctl.jobs.executors.wasm``) capped at the launch's ``cpu`` cores by a
  cgroup CPU quota where this process may create one (v2 ``cpu.max``, v1 CFS quota: the
  kernel mechanism behind ``docker --cpus``), else by CPU-time throttling (SIGSTOP and
  SIGCONT every 50 ms, on measured CPU time). With ``isolation="thread"`` the module
  runs on a thread of this process (at most one core) and a fractional cap is not
  enforced; the default ``isolation="auto"`` picks the child process exactly when the
  launch's cap is below one core, so every limit a spec sets is enforced.
* stop: the stop file ``/work/.fogctl-stop`` (and ``<checkpoint>/.fogctl-stop``)
  appears; a module that polls for it can save a checkpoint and exit 85; after
  ``grace`` seconds the epoch interruption traps it (reason ``stopped``).

Snapshots (checkpoint on interruption). wasmtime cannot resume a trapped call, so a
snapshot is the instance's *data*: every exported memory and every exported mutable
numeric global, saved to ``<checkpoint>/.fogctl-wasm/snapshot.bin`` after an epoch
interruption. Resuming means a fresh instance of the same module whose memories and
globals are overwritten with the snapshot, then the entry is called again. A run
snapshots when it has a checkpoint dir and either the executor was made with
``snapshots=True`` (``fogctl harvest`` does) or the module exports ``fogctl:snapshot``
(any kind: the module declares that it follows the contract below). Then:

* :meth:`WasmExecutor.stop` interrupts at once (no grace to wait out: the snapshot is
  the checkpoint) and the attempt ends ``checkpointed`` (exit code 85), so the next
  attempt with the same checkpoint dir resumes where this one stopped;
* every ``snapshot_interval`` seconds (``checkpoint.intervalSeconds`` when the spec sets
  it) the module is interrupted, snapshotted and its entry called again on the same
  instance, so a kill (SIGKILL, power loss) loses at most that much work;
* the module's output (stdout and stderr) is also appended to
  ``<checkpoint>/.fogctl-wasm/output``, which a resume truncates to its length at the
  snapshot: output after the last snapshot is never duplicated;
* a module exiting 85 (its own checkpoint files) drops the snapshot and keeps its output.

The contract for a snapshot-able module (BOINC's "application checkpoint" in WASM):
keep progress in exported mutable globals or in linear memory, not in locals; the entry
(``_start``, else an exported ``run`` taking no parameters, whose results are kept:
:meth:`WasmExecutor.returned`) continues from that state when called again; and every
loop leaves the state consistent at its header, where epoch interruption happens. A
module without WASI reads no environment: on a fresh start, ``FOGCTL_GLOBAL_<name>=N``
in the spec's env sets its exported mutable global ``<name>`` to ``N``.

Compiled modules are cached in memory by content hash (``Module.serialize``), so the
second run of a module skips compilation.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fogctl.errors import InvalidInput
from fogctl.jobs.executors.base import STOP_FILE, WORK_DIR, Executor, Exit, Handle, Launch
from fogctl.jobs.spec import CHECKPOINT_EXIT_CODE, JobSpec
from fogctl.records import ComponentStatus

__all__ = [
    "CGROUP_PREFIX",
    "GLOBAL_ENV_PREFIX",
    "SNAPSHOT_EXPORT",
    "CpuCap",
    "RunStats",
    "WasmExecutor",
    "clean_cgroups",
    "decode_snapshot",
    "encode_snapshot",
    "output_file",
    "read_snapshot_header",
    "snapshot_file",
]

_MAX_MODULE_BYTES = 256 * 1024**2
SNAPSHOT_EXPORT = "fogctl:snapshot"
GLOBAL_ENV_PREFIX = "FOGCTL_GLOBAL_"
SNAPSHOT_DIR = ".fogctl-wasm"
MAGIC = b"FOGCKPT1\n"
PAGE = 65536
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "fogctl-wasm-"


# -- the snapshot file -------------------------------------------------------------------


def snapshot_file(checkpoint_dir: Path) -> Path:
    """Where a run with this checkpoint dir keeps its snapshot."""
    return checkpoint_dir / SNAPSHOT_DIR / "snapshot.bin"


def output_file(checkpoint_dir: Path) -> Path:
    """The output of every attempt, up to the last snapshot and after it (snapshot runs)."""
    return checkpoint_dir / SNAPSHOT_DIR / "output"


def _committed_file(checkpoint_dir: Path) -> Path:
    return checkpoint_dir / SNAPSHOT_DIR / "output.committed"


def encode_snapshot(header: dict[str, Any], memories: list[bytes]) -> bytes:
    """``MAGIC``, an 8-byte big-endian header length, the JSON header, the memories."""
    head = json.dumps(header, sort_keys=True).encode()
    return MAGIC + len(head).to_bytes(8, "big") + head + b"".join(memories)


def decode_snapshot(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Parse a snapshot; anything malformed raises ``ValueError`` (never a crash)."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise ValueError("not a fogctl WASM snapshot")
    n = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "big")
    off = len(MAGIC) + 8
    if n > len(data) - off:
        raise ValueError("snapshot header is truncated")
    try:
        header = json.loads(data[off : off + n])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("snapshot header is not JSON") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise ValueError("unsupported snapshot header")
    memories, globals_ = header.get("memories"), header.get("globals")
    if not isinstance(memories, list) or not isinstance(globals_, dict):
        raise ValueError("snapshot header lacks memories/globals")
    off += n
    mems: dict[str, bytes] = {}
    for entry in memories:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], int)
            or isinstance(entry[1], bool)
            or not 0 <= entry[1] <= len(data) - off
        ):
            raise ValueError("bad memory entry in snapshot header")
        mems[entry[0]] = data[off : off + entry[1]]
        off += entry[1]
    if off != len(data):
        raise ValueError("snapshot length does not match its header")
    for value in globals_.values():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError("bad global value in snapshot header")
    out_len = header.get("output_len", 0)
    if not isinstance(out_len, int) or isinstance(out_len, bool) or out_len < 0:
        raise ValueError("bad output length in snapshot header")
    return header, mems


def read_snapshot_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a snapshot file (``None``: absent or not a snapshot)."""
    try:
        with path.open("rb") as f:
            head = f.read(len(MAGIC) + 8)
            if not head.startswith(MAGIC) or len(head) != len(MAGIC) + 8:
                return None
            n = int.from_bytes(head[len(MAGIC) :], "big")
            value = json.loads(f.read(min(n, 16 * 1024**2)))
            return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


# -- CPU cap of a child process ----------------------------------------------------------


def _cpu_seconds_of(pid: int) -> float | None:
    """CPU seconds used by ``pid``'s threads (``/proc/PID/task/*/schedstat``, ns precision;
    /proc/PID/stat's 10 ms clock ticks are too coarse to throttle on 50 ms periods)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class CpuCap:
    """Cap a process at ``cores`` CPUs.

    Where this process may create cgroups (root, or a delegated subtree), the kernel
    enforces it: cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` (the same CFS
    bandwidth control as ``docker --cpus``). Otherwise it throttles by CPU time: every
    50 ms it compares the CPU the process has used with ``cores`` x wall time and
    SIGSTOPs it while it is ahead, SIGCONTs it when it is not (cpulimit(1)'s method, on
    measured CPU rather than wall-clock slices, so a process starved by other load is
    not throttled a second time). ``method`` says which is in force (``none`` when the
    cap is at least the machine's CPUs); ``force="throttle"`` skips the cgroup.
    """

    def __init__(
        self, pid: int, cores: float, name: str, force: str = "", period: float = 0.05
    ) -> None:
        self.pid = pid
        self.share = max(0.0, cores)
        self.name = name
        self.force = force
        self.period = period
        self.method = "none"
        self.cgroup: Path | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CpuCap:
        if self.share >= (os.cpu_count() or 1):
            return self
        if self.force != "throttle" and self._try_cgroup():
            return self
        self.method = "throttle"
        self._thread = threading.Thread(target=self._run, daemon=True, name="fogctl-cpucap")
        self._thread.start()
        return self

    @staticmethod
    def cgroup_method() -> str | None:
        """``cgroup-v2``/``cgroup-v1`` if this process may create CPU cgroups, else None."""
        v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
        d = (CGROUP_ROOT if v2 else CGROUP_ROOT / "cpu") / f"{CGROUP_PREFIX}probe-{os.getpid()}"
        try:
            d.mkdir()
            d.rmdir()
        except OSError:
            return None
        return "cgroup-v2" if v2 else "cgroup-v1"

    def _try_cgroup(self) -> bool:
        quota = max(1000, int(self.share * 100_000))
        v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
        base = CGROUP_ROOT if v2 else CGROUP_ROOT / "cpu"
        d = base / f"{CGROUP_PREFIX}{self.name}"
        try:
            d.mkdir(exist_ok=True)
            if v2:
                (d / "cpu.max").write_text(f"{quota} 100000\n")
            else:
                (d / "cpu.cfs_period_us").write_text("100000\n")
                (d / "cpu.cfs_quota_us").write_text(f"{quota}\n")
            (d / "cgroup.procs").write_text(f"{self.pid}\n")
        except OSError:
            with contextlib.suppress(OSError):
                d.rmdir()
            return False
        self.cgroup = d
        self.method = "cgroup-v2" if v2 else "cgroup-v1"
        return True

    def _signal(self, sig: int) -> bool:
        try:
            os.kill(self.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def _run(self) -> None:
        t_last = time.monotonic()
        used_last = _cpu_seconds_of(self.pid) or 0.0
        credit = 0.0
        stopped = False
        while not self._halt.wait(self.period):
            now = time.monotonic()
            used = _cpu_seconds_of(self.pid)
            if used is None:
                return
            credit += self.share * (now - t_last) - (used - used_last)
            # credit left unused while other load starved the process carries over for
            # at most half a second's worth (a short catch-up burst, never a long one)
            credit = min(credit, self.share * 0.5)
            t_last, used_last = now, used
            want_stop = credit < 0
            if want_stop != stopped:
                if not self._signal(signal.SIGSTOP if want_stop else signal.SIGCONT):
                    return
                stopped = want_stop
        self._signal(signal.SIGCONT)

    def release(self) -> None:
        """Stop throttling (the process runs free, e.g. to checkpoint quickly)."""
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._signal(signal.SIGCONT)

    def close(self) -> None:
        """After the process is gone: remove its cgroup."""
        self.release()
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()


def clean_cgroups() -> None:
    """Remove empty CPU cgroups left by a process that crashed (a busy one stays)."""
    for base in (CGROUP_ROOT, CGROUP_ROOT / "cpu"):
        try:
            stale = [p for p in base.iterdir() if p.name.startswith(CGROUP_PREFIX)]
        except OSError:
            continue
        for p in stale:
            with contextlib.suppress(OSError):
                p.rmdir()


# -- one run of a module (shared by the thread and the child process) ---------------------


@dataclass(frozen=True, slots=True)
class RunStats:
    """A run as :meth:`WasmExecutor.stats` sees it: the child's pid (process isolation),
    CPU seconds used so far (exact once it ended), how its CPU cap is enforced, whether
    it snapshots (``None``: not known yet) and how many snapshots it saved."""

    pid: int | None
    cpu_seconds: float | None
    cpu_cap: str
    snapshotting: bool | None
    snapshots: int


@dataclass
class _Ctl:
    """Interruptions of a running module: ``interrupted_for`` says why (``None``: a
    periodic snapshot tick)."""

    engine: Any
    interrupted_for: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def interrupt(self, why: str) -> None:
        with self.lock:
            if self.interrupted_for is None:
                self.interrupted_for = why
        self.engine.increment_epoch()


@dataclass(frozen=True)
class _Job:
    spec: JobSpec
    run_id: str
    workdir: Path
    checkpoint_dir: Path | None
    memory: int
    fuel: int | None
    log_path: Path
    snapshots: bool
    interval: float
    module_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.raw,
            "run_id": self.run_id,
            "workdir": str(self.workdir),
            "checkpoint_dir": str(self.checkpoint_dir) if self.checkpoint_dir else None,
            "memory": self.memory,
            "fuel": self.fuel,
            "log_path": str(self.log_path),
            "snapshots": self.snapshots,
            "interval": self.interval,
            "module_hash": self.module_hash,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> _Job:
        from fogctl.jobs.spec import parse_spec

        ck = d.get("checkpoint_dir")
        return _Job(
            spec=parse_spec(d["spec"], "wasm child"),
            run_id=str(d["run_id"]),
            workdir=Path(d["workdir"]),
            checkpoint_dir=Path(ck) if ck else None,
            memory=int(d["memory"]),
            fuel=int(d["fuel"]) if d.get("fuel") is not None else None,
            log_path=Path(d["log_path"]),
            snapshots=bool(d["snapshots"]),
            interval=float(d["interval"]),
            module_hash=str(d["module_hash"]),
        )


@dataclass
class _Result:
    exit: Exit
    values: list[Any] | None = None
    snapshots: int = 0

    def to_json(self) -> dict[str, Any]:
        e = self.exit
        return {
            "event": "exit",
            "reason": e.reason,
            "exit_code": e.exit_code,
            "detail": e.detail,
            "finished": e.finished,
            "values": self.values,
            "snapshots": self.snapshots,
        }


def _engine(fuel: bool) -> Any:
    import wasmtime

    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    config.parallel_compilation = False
    return wasmtime.Engine(config)


def _read_module(path: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > _MAX_MODULE_BYTES:
            raise InvalidInput(f"{path}: module larger than 256 MiB")
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such WASM module") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None


def _compile(engine: Any, path: str, data: bytes) -> Any:
    import wasmtime

    try:
        if path.endswith(".wat"):
            return wasmtime.Module(engine, data.decode("utf-8"))
        return wasmtime.Module(engine, data)
    except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise InvalidInput(f"{path}: not a valid WASM module: {first}") from None


class _Session:
    """One instance of a module in a store: WASI set-up, snapshot, restore, the entry."""

    def __init__(self, job: _Job, engine: Any, module: Any, ctl: _Ctl) -> None:
        self.job, self.engine, self.module, self.ctl = job, engine, module, ctl
        self.snap = job.checkpoint_dir is not None and (
            job.snapshots or any(e.name == SNAPSHOT_EXPORT for e in module.exports)
        )
        self.snapshots = 0
        self.out: IO[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.store: Any = None
        self.exports: Any = None

    # output: the attempt's log, plus the cumulative output of a snapshot run
    def write(self, data: bytes) -> None:
        if self.log is not None:
            self.log.write(data)
        if self.out is not None:
            self.out.write(data)

    def open_output(self) -> None:
        self.log = open(self.job.log_path, "ab", buffering=0)  # noqa: SIM115
        if not self.snap:
            return
        assert self.job.checkpoint_dir is not None
        d = self.job.checkpoint_dir / SNAPSHOT_DIR
        d.mkdir(parents=True, exist_ok=True)
        self.out = open(output_file(self.job.checkpoint_dir), "ab+")  # noqa: SIM115

    def close(self) -> None:
        for f in (self.out, self.log):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self.store is not None:
            # Drop the store here: its WASI output callbacks must not be finalized by a
            # runtime thread after the interpreter has shut down (wasmtime aborts then).
            with contextlib.suppress(Exception):
                self.store.close()

    def instantiate(self) -> None:
        import wasmtime

        job, spec = self.job, self.job.spec
        store = wasmtime.Store(self.engine)
        self.store = store
        store.set_limits(memory_size=job.memory)
        store.set_epoch_deadline(1)
        if job.fuel is not None:
            store.set_fuel(job.fuel)
        wasi = wasmtime.WasiConfig()
        argv0 = Path(spec.wasm or "module").name
        wasi.argv = [*(spec.command or (argv0,)), *spec.args]
        env = dict(spec.env)
        env.update(
            FOGCTL_JOB_ID=spec.id,
            FOGCTL_RUN_ID=job.run_id,
            FOGCTL_WORK=WORK_DIR,
            FOGCTL_STOP_FILE=f"{WORK_DIR}/{STOP_FILE}",
        )
        wasi.preopen_dir(str(job.workdir), WORK_DIR)
        if job.checkpoint_dir is not None and spec.checkpoint is not None:
            job.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            wasi.preopen_dir(str(job.checkpoint_dir), spec.checkpoint.path)
            env["FOGCTL_CHECKPOINT_DIR"] = spec.checkpoint.path
            if spec.checkpoint.interval_seconds is not None:
                env["FOGCTL_CHECKPOINT_INTERVAL"] = f"{spec.checkpoint.interval_seconds:g}"
        wasi.env = sorted(env.items())
        wasi.stdout_custom = self.write
        wasi.stderr_custom = self.write
        store.set_wasi(wasi)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        instance = linker.instantiate(store, self.module)
        self.exports = instance.exports(store)

    # -- snapshot ---------------------------------------------------------------------

    def restore(self) -> None:
        """Load the snapshot into this fresh instance (or seed globals on a fresh start)."""
        import wasmtime

        assert self.job.checkpoint_dir is not None and self.out is not None
        path = snapshot_file(self.job.checkpoint_dir)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        if data is None:
            try:
                keep = int(_committed_file(self.job.checkpoint_dir).read_text())
            except (OSError, ValueError):
                keep = 0
            self.out.truncate(keep)
            self.out.seek(0, os.SEEK_END)
            self._seed_globals()
            return
        header, mems = decode_snapshot(data)
        if header.get("module") not in (None, self.job.module_hash):
            raise ValueError("the snapshot was taken of another module")
        self.snapshots = int(header.get("checkpoints", 0))
        self.out.truncate(int(header.get("output_len", 0)))
        self.out.seek(0, os.SEEK_END)
        store = self.store
        for name, blob in mems.items():
            mem = self.exports.get(name) if hasattr(self.exports, "get") else None
            if not isinstance(mem, wasmtime.Memory):
                raise ValueError(f"the snapshot names memory {name!r}, the module has none")
            need = (len(blob) + PAGE - 1) // PAGE - mem.size(store)
            if need > 0:
                mem.grow(store, need)
            mem.write(store, blob, 0)
        for name, value in header["globals"].items():
            glob = self.exports.get(name)
            if not isinstance(glob, wasmtime.Global) or not glob.type(store).mutable:
                raise ValueError(f"the snapshot names global {name!r}, the module has none")
            glob.set_value(store, value)

    def _seed_globals(self) -> None:
        import wasmtime

        for key, text in self.job.spec.env.items():
            if not key.startswith(GLOBAL_ENV_PREFIX):
                continue
            glob = self.exports.get(key.removeprefix(GLOBAL_ENV_PREFIX))
            if isinstance(glob, wasmtime.Global) and glob.type(self.store).mutable:
                try:
                    value: int | float = int(text)
                except ValueError:
                    value = float(text)
                glob.set_value(self.store, value)

    def save(self) -> None:
        import wasmtime

        from fogctl.state.atomic import write_atomic

        assert self.job.checkpoint_dir is not None and self.out is not None
        store = self.store
        mems: list[bytes] = []
        index: list[list[Any]] = []
        globals_: dict[str, Any] = {}
        for name, ext in self.exports.items():
            if isinstance(ext, wasmtime.Memory):
                data = bytes(ext.read(store, 0, ext.data_len(store)))
                mems.append(data)
                index.append([name, len(data)])
            elif isinstance(ext, wasmtime.Global) and ext.type(store).mutable:
                value = ext.value(store)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    globals_[name] = value
        self.out.flush()
        os.fsync(self.out.fileno())
        self.snapshots += 1
        header = {
            "version": 1,
            "module": self.job.module_hash,
            "memories": index,
            "globals": globals_,
            "output_len": self.out.tell(),
            "checkpoints": self.snapshots,
            "at": round(time.time(), 3),
        }
        write_atomic(
            snapshot_file(self.job.checkpoint_dir), encode_snapshot(header, mems), mode=0o600
        )

    def drop_snapshot(self, commit_output: bool) -> None:
        if not self.snap:
            return
        assert self.job.checkpoint_dir is not None and self.out is not None
        if commit_output:
            self.out.flush()
            _committed_file(self.job.checkpoint_dir).write_text(str(self.out.tell()))
        snapshot_file(self.job.checkpoint_dir).unlink(missing_ok=True)


def _execute(
    job: _Job, engine: Any, module: Any, ctl: _Ctl, on_event: Callable[[dict[str, Any]], None]
) -> _Result:
    """Run the module to its end (or its interruption); never raises."""
    import wasmtime

    s = _Session(job, engine, module, ctl)
    ticker_halt = threading.Event()
    try:
        try:
            s.open_output()
        except OSError as exc:
            return _Result(Exit("error", None, f"cannot open the log file: {exc.strerror}"))
        try:
            s.instantiate()
        except wasmtime.WasmtimeError as exc:
            text = str(exc)
            reason = "oom" if "memory" in text and "limit" in text.lower() else "error"
            return _Result(Exit(reason, None, _first_line(text), time.time()))
        if s.snap:
            try:
                s.restore()
            except (ValueError, wasmtime.WasmtimeError) as exc:
                # kept aside for a look, out of the way of a retry (which starts afresh)
                assert job.checkpoint_dir is not None
                bad = snapshot_file(job.checkpoint_dir)
                with contextlib.suppress(OSError):
                    bad.replace(bad.with_name(bad.name + ".bad"))
                msg = f"cannot resume from the snapshot: {_first_line(str(exc))}"
                return _Result(Exit("error", None, msg, time.time()))
        exports = s.exports
        entry = exports.get("_start")
        if not isinstance(entry, wasmtime.Func):
            entry = exports.get("run")
            if not isinstance(entry, wasmtime.Func) or entry.type(s.store).params:
                return _Result(
                    Exit("error", None, "module exports no _start (WASI command) nor run()")
                )
        on_event({"event": "started", "snapshots": s.snap})
        if s.snap and job.interval > 0:

            def tick() -> None:
                while not ticker_halt.wait(job.interval):
                    engine.increment_epoch()

            threading.Thread(target=tick, daemon=True, name="fogctl-wasm-tick").start()
        while True:
            s.store.set_epoch_deadline(1)
            try:
                if ctl.interrupted_for is not None:
                    raise _Interrupted
                values = entry(s.store)
            except (_Interrupted, wasmtime.Trap) as exc:
                if isinstance(exc, wasmtime.Trap) and exc.trap_code != wasmtime.TrapCode.INTERRUPT:
                    s.drop_snapshot(False)
                    return _Result(_trap(exc), None, s.snapshots)
                why = ctl.interrupted_for
                if s.snap and why in (None, "stopped"):
                    s.save()
                    on_event({"event": "snapshot", "n": s.snapshots})
                    if why is None:
                        continue  # a periodic snapshot: carry on in the same instance
                    detail = f"snapshot {s.snapshots} saved (memories and globals)"
                    return _Result(
                        Exit("checkpointed", CHECKPOINT_EXIT_CODE, detail, time.time()),
                        None,
                        s.snapshots,
                    )
                if why is None:
                    continue
                if why == "deadline":
                    s.drop_snapshot(False)
                detail = "deadline exceeded" if why == "deadline" else "stopped"
                return _Result(Exit(why, None, detail, time.time()), None, s.snapshots)
            except wasmtime.ExitTrap as exc:
                if exc.code == CHECKPOINT_EXIT_CODE:
                    s.drop_snapshot(True)  # the module's own checkpoint: start afresh
                elif exc.code != 0:
                    s.drop_snapshot(False)
                else:
                    s.drop_snapshot(True)
                return _Result(Exit.from_code(exc.code, finished=time.time()), None, s.snapshots)
            except wasmtime.WasmtimeError as exc:
                s.drop_snapshot(False)
                return _Result(Exit("error", None, _first_line(str(exc)), time.time()))
            s.drop_snapshot(True)
            return _Result(Exit.from_code(0, finished=time.time()), _values(values), s.snapshots)
    except Exception as exc:  # a bug or an OS error: report it as the run's failure
        return _Result(Exit("error", None, f"{type(exc).__name__}: {exc}", time.time()))
    finally:
        ticker_halt.set()
        s.close()


class _Interrupted(Exception):
    """A stop or deadline that arrived between calls of the entry."""


def _values(values: Any) -> list[Any]:
    if values is None:
        return []
    items = list(values) if isinstance(values, list | tuple) else [values]
    return [v if isinstance(v, int | float) and not isinstance(v, bool) else str(v) for v in items]


def _trap(exc: Any) -> Exit:
    import wasmtime

    now = time.time()
    code = exc.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return Exit("fuel", None, "fuel exhausted", now)
    text = str(exc)
    # "error while executing at wasm backtrace: ... Caused by: wasm trap: <what>"
    text = _first_line(text.rsplit("Caused by:", 1)[-1])
    if code == wasmtime.TrapCode.UNREACHABLE and "memory" in text.lower():
        return Exit("oom", None, text, now)
    return Exit("error", None, f"trap: {text}", now)


# -- the executor -------------------------------------------------------------------------


@dataclass
class _Run:
    job: _Job
    launch: Launch
    ctl: _Ctl | None = None  # thread isolation
    proc: subprocess.Popen[bytes] | None = None  # process isolation
    cap: CpuCap | None = None
    spawned: threading.Event = field(default_factory=threading.Event)
    spawn_error: BaseException | None = None
    result: _Result | None = None
    done: threading.Event = field(default_factory=threading.Event)
    timer: threading.Timer | None = None
    snapshotting: bool | None = None
    snapshots: int = 0
    stopping: bool = False
    cpu_seconds: float | None = None

    @property
    def log_path(self) -> Path:
        return self.job.log_path


class WasmExecutor(Executor):
    """WASI modules with wasmtime (the default that needs no daemon).

    ``isolation``: ``thread`` (in this process), ``process`` (a child process, so that
    a fractional CPU cap can be enforced and a crash of the module's runtime cannot take
    this process down) or ``auto`` (default: ``process`` for a launch capped below one
    core, else ``thread``; a module's single thread never uses more than one core).
    ``snapshots``: snapshot every module that has a checkpoint dir (else only those
    exporting ``fogctl:snapshot``), every ``snapshot_interval`` seconds and when stopped.
    ``cpu_cap_method``: ``auto`` (cgroup where possible, else throttling) or ``throttle``
    (default: the ``FOGCTL_WASM_CAP_METHOD`` environment variable, else ``auto``).
    """

    name = "wasm"

    def __init__(
        self,
        isolation: str = "auto",
        snapshots: bool = False,
        snapshot_interval: float = 60.0,
        cpu_cap_method: str | None = None,
    ) -> None:
        if isolation not in ("auto", "thread", "process"):
            raise InvalidInput(f"wasm executor: isolation {isolation!r}: auto, thread or process")
        method = cpu_cap_method or os.environ.get("FOGCTL_WASM_CAP_METHOD") or "auto"
        if method not in ("auto", "throttle"):
            raise InvalidInput(f"wasm executor: CPU cap method {method!r}: auto or throttle")
        self.isolation = isolation
        self.snapshots = snapshots
        self.snapshot_interval = snapshot_interval
        self.cpu_cap_method = method
        self._runs: dict[str, _Run] = {}
        self._compiled: dict[tuple[str, bool], bytes] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def available(self) -> ComponentStatus:
        try:
            import wasmtime  # noqa: F401
        except ImportError as exc:  # pragma: no cover - declared dependency
            return ComponentStatus(False, "wasmtime", str(exc))
        from importlib.metadata import version

        where = {
            "thread": "in-process",
            "process": "child process",
            "auto": "in-process, or a child process for a fractional CPU cap",
        }[self.isolation]
        return ComponentStatus(True, where, f"wasmtime {version('wasmtime')}")

    def accepts(self, spec: JobSpec) -> bool:
        return spec.wasm is not None

    # -- compile -----------------------------------------------------------------------

    def _module(self, engine: Any, path: str, data: bytes, digest: str, fuel: bool) -> Any:
        import wasmtime

        key = (digest, fuel)
        cached = self._compiled.get(key)
        if cached is not None:
            return wasmtime.Module.deserialize(engine, cached)
        module = _compile(engine, path, data)
        with self._lock:
            self._compiled[key] = bytes(module.serialize())
        return module

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, launch: Launch) -> Handle:
        spec = launch.spec
        if spec.wasm is None:
            raise InvalidInput(f"job {spec.id}: the wasm executor runs modules; it names an image")
        data = _read_module(spec.wasm)
        digest = hashlib.sha256(data).hexdigest()
        interval = self.snapshot_interval
        if spec.checkpoint is not None and spec.checkpoint.interval_seconds is not None:
            interval = spec.checkpoint.interval_seconds
        launch.workdir.mkdir(parents=True, exist_ok=True)
        for d in (launch.workdir, launch.checkpoint_dir):
            if d is not None:
                with contextlib.suppress(FileNotFoundError):
                    (d / STOP_FILE).unlink()
        job = _Job(
            spec=spec,
            run_id=launch.run_id,
            workdir=launch.workdir,
            checkpoint_dir=launch.checkpoint_dir,
            memory=launch.memory_cap,
            fuel=launch.fuel_cap,
            log_path=launch.workdir.parent / f"{launch.run_id}.log",
            snapshots=self.snapshots,
            interval=interval,
            module_hash=digest,
        )
        run = _Run(job=job, launch=launch)
        ref = f"wasm-{os.getpid()}-{next(self._ids)}"
        isolation = self.isolation
        if isolation == "auto":
            isolation = "process" if launch.cpu_cap < 1 else "thread"
        if isolation == "thread":
            engine = _engine(job.fuel is not None)
            module = self._module(engine, spec.wasm, data, digest, job.fuel is not None)
            run.ctl = _Ctl(engine)
            target: Callable[..., None] = self._run_thread
            args: tuple[Any, ...] = (run, engine, module)
        else:
            self._validate(spec.wasm, data)
            target, args = self._run_process, (run, ref)
        thread = threading.Thread(target=target, args=args, name=f"fogctl-{ref}", daemon=True)
        with self._lock:
            self._runs[ref] = run
        started = time.time()
        thread.start()
        if isolation == "process":
            run.spawned.wait(30)
            if run.spawn_error is not None:
                with self._lock:
                    self._runs.pop(ref, None)
                raise InvalidInput(
                    f"job {spec.id}: cannot start the WASM process: {run.spawn_error}"
                )
        elif launch.deadline is not None and run.ctl is not None:
            delay = max(0.0, launch.deadline - time.time())
            run.timer = threading.Timer(delay, run.ctl.interrupt, args=("deadline",))
            run.timer.daemon = True
            run.timer.start()
        return Handle(self.name, ref, launch.run_id, started, launch.deadline)

    @staticmethod
    def _validate(path: str, data: bytes) -> None:
        """Refuse a module that is not WASM here, before a child process is spent on it."""
        import wasmtime

        try:
            binary = wasmtime.wat2wasm(data.decode("utf-8")) if path.endswith(".wat") else data
            wasmtime.Module.validate(wasmtime.Engine(), binary)
        except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
            raise InvalidInput(f"{path}: not a valid WASM module: {first}") from None

    def _on_event(self, run: _Run, event: dict[str, Any]) -> None:
        if event.get("event") == "started":
            run.snapshotting = bool(event.get("snapshots"))
        elif event.get("event") == "snapshot":
            run.snapshots = int(event.get("n", run.snapshots))

    def _run_thread(self, run: _Run, engine: Any, module: Any) -> None:
        assert run.ctl is not None
        t0 = time.thread_time()
        try:
            run.result = _execute(
                run.job, engine, module, run.ctl, lambda e: self._on_event(run, e)
            )
            run.snapshots = run.result.snapshots
        finally:
            run.cpu_seconds = time.thread_time() - t0
            if run.timer is not None:
                run.timer.cancel()
            run.done.set()

    def _run_process(self, run: _Run, ref: str) -> None:
        """Spawn the child from this thread, which lives as long as the child (its
        parent-death signal follows the spawning thread), cap it, read its events."""
        job, launch = run.job, run.launch
        try:
            try:
                log = open(job.log_path, "ab")  # noqa: SIM115 - the child's stderr
            except OSError as exc:
                run.result = _Result(Exit("error", None, f"cannot open the log file: {exc}"))
                return
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "fogctl.jobs.executors.wasm",
                        "--run",
                        job.run_id,
                        "--workdir",
                        str(job.workdir),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=_child_env(),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                run.spawn_error = exc
                return
            finally:
                log.close()
            run.proc = proc
            params = {**job.to_json(), "ppid": os.getpid(), "deadline": launch.deadline}
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(OSError):
                proc.stdin.write(json.dumps(params).encode())
                proc.stdin.close()
            force = "throttle" if self.cpu_cap_method == "throttle" else ""
            run.cap = CpuCap(proc.pid, launch.cpu_cap, f"{ref}-{proc.pid}", force).start()
            run.spawned.set()
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                if event.get("event") == "exit":
                    run.result = _Result(
                        Exit(
                            str(event["reason"]),
                            event.get("exit_code"),
                            str(event.get("detail", "")),
                            event.get("finished"),
                        ),
                        event.get("values"),
                        int(event.get("snapshots", 0)),
                    )
                    run.snapshots = run.result.snapshots
                else:
                    self._on_event(run, event)
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            run.cpu_seconds = usage.ru_utime + usage.ru_stime
            if run.result is None:
                rc = proc.returncode
                why = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited {rc}"
                if run.stopping:
                    run.result = _Result(Exit("stopped", None, f"stopped ({why})", time.time()))
                else:
                    msg = f"the WASM process died ({why})"
                    run.result = _Result(Exit("lost", None, msg, time.time()))
        except Exception as exc:  # never leave a waiter hanging
            if run.result is None:
                run.result = _Result(Exit("error", None, f"{type(exc).__name__}: {exc}"))
        finally:
            if run.cap is not None:
                run.cap.close()
            run.spawned.set()
            run.done.set()

    def _get(self, handle: Handle) -> _Run:
        run = self._runs.get(handle.ref)
        if run is None:
            raise KeyError(handle.ref)
        return run

    def wait(self, handle: Handle, timeout: float | None = None) -> Exit | None:
        try:
            run = self._get(handle)
        except KeyError:
            return Exit("lost", None, "the process running this module is gone")
        if not run.done.wait(timeout):
            return None
        assert run.result is not None
        return run.result.exit

    def stop(self, handle: Handle, signal: str = "SIGTERM", grace: float = 10.0) -> None:
        """Ask the module to stop. A snapshot run is interrupted at once and saves its
        snapshot; a child process still there after ``grace`` seconds is killed (the
        attempt then resumes from the last periodic snapshot). Another run sees the
        stop file, then after ``grace`` seconds the epoch interruption; a child process
        still there 5 s later is killed."""
        try:
            run = self._get(handle)
        except KeyError:
            return
        if run.done.is_set():
            return
        run.stopping = True
        launch = run.launch
        for d in (launch.workdir, launch.checkpoint_dir):
            if d is not None and d.is_dir():
                with contextlib.suppress(OSError):
                    (d / STOP_FILE).write_text(signal + "\n")
        if run.cap is not None:
            run.cap.release()  # let it checkpoint at full speed
        if run.snapshotting is False and grace > 0 and run.done.wait(grace):
            return
        self._interrupt(run)
        # a snapshot takes milliseconds: the grace period bounds it; a trap after the
        # grace already spent is prompt unless the module sits in a host call
        bound = max(grace, 0.5) if run.snapshotting is not False else 5.0
        if run.done.wait(bound):
            return
        if run.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                run.proc.kill()
            run.done.wait(5.0)

    @staticmethod
    def _interrupt(run: _Run) -> None:
        if run.ctl is not None:
            run.ctl.interrupt("stopped")
        elif run.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                run.proc.send_signal(signal.SIGTERM)

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[bytes]:
        try:
            run = self._get(handle)
        except KeyError:
            return
        yield from _tail(run.log_path, run.done if follow else None)

    def remove(self, handle: Handle) -> None:
        with self._lock:
            run = self._runs.get(handle.ref)
            if run is not None and run.done.is_set():
                del self._runs[handle.ref]

    def log_path(self, handle: Handle) -> Path | None:
        run = self._runs.get(handle.ref)
        return run.log_path if run is not None else None

    # -- what callers may ask of a run besides its Exit --------------------------------

    @staticmethod
    def snapshot_file(checkpoint_dir: Path) -> Path:
        """Where runs with this checkpoint dir keep their snapshot."""
        return snapshot_file(checkpoint_dir)

    @staticmethod
    def snapshot_header(checkpoint_dir: Path) -> dict[str, Any] | None:
        """The header of the snapshot kept there (globals, checkpoints, output_len)."""
        return read_snapshot_header(snapshot_file(checkpoint_dir))

    @staticmethod
    def output_file(checkpoint_dir: Path) -> Path:
        """Every attempt's output, exactly once (snapshot runs)."""
        return output_file(checkpoint_dir)

    @staticmethod
    def clean_cgroups() -> None:
        """Remove empty CPU cgroups left by a process that crashed."""
        clean_cgroups()

    def returned(self, handle: Handle) -> list[Any] | None:
        """What the entry returned (``run``'s results; ``[]`` for ``_start``), once it
        completed; ``None`` before that or when it did not complete."""
        run = self._runs.get(handle.ref)
        if run is None or run.result is None or not run.result.exit.ok:
            return None
        return list(run.result.values or [])

    def stats(self, handle: Handle) -> RunStats:
        """Pid, CPU seconds, CPU cap method and snapshots of a run (live while it runs)."""
        run = self._get(handle)
        pid = run.proc.pid if run.proc is not None else None
        cpu = run.cpu_seconds
        if cpu is None and pid is not None:
            cpu = _cpu_seconds_of(pid)
        method = run.cap.method if run.cap is not None else "none"
        return RunStats(pid, cpu, method, run.snapshotting, run.snapshots)


def _child_env() -> dict[str, str]:
    """This environment, with the directory this fogctl is imported from first on
    PYTHONPATH, so the child imports the same fogctl (also from a bare checkout)."""
    import fogctl

    root = str(Path(fogctl.__file__).resolve().parents[1])
    env = dict(os.environ)
    if Path(root).name in ("site-packages", "dist-packages"):
        return env  # installed: found as it was here (never put it before the stdlib)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([root, *(p for p in paths if p != root)])
    return env


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:300]
    return "error"


def _tail(path: Path, done: threading.Event | None, poll: float = 0.05) -> Iterator[bytes]:
    """Yield a file's bytes; with ``done``, keep following it until ``done`` is set."""
    pos = 0
    while True:
        finished = done is None or done.is_set()
        try:
            with open(path, "rb") as fh:
                fh.seek(pos)
                while chunk := fh.read(65536):
                    pos += len(chunk)
                    yield chunk
        except FileNotFoundError:
            pass
        if finished:
            return
        time.sleep(poll)


# -- the child process (isolation="process") ---------------------------------------------


def _child_main(argv: list[str]) -> int:
    """Run one module as told on stdin (JSON); events as JSON lines on stdout.

    SIGTERM (or the parent's death) interrupts the module: a snapshot run saves its
    snapshot and ends ``checkpointed``, another ends ``stopped``.
    """
    del argv  # --run/--workdir only name the process (ps, pgrep)
    # SIGTERM/SIGINT go to a thread with sigwait: the main thread is inside wasm
    # (native code) where a Python signal handler would not run until the call returns.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the parent died -> checkpoint
    out = sys.stdout.buffer

    def emit(event: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            out.write(json.dumps(event).encode() + b"\n")
            out.flush()

    try:
        params = json.loads(sys.stdin.buffer.read())
        job = _Job.from_json(params)
        spec = job.spec
        assert spec.wasm is not None
        engine = _engine(job.fuel is not None)
        module = _compile(engine, spec.wasm, _read_module(spec.wasm))
    except Exception as exc:
        text = exc.message if hasattr(exc, "message") else f"{type(exc).__name__}: {exc}"
        emit(_Result(Exit("error", None, str(text), time.time())).to_json())
        return 0
    ctl = _Ctl(engine)
    if os.getppid() != params.get("ppid"):
        ctl.interrupt("stopped")

    def waiter() -> None:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        ctl.interrupt("stopped")

    threading.Thread(target=waiter, daemon=True, name="fogctl-wasm-signals").start()
    deadline = params.get("deadline")
    if isinstance(deadline, int | float):
        timer = threading.Timer(max(0.0, deadline - time.time()), ctl.interrupt, ("deadline",))
        timer.daemon = True
        timer.start()
    emit(_execute(job, engine, module, ctl, emit).to_json())
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
