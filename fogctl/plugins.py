"""Plugins, two ways: entry points and ``fogctl-NAME`` executables on ``PATH``.

Entry-point groups:

``fogctl.commands``   a Typer app (or click command) added as ``fogctl NAME``
``fogctl.executors``  job executors for ``fogctl submit``
``fogctl.transports`` message transports for ``fogctl mesh``

An executable ``fogctl-NAME`` on ``PATH`` runs as ``fogctl NAME`` (the git/kubectl
convention) with ``FOGCTL_HOME`` in its environment. Built-in command names always
win: a plugin of either kind with a built-in's name is listed as shadowed, never run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from fogctl.records import Record, record

GROUPS = ("fogctl.commands", "fogctl.executors", "fogctl.transports")
EXTERNAL_PREFIX = "fogctl-"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@record("plugin")
class PluginRecord(Record):
    """One plugin: ``type`` is ``entry-point`` or ``executable``."""

    name: str
    type: str
    group: str | None = None
    target: str | None = None
    distribution: str | None = None
    shadowed: bool = False


def group_entry_points(group: str) -> list[EntryPoint]:
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def load_entry_point(group: str, name: str) -> Any:
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    raise KeyError(name)


def find_executables(path: str | None = None) -> dict[str, Path]:
    """``fogctl-NAME`` executables on ``PATH``, first match wins (as the shell would)."""
    found: dict[str, Path] = {}
    search = os.environ.get("PATH", "") if path is None else path
    for directory in search.split(os.pathsep):
        if not directory:
            continue
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(EXTERNAL_PREFIX):
                continue
            name = entry.name[len(EXTERNAL_PREFIX) :]
            if not _NAME.match(name) or name in found:
                continue
            try:
                if entry.is_file() and os.access(entry.path, os.X_OK):
                    found[name] = Path(entry.path)
            except OSError:
                continue
    return found


def find_executable(name: str) -> Path | None:
    return find_executables().get(name) if _NAME.match(name) else None


def list_plugins(builtins: Iterable[str], path: str | None = None) -> list[PluginRecord]:
    """Every plugin found, built-in shadowing marked."""
    taken = set(builtins)
    out: list[PluginRecord] = []
    for group in GROUPS:
        for ep in group_entry_points(group):
            dist = getattr(ep, "dist", None)
            out.append(
                PluginRecord(
                    name=ep.name,
                    type="entry-point",
                    group=group,
                    target=ep.value,
                    distribution=getattr(dist, "name", None),
                    shadowed=group == "fogctl.commands" and ep.name in taken,
                )
            )
    for name, exe in find_executables(path).items():
        out.append(
            PluginRecord(name=name, type="executable", target=str(exe), shadowed=name in taken)
        )
    return out


def exec_external(
    exe: Path, args: list[str], state_dir: Path, env: Mapping[str, str] | None = None
) -> None:
    """Replace this process with ``exe args`` with ``FOGCTL_HOME`` set; does not return."""
    environ = dict(os.environ if env is None else env)
    environ["FOGCTL_HOME"] = str(state_dir)
    os.execve(str(exe), [str(exe), *args], environ)
