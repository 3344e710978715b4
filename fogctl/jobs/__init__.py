"""fogctl jobs: the job spec, executors (docker, swarm, wasm) and the job lifecycle.

Public API (cheap to import: no docker, no wasmtime here):

* :func:`load_specs`, :func:`parse_spec`, :class:`JobSpec` — fogctl-job(5).
* :mod:`fogctl.jobs.executors` — the executor interface and the plugin loader.
* :mod:`fogctl.jobs.engine` — submit, wait, cancel, list, logs (imported on use).
"""

from __future__ import annotations

from fogctl.jobs.spec import (
    CHECKPOINT_EXIT_CODE,
    PRIORITY_CLASSES,
    Checkpoint,
    InputFile,
    JobSpec,
    load_specs,
    parse_cpu,
    parse_memory,
    parse_spec,
)

__all__ = [
    "CHECKPOINT_EXIT_CODE",
    "PRIORITY_CLASSES",
    "Checkpoint",
    "InputFile",
    "JobSpec",
    "load_specs",
    "parse_cpu",
    "parse_memory",
    "parse_spec",
]
