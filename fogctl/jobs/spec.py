"""The job spec: parse and validate ``job.yaml`` (fogctl-job(5)) into :class:`JobSpec`.

A spec is a flat YAML/JSON object that borrows names users already know:

* Kubernetes Jobs: ``metadata.name``/``labels``, ``resources.requests/limits`` with
  ``cpu`` (``0.5``, ``"500m"``), ``memory`` (``"256Mi"``, ``"1G"``, bytes) and ``pids``;
  ``backoffLimit``, ``activeDeadlineSeconds``, ``priorityClassName``, ``completions``,
  ``parallelism``, ``nodeName``; ``resources.limits.fuel`` caps WASM instructions.
* Slurm: ``dependsOn`` (``afterok:ID``, ``afternotok:ID``, ``afterany:ID``).
* HTCondor/BOINC: ``checkpoint`` (``path``, ``intervalSeconds``, ``signal``,
  ``gracePeriodSeconds``); exit code 85 means "checkpointed, run me again".
* fogctl's own: ``image`` or ``wasm``, ``command``/``args``, ``env``, ``sla`` (S/A/B),
  ``network`` (``none`` or ``bridge``), ``inputs``, ``outputs``, ``executor``, ``gang``,
  ``estimateSeconds``.

Rules: unknown fields are an error; fields that would weaken the sandbox
(``privileged``, host volumes, host network...) are refused by name; every number has
a sane upper bound. Errors name ``file:line`` and the field (exit 2).

``priorityClassName`` maps to :attr:`JobSpec.priority` through :data:`PRIORITY_CLASSES`
(higher runs first): ``best-effort`` 0, ``low`` 100, ``normal`` 500 (default),
``high`` 1000, ``critical`` 2000.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from fogctl.errors import InvalidInput
from fogctl.records import iter_json_lines

__all__ = [
    "CHECKPOINT_EXIT_CODE",
    "DEPENDENCY_TYPES",
    "PRIORITY_CLASSES",
    "Checkpoint",
    "InputFile",
    "JobSpec",
    "expand_completions",
    "load_specs",
    "parse_cpu",
    "parse_memory",
    "parse_spec",
]

#: A job that exits with this code has saved a checkpoint and asks to be run again.
CHECKPOINT_EXIT_CODE = 85

PRIORITY_CLASSES: dict[str, int] = {
    "best-effort": 0,
    "low": 100,
    "normal": 500,
    "high": 1000,
    "critical": 2000,
}
DEPENDENCY_TYPES = ("afterok", "afternotok", "afterany")
SLA_CLASSES = ("S", "A", "B")
NETWORKS = ("none", "bridge")
SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGQUIT")

DEFAULT_CPU = 1.0
DEFAULT_MEMORY = 256 * 1024**2
DEFAULT_PIDS = 256
MAX_CPU = 1024.0
MAX_MEMORY = 1024**4  # 1 TiB
MIN_MEMORY = 4 * 1024**2  # Docker refuses less than 6 MiB; WASM needs a page or two
MAX_PIDS = 1_000_000
MAX_FUEL = 10**15
MAX_SECONDS = 30 * 86400.0
MAX_BACKOFF = 100
MAX_COMPLETIONS = 10_000
MAX_STRING = 4096
MAX_LIST = 1024
MAX_SPEC_BYTES = 16 * 1024**2

_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
_EXECUTOR = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
_MEM = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T|B)?$")
_MEM_UNITS = {
    None: 1,
    "B": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}

# Fields that would weaken the sandbox: refused by name, with the reason.
_REFUSED = {
    "privileged": "privileged containers are refused",
    "volumes": "host volumes are refused; use inputs/outputs/checkpoint",
    "volumeMounts": "host volumes are refused; use inputs/outputs/checkpoint",
    "mounts": "host mounts are refused; use inputs/outputs/checkpoint",
    "hostPath": "host paths are refused; use inputs",
    "hostNetwork": "the host network is refused; use network: bridge",
    "hostPID": "sharing the host PID namespace is refused",
    "hostIPC": "sharing the host IPC namespace is refused",
    "securityContext": "the security context is fixed by fogctl and cannot be changed",
    "capabilities": "capabilities are all dropped and cannot be added",
    "capAdd": "capabilities are all dropped and cannot be added",
    "cap_add": "capabilities are all dropped and cannot be added",
    "devices": "host devices are refused",
    "user": "jobs run as an unprivileged user chosen by fogctl",
    "runAsUser": "jobs run as an unprivileged user chosen by fogctl",
    "sysctls": "sysctls are refused",
}

_TOP = {
    "apiVersion",
    "kind",
    "metadata",
    "image",
    "wasm",
    "command",
    "args",
    "env",
    "resources",
    "backoffLimit",
    "activeDeadlineSeconds",
    "priorityClassName",
    "sla",
    "completions",
    "parallelism",
    "dependsOn",
    "gang",
    "estimateSeconds",
    "checkpoint",
    "network",
    "inputs",
    "outputs",
    "executor",
    "nodeName",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a job saves its state and how it is asked to save it before a kill.

    ``path`` is the absolute path inside the container (or the WASI guest path) where a
    persistent per-job directory is mounted. Before a stop the job gets ``signal``
    (containers) or an epoch interruption (WASM), then ``grace_seconds`` to exit.
    """

    path: str
    interval_seconds: float | None = None
    signal: str = "SIGTERM"
    grace_seconds: float = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class InputFile:
    """A local file copied into the job's work dir at ``path`` (relative to /work)."""

    source: str
    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job spec. ``raw`` is its canonical JSON-able form: ``parse_spec(raw)``
    gives an equal spec. Units: ``cpu`` in cores, ``memory`` in bytes, times in seconds.

    ``cpu``/``memory`` are the requests (what a scheduler reserves); ``cpu_limit``/
    ``memory_limit`` the caps (``None``: the request is the cap).
    """

    id: str
    labels: dict[str, str]
    image: str | None
    wasm: str | None
    command: tuple[str, ...] | None
    args: tuple[str, ...]
    env: dict[str, str]
    cpu: float
    memory: int
    cpu_limit: float | None
    memory_limit: int | None
    pids: int
    fuel: int | None
    backoff_limit: int
    deadline_seconds: float | None
    priority: int
    priority_class: str
    sla: str
    completions: int
    parallelism: int
    depends_on: tuple[tuple[str, str], ...]
    gang: str | None
    estimate_seconds: float | None
    checkpoint: Checkpoint | None
    network: str
    inputs: tuple[InputFile, ...]
    outputs: tuple[str, ...]
    executor: str
    node: str | None
    raw: dict[str, Any]
    #: Running jobs an assignment evicts to make room (from ``fogctl schedule``).
    preempts: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``wasm`` or ``container``."""
        return "wasm" if self.wasm is not None else "container"

    @property
    def cpu_cap(self) -> float:
        """Cores the job may use: the limit, else the request."""
        return self.cpu_limit if self.cpu_limit is not None else self.cpu

    @property
    def memory_cap(self) -> int:
        """Bytes the job may use: the limit, else the request."""
        return self.memory_limit if self.memory_limit is not None else self.memory

    def with_node(self, node: str | None) -> JobSpec:
        return dataclasses.replace(self, node=node)

    def __hash__(self) -> int:
        return hash(self.id)


class _SpecError(Exception):
    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _field_name(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# -- scalar parsers ------------------------------------------------------------------


def parse_cpu(value: Any) -> float:
    """Cores from ``2``, ``0.5`` or ``"500m"``; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError('expected cores, e.g. 0.5 or "500m"')
    if isinstance(value, int | float):
        cores = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
        except ValueError:
            raise ValueError(f'not a CPU quantity: {value!r} (e.g. 0.5 or "500m")') from None
    else:
        raise ValueError('expected cores, e.g. 0.5 or "500m"')
    if not math.isfinite(cores) or cores <= 0:
        raise ValueError("must be a positive number of cores")
    if cores > MAX_CPU:
        raise ValueError(f"{cores:g} cores is more than the maximum {MAX_CPU:g}")
    return cores


def parse_memory(value: Any) -> int:
    """Bytes from ``268435456``, ``"256Mi"``, ``"1G"``; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError('expected bytes, e.g. "256Mi"')
    if isinstance(value, int):
        amount = value
    elif isinstance(value, float) and value.is_integer():
        amount = int(value)
    elif isinstance(value, str):
        m = _MEM.match(value.strip())
        if not m:
            raise ValueError(f'not a memory quantity: {value!r} (e.g. "256Mi" or "1G")')
        amount = int(float(m.group(1)) * _MEM_UNITS[m.group(2)])
    else:
        raise ValueError('expected bytes, e.g. "256Mi"')
    if amount < MIN_MEMORY:
        raise ValueError(f"{amount} bytes is less than the minimum 4Mi")
    if amount > MAX_MEMORY:
        raise ValueError(f"{amount} bytes is more than the maximum 1Ti")
    return amount


def _seconds(value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number of seconds")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError("must be a positive number of seconds")
    if v > MAX_SECONDS:
        raise ValueError(f"{v:g} s is more than the maximum {MAX_SECONDS:g} s (30 days)")
    return v


def _int(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    if value < lo or value > hi:
        raise ValueError(f"must be between {lo} and {hi}")
    return value


def _string(value: Any, *, max_len: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if len(value) > max_len:
        raise ValueError(f"longer than {max_len} characters")
    if "\x00" in value:
        raise ValueError("contains a NUL byte")
    return value


def _rel_path(value: Any) -> str:
    text = _string(value, max_len=1024)
    p = Path(text)
    if not text or p.is_absolute() or ".." in p.parts:
        raise ValueError("must be a relative path inside the work dir, without '..'")
    return p.as_posix()


# -- the parser ------------------------------------------------------------------------


class _Parser:
    def __init__(self, obj: Mapping[str, Any]) -> None:
        self.obj = obj

    def at(self, path: tuple[str | int, ...], fn: Any, value: Any) -> Any:
        try:
            return fn(value)
        except ValueError as exc:
            raise _SpecError(path, str(exc)) from None

    def mapping(self, path: tuple[str | int, ...], value: Any, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _SpecError(path, "expected a mapping")
        for key in value:
            if not isinstance(key, str):
                raise _SpecError(path, f"keys must be strings, got {key!r}")
            if key in _REFUSED:
                raise _SpecError((*path, key), f"refused: {_REFUSED[key]}")
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                raise _SpecError((*path, key), f"unknown field (allowed here: {hint})")
        return dict(value)

    def str_list(self, path: tuple[str | int, ...], value: Any) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise _SpecError(path, "expected a list of strings")
        if len(value) > MAX_LIST:
            raise _SpecError(path, f"more than {MAX_LIST} items")
        return tuple(self.at((*path, i), _string, v) for i, v in enumerate(value))

    def parse(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (constructor kwargs, canonical raw)."""
        top = self.mapping((), self.obj, _TOP)
        raw: dict[str, Any] = {}
        kw: dict[str, Any] = {}
        api = top.get("apiVersion", "fogctl/v1")
        if api != "fogctl/v1":
            raise _SpecError(("apiVersion",), "expected fogctl/v1")
        kind = top.get("kind", "Job")
        if kind != "Job":
            raise _SpecError(("kind",), "expected Job")

        meta = self.mapping(("metadata",), top.get("metadata", {}), {"name", "labels"})
        if "name" not in meta:
            raise _SpecError(("metadata", "name"), "required: the job's id")
        name = meta["name"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise _SpecError(
                ("metadata", "name"),
                "must be 1-128 of a-z 0-9 . _ - starting and ending with a letter or digit",
            )
        labels_in = meta.get("labels", {}) or {}
        if not isinstance(labels_in, Mapping):
            raise _SpecError(("metadata", "labels"), "expected a mapping")
        labels: dict[str, str] = {}
        for k, v in labels_in.items():
            if not isinstance(k, str) or not _LABEL_KEY.match(k):
                raise _SpecError(("metadata", "labels", str(k)), "not a valid label key")
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise _SpecError(("metadata", "labels", k), "expected a string")
            labels[k] = self.at(
                ("metadata", "labels", k), lambda x: _string(x, max_len=256), str(v)
            )
        if len(labels) > 64:
            raise _SpecError(("metadata", "labels"), "more than 64 labels")
        kw["id"] = name
        kw["labels"] = labels
        raw["metadata"] = {"name": name, **({"labels": labels} if labels else {})}

        image = top.get("image")
        wasm = top.get("wasm")
        if (image is None) == (wasm is None):
            raise _SpecError(("image",), "exactly one of image or wasm is required")
        if image is not None:
            if not isinstance(image, str) or not _IMAGE.match(image):
                raise _SpecError(("image",), "not an image reference")
            raw["image"] = image
        if wasm is not None:
            text = self.at(("wasm",), lambda x: _string(x, max_len=1024), wasm)
            if not text.endswith((".wasm", ".wat")):
                raise _SpecError(("wasm",), "expected a .wasm or .wat module path")
            raw["wasm"] = text
        kw["image"] = image
        kw["wasm"] = wasm

        command = None
        if top.get("command") is not None:
            command = self.str_list(("command",), top["command"])
            if not command:
                raise _SpecError(("command",), "must not be empty (omit it for the default)")
            raw["command"] = list(command)
        kw["command"] = command
        args = self.str_list(("args",), top.get("args") or [])
        if args:
            raw["args"] = list(args)
        kw["args"] = args

        env: dict[str, str] = {}
        env_in = top.get("env") or {}
        if isinstance(env_in, list):  # Kubernetes form: [{name, value}]
            pairs: list[tuple[Any, Any, tuple[str | int, ...]]] = []
            for i, item in enumerate(env_in):
                item = self.mapping(("env", i), item, {"name", "value"})
                pairs.append((item.get("name"), item.get("value", ""), ("env", i)))
        elif isinstance(env_in, Mapping):
            pairs = [(k, v, ("env", str(k))) for k, v in env_in.items()]
        else:
            raise _SpecError(("env",), "expected a mapping of NAME: value")
        if len(pairs) > 256:
            raise _SpecError(("env",), "more than 256 variables")
        for k, v, where in pairs:
            if not isinstance(k, str) or not _ENV_NAME.match(k):
                raise _SpecError(where, "not a valid environment variable name")
            if isinstance(v, bool):
                v = "true" if v else "false"
            if v is None:
                v = ""
            if not isinstance(v, str | int | float):
                raise _SpecError(where, "expected a string value")
            env[k] = self.at(where, _string, str(v))
        if env:
            raw["env"] = env
        kw["env"] = env

        self.resources(top.get("resources"), kw, raw)

        kw["backoff_limit"] = self.at(
            ("backoffLimit",), lambda v: _int(v, 0, MAX_BACKOFF), top.get("backoffLimit", 0)
        )
        if kw["backoff_limit"]:
            raw["backoffLimit"] = kw["backoff_limit"]
        deadline = top.get("activeDeadlineSeconds")
        kw["deadline_seconds"] = (
            None if deadline is None else self.at(("activeDeadlineSeconds",), _seconds, deadline)
        )
        if deadline is not None:
            raw["activeDeadlineSeconds"] = deadline
        pclass = top.get("priorityClassName", "normal")
        if pclass not in PRIORITY_CLASSES:
            raise _SpecError(
                ("priorityClassName",), f"expected one of {', '.join(PRIORITY_CLASSES)}"
            )
        kw["priority_class"] = pclass
        kw["priority"] = PRIORITY_CLASSES[pclass]
        if pclass != "normal":
            raw["priorityClassName"] = pclass
        sla = top.get("sla", "B")
        if sla not in SLA_CLASSES:
            raise _SpecError(("sla",), "expected S, A or B")
        kw["sla"] = sla
        if sla != "B":
            raw["sla"] = sla
        for key, attr in (("completions", "completions"), ("parallelism", "parallelism")):
            kw[attr] = self.at((key,), lambda v: _int(v, 1, MAX_COMPLETIONS), top.get(key, 1))
            if kw[attr] != 1:
                raw[key] = kw[attr]

        deps: list[tuple[str, str]] = []
        deps_in = top.get("dependsOn") or []
        if isinstance(deps_in, str | Mapping) or not isinstance(deps_in, list):
            raise _SpecError(("dependsOn",), 'expected a list such as ["afterok:prep"]')
        for i, dep in enumerate(deps_in):
            job: Any
            typ: Any
            if isinstance(dep, str):
                typ, sep, job = dep.partition(":")
                if not sep:
                    typ, job = "afterok", dep
            elif isinstance(dep, Mapping):
                dep = self.mapping(("dependsOn", i), dep, {"job", "type"})
                job, typ = dep.get("job"), dep.get("type", "afterok")
            else:
                raise _SpecError(("dependsOn", i), 'expected "afterok:JOB" or {job, type}')
            if typ not in DEPENDENCY_TYPES:
                raise _SpecError(
                    ("dependsOn", i), f"type must be one of {', '.join(DEPENDENCY_TYPES)}"
                )
            if not isinstance(job, str) or not _NAME.match(job):
                raise _SpecError(("dependsOn", i), "not a valid job name")
            if job == name:
                raise _SpecError(("dependsOn", i), "a job cannot depend on itself")
            deps.append((job, typ))
        kw["depends_on"] = tuple(deps)
        if deps:
            raw["dependsOn"] = [f"{t}:{j}" for j, t in deps]

        gang = top.get("gang")
        if gang is not None and (not isinstance(gang, str) or not _NAME.match(gang)):
            raise _SpecError(("gang",), "not a valid gang name")
        kw["gang"] = gang
        if gang is not None:
            raw["gang"] = gang
        est = top.get("estimateSeconds")
        kw["estimate_seconds"] = (
            None if est is None else self.at(("estimateSeconds",), _seconds, est)
        )
        if est is not None:
            raw["estimateSeconds"] = kw["estimate_seconds"]

        kw["checkpoint"] = self.checkpoint(top.get("checkpoint"), raw)

        network = top.get("network", "none")
        if network == "host":
            raise _SpecError(("network",), "refused: the host network is refused; use bridge")
        if network not in NETWORKS:
            raise _SpecError(("network",), "expected none or bridge")
        kw["network"] = network
        if network != "none":
            raw["network"] = network

        inputs: list[InputFile] = []
        inputs_in = top.get("inputs") or []
        if not isinstance(inputs_in, list):
            raise _SpecError(("inputs",), "expected a list")
        for i, item in enumerate(inputs_in):
            if isinstance(item, str):
                src = item
                dest = Path(item).name
            else:
                item = self.mapping(("inputs", i), item, {"source", "path"})
                if "source" not in item:
                    raise _SpecError(("inputs", i, "source"), "required: a local file")
                src = item["source"]
                dest = item.get("path", Path(str(src)).name)
            src = self.at(("inputs", i, "source"), lambda x: _string(x, max_len=1024), src)
            dest = self.at(("inputs", i, "path"), _rel_path, dest)
            inputs.append(InputFile(source=src, path=dest))
        if len(inputs) > MAX_LIST:
            raise _SpecError(("inputs",), f"more than {MAX_LIST} items")
        kw["inputs"] = tuple(inputs)
        if inputs:
            raw["inputs"] = [{"source": f.source, "path": f.path} for f in inputs]
        outputs = self.str_list(("outputs",), top.get("outputs") or [])
        outputs = tuple(self.at(("outputs", i), _rel_path, o) for i, o in enumerate(outputs))
        kw["outputs"] = outputs
        if outputs:
            raw["outputs"] = list(outputs)

        executor = top.get("executor", "auto")
        if not isinstance(executor, str) or not _EXECUTOR.match(executor):
            raise _SpecError(("executor",), "expected auto, docker, swarm, wasm or a plugin name")
        if executor in ("docker", "swarm") and wasm is not None:
            raise _SpecError(("executor",), f"{executor} runs images, and this job names wasm")
        if executor == "wasm" and image is not None:
            raise _SpecError(("executor",), "wasm runs modules, and this job names an image")
        kw["executor"] = executor
        if executor != "auto":
            raw["executor"] = executor
        node = top.get("nodeName")
        if node is not None:
            node = self.at(("nodeName",), lambda x: _string(x, max_len=256), node)
            raw["nodeName"] = node
        kw["node"] = node
        return kw, raw

    def resources(self, value: Any, kw: dict[str, Any], raw: dict[str, Any]) -> None:
        res = self.mapping(("resources",), value or {}, {"requests", "limits"})
        req = self.mapping(("resources", "requests"), res.get("requests") or {}, {"cpu", "memory"})
        lim = self.mapping(
            ("resources", "limits"), res.get("limits") or {}, {"cpu", "memory", "pids", "fuel"}
        )
        out: dict[str, Any] = {}
        cpu_req = (
            self.at(("resources", "requests", "cpu"), parse_cpu, req["cpu"])
            if "cpu" in req
            else None
        )
        cpu_lim = (
            self.at(("resources", "limits", "cpu"), parse_cpu, lim["cpu"]) if "cpu" in lim else None
        )
        mem_req = (
            self.at(("resources", "requests", "memory"), parse_memory, req["memory"])
            if "memory" in req
            else None
        )
        mem_lim = (
            self.at(("resources", "limits", "memory"), parse_memory, lim["memory"])
            if "memory" in lim
            else None
        )
        if cpu_req is not None and cpu_lim is not None and cpu_req > cpu_lim:
            raise _SpecError(("resources", "requests", "cpu"), "request exceeds the limit")
        if mem_req is not None and mem_lim is not None and mem_req > mem_lim:
            raise _SpecError(("resources", "requests", "memory"), "request exceeds the limit")
        pids = (
            self.at(("resources", "limits", "pids"), lambda v: _int(v, 1, MAX_PIDS), lim["pids"])
            if "pids" in lim
            else DEFAULT_PIDS
        )
        kw["cpu"] = (
            cpu_req if cpu_req is not None else (cpu_lim if cpu_lim is not None else DEFAULT_CPU)
        )
        kw["memory"] = (
            mem_req if mem_req is not None else (mem_lim if mem_lim is not None else DEFAULT_MEMORY)
        )
        fuel = (
            self.at(("resources", "limits", "fuel"), lambda v: _int(v, 1, MAX_FUEL), lim["fuel"])
            if "fuel" in lim
            else None
        )
        kw["fuel"] = fuel
        kw["cpu_limit"] = cpu_lim
        kw["memory_limit"] = mem_lim
        kw["pids"] = pids
        if cpu_req is not None or mem_req is not None:
            out["requests"] = {
                k: v for k, v in (("cpu", cpu_req), ("memory", mem_req)) if v is not None
            }
        if cpu_lim is not None or mem_lim is not None or "pids" in lim or fuel is not None:
            out["limits"] = {
                k: v
                for k, v in (
                    ("cpu", cpu_lim),
                    ("memory", mem_lim),
                    ("pids", lim.get("pids")),
                    ("fuel", fuel),
                )
                if v is not None
            }
        if out:
            raw["resources"] = out

    def checkpoint(self, value: Any, raw: dict[str, Any]) -> Checkpoint | None:
        if value is None:
            return None
        cp = self.mapping(
            ("checkpoint",), value, {"path", "intervalSeconds", "signal", "gracePeriodSeconds"}
        )
        path = cp.get("path")
        if not isinstance(path, str) or not path.startswith("/") or ".." in Path(path).parts:
            raise _SpecError(("checkpoint", "path"), "required: an absolute path such as /ckpt")
        if path.rstrip("/") in ("", "/proc", "/sys", "/dev", "/etc", "/tmp", "/work"):
            raise _SpecError(("checkpoint", "path"), f"{path} cannot hold checkpoints")
        path = self.at(("checkpoint", "path"), lambda x: _string(x, max_len=512), path)
        interval = cp.get("intervalSeconds")
        if interval is not None:
            interval = self.at(("checkpoint", "intervalSeconds"), _seconds, interval)
        signal = cp.get("signal", "SIGTERM")
        if signal not in SIGNALS:
            raise _SpecError(("checkpoint", "signal"), f"expected one of {', '.join(SIGNALS)}")
        grace = self.at(
            ("checkpoint", "gracePeriodSeconds"),
            lambda v: _seconds(v, allow_zero=True),
            cp.get("gracePeriodSeconds", 10),
        )
        if grace > 3600:
            raise _SpecError(("checkpoint", "gracePeriodSeconds"), "at most 3600 s")
        out: dict[str, Any] = {"path": path}
        if interval is not None:
            out["intervalSeconds"] = interval
        if signal != "SIGTERM":
            out["signal"] = signal
        if grace != 10:
            out["gracePeriodSeconds"] = grace
        raw["checkpoint"] = out
        return Checkpoint(path=path, interval_seconds=interval, signal=signal, grace_seconds=grace)


def _parse(obj: Any) -> JobSpec:
    kw, raw = _Parser(obj).parse()
    return JobSpec(**kw, raw=raw)


def parse_spec(obj: Mapping[str, Any], where: str = "<spec>") -> JobSpec:
    """Validate one spec object. Raises :class:`InvalidInput` naming ``where`` and the field."""
    try:
        return _parse(obj)
    except _SpecError as exc:
        field = _field_name(exc.path)
        prefix = f"{where}: field {field!r}: " if field else f"{where}: "
        raise InvalidInput(prefix + exc.message) from None


GROUP_LABEL = "fogctl.io/job-group"
INDEX_LABEL = "fogctl.io/completion-index"


def expand_completions(spec: JobSpec) -> list[JobSpec]:
    """A job with ``completions: N > 1`` as N indexed jobs ``ID-0`` .. ``ID-(N-1)``
    (Kubernetes Indexed completion mode): each gets ``JOB_COMPLETION_INDEX`` and
    ``FOGCTL_COMPLETION_INDEX`` and the labels ``fogctl.io/job-group: ID`` and
    ``fogctl.io/completion-index: I``; at most ``parallelism`` of a group run at once,
    and ``dependsOn: [afterok:ID]`` waits for the whole group."""
    if spec.completions == 1:
        return [spec]
    out: list[JobSpec] = []
    for i in range(spec.completions):
        raw = json.loads(json.dumps(spec.raw))
        raw.pop("completions", None)
        name = f"{spec.id}-{i}"
        labels = dict(raw["metadata"].get("labels", {}))
        labels.update({GROUP_LABEL: spec.id, INDEX_LABEL: str(i)})
        raw["metadata"] = {"name": name, "labels": labels}
        raw["env"] = {
            **raw.get("env", {}),
            "JOB_COMPLETION_INDEX": str(i),
            "FOGCTL_COMPLETION_INDEX": str(i),
        }
        if spec.parallelism == 1:
            raw["parallelism"] = 1
        child = parse_spec(raw, f"job {spec.id} completion {i}")
        out.append(dataclasses.replace(child, node=spec.node))
    return out


# -- loading files ---------------------------------------------------------------------


def _yaml_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe loader that records the line of every mapping key and refuses aliases."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.constructor.ConstructorError(
                    None, None, "YAML aliases are not accepted in job specs", event.start_mark
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            mapping = _LinedDict(super().construct_mapping(node, deep=True))
            mapping.line = node.start_mark.line + 1
            for key_node, _ in node.value:
                with contextlib.suppress(TypeError):
                    mapping.lines[self.construct_object(key_node, deep=True)] = (
                        key_node.start_mark.line + 1
                    )
            return mapping

    Loader.add_constructor(
        "tag:yaml.org,2002:map",
        lambda loader, node: loader.construct_mapping(node),  # type: ignore[arg-type]
    )
    return Loader


class _LinedDict(dict[Any, Any]):
    __slots__ = ("line", "lines")

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.line = 0
        self.lines: dict[Any, int] = {}


def _line_of(obj: Any, path: tuple[str | int, ...], default: int) -> int:
    line = getattr(obj, "line", 0) or default
    cur = obj
    for part in path:
        if isinstance(cur, _LinedDict):
            line = cur.lines.get(part, line)
            cur = cur.get(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
            line = getattr(cur, "line", 0) or line
        else:
            break
    return line


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _resolve_paths(spec: JobSpec, base: Path | None) -> JobSpec:
    """Make ``wasm`` and ``inputs`` sources absolute, relative to the spec file's folder."""
    if base is None:
        return spec

    def fix(p: str) -> str:
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    raw = json.loads(json.dumps(spec.raw))
    wasm = spec.wasm
    if wasm is not None:
        wasm = fix(wasm)
        raw["wasm"] = wasm
    inputs = tuple(InputFile(source=fix(f.source), path=f.path) for f in spec.inputs)
    if inputs:
        raw["inputs"] = [{"source": f.source, "path": f.path} for f in inputs]
    return dataclasses.replace(spec, wasm=wasm, inputs=inputs, raw=raw)


def _from_record(obj: Mapping[str, Any], where: str) -> JobSpec:
    """A spec, an ``assignment`` record (spec + node) or a ``job`` record with its spec."""
    kind = obj.get("kind")
    if kind == "assignment":
        spec_obj = obj.get("spec")
        job = obj.get("job")
        left_out = _unplaced(obj)
        if left_out is not None:
            raise InvalidInput(f"{where}: assignment for job {job!r} was not placed: {left_out[1]}")
        if not isinstance(spec_obj, Mapping):
            raise InvalidInput(f"{where}: assignment for job {job!r} carries no spec")
        spec = parse_spec(spec_obj, where)
        if job is not None and job != spec.id:
            raise InvalidInput(f"{where}: assignment job {job!r} does not match spec {spec.id!r}")
        node = obj.get("node")
        if not isinstance(node, str):
            raise InvalidInput(f"{where}: field 'node': expected a string")
        preempts = obj.get("preempts") or []
        if not isinstance(preempts, list) or not all(
            isinstance(p, str) and _NAME.match(p) for p in preempts
        ):
            raise InvalidInput(f"{where}: field 'preempts': expected a list of job ids")
        return dataclasses.replace(spec.with_node(node), preempts=tuple(preempts))
    if kind == "job" and isinstance(obj.get("spec"), Mapping):
        return parse_spec(obj["spec"], where)
    return parse_spec(obj, where)


def _read_text(source: str | Path | IO[str]) -> tuple[str, str, Path | None]:
    if not isinstance(source, str | Path):
        name = getattr(source, "name", "<stdin>")
        text = source.read(MAX_SPEC_BYTES + 1)
        return (name if isinstance(name, str) else "<stdin>"), text, None
    if str(source) == "-":
        return "<stdin>", sys.stdin.read(MAX_SPEC_BYTES + 1), None
    path = Path(source)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory") from None
    except PermissionError:
        raise InvalidInput(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not valid UTF-8") from None
    return str(path), text, path.resolve().parent


def _unplaced(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(job, reason) for an ``assignment`` record the scheduler left without a node."""
    if obj.get("kind") != "assignment" or obj.get("node") is not None:
        return None
    return str(obj.get("job")), str(obj.get("unplaced") or "no node")


def load_specs(
    source: str | Path | IO[str], *, unplaced: list[tuple[str, str]] | None = None
) -> list[JobSpec]:
    """Read every job spec from a YAML file (several documents allowed), or JSON Lines
    (``-`` is stdin; JSON Lines is recognised by a first line starting with ``{``).

    Accepts plain specs, ``assignment`` records (spec + chosen node) and ``job`` records
    carrying a spec. Raises :class:`InvalidInput` naming ``file:line`` and the field;
    nothing is returned unless every spec is valid. Duplicate ids are an error.

    An assignment the scheduler left unplaced (``fogctl schedule --allow-partial``:
    node null and a reason) is an error, unless ``unplaced`` is a list: then it is
    skipped and ``(job, reason)`` appended there.
    """

    def wanted(obj: Mapping[str, Any]) -> bool:
        left_out = _unplaced(obj)
        if left_out is not None and unplaced is not None:
            unplaced.append(left_out)
            return False
        return True

    name, text, base = _read_text(source)
    if len(text) > MAX_SPEC_BYTES:
        raise InvalidInput(f"{name}: larger than {MAX_SPEC_BYTES // 1024**2} MiB")
    specs: list[JobSpec] = []
    first = next(
        (ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")),
        "",
    )
    if first.startswith("{") and (
        name.endswith((".jsonl", ".json")) or base is None or _all_json(text)
    ):
        for _, lineno, obj in iter_json_lines(io.StringIO(text), name=name, comments=True):
            if wanted(obj):
                specs.append(_resolve_paths(_from_record(obj, f"{name}:{lineno}"), base))
    else:
        specs = _load_yaml(name, text, base, wanted)
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.id in seen:
            raise InvalidInput(
                f"{name}: job {spec.id!r} appears twice (jobs {seen[spec.id] + 1} and {i + 1})"
            )
        seen[spec.id] = i
    return specs


def _all_json(text: str) -> bool:
    try:
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def _load_yaml(
    name: str, text: str, base: Path | None, wanted: Callable[[Mapping[str, Any]], bool]
) -> list[JobSpec]:
    import yaml

    specs: list[JobSpec] = []
    try:
        loader = _yaml_loader()(io.StringIO(text))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{name}: not valid YAML: {exc}") from None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            line0 = node.start_mark.line + 1
            try:
                obj = loader.construct_document(node)
            except RecursionError:
                raise InvalidInput(f"{name}:{line0}: YAML nested too deeply") from None
            if obj is None:
                continue
            if not isinstance(obj, dict):
                raise InvalidInput(f"{name}:{line0}: expected a mapping (a job spec)")
            if not wanted(obj):
                continue
            try:
                if obj.get("kind") in ("assignment", "job"):
                    spec = _from_record(_plain(obj), f"{name}:{line0}")
                else:
                    spec = _parse(obj)
                    spec = dataclasses.replace(spec, raw=_plain(spec.raw))
            except _SpecError as exc:
                field = _field_name(exc.path)
                line = _line_of(obj, exc.path, line0)
                prefix = f"{name}:{line}: field {field!r}: " if field else f"{name}:{line}: "
                raise InvalidInput(prefix + exc.message) from None
            specs.append(_resolve_paths(spec, base))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise InvalidInput(f"{name}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{name}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return specs
