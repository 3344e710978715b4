"""Executors: plugins in the ``fogctl.executors`` entry-point group (see :mod:`.base`).

:func:`get_executor` loads one by name (the built-ins ``docker``, ``swarm`` and ``wasm``
directly, a third-party plugin from its entry point); :func:`choose_executor` picks
one for a spec (``executor: auto``: ``wasm`` for a module, ``docker`` for an image).
"""

from __future__ import annotations

from typing import Any

from fogctl.errors import InvalidInput
from fogctl.jobs.executors.base import Executor, Exit, Handle, Launch, Running
from fogctl.jobs.spec import JobSpec

__all__ = [
    "Executor",
    "Exit",
    "Handle",
    "Launch",
    "Running",
    "choose_executor",
    "executor_names",
    "get_executor",
]

GROUP = "fogctl.executors"
_CACHE: dict[str, Executor] = {}

#: The executors fogctl ships (also registered in the entry-point group). Built-in
#: names always win, as for commands, so they load without scanning every installed
#: distribution's entry points (~35 ms per process).
BUILTINS: dict[str, tuple[str, str]] = {
    "docker": ("fogctl.jobs.executors.docker", "DockerExecutor"),
    "swarm": ("fogctl.jobs.executors.swarm", "SwarmExecutor"),
    "wasm": ("fogctl.jobs.executors.wasm", "WasmExecutor"),
}


def executor_names() -> list[str]:
    from fogctl.plugins import group_entry_points

    return sorted({*BUILTINS, *(ep.name for ep in group_entry_points(GROUP))})


def _load_class(name: str) -> Any:
    builtin = BUILTINS.get(name)
    if builtin is not None:
        import importlib

        return getattr(importlib.import_module(builtin[0]), builtin[1])
    from fogctl.plugins import load_entry_point

    return load_entry_point(GROUP, name)


def get_executor(name: str, **options: Any) -> Executor:
    """An executor instance by entry-point name (cached per name when no options)."""
    if not options and name in _CACHE:
        return _CACHE[name]
    try:
        cls = _load_class(name)
    except KeyError:
        known = ", ".join(executor_names()) or "none"
        raise InvalidInput(f"unknown executor {name!r} (installed: {known})") from None
    executor = cls(**options)
    if not isinstance(executor, Executor):
        raise InvalidInput(f"executor plugin {name!r} does not implement the Executor interface")
    if not options:
        _CACHE[name] = executor
    return executor


def executor_name_for(spec: JobSpec, override: str | None = None) -> str:
    """The executor a spec asks for: ``override`` > ``spec.executor`` > by kind."""
    name = override or spec.executor
    if name == "auto":
        return "wasm" if spec.wasm is not None else "docker"
    return name


def choose_executor(spec: JobSpec, override: str | None = None) -> Executor:
    return get_executor(executor_name_for(spec, override))
