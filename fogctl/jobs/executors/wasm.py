"""The embedded WASM executor: WASI preview 1 modules run in-process by wasmtime.

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
* stop: the stop file ``/work/.fogctl-stop`` (and ``<checkpoint>/.fogctl-stop``)
  appears; a module that polls for it can save a checkpoint and exit 85; after
  ``grace`` seconds the epoch interruption traps it (reason ``stopped``).

Compiled modules are cached in memory by content hash (``Module.serialize``), so the
second run of a module skips compilation.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput
from fogctl.jobs.executors.base import STOP_FILE, WORK_DIR, Executor, Exit, Handle, Launch
from fogctl.jobs.spec import JobSpec
from fogctl.records import ComponentStatus

__all__ = ["WasmExecutor"]

_MAX_MODULE_BYTES = 256 * 1024**2


@dataclass
class _Run:
    launch: Launch
    engine: Any
    log_path: Path
    thread: threading.Thread | None = None
    result: Exit | None = None
    done: threading.Event = field(default_factory=threading.Event)
    interrupted_for: str | None = None
    timer: threading.Timer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def interrupt(self, why: str) -> None:
        with self.lock:
            if self.interrupted_for is None:
                self.interrupted_for = why
        self.engine.increment_epoch()


class WasmExecutor(Executor):
    """WASI modules in-process with wasmtime (the default that needs no daemon)."""

    name = "wasm"

    def __init__(self) -> None:
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

        return ComponentStatus(True, "in-process", f"wasmtime {version('wasmtime')}")

    def accepts(self, spec: JobSpec) -> bool:
        return spec.wasm is not None

    # -- compile -----------------------------------------------------------------------

    def _module(self, engine: Any, path: str, fuel: bool) -> Any:
        import wasmtime

        try:
            size = os.path.getsize(path)
            if size > _MAX_MODULE_BYTES:
                raise InvalidInput(f"{path}: module larger than 256 MiB")
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise InvalidInput(f"{path}: no such WASM module") from None
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
        key = (hashlib.sha256(data).hexdigest(), fuel)
        cached = self._compiled.get(key)
        if cached is not None:
            return wasmtime.Module.deserialize(engine, cached)
        try:
            if path.endswith(".wat"):
                module = wasmtime.Module(engine, data.decode("utf-8"))
            else:
                module = wasmtime.Module(engine, data)
        except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
            raise InvalidInput(f"{path}: not a valid WASM module: {first}") from None
        with self._lock:
            self._compiled[key] = bytes(module.serialize())
        return module

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, launch: Launch) -> Handle:
        import wasmtime

        spec = launch.spec
        if spec.wasm is None:
            raise InvalidInput(f"job {spec.id}: the wasm executor runs modules; it names an image")
        fuel = launch.fuel_cap
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = fuel is not None
        config.parallel_compilation = False
        engine = wasmtime.Engine(config)
        module = self._module(engine, spec.wasm, fuel is not None)

        launch.workdir.mkdir(parents=True, exist_ok=True)
        for d in (launch.workdir, launch.checkpoint_dir):
            if d is not None:
                with contextlib.suppress(FileNotFoundError):
                    (d / STOP_FILE).unlink()
        log_path = launch.workdir.parent / f"{launch.run_id}.log"
        run = _Run(launch=launch, engine=engine, log_path=log_path)
        ref = f"wasm-{os.getpid()}-{next(self._ids)}"
        started = time.time()
        handle = Handle(self.name, ref, launch.run_id, started, launch.deadline)
        thread = threading.Thread(
            target=self._run, args=(run, engine, module, fuel), name=f"fogctl-{ref}", daemon=True
        )
        run.thread = thread
        with self._lock:
            self._runs[ref] = run
        if launch.deadline is not None:
            delay = max(0.0, launch.deadline - time.time())
            run.timer = threading.Timer(delay, run.interrupt, args=("deadline",))
            run.timer.daemon = True
            run.timer.start()
        thread.start()
        return handle

    def _run(self, run: _Run, engine: Any, module: Any, fuel: int | None) -> None:
        import wasmtime

        launch = run.launch
        spec = launch.spec
        try:
            log = open(run.log_path, "ab", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            run.result = Exit("error", None, f"cannot open the log file: {exc.strerror}")
            run.done.set()
            return
        store = None
        try:
            store = wasmtime.Store(engine)
            store.set_limits(memory_size=launch.memory_cap)
            store.set_epoch_deadline(1)
            if fuel is not None:
                store.set_fuel(fuel)
            wasi = wasmtime.WasiConfig()
            argv0 = Path(spec.wasm or "module").name
            wasi.argv = [*(spec.command or (argv0,)), *spec.args]
            env = dict(spec.env)
            env.update(
                FOGCTL_JOB_ID=spec.id,
                FOGCTL_RUN_ID=launch.run_id,
                FOGCTL_WORK=WORK_DIR,
                FOGCTL_STOP_FILE=f"{WORK_DIR}/{STOP_FILE}",
            )
            wasi.preopen_dir(str(launch.workdir), WORK_DIR)
            if launch.checkpoint_dir is not None and spec.checkpoint is not None:
                launch.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                wasi.preopen_dir(str(launch.checkpoint_dir), spec.checkpoint.path)
                env["FOGCTL_CHECKPOINT_DIR"] = spec.checkpoint.path
                if spec.checkpoint.interval_seconds is not None:
                    env["FOGCTL_CHECKPOINT_INTERVAL"] = f"{spec.checkpoint.interval_seconds:g}"
            wasi.env = sorted(env.items())

            def write(data: bytes) -> None:
                log.write(data)

            wasi.stdout_custom = write
            wasi.stderr_custom = write
            store.set_wasi(wasi)
            linker = wasmtime.Linker(engine)
            linker.define_wasi()
            try:
                instance = linker.instantiate(store, module)
            except wasmtime.WasmtimeError as exc:
                text = str(exc)
                reason = "oom" if "memory" in text and "limit" in text.lower() else "error"
                run.result = Exit(reason, None, _first_line(text), time.time())
                return
            exports = instance.exports(store)
            start = exports.get("_start")
            if not isinstance(start, wasmtime.Func):
                run.result = Exit("error", None, "module exports no _start (not a WASI command)")
                return
            try:
                start(store)
                run.result = Exit.from_code(0, finished=time.time())
            except wasmtime.ExitTrap as exc:
                run.result = Exit.from_code(exc.code, finished=time.time())
            except wasmtime.Trap as exc:
                run.result = self._trap(run, exc)
            except wasmtime.WasmtimeError as exc:
                run.result = Exit("error", None, _first_line(str(exc)), time.time())
        except Exception as exc:  # a bug or an OS error: report it as the run's failure
            run.result = Exit("error", None, f"{type(exc).__name__}: {exc}", time.time())
        finally:
            # Drop the store here: its WASI output callbacks must not be finalized by a
            # runtime thread after the interpreter has shut down (wasmtime aborts then).
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()
            log.close()
            if run.timer is not None:
                run.timer.cancel()
            run.done.set()

    @staticmethod
    def _trap(run: _Run, exc: Any) -> Exit:
        import wasmtime

        now = time.time()
        code = exc.trap_code
        if code == wasmtime.TrapCode.INTERRUPT:
            why = run.interrupted_for or "stopped"
            detail = "deadline exceeded" if why == "deadline" else "stopped"
            return Exit(why, None, detail, now)
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return Exit("fuel", None, "fuel exhausted", now)
        text = _first_line(str(exc))
        if code == wasmtime.TrapCode.UNREACHABLE and "memory" in text.lower():
            return Exit("oom", None, text, now)
        return Exit("error", None, f"trap: {text}", now)

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
        return run.result

    def stop(self, handle: Handle, signal: str = "SIGTERM", grace: float = 10.0) -> None:
        try:
            run = self._get(handle)
        except KeyError:
            return
        if run.done.is_set():
            return
        for d in (run.launch.workdir, run.launch.checkpoint_dir):
            if d is not None and d.is_dir():
                with contextlib.suppress(OSError):
                    (d / STOP_FILE).write_text(signal + "\n")
        if grace > 0 and run.done.wait(grace):
            return
        run.interrupt("stopped")
        run.done.wait(5.0)

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
