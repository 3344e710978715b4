"""The executor interface: how fogctl (and the harvest engine) runs one attempt of a job.

An executor runs one *attempt* of a :class:`~fogctl.jobs.spec.JobSpec` described by a
:class:`Launch` (spec + caps + host directories) and reports an :class:`Exit`.
Executors are plugins in the ``fogctl.executors`` entry-point group; the built-ins
(``docker``, ``swarm``, ``wasm``) register the same way. Load one with
:func:`fogctl.jobs.executors.get_executor`.

Lifecycle of one attempt::

    ex = get_executor("docker")
    ex.available()                       # ComponentStatus: reachable? which socket?
    handle = ex.start(Launch(spec, run_id="hello-1", workdir=..., cpu=0.5, memory=2**28))
    for chunk in ex.logs(handle, follow=True): ...   # bytes, stdout and stderr merged
    ex.stop(handle, signal="SIGTERM", grace=10)      # ask to checkpoint, then kill
    result = ex.wait(handle, timeout=None)           # Exit, or None if timeout passed
    ex.remove(handle)                                # free engine resources

Rules every executor follows:

* ``start`` returns as soon as the attempt runs; it never blocks until the end.
* ``wait(timeout)`` returns ``None`` when ``timeout`` seconds pass first. It enforces
  ``Launch.deadline`` itself (stopping the attempt and reporting ``reason="deadline"``),
  so the deadline holds even if only ``wait`` is called.
* ``stop(signal, grace)`` asks the attempt to save a checkpoint and exit: containers
  get ``signal``; WASM modules see the stop file (``/work/.fogctl-stop`` and, with a
  checkpoint, ``<checkpoint>/.fogctl-stop``) appear, then an epoch interruption after
  ``grace`` seconds. A job that saved its state exits with 85 (CHECKPOINT_EXIT_CODE).
* The work dir is mounted (or preopened) at ``/work``: inputs are copied there before
  ``start`` and outputs collected from there after the end by the caller. The
  checkpoint dir, if any, is mounted at the spec's ``checkpoint.path``.
* Failures are reported by :class:`Exit.reason`: ``completed`` (exit 0), ``exit-code``,
  ``checkpointed`` (exit 85), ``oom``, ``deadline``, ``fuel``, ``stopped`` (by
  ``stop``), ``rejected`` (the engine refused to start it), ``lost`` (it vanished),
  ``interrupted`` (the engine restarted under it), ``error`` (anything else; ``detail`` says what).
* Expected failures raise :class:`~fogctl.errors.FogError` subclasses:
  ``ServiceUnavailable`` (exit 3) naming the socket when the engine is unreachable,
  ``InvalidInput`` for a spec the executor cannot run.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from fogctl.jobs.spec import CHECKPOINT_EXIT_CODE, JobSpec
from fogctl.records import ComponentStatus

__all__ = [
    "LABEL_JOB",
    "LABEL_MANAGED",
    "LABEL_RUN",
    "LABEL_STATE",
    "REASONS",
    "STOP_FILE",
    "WORK_DIR",
    "Executor",
    "Exit",
    "Handle",
    "Launch",
    "Running",
]

WORK_DIR = "/work"
STOP_FILE = ".fogctl-stop"

#: Labels on every container/service fogctl starts (used to reconcile after a crash).
LABEL_MANAGED = "io.fogctl.managed"
LABEL_JOB = "io.fogctl.job"
LABEL_RUN = "io.fogctl.run"
LABEL_STATE = "io.fogctl.home"

REASONS = (
    "completed",
    "exit-code",
    "checkpointed",
    "oom",
    "deadline",
    "fuel",
    "stopped",
    "preempted",
    "rejected",
    "lost",
    "interrupted",
    "error",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Launch:
    """One attempt of a job. ``cpu``/``memory``/``pids`` are caps (default: the spec's).

    ``deadline`` is the wall-clock time (``time.time()``) at which the attempt is killed
    (``None``: no deadline). ``labels`` are added to the engine object's labels.
    """

    spec: JobSpec
    run_id: str
    workdir: Path
    checkpoint_dir: Path | None = None
    cpu: float | None = None
    memory: int | None = None
    pids: int | None = None
    fuel: int | None = None
    deadline: float | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def cpu_cap(self) -> float:
        return self.cpu if self.cpu is not None else self.spec.cpu_cap

    @property
    def memory_cap(self) -> int:
        return self.memory if self.memory is not None else self.spec.memory_cap

    @property
    def pids_cap(self) -> int:
        return self.pids if self.pids is not None else self.spec.pids

    @property
    def fuel_cap(self) -> int | None:
        return self.fuel if self.fuel is not None else self.spec.fuel


@dataclasses.dataclass(frozen=True, slots=True)
class Handle:
    """A started attempt: ``ref`` is the executor's id for it (container id, service id,
    or an in-process key), ``started`` the wall-clock start time."""

    executor: str
    ref: str
    run_id: str
    started: float
    deadline: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Exit:
    """How an attempt ended. ``exit_code`` is ``None`` when there was none (rejected,
    lost, killed by the runtime without a status)."""

    reason: str
    exit_code: int | None = None
    detail: str = ""
    finished: float | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "completed"

    @property
    def checkpointed(self) -> bool:
        return self.reason == "checkpointed"

    @staticmethod
    def from_code(code: int, *, detail: str = "", finished: float | None = None) -> Exit:
        if code == 0:
            return Exit("completed", 0, detail, finished)
        if code == CHECKPOINT_EXIT_CODE:
            return Exit("checkpointed", code, detail or "checkpointed, run again", finished)
        return Exit("exit-code", code, detail or f"exited with {code}", finished)


@dataclasses.dataclass(frozen=True, slots=True)
class Running:
    """An attempt found in the engine by its labels (for reconciliation)."""

    handle: Handle
    job: str
    running: bool


class Executor(ABC):
    """Base class of executors. Subclasses set ``name`` and implement the methods."""

    name: ClassVar[str] = ""

    @abstractmethod
    def available(self) -> ComponentStatus:
        """Can this executor run jobs here? Cheap (a short probe), never raises."""

    def accepts(self, spec: JobSpec) -> bool:
        """Can this executor run this kind of job (image vs wasm)?"""
        return spec.image is not None

    @abstractmethod
    def start(self, launch: Launch) -> Handle:
        """Start the attempt and return at once."""

    @abstractmethod
    def wait(self, handle: Handle, timeout: float | None = None) -> Exit | None:
        """Block until the attempt ends (or ``timeout`` passes: ``None``)."""

    @abstractmethod
    def stop(self, handle: Handle, signal: str = "SIGTERM", grace: float = 10.0) -> None:
        """Ask the attempt to checkpoint and exit; kill it after ``grace`` seconds."""

    @abstractmethod
    def logs(self, handle: Handle, follow: bool = False) -> Iterator[bytes]:
        """The attempt's output so far (stdout and stderr); ``follow`` streams to the end."""

    def remove(self, handle: Handle) -> None:  # noqa: B027 - optional hook
        """Release what the engine keeps for a finished attempt (container, service)."""

    def find(self, labels: Mapping[str, str]) -> list[Running]:
        """Attempts this executor still knows about with these labels (reconciliation)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client connections."""
