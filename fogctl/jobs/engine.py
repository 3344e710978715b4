"""The job engine: submit, run, watch, cancel and reconcile jobs kept in the state DB.

Library API (each ``fogctl`` jobs command calls one of these):

* :func:`submit` — validate and record jobs (``pending``); idempotent by id.
* :func:`run_jobs` — drive jobs to a terminal state in this process (``--wait``),
  calling ``on_event`` with a :class:`JobRecord` on every state change.
* :func:`spawn_runner` — the same in a detached process (``fogctl submit`` without
  ``--wait``); it exits when its jobs are done.
* :func:`wait_for` — watch jobs until they end or a timeout passes (the jobs go on).
* :func:`list_jobs`, :func:`get_job`, :func:`cancel`, :func:`watch`, :func:`logs`.
* :func:`reconcile` — make the DB tell the truth after fogctl was killed: containers
  are found by their labels and their real end recorded; attempts whose runner died
  are marked ``lost``.

Per-job files live in ``$FOGCTL_HOME/jobs/<id>/``: ``work/`` (mounted at /work, fresh
per attempt), ``checkpoint/`` (persistent, mounted at ``checkpoint.path``) and
``<run>.log`` for in-process executors. Logs and outputs end up as blobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fogctl.errors import FogError, InvalidInput, OperationFailed, ServiceUnavailable, StateError
from fogctl.jobs import lifecycle as lc
from fogctl.jobs.executors import executor_name_for, get_executor
from fogctl.jobs.executors.base import (
    LABEL_RUN,
    LABEL_STATE,
    Executor,
    Exit,
    Handle,
    Launch,
)
from fogctl.jobs.records import JobRecord
from fogctl.jobs.spec import GROUP_LABEL, JobSpec, expand_completions, parse_spec
from fogctl.state import State

__all__ = [
    "SCHEMA",
    "cancel",
    "get_job",
    "list_jobs",
    "logs",
    "migrate",
    "preempt",
    "reconcile",
    "run_jobs",
    "spawn_runner",
    "submit",
    "wait_for",
    "watch",
]

MAX_LOG_BYTES = 16 * 1024**2
CANCEL = 1
PREEMPT = 2
DEFAULT_BACKOFF_BASE = 10.0

SCHEMA: list[str] = [
    """
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        state       TEXT NOT NULL,
        spec        TEXT NOT NULL,
        executor    TEXT NOT NULL,
        node        TEXT,
        priority    INTEGER NOT NULL DEFAULT 500,
        attempt     INTEGER NOT NULL DEFAULT 0,
        failures    INTEGER NOT NULL DEFAULT 0,
        ref         TEXT,
        run_id      TEXT,
        log_path    TEXT,
        reason      TEXT,
        exit_code   INTEGER,
        detail      TEXT,
        created     REAL NOT NULL,
        updated     REAL NOT NULL,
        started     REAL,
        finished    REAL,
        retry_at    REAL,
        logs        TEXT,
        outputs     TEXT,
        owner_pid   INTEGER,
        owner_start TEXT,
        cancel      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE job_events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        job     TEXT NOT NULL,
        state   TEXT NOT NULL,
        at      REAL NOT NULL,
        reason  TEXT,
        detail  TEXT
    );
    CREATE INDEX job_events_job ON job_events(job, seq);
    """
]


def migrate(state: State) -> None:
    state.db.migrate("jobs", SCHEMA)


# -- helpers ---------------------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record(row: Any, *, with_spec: bool = False) -> JobRecord:
    return JobRecord(
        id=row["id"],
        state=row["state"],
        executor=row["executor"],
        node=row["node"],
        attempt=row["attempt"],
        reason=row["reason"],
        exit_code=row["exit_code"],
        detail=row["detail"],
        created=_iso(row["created"]),
        started=_iso(row["started"]),
        finished=_iso(row["finished"]),
        retry_at=_iso(row["retry_at"]) if row["state"] == lc.RETRYING else None,
        ref=row["ref"],
        logs=row["logs"],
        outputs=json.loads(row["outputs"]) if row["outputs"] else None,
        spec=json.loads(row["spec"]) if with_spec else None,
    )


def _proc_start(pid: int) -> str | None:
    """A process's start time (from /proc), to tell a live owner from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


_MY_START = _proc_start(os.getpid())


def _owner_alive(pid: int | None, start: str | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid() and start == _MY_START:
        return True
    now = _proc_start(pid)
    if now is None:
        return False
    return start is None or now == start


def _row(state: State, job_id: str) -> Any:
    rows = state.db.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
    return rows[0] if rows else None


def _transition(
    conn: Any,
    row: Any,
    new: str,
    *,
    now: float,
    reason: str | None = None,
    detail: str | None = None,
    **fields: Any,
) -> None:
    lc.check_transition(row["id"], row["state"], new)
    sets = {"state": new, "updated": now, **fields}
    if reason is not None:
        sets["reason"] = reason
    if detail is not None:
        sets["detail"] = detail
    cols = ", ".join(f"{k} = ?" for k in sets)
    conn.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*sets.values(), row["id"]))
    conn.execute(
        "INSERT INTO job_events(job, state, at, reason, detail) VALUES (?, ?, ?, ?, ?)",
        (row["id"], new, now, reason, detail),
    )


_GROUP_PATH = f'$.metadata.labels."{GROUP_LABEL}"'


def _group_rows(state: State, group: str) -> list[Any]:
    """The jobs of an indexed job (``completions > 1``) named ``group``."""
    return state.db.query(
        "SELECT * FROM jobs WHERE json_extract(spec, ?) = ?", (_GROUP_PATH, group)
    )


def job_dir(state: State, job_id: str) -> Path:
    return state.subdir("jobs") / job_id


def _backoff_base(state: State) -> float:
    value = state.config.get("jobs.backoff_base", DEFAULT_BACKOFF_BASE)
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        raise InvalidInput(f"jobs.backoff_base: not a number: {value!r}") from None


def default_concurrency(state: State) -> int:
    value = state.config.get("jobs.concurrency", os.cpu_count() or 1)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"jobs.concurrency: not an integer: {value!r}") from None
    if n < 1:
        raise InvalidInput("jobs.concurrency: must be at least 1")
    return n


# -- submit ----------------------------------------------------------------------------


def check_runnable(specs: Iterable[JobSpec], override: str | None = None) -> None:
    """Refuse before anything runs: unknown executors, missing inputs or modules,
    an unreachable engine (exit 3 naming its socket)."""
    checked: dict[str, Executor] = {}
    for spec in specs:
        name = executor_name_for(spec, override)
        ex = checked.get(name)
        if ex is None:
            ex = get_executor(name)
            status = ex.available()
            if not status.reachable:
                raise ServiceUnavailable(
                    f"{name}: cannot reach {status.endpoint}: {status.detail or 'unreachable'}"
                    f" (needed by job {spec.id})"
                )
            checked[name] = ex
        if not ex.accepts(spec):
            what = "a WASM module" if spec.wasm else "an image"
            raise InvalidInput(f"job {spec.id}: executor {name} cannot run {what}")
        if spec.wasm is not None and not Path(spec.wasm).is_file():
            raise InvalidInput(f"job {spec.id}: field 'wasm': {spec.wasm}: no such file")
        for i, item in enumerate(spec.inputs):
            if not Path(item.source).is_file():
                raise InvalidInput(
                    f"job {spec.id}: field 'inputs[{i}].source': {item.source}: no such file"
                )


def submit(
    state: State,
    specs: list[JobSpec],
    *,
    executor: str | None = None,
    retry: bool = False,
    now: float | None = None,
) -> list[JobRecord]:
    """Record ``specs`` as ``pending`` jobs. A job id already known with the same spec is
    not run again (its record is returned); with a different spec it is refused unless
    it ended and ``retry`` is set. With ``retry``, a failed/cancelled/deadline-exceeded
    job goes back to ``pending`` (its checkpoint is kept)."""
    migrate(state)
    specs = [child for spec in specs for child in expand_completions(spec)]
    check_runnable(specs, executor)
    now = time.time() if now is None else now
    out: list[JobRecord] = []
    with state.db.transaction() as conn:
        for spec in specs:
            canon = json.dumps(spec.raw, sort_keys=True, separators=(",", ":"))
            name = executor_name_for(spec, executor)
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (spec.id,)).fetchone()
            if row is not None:
                same = row["spec"] == canon
                if row["state"] in (lc.FAILED, lc.CANCELLED, lc.DEADLINE) and retry:
                    _transition(
                        conn,
                        row,
                        lc.PENDING,
                        now=now,
                        reason="resubmitted",
                        detail="",
                        spec=canon,
                        executor=name,
                        node=spec.node,
                        failures=0,
                        exit_code=None,
                        finished=None,
                        started=None,
                        retry_at=None,
                        cancel=0,
                        owner_pid=None,
                        owner_start=None,
                    )
                elif not same:
                    raise InvalidInput(
                        f"job {spec.id} already exists ({row['state']}) with a different spec;"
                        " choose another metadata.name"
                        + ("" if row["state"] in lc.ACTIVE else " or resubmit with --retry")
                    )
            else:
                conn.execute(
                    "INSERT INTO jobs(id, state, spec, executor, node, priority, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (spec.id, lc.PENDING, canon, name, spec.node, spec.priority, now, now),
                )
                conn.execute(
                    "INSERT INTO job_events(job, state, at, reason, detail) VALUES (?,?,?,?,?)",
                    (spec.id, lc.PENDING, now, "submitted", None),
                )
            out.append(
                _record(conn.execute("SELECT * FROM jobs WHERE id = ?", (spec.id,)).fetchone())
            )
    victims = sorted({v for spec in specs for v in spec.preempts} - {s.id for s in specs})
    if victims:
        preempt(state, victims)
    return out


def preempt(state: State, ids: list[str]) -> list[str]:
    """Evict running jobs to make room (an assignment's ``preempts``): each gets its
    checkpoint signal and grace period, then goes back to ``retrying`` (not counted as
    a failure) and resumes from its checkpoint after one backoff base. Jobs that are
    not running are left alone. Returns the ids asked to yield."""
    migrate(state)
    asked: list[str] = []
    with state.db.transaction() as conn:
        for job_id in ids:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] != lc.RUNNING or row["cancel"]:
                continue
            conn.execute("UPDATE jobs SET cancel = ? WHERE id = ?", (PREEMPT, job_id))
            asked.append(job_id)
    return asked


# -- the runner ------------------------------------------------------------------------


class _Attempt:
    def __init__(self, job_id: str, executor: Executor, launch: Launch | None) -> None:
        self.job_id = job_id
        self.executor = executor
        self.launch = launch
        self.handle: Handle | None = None
        self.stopping = False


class Runner:
    """Drives a set of jobs to terminal states. Only this thread touches the DB;
    one worker thread per running attempt blocks on the executor."""

    def __init__(
        self,
        state: State,
        ids: list[str],
        *,
        concurrency: int | None = None,
        on_event: Callable[[JobRecord], None] | None = None,
        poll: float = 0.1,
    ) -> None:
        migrate(state)
        self.state = state
        self.ids = list(dict.fromkeys(ids))
        self.concurrency = concurrency or default_concurrency(state)
        self.on_event = on_event or (lambda rec: None)
        self.poll = poll
        self.base = _backoff_base(state)
        self.events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.active: dict[str, _Attempt] = {}
        self.last_seen: dict[str, str] = {}
        self.pid = os.getpid()
        self.start = _MY_START

    # DB helpers
    def _rows(self) -> dict[str, Any]:
        marks = ",".join("?" * len(self.ids))
        rows = self.state.db.query(
            f"SELECT *, json_extract(spec, ?) AS grp FROM jobs WHERE id IN ({marks})",
            [_GROUP_PATH, *self.ids],
        )
        return {r["id"]: r for r in rows}

    def _emit(self, job_id: str) -> None:
        row = _row(self.state, job_id)
        if row is not None and self.last_seen.get(job_id) != row["state"]:
            self.last_seen[job_id] = row["state"]
            self.on_event(_record(row))

    def _move(self, job_id: str, new: str, *, at: float | None = None, **kw: Any) -> bool:
        now = time.time() if at is None else at
        with self.state.db.transaction() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] == new:
                return False
            if new not in lc.TRANSITIONS.get(row["state"], frozenset()):
                return False
            _transition(conn, row, new, now=now, **kw)
        self._emit(job_id)
        return True

    def _claim(self) -> None:
        """Own every active job of ours whose owner is gone (or that has none)."""
        with self.state.db.transaction() as conn:
            for job_id in self.ids:
                row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None or row["state"] not in lc.ACTIVE:
                    continue
                if row["owner_pid"] is not None and _owner_alive(
                    row["owner_pid"], row["owner_start"]
                ):
                    continue
                conn.execute(
                    "UPDATE jobs SET owner_pid = ?, owner_start = ? WHERE id = ?",
                    (self.pid, self.start, job_id),
                )

    def _mine(self, row: Any) -> bool:
        return bool(row["owner_pid"] == self.pid and row["owner_start"] == self.start)

    # main loop
    def run(self) -> list[JobRecord]:
        unknown = [i for i in self.ids if _row(self.state, i) is None]
        if unknown:
            raise InvalidInput(f"no such job: {', '.join(unknown)}")
        for job_id in self.ids:
            self._emit(job_id)
        self._claim()
        self._adopt()
        last_claim = time.monotonic()
        try:
            while True:
                rows = self._rows()
                self._cancel_requested(rows)
                if time.monotonic() - last_claim > 1.0:
                    self._claim()
                    self._adopt()
                    last_claim = time.monotonic()
                    rows = self._rows()
                for job_id, row in rows.items():
                    if self.last_seen.get(job_id) != row["state"]:
                        self._emit(job_id)  # changed by another process (cancel, runner)
                self._start_ready(rows)
                rows = self._rows()
                if not self.active and all(r["state"] in lc.TERMINAL for r in rows.values()):
                    break
                self._drain(self.poll)
        except BaseException:
            self._abandon()
            raise
        return [_record(r) for r in self._rows().values()]

    def _abandon(self) -> None:
        """Interrupted: stop in-process attempts (they cannot outlive us); leave
        containers running (a later ``jobs wait`` adopts them)."""
        for att in list(self.active.values()):
            if att.handle is not None and att.executor.name == "wasm":
                with contextlib.suppress(Exception):
                    att.executor.stop(att.handle, grace=0)
        with contextlib.suppress(Exception), self.state.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET owner_pid = NULL, owner_start = NULL "
                "WHERE owner_pid = ? AND owner_start IS ?",
                (self.pid, self.start),
            )

    def _cancel_requested(self, rows: dict[str, Any]) -> None:
        for job_id, row in rows.items():
            if not row["cancel"]:
                continue
            att = self.active.get(job_id)
            if att is None:
                if row["cancel"] == PREEMPT:  # nothing running to evict
                    with self.state.db.transaction() as conn:
                        conn.execute("UPDATE jobs SET cancel = 0 WHERE id = ?", (job_id,))
                elif row["state"] in (lc.PENDING, lc.RETRYING) and self._mine(row):
                    self._move(job_id, lc.CANCELLED, reason="cancelled", detail="cancelled")
                continue
            if att.handle is not None and not att.stopping:
                att.stopping = True
                spec = parse_spec(json.loads(row["spec"]))
                sig = spec.checkpoint.signal if spec.checkpoint else "SIGTERM"
                grace = spec.checkpoint.grace_seconds if spec.checkpoint else 2.0
                handle = att.handle
                threading.Thread(
                    target=_quiet, args=(att.executor.stop, handle, sig, grace), daemon=True
                ).start()

    def _deps_ready(self, spec: JobSpec) -> tuple[bool, str | None]:
        for dep, typ in spec.depends_on:
            row = _row(self.state, dep)
            if row is not None:
                states = [row["state"]]
            else:
                states = [r["state"] for r in _group_rows(self.state, dep)]
                if not states:
                    return False, f"depends on unknown job {dep}"
            if any(st not in lc.TERMINAL for st in states):
                return False, None
            ok = all(st == lc.SUCCEEDED for st in states)
            st = lc.SUCCEEDED if ok else next(x for x in states if x != lc.SUCCEEDED)
            if (typ == "afterok" and not ok) or (typ == "afternotok" and ok):
                return False, f"dependency {dep} ended {st} ({typ})"
        return True, None

    def _start_ready(self, rows: dict[str, Any]) -> None:
        now = time.time()
        ready = sorted(
            (r for r in rows.values() if r["state"] in (lc.PENDING, lc.RETRYING) and self._mine(r)),
            key=lambda r: (-r["priority"], r["created"], r["id"]),
        )
        for row in ready:
            if len(self.active) >= self.concurrency:
                return
            if row["id"] in self.active or row["cancel"]:
                continue
            group = row["grp"]
            if group is not None:
                limit = json.loads(row["spec"]).get("parallelism", 1)
                running = sum(
                    1 for j in self.active if rows.get(j) is not None and rows[j]["grp"] == group
                )
                if running >= limit:
                    continue
            if row["state"] == lc.RETRYING and (row["retry_at"] or 0) > now:
                continue
            spec = parse_spec(json.loads(row["spec"]), f"job {row['id']}").with_node(row["node"])
            ok, why = self._deps_ready(spec)
            if why is not None:
                self._move(row["id"], lc.FAILED, reason="dependency", detail=why, finished=now)
                continue
            if not ok:
                continue
            if (
                spec.deadline_seconds is not None
                and row["started"] is not None
                and now >= row["started"] + spec.deadline_seconds
            ):
                self._move(
                    row["id"],
                    lc.DEADLINE,
                    reason="deadline",
                    detail="activeDeadlineSeconds passed before a retry",
                    finished=now,
                )
                continue
            self._launch(row, spec, now)

    def _launch(self, row: Any, spec: JobSpec, now: float) -> None:
        job_id = row["id"]
        attempt_no = row["attempt"] + 1
        run_id = f"{job_id}-{attempt_no}"
        base = job_dir(self.state, job_id)
        work = base / "work"
        try:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True, exist_ok=True)
            os.chmod(work, 0o777)
            for item in spec.inputs:
                dest = work / item.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item.source, dest)
            ckpt = None
            if spec.checkpoint is not None:
                ckpt = base / "checkpoint"
                ckpt.mkdir(parents=True, exist_ok=True)
                os.chmod(ckpt, 0o777)
        except OSError as exc:
            self._move(
                job_id, lc.RUNNING, attempt=attempt_no, run_id=run_id, started=row["started"] or now
            )
            self._finish_attempt(job_id, Exit("error", None, f"cannot prepare the work dir: {exc}"))
            return
        started = row["started"] or now
        deadline = started + spec.deadline_seconds if spec.deadline_seconds is not None else None
        launch = Launch(
            spec=spec,
            run_id=run_id,
            workdir=work,
            checkpoint_dir=ckpt,
            deadline=deadline,
            labels={LABEL_STATE: str(self.state.root)},
        )
        executor = get_executor(row["executor"])
        att = _Attempt(job_id, executor, launch)
        self.active[job_id] = att
        self._move(
            job_id,
            lc.RUNNING,
            attempt=attempt_no,
            run_id=run_id,
            started=started,
            ref=None,
            retry_at=None,
            log_path=str(base / f"{run_id}.log") if executor.name == "wasm" else None,
            reason="started",
            detail="",
        )
        threading.Thread(target=self._worker, args=(att,), daemon=True).start()

    def _adopt(self) -> None:
        """Attach to running attempts of ours whose runner died (containers survive)."""
        for job_id, row in self._rows().items():
            if job_id in self.active or row["state"] != lc.RUNNING or not self._mine(row):
                continue
            executor = get_executor(row["executor"])
            spec = parse_spec(json.loads(row["spec"]))
            deadline = (
                row["started"] + spec.deadline_seconds
                if spec.deadline_seconds is not None and row["started"] is not None
                else None
            )
            att = _Attempt(job_id, executor, None)
            ref = row["ref"] or _find_by_label(self.state, executor, row)
            if ref is None or executor.name == "wasm":
                self.active[job_id] = att
                self.events.put(("ended", job_id, Exit("lost", None, "its runner exited")))
                continue
            att.handle = Handle(executor.name, ref, row["run_id"], row["started"], deadline)
            self.active[job_id] = att
            threading.Thread(target=self._worker, args=(att,), daemon=True).start()

    def _worker(self, att: _Attempt) -> None:
        ex = att.executor
        try:
            if att.handle is None:
                assert att.launch is not None
                try:
                    att.handle = ex.start(att.launch)
                except ServiceUnavailable as exc:
                    self.events.put(("ended", att.job_id, Exit("unavailable", None, exc.message)))
                    return
                except FogError as exc:
                    self.events.put(("ended", att.job_id, Exit("rejected", None, exc.message)))
                    return
                self.events.put(("started", att.job_id, att.handle))
            result = ex.wait(att.handle)
            if result is None:  # pragma: no cover - wait without timeout always ends
                result = Exit("error", None, "wait returned early")
            if att.stopping and result.reason in ("exit-code", "error"):
                result = Exit("stopped", result.exit_code, "stopped", result.finished)
            data = bytearray()
            with contextlib.suppress(Exception):
                for chunk in ex.logs(att.handle, follow=False):
                    if len(data) < MAX_LOG_BYTES:
                        data += chunk[: MAX_LOG_BYTES - len(data)]
            with contextlib.suppress(Exception):
                ex.remove(att.handle)
            self.events.put(("ended", att.job_id, (result, bytes(data))))
        except Exception as exc:  # report, never lose the job
            self.events.put(
                ("ended", att.job_id, Exit("error", None, f"{type(exc).__name__}: {exc}"))
            )

    def _drain(self, timeout: float) -> None:
        try:
            what, job_id, payload = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if what == "started":
                with self.state.db.transaction() as conn:
                    conn.execute("UPDATE jobs SET ref = ? WHERE id = ?", (payload.ref, job_id))
            else:
                if isinstance(payload, tuple):
                    self._finish_attempt(job_id, payload[0], payload[1])
                else:
                    self._finish_attempt(job_id, payload, None)
            try:
                what, job_id, payload = self.events.get_nowait()
            except queue.Empty:
                return

    def _finish_attempt(self, job_id: str, result: Exit, log: bytes | None = None) -> None:
        att = self.active.pop(job_id, None)
        row = _row(self.state, job_id)
        if row is None:
            return
        spec = parse_spec(json.loads(row["spec"]))
        now = time.time()
        blobs = self.state.blobs
        digest = row["logs"]
        if log is None and row["log_path"]:
            with contextlib.suppress(OSError):
                log = Path(row["log_path"]).read_bytes()[:MAX_LOG_BYTES]
        if log is not None:
            digest = blobs.put(log)
        outputs = _collect_outputs(blobs, job_dir(self.state, job_id) / "work", spec)
        if row["cancel"] == PREEMPT and result.reason not in ("completed", "deadline"):
            result = Exit(
                "preempted", result.exit_code, "preempted by an assignment", result.finished
            )
        elif row["cancel"] and result.reason not in ("completed",):
            result = Exit("stopped", result.exit_code, "cancelled", result.finished)
        decision = lc.decide(
            result, failures=row["failures"], backoff_limit=spec.backoff_limit, base=self.base
        )
        fields: dict[str, Any] = {
            "cancel": 0 if row["cancel"] == PREEMPT else row["cancel"],
            "failures": decision.failures,
            "exit_code": result.exit_code,
            "logs": digest,
            "outputs": json.dumps(outputs) if outputs else row["outputs"],
        }
        if decision.state == lc.RETRYING:
            fields["retry_at"] = now + decision.delay
        else:
            fields["finished"] = now
        if row["state"] != lc.RUNNING:
            return
        self._move(
            job_id, decision.state, at=now, reason=result.reason, detail=result.detail, **fields
        )
        del att


def _quiet(fn: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(Exception):
        fn(*args)


def _collect_outputs(blobs: Any, work: Path, spec: JobSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    for rel in spec.outputs:
        p = work / rel
        try:
            real = p.resolve()
            if not real.is_relative_to(work.resolve()):
                continue  # a symlink planted by the job pointing outside its work dir
            if real.is_file():
                out[rel] = blobs.put_file(real)
            elif real.is_dir():
                out[rel] = blobs.put(_tar_dir(real))
        except OSError:
            continue
    return out


def _tar_dir(path: Path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(path.rglob("*")):
            if f.is_file() and not f.is_symlink():
                tar.add(f, arcname=str(f.relative_to(path)))
    return buf.getvalue()


def run_jobs(
    state: State,
    ids: list[str],
    *,
    concurrency: int | None = None,
    on_event: Callable[[JobRecord], None] | None = None,
) -> list[JobRecord]:
    """Run (or adopt, or watch) ``ids`` until every one is terminal; final records."""
    return Runner(state, ids, concurrency=concurrency, on_event=on_event).run()


def spawn_runner(state: State, ids: list[str], *, concurrency: int | None = None) -> int:
    """Start a detached runner process for ``ids``; returns its pid. It logs to
    ``$FOGCTL_HOME/jobs/runner.log`` and exits when its jobs are terminal."""
    log_dir = state.subdir("jobs")
    env = dict(os.environ, FOGCTL_HOME=str(state.root))
    args = [sys.executable, "-m", "fogctl.jobs.runner"]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    with open(log_dir / "runner.log", "ab") as log:
        proc = subprocess.Popen(
            [*args, *ids],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


# -- queries and commands --------------------------------------------------------------


def list_jobs(
    state: State, *, states: Iterable[str] | None = None, do_reconcile: bool = True
) -> list[JobRecord]:
    migrate(state)
    if do_reconcile:
        reconcile(state)
    wanted = set(states) if states else None
    rows = state.db.query("SELECT * FROM jobs ORDER BY created, rowid")
    return [_record(r) for r in rows if wanted is None or r["state"] in wanted]


def get_job(state: State, job_id: str, *, with_spec: bool = True) -> JobRecord:
    migrate(state)
    reconcile(state, [job_id])
    row = _row(state, job_id)
    if row is None:
        raise InvalidInput(f"no such job: {job_id}")
    return _record(row, with_spec=with_spec)


def events(state: State, job_id: str) -> list[dict[str, Any]]:
    migrate(state)
    return [
        {
            "job": r["job"],
            "state": r["state"],
            "at": _iso(r["at"]),
            "reason": r["reason"],
            "detail": r["detail"],
        }
        for r in state.db.query("SELECT * FROM job_events WHERE job = ? ORDER BY seq", (job_id,))
    ]


def cancel(state: State, ids: list[str]) -> list[JobRecord]:
    """Cancel jobs: pending ones at once; running ones are stopped (signal, grace, kill)
    by their runner, or here when their runner is gone."""
    migrate(state)
    now = time.time()
    orphans: list[Any] = []
    with state.db.transaction() as conn:
        for job_id in ids:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise InvalidInput(f"no such job: {job_id}")
            if row["state"] in lc.TERMINAL:
                continue
            conn.execute(
                "UPDATE jobs SET cancel = ?, updated = ? WHERE id = ?", (CANCEL, now, job_id)
            )
            alive = _owner_alive(row["owner_pid"], row["owner_start"])
            if not alive:
                if row["state"] == lc.RUNNING and row["ref"]:
                    orphans.append(row)
                else:
                    _transition(
                        conn,
                        row,
                        lc.CANCELLED,
                        now=now,
                        reason="cancelled",
                        detail="cancelled",
                        finished=now,
                    )
    for row in orphans:
        with contextlib.suppress(FogError):
            ex = get_executor(row["executor"])
            handle = Handle(ex.name, row["ref"], row["run_id"], row["started"] or now)
            ex.stop(handle, grace=2.0)
    reconcile(state, ids)
    return [_record(_row(state, i)) for i in ids]


def reconcile(state: State, ids: list[str] | None = None) -> None:
    """Make running jobs whose runner is gone tell the truth (from the engine's labels)."""
    migrate(state)
    rows = state.db.query("SELECT * FROM jobs WHERE state IN ('running', 'pending', 'retrying')")
    for row in rows:
        if ids is not None and row["id"] not in ids:
            continue
        if _owner_alive(row["owner_pid"], row["owner_start"]):
            continue
        if row["state"] != lc.RUNNING:
            if row["cancel"] == CANCEL:
                _force(state, row, lc.CANCELLED, Exit("stopped", None, "cancelled"))
            continue
        try:
            ex = get_executor(row["executor"])
        except FogError:
            continue
        ref = row["ref"] or _find_by_label(state, ex, row)
        if ref is None or ex.name == "wasm":
            _force(state, row, None, Exit("lost", None, "its runner exited during the attempt"))
            continue
        spec = parse_spec(json.loads(row["spec"]))
        deadline = (
            row["started"] + spec.deadline_seconds
            if spec.deadline_seconds is not None and row["started"]
            else None
        )
        handle = Handle(ex.name, ref, row["run_id"], row["started"] or 0.0, deadline)
        try:
            result = ex.wait(handle, timeout=0)
        except FogError:
            continue  # engine unreachable: nothing new can be learnt
        if result is None:
            continue  # still running: the truth is "running"
        log = b""
        with contextlib.suppress(Exception):
            log = b"".join(ex.logs(handle))[:MAX_LOG_BYTES]
        with contextlib.suppress(Exception):
            ex.remove(handle)
        if row["cancel"] == PREEMPT:
            result = Exit("preempted", result.exit_code, "preempted", result.finished)
        elif row["cancel"]:
            result = Exit("stopped", result.exit_code, "cancelled", result.finished)
        _force(state, row, None, result, log)


def _find_by_label(state: State, ex: Executor, row: Any) -> str | None:
    """The engine object of an attempt whose id was never recorded (fogctl died between
    starting it and writing it down), found by its ``io.fogctl.run`` label."""
    if ex.name == "wasm" or not row["run_id"]:
        return None
    try:
        found = ex.find({LABEL_RUN: row["run_id"], LABEL_STATE: str(state.root)})
    except FogError:
        return None
    if not found:
        return None
    ref = found[0].handle.ref
    with state.db.transaction() as conn:
        conn.execute("UPDATE jobs SET ref = ? WHERE id = ? AND ref IS NULL", (ref, row["id"]))
    return ref


def _force(state: State, row: Any, new: str | None, result: Exit, log: bytes | None = None) -> None:
    """Record an attempt's end for a job with no live runner."""
    spec = parse_spec(json.loads(row["spec"]))
    decision = lc.decide(
        result,
        failures=row["failures"],
        backoff_limit=spec.backoff_limit,
        base=_backoff_base(state),
    )
    target = new or decision.state
    now = result.finished or time.time()
    digest = state.blobs.put(log) if log else row["logs"]
    outputs = _collect_outputs(state.blobs, job_dir(state, row["id"]) / "work", spec)
    with state.db.transaction() as conn:
        fresh = conn.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        if fresh is None or fresh["state"] != row["state"] or fresh["attempt"] != row["attempt"]:
            return
        if target not in lc.TRANSITIONS.get(fresh["state"], frozenset()):
            return
        extra: dict[str, Any] = {
            "failures": decision.failures,
            "exit_code": result.exit_code,
            "logs": digest,
            "cancel": 0 if fresh["cancel"] == PREEMPT else fresh["cancel"],
        }
        if outputs:
            extra["outputs"] = json.dumps(outputs)
        if target == lc.RETRYING:
            extra["retry_at"] = now + decision.delay
        else:
            extra["finished"] = now
        _transition(
            conn, fresh, target, now=now, reason=result.reason, detail=result.detail, **extra
        )


class WaitTimeout(OperationFailed):
    """``jobs wait --timeout`` ran out before every job ended (exit 1, code ``timeout``);
    the jobs themselves go on."""

    code = "timeout"


def wait_for(
    state: State,
    ids: list[str],
    *,
    timeout: float,
    concurrency: int | None = None,
    on_event: Callable[[JobRecord], None] | None = None,
    poll: float = 0.1,
) -> list[JobRecord]:
    """Watch ``ids`` until every one is terminal or ``timeout`` seconds pass
    (:class:`WaitTimeout`), streaming state changes. Waiting never changes the jobs:
    those with no live runner are handed to a detached runner first (as a submit
    without ``--wait`` does), so they run on after a timeout."""
    migrate(state)
    ids = list(dict.fromkeys(ids))
    reconcile(state, ids)
    rows = {r["id"]: r for r in _rows_of(state, ids)}
    unknown = [i for i in ids if i not in rows]
    if unknown:
        raise InvalidInput(f"no such job: {', '.join(unknown)}")
    orphans = [
        i
        for i, r in rows.items()
        if r["state"] in lc.ACTIVE and not _owner_alive(r["owner_pid"], r["owner_start"])
    ]
    if orphans:
        spawn_runner(state, orphans, concurrency=concurrency)
    emit = on_event or (lambda rec: None)
    seen: dict[str, str] = {}
    end = time.monotonic() + max(0.0, timeout)
    while True:
        rows = {r["id"]: r for r in _rows_of(state, ids)}
        for job_id in ids:
            row = rows[job_id]
            if seen.get(job_id) != row["state"]:
                seen[job_id] = row["state"]
                emit(_record(row))
        left = [i for i in ids if rows[i]["state"] not in lc.TERMINAL]
        if not left:
            return [_record(rows[i]) for i in ids]
        remaining = end - time.monotonic()
        if remaining <= 0:
            shown = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
            raise WaitTimeout(
                f"timed out after {timeout:g} s: {len(left)} job(s) not finished ({shown});"
                " they keep running",
                hint=f"fogctl jobs wait {' '.join(left[:3])}",
            )
        time.sleep(min(poll, remaining))


def _rows_of(state: State, ids: list[str]) -> list[Any]:
    marks = ",".join("?" * len(ids))
    return state.db.query(f"SELECT * FROM jobs WHERE id IN ({marks})", ids)


def watch(
    state: State,
    ids: list[str],
    *,
    run: bool = True,
    concurrency: int | None = None,
    on_event: Callable[[JobRecord], None] | None = None,
) -> list[JobRecord]:
    """Wait for ``ids`` to end, streaming state changes. Jobs whose runner is gone are
    adopted and driven here (``run``); jobs a live runner owns are watched."""
    return run_jobs(state, ids, concurrency=concurrency, on_event=on_event) if run else []


def logs(state: State, job_id: str, *, follow: bool = False, poll: float = 0.1) -> Iterator[bytes]:
    """The job's output: the stored blob when it ended, else the live attempt's output
    (followed to the end with ``follow``)."""
    migrate(state)
    row = _row(state, job_id)
    if row is None:
        raise InvalidInput(f"no such job: {job_id}")
    if row["state"] == lc.RUNNING and row["ref"] and row["executor"] != "wasm":
        ex = get_executor(row["executor"])
        handle = Handle(ex.name, row["ref"], row["run_id"], row["started"] or 0.0)
        try:
            yield from ex.logs(handle, follow=follow)
            return
        except FogError:
            pass
        row = _row(state, job_id)
    if row["state"] in (lc.RUNNING, lc.PENDING, lc.RETRYING) and (follow or row["log_path"]):
        pos = 0
        run_id = row["run_id"]
        while True:
            done = row["state"] in lc.TERMINAL
            path = row["log_path"]
            if path:
                with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
                    fh.seek(pos)
                    while chunk := fh.read(65536):
                        pos += len(chunk)
                        yield chunk
            if not follow or done:
                return
            time.sleep(poll)
            row = _row(state, job_id)
            if row["run_id"] != run_id:
                pos, run_id = 0, row["run_id"]
    if row["logs"]:
        try:
            yield state.blobs.get(row["logs"])
        except StateError:
            return


def _check_state(new: str) -> None:
    if new not in lc.STATES:
        raise InvalidInput(f"unknown state {new!r} (one of {', '.join(lc.STATES)})")
