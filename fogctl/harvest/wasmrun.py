"""Checkpointing WASM runner (the child process a harvest cycle supervises).

wasmtime cannot resume a trapped call, so a checkpoint is the instance's *data*: every
exported memory and every exported mutable global, taken after an epoch interruption.
Resuming means a fresh instance of the same module whose memories and globals are
overwritten with the checkpoint, then the entry function is called again.

The contract for a checkpointable module (BOINC's "application checkpoint" in WASM):

* keep progress in exported mutable globals or in linear memory, not in locals;
* the entry function (``run``, or WASI ``_start``) continues from that state when
  called again (the call stack, including a C ``__stack_pointer``, starts afresh);
* every loop iteration leaves the state consistent at the loop header, where epoch
  interruption happens (wasmtime checks epochs at loop headers and function entries).

Protocol with the parent (``fogctl.harvest.cycle``): SIGTERM asks for a checkpoint and
exit with status 75; a checkpoint is also taken every ``--checkpoint-every`` seconds.
Files in ``--workdir``: ``checkpoint.bin`` (atomically replaced), ``stdout`` (WASI
output; truncated on resume to the length recorded in the checkpoint, so output after
the last checkpoint is never duplicated), ``result.json`` on completion, ``error.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_CHECKPOINTED = 75
APP_CHECKPOINT_EXIT = 85  # fogctl-job(5): "saved a checkpoint, run me again"
MAGIC = b"FOGCKPT1\n"
PAGE = 65536


def encode_checkpoint(header: dict[str, Any], memories: list[bytes]) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    return MAGIC + len(head).to_bytes(8, "big") + head + b"".join(memories)


def decode_checkpoint(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Parse a checkpoint; anything malformed raises ``ValueError`` (never a crash)."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise ValueError("not a fogctl WASM checkpoint")
    n = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "big")
    off = len(MAGIC) + 8
    if n > len(data) - off:
        raise ValueError("checkpoint header is truncated")
    try:
        header = json.loads(data[off : off + n])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("checkpoint header is not JSON") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise ValueError("unsupported checkpoint header")
    memories, globals_ = header.get("memories"), header.get("globals")
    if not isinstance(memories, list) or not isinstance(globals_, dict):
        raise ValueError("checkpoint header lacks memories/globals")
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
            raise ValueError("bad memory entry in checkpoint header")
        mems[entry[0]] = data[off : off + entry[1]]
        off += entry[1]
    if off != len(data):
        raise ValueError("checkpoint length does not match its header")
    for value in globals_.values():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError("bad global value in checkpoint header")
    return header, mems


def read_header(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            head = f.read(len(MAGIC) + 8)
            if not head.startswith(MAGIC):
                return None
            n = int.from_bytes(head[len(MAGIC) :], "big")
            return dict(json.loads(f.read(n)))
    except (OSError, ValueError):
        return None


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        import wasmtime

        self.w = wasmtime
        self.args = args
        self.workdir = Path(args.workdir)
        cfg = wasmtime.Config()
        cfg.epoch_interruption = True
        self.engine = wasmtime.Engine(cfg)
        self.stop = threading.Event()
        self.module = wasmtime.Module.from_file(self.engine, args.module)
        self.stdout = (self.workdir / "stdout").open("ab+")
        self.checkpoints = 0

    # -- instance with state ---------------------------------------------------------

    def instantiate(self, header: dict[str, Any] | None, mems: dict[str, bytes]) -> None:
        w = self.w
        self.store = w.Store(self.engine)
        if self.args.mem_limit:
            self.store.set_limits(memory_size=self.args.mem_limit)
        linker = w.Linker(self.engine)
        if any(i.module.startswith("wasi_snapshot") for i in self.module.imports):
            linker.define_wasi()
            wasi = w.WasiConfig()
            wasi.argv = [*(self.args.argv or [self.args.name]), *self.args.arg]
            wasi.env = [tuple(kv.split("=", 1)) for kv in self.args.env if "=" in kv]
            for spec in self.args.preopen:
                host, _, guest = spec.partition("=")
                wasi.preopen_dir(host, guest)
            wasi.stdout_custom = self._write_stdout
            wasi.inherit_stderr()
            self.store.set_wasi(wasi)
        self.instance = linker.instantiate(self.store, self.module)
        self.exports = self.instance.exports(self.store)
        if header is not None:
            for name, data in mems.items():
                mem = self.exports[name]
                need = (len(data) + PAGE - 1) // PAGE - mem.size(self.store)
                if need > 0:
                    mem.grow(self.store, need)
                mem.write(self.store, data, 0)
            for name, value in header["globals"].items():
                self.exports[name].set_value(self.store, value)
        else:
            for kv in self.args.set_global:
                name, _, value = kv.partition("=")
                ext = self.exports[name] if name in self.exports else None  # noqa: SIM401
                if isinstance(ext, w.Global) and ext.type(self.store).mutable:
                    ext.set_value(self.store, int(value))

    def _write_stdout(self, data: bytes) -> None:
        self.stdout.write(bytes(data))

    def snapshot(self) -> None:
        w = self.w
        mems: list[bytes] = []
        mem_index: list[list[Any]] = []
        globals_: dict[str, Any] = {}
        for name, ext in self.exports.items():
            if isinstance(ext, w.Memory):
                data = ext.read(self.store, 0, ext.data_len(self.store))
                mems.append(bytes(data))
                mem_index.append([name, len(data)])
            elif isinstance(ext, w.Global) and ext.type(self.store).mutable:
                globals_[name] = ext.value(self.store)
        self.stdout.flush()
        os.fsync(self.stdout.fileno())
        self.checkpoints += 1
        header = {
            "version": 1,
            "memories": mem_index,
            "globals": globals_,
            "stdout_len": self.stdout.tell(),
            "checkpoints": self.checkpoints,
        }
        from fogctl.state.atomic import write_atomic

        write_atomic(self.workdir / "checkpoint.bin", encode_checkpoint(header, mems), mode=0o600)

    # -- run ----------------------------------------------------------------------------

    def run(self) -> int:
        ckpt = self.workdir / "checkpoint.bin"
        header: dict[str, Any] | None = None
        mems: dict[str, bytes] = {}
        if ckpt.exists():
            header, mems = decode_checkpoint(ckpt.read_bytes())
            self.checkpoints = int(header.get("checkpoints", 0))
        if header is not None:
            keep = int(header["stdout_len"])
        else:
            try:
                keep = int((self.workdir / "stdout.committed").read_text())
            except (OSError, ValueError):
                keep = 0
        self.stdout.truncate(keep)
        self.stdout.seek(0, os.SEEK_END)
        self.instantiate(header, mems)
        entry = self.args.entry or ("_start" if "_start" in self.exports else "run")
        if entry not in self.exports:
            return self.fail(f"module exports no function {entry!r}")
        func = self.exports[entry]
        threading.Thread(target=self._ticker, daemon=True).start()
        while True:
            self.store.set_epoch_deadline(1)
            try:
                values = func(self.store)
            except self.w.ExitTrap as exc:
                if exc.code == APP_CHECKPOINT_EXIT:
                    # the module saved its own checkpoint (files) and asks to run again:
                    # start afresh next time, keeping the output it has written
                    self.stdout.flush()
                    (self.workdir / "stdout.committed").write_text(str(self.stdout.tell()))
                    (self.workdir / "checkpoint.bin").unlink(missing_ok=True)
                    return EXIT_CHECKPOINTED
                if exc.code != 0:
                    return self.fail(f"exit status {exc.code}")
                values = None
            except self.w.Trap as exc:
                if exc.trap_code != self.w.TrapCode.INTERRUPT:
                    return self.fail(f"trap: {exc.message}")
                self.snapshot()
                if self.stop.is_set():
                    return EXIT_CHECKPOINTED
                continue
            except self.w.WasmtimeError as exc:
                return self.fail(str(exc).splitlines()[0])
            self.stdout.flush()
            if values is None:
                vals: list[Any] = []
            elif isinstance(values, list | tuple):
                vals = list(values)
            else:
                vals = [values]
            result = {
                "values": vals,
                "stdout_len": self.stdout.tell(),
                "checkpoints": self.checkpoints,
            }
            from fogctl.state.atomic import write_atomic

            write_atomic(self.workdir / "result.json", json.dumps(result).encode())
            return EXIT_DONE

    def fail(self, message: str) -> int:
        (self.workdir / "error.txt").write_text(message + "\n")
        return EXIT_FAILED

    def _ticker(self) -> None:
        every = self.args.checkpoint_every
        while not self.stop.wait(every if every > 0 else None):
            self.engine.increment_epoch()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fogctl-harvest-wasmrun")
    p.add_argument("--module", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--entry", default=None)
    p.add_argument("--name", default="task")
    p.add_argument("--arg", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--set-global", action="append", default=[])
    p.add_argument("--preopen", action="append", default=[], help="HOST=GUEST directory")
    p.add_argument("--argv", action="append", default=[], help="argv words before --arg")
    p.add_argument("--mem-limit", type=int, default=0)
    p.add_argument("--checkpoint-every", type=float, default=60.0)
    args = p.parse_args(argv)
    # SIGTERM/SIGINT are taken by a thread with sigwait: the main thread is inside wasm
    # (native code) where a Python signal handler would not run until the call returns.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    runner = Runner(args)

    def waiter() -> None:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        runner.stop.set()
        runner.engine.increment_epoch()

    threading.Thread(target=waiter, daemon=True).start()
    try:
        return runner.run()
    except Exception as exc:  # a broken module or checkpoint: report, never a traceback
        return runner.fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
