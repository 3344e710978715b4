"""The local harvest queue: a table in the shared state database.

Task states (transitions; anything else is a bug and raises)::

    queued    -> running
    preempted -> running
    running   -> done | failed | preempted | queued (lease expired: reclaimed)

A running task carries a lease (owner, until). Claiming happens in one ``BEGIN
IMMEDIATE`` transaction, and finishing checks the lease owner, so two overlapping
cycles never both run a task, and a task is recorded done at most once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fogctl.errors import InvalidInput, StateError
from fogctl.harvest.policy import Memory
from fogctl.state import State

if TYPE_CHECKING:
    from fogctl.harvest.records import TaskRecord

__all__ = [
    "TRANSITIONS",
    "claim",
    "counts",
    "enqueue",
    "get_task",
    "list_tasks",
    "load_memory",
    "migrate",
    "normalise_spec",
    "reclaim_orphans",
    "release",
    "renew",
    "save_memory",
]

TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running"}),
    "preempted": frozenset({"running"}),
    "running": frozenset({"done", "failed", "preempted", "queued"}),
    "done": frozenset(),
    "failed": frozenset(),
}

_STEPS = [
    """
    CREATE TABLE harvest_tasks (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        executor    TEXT NOT NULL,
        spec        TEXT NOT NULL,
        state       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        preemptions INTEGER NOT NULL DEFAULT 0,
        checkpoint  TEXT,
        progress    TEXT NOT NULL DEFAULT '{}',
        cpu_seconds REAL NOT NULL DEFAULT 0,
        energy_j    REAL NOT NULL DEFAULT 0,
        exit_code   INTEGER,
        result      TEXT,
        output      TEXT,
        error       TEXT,
        lease_owner TEXT,
        lease_until REAL,
        created     REAL NOT NULL,
        updated     REAL NOT NULL
    );
    CREATE INDEX harvest_tasks_state ON harvest_tasks(state, created);
    CREATE TABLE harvest_memory (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        eligible      INTEGER NOT NULL,
        since         REAL NOT NULL,
        backoff_until REAL NOT NULL
    );
    """,
]


def migrate(state: State) -> None:
    state.db.migrate("harvest", _STEPS)


def _spec_dict(spec: Any) -> dict[str, Any]:
    raw = getattr(spec, "raw", None)
    if isinstance(raw, Mapping) and hasattr(spec, "id"):  # a fogctl.jobs.JobSpec
        executor = str(getattr(spec, "executor", "auto") or "auto")
        if executor == "auto":
            executor = "wasm" if spec.wasm is not None else "docker"
        return {
            "name": spec.id,
            "executor": executor,
            "wasm": spec.wasm,
            "image": spec.image,
            "command": list(spec.command) if spec.command else None,
            "args": list(spec.args),
            "env": dict(spec.env),
            "inputs": [{"source": f.source, "path": f.path} for f in spec.inputs],
            "outputs": list(spec.outputs),
            "checkpoint_path": spec.checkpoint.path if spec.checkpoint is not None else None,
            "raw": dict(raw),
        }
    if isinstance(spec, Mapping):
        return dict(spec)
    to_dict = getattr(spec, "to_dict", None)
    if callable(to_dict):
        out = to_dict()
        if isinstance(out, Mapping):
            return dict(out)
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.asdict(spec)
    raise InvalidInput(f"cannot queue {type(spec).__name__}: expected a job spec")


def normalise_spec(state: State, spec: Any, base: Path | None = None) -> dict[str, Any]:
    """A self-contained task spec: WASM modules are copied into the blob store."""
    d = _spec_dict(spec)
    d.pop("kind", None)
    name = str(d.get("name") or d.get("id") or "task")
    wasm = d.get("wasm") or d.get("module")
    if isinstance(wasm, Mapping):
        wasm = wasm.get("module") or wasm.get("path")
    executor = str(d.get("executor") or ("wasm" if wasm else "docker" if d.get("image") else ""))
    if executor not in ("wasm", "docker"):
        raise InvalidInput(f"job {name}: harvest runs wasm or docker jobs, not {executor or '?'}")
    out: dict[str, Any] = {"name": name, "executor": executor}
    if executor == "wasm":
        if not wasm:
            raise InvalidInput(f"job {name}: a wasm job needs 'wasm: MODULE.wasm'")
        if isinstance(wasm, str) and wasm.startswith("sha256:"):
            out["module"] = wasm.removeprefix("sha256:")
        else:
            path = Path(str(wasm))
            if base is not None and not path.is_absolute():
                path = base / path
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"job {name}: wasm module {path}: {exc.strerror}") from None
            if path.suffix == ".wat":
                import wasmtime

                try:
                    data = bytes(wasmtime.wat2wasm(data.decode()))
                except Exception as exc:
                    raise InvalidInput(f"job {name}: {path}: invalid WAT: {exc}") from None
            out["module"] = state.blobs.put(data)
        out["entry"] = d.get("entry")
        cmd = d.get("command")
        if isinstance(cmd, list | tuple) and cmd:
            out["command"] = [str(c) for c in cmd]
        inputs = []
        for item in d.get("inputs") or []:
            src = Path(str(item["source"] if isinstance(item, Mapping) else item))
            dest = str(item.get("path", src.name) if isinstance(item, Mapping) else src.name)
            if base is not None and not src.is_absolute():
                src = base / src
            try:
                inputs.append({"blob": state.blobs.put(src.read_bytes()), "path": dest})
            except OSError as exc:
                raise InvalidInput(f"job {name}: input {src}: {exc.strerror}") from None
        out["inputs"] = inputs
        out["outputs"] = [str(o) for o in d.get("outputs") or []]
        if d.get("checkpoint_path"):
            out["checkpoint_path"] = str(d["checkpoint_path"])
        origin: Mapping[str, Any] = d["raw"] if isinstance(d.get("raw"), Mapping) else d
        limits = origin.get("resources")
        if isinstance(limits, Mapping):  # the spec's limits (memory, fuel)
            out["resources"] = dict(limits)
    else:
        if not d.get("image"):
            raise InvalidInput(f"job {name}: a docker job needs 'image'")
        out["image"] = str(d["image"])
        cmd = d.get("command")
        out["command"] = [str(c) for c in cmd] if isinstance(cmd, list | tuple) else cmd
        if isinstance(d.get("raw"), Mapping):
            out["raw"] = dict(d["raw"])
    args = d.get("args") or []
    if not isinstance(args, list | tuple):
        raise InvalidInput(f"job {name}: args must be a list")
    out["args"] = [str(a) for a in args]
    env = d.get("env") or {}
    if not isinstance(env, Mapping):
        raise InvalidInput(f"job {name}: env must be a mapping")
    out["env"] = {str(k): str(v) for k, v in env.items()}
    if d.get("index") is not None:
        out["index"] = d["index"]
    return out


def enqueue(state: State, specs: Iterable[Any], base: Path | None = None) -> list[str]:
    """Queue job specs for harvesting; returns the new task ids (in order)."""
    migrate(state)
    import secrets

    rows = []
    now = time.time()
    for spec in specs:
        task = normalise_spec(state, spec, base)
        rows.append(("h-" + secrets.token_hex(6), task["name"], task["executor"], json.dumps(task)))
    with state.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO harvest_tasks(id, name, executor, spec, state, created, updated) "
            "VALUES (?, ?, ?, ?, 'queued', ?, ?)",
            [(*r, now, now) for r in rows],
        )
    return [r[0] for r in rows]


def _record(row: Any) -> TaskRecord:
    from fogctl.harvest.records import TaskRecord

    return TaskRecord(
        id=row["id"],
        name=row["name"],
        executor=row["executor"],
        state=row["state"],
        attempts=row["attempts"],
        preemptions=row["preemptions"],
        checkpoint=row["checkpoint"],
        progress=json.loads(row["progress"] or "{}"),
        cpu_seconds=round(row["cpu_seconds"], 3),
        energy_j=round(row["energy_j"], 3),
        exit_code=row["exit_code"],
        result=row["result"],
        output=row["output"],
        error=row["error"],
        created=row["created"],
        updated=row["updated"],
    )


def list_tasks(state: State, states: Iterable[str] = ()) -> list[TaskRecord]:
    migrate(state)
    wanted = list(states)
    sql = "SELECT * FROM harvest_tasks"
    if wanted:
        sql += f" WHERE state IN ({','.join('?' * len(wanted))})"
    return [_record(r) for r in state.db.query(sql + " ORDER BY created, id", wanted)]


def get_task(state: State, task_id: str) -> TaskRecord:
    migrate(state)
    rows = state.db.query("SELECT * FROM harvest_tasks WHERE id = ?", (task_id,))
    if not rows:
        raise InvalidInput(f"no harvest task {task_id!r}")
    return _record(rows[0])


def task_spec(state: State, task_id: str) -> dict[str, Any]:
    rows = state.db.query("SELECT spec FROM harvest_tasks WHERE id = ?", (task_id,))
    return dict(json.loads(rows[0]["spec"]))


def counts(state: State) -> dict[str, int]:
    migrate(state)
    out = dict.fromkeys(TRANSITIONS, 0)
    for row in state.db.query("SELECT state, COUNT(*) AS n FROM harvest_tasks GROUP BY state"):
        out[row["state"]] = row["n"]
    return out


def claim(
    state: State,
    owner: str,
    lease: float,
    now: float | None = None,
    executors: tuple[str, ...] = ("wasm", "docker"),
) -> TaskRecord | None:
    """Take the oldest runnable task (reclaiming expired leases) for ``owner``."""
    migrate(state)
    now = time.time() if now is None else now
    with state.db.transaction() as conn:
        conn.execute(
            "UPDATE harvest_tasks SET state = 'preempted', lease_owner = NULL, updated = ? "
            "WHERE state = 'running' AND lease_until < ?",
            (now, now),
        )
        row = conn.execute(
            "SELECT * FROM harvest_tasks WHERE state IN ('queued', 'preempted') "
            f"AND executor IN ({','.join('?' * len(executors))}) ORDER BY created, id LIMIT 1",
            executors,
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE harvest_tasks SET state = 'running', attempts = attempts + 1, "
            "lease_owner = ?, lease_until = ?, updated = ? WHERE id = ?",
            (owner, now + lease, now, row["id"]),
        )
    return get_task(state, row["id"])


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def reclaim_orphans(state: State, host: str, now: float | None = None) -> list[str]:
    """Tasks whose cycle on ``host`` died (SIGKILL, power loss) go back to ``preempted``.

    Call only while holding the cycle lock: then no live cycle of this state dir can
    hold a task, and a lease owner (``host:pid:token``) whose process is gone will never
    renew it. Without this, a timer firing right after a crash would find the task
    still leased and wait out the lease. Owners on other hosts, or whose pid is alive
    (possibly reused), are left to lease expiry. Returns the reclaimed task ids.
    """
    migrate(state)
    now = time.time() if now is None else now
    rows = state.db.query(
        "SELECT id, lease_owner FROM harvest_tasks "
        "WHERE state = 'running' AND lease_owner IS NOT NULL"
    )
    dead: list[str] = []
    for row in rows:
        parts = str(row["lease_owner"]).split(":")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if not _pid_alive(int(parts[1])):
            dead.append(row["id"])
    if not dead:
        return []
    out: list[str] = []
    with state.db.transaction() as conn:
        for tid in dead:
            owner = next(r["lease_owner"] for r in rows if r["id"] == tid)
            cur = conn.execute(
                "UPDATE harvest_tasks SET state = 'preempted', lease_owner = NULL, "
                "lease_until = NULL, updated = ? WHERE id = ? AND state = 'running' "
                "AND lease_owner = ?",
                (now, tid, owner),
            )
            if cur.rowcount == 1:
                out.append(tid)
    return out


def renew(state: State, task_id: str, owner: str, lease: float) -> None:
    now = time.time()
    with state.db.transaction() as conn:
        cur = conn.execute(
            "UPDATE harvest_tasks SET lease_until = ? WHERE id = ? AND lease_owner = ? "
            "AND state = 'running'",
            (now + lease, task_id, owner),
        )
        if cur.rowcount != 1:
            raise StateError(f"harvest task {task_id}: lease lost")


def release(state: State, task_id: str, owner: str, new_state: str, **fields: Any) -> TaskRecord:
    """Move a running task held by ``owner`` to ``new_state`` and set ``fields``."""
    if new_state not in TRANSITIONS["running"]:
        raise ValueError(f"illegal harvest transition running -> {new_state}")
    allowed = {
        "checkpoint",
        "progress",
        "cpu_seconds",
        "energy_j",
        "exit_code",
        "result",
        "output",
        "error",
        "preemptions",
    }
    if set(fields) - allowed:
        raise ValueError(f"unknown task fields {set(fields) - allowed}")
    sets = ["state = ?", "lease_owner = NULL", "lease_until = NULL", "updated = ?"]
    params: list[Any] = [new_state, time.time()]
    for k, v in fields.items():
        if k in ("cpu_seconds", "energy_j", "preemptions"):
            sets.append(f"{k} = {k} + ?")
        else:
            sets.append(f"{k} = ?")
        params.append(json.dumps(v) if k == "progress" else v)
    with state.db.transaction() as conn:
        cur = conn.execute(
            f"UPDATE harvest_tasks SET {', '.join(sets)} "
            "WHERE id = ? AND lease_owner = ? AND state = 'running'",
            (*params, task_id, owner),
        )
        if cur.rowcount != 1:
            raise StateError(f"harvest task {task_id}: lease lost before it could be recorded")
    return get_task(state, task_id)


def load_memory(state: State) -> Memory:
    migrate(state)
    rows = state.db.query("SELECT eligible, since, backoff_until FROM harvest_memory")
    if not rows:
        return Memory()
    r = rows[0]
    return Memory(bool(r["eligible"]), float(r["since"]), float(r["backoff_until"]))


def save_memory(state: State, mem: Memory) -> None:
    with state.db.transaction() as conn:
        conn.execute(
            "INSERT INTO harvest_memory(id, eligible, since, backoff_until) VALUES (1, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET eligible = excluded.eligible, since = excluded.since, "
            "backoff_until = excluded.backoff_until",
            (int(mem.eligible), mem.since, mem.backoff_until),
        )
