"""OOM-kill evidence from a container's memory cgroup, for the docker executor.

The Engine's ``State.OOMKilled`` is reliable on cgroup v1 but is known to be missed on
cgroup v2 (Docker 20.10), where the kernel counts kills in ``memory.events``
(``oom_kill N``). What makes reading it awkward (measured here): runc deletes a
container's cgroup as soon as the container exits, long before ``docker rm``, so the
container's own counter is usually gone by the time the exit is known. On v2 the
counters are hierarchical: the *parent* cgroup's ``memory.events`` (``docker/`` with the
cgroupfs driver, ``system.slice`` with systemd) counts every kill below it and outlives
the container. So an attempt snapshots its parent's count at start and compares at
the end; on v1 counters are local (``memory.oom_control``) and only the container's
own count (or the Engine's flag) is evidence.

Everything here is pure over a cgroup root (``/sys/fs/cgroup`` or a fake tree in
tests): path rules for both drivers and both versions, parsers, and the verdict.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePosixPath

__all__ = [
    "CGROUP_ROOT",
    "OomEvidence",
    "cgroup_from_proc",
    "cgroup_version",
    "container_cgroup",
    "events_file",
    "expand_slice",
    "judge_oom",
    "parse_oom_kills",
    "read_oom_kills",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
SIGKILL_EXIT = 137


def cgroup_version(root: Path = CGROUP_ROOT) -> int:
    """2 on a unified (v2-only) hierarchy, else 1 (legacy or hybrid: memory is v1)."""
    return 2 if (root / "cgroup.controllers").exists() else 1


def expand_slice(name: str) -> str:
    """A systemd slice's path: ``a-b.slice`` -> ``a.slice/a-b.slice``; ``-.slice`` -> ``""``."""
    if name in ("", "-.slice", "/"):
        return ""
    if not name.endswith(".slice") or "/" in name:
        return name.strip("/")  # already a path (cgroupfs-style parent)
    stem = name.removesuffix(".slice")
    parts = stem.split("-")
    return "/".join("-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))


def container_cgroup(container_id: str, driver: str, parent: str | None = None) -> str:
    """The container's cgroup path relative to the (memory) hierarchy's root, by the
    daemon's cgroup driver and the cgroup parent (container's or daemon's, if set)."""
    if driver == "systemd":
        return f"{expand_slice(parent or 'system.slice')}/docker-{container_id}.scope".lstrip("/")
    return f"{(parent or '/docker').strip('/')}/{container_id}".lstrip("/")


def cgroup_from_proc(text: str, version: int) -> str | None:
    """The memory cgroup path from ``/proc/PID/cgroup`` (``0::/path`` on v2, the line
    naming ``memory`` on v1), relative to the hierarchy's root."""
    for line in text.splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path:
            continue
        if version == 2 and hid == "0" and controllers == "":
            return path.strip("/")
        if version == 1 and "memory" in controllers.split(","):
            return path.strip("/")
    return None


def events_file(root: Path, cgroup: str, version: int) -> Path:
    """Where a cgroup's OOM-kill counter lives: ``memory.events`` (v2) or the v1
    memory controller's ``memory.oom_control`` (its ``oom_kill`` line, Linux >= 4.13)."""
    rel = PurePosixPath(cgroup.strip("/"))
    if version == 2:
        return root / rel / "memory.events"
    return root / "memory" / rel / "memory.oom_control"


def parse_oom_kills(text: str) -> int | None:
    """The ``oom_kill N`` count in a memory.events / memory.oom_control text."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def read_oom_kills(path: Path) -> int | None:
    """The count in ``path``, or ``None`` when the file (or its cgroup) is gone."""
    try:
        return parse_oom_kills(path.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class OomEvidence:
    """What could be read about one attempt. ``parent_*`` are meaningful on v2 only
    (hierarchical counts); ``container`` is the container's own count if it was still
    there to read."""

    engine: bool = False
    container: int | None = None
    parent_before: int | None = None
    parent_after: int | None = None
    version: int = 1
    parent: str | None = None


def judge_oom(evidence: OomEvidence, exit_code: int | None) -> str | None:
    """Why this attempt counts as OOM-killed (a detail line), or ``None``.

    The Engine's flag or the container's own counter are certain. On v2, a kill
    counted in the parent cgroup while the attempt ran, for an attempt that ended by
    SIGKILL (137) that fogctl did not send, is taken as its own OOM kill (another
    container under the same parent OOM-killed at the same moment as this one was
    SIGKILLed by someone else is the only way to be wrong)."""
    if evidence.engine:
        return "the Docker Engine reported OOMKilled"
    if evidence.container:
        return f"the container's memory cgroup counted {evidence.container} OOM kill(s)"
    if (
        evidence.version == 2
        and exit_code == SIGKILL_EXIT
        and evidence.parent_before is not None
        and evidence.parent_after is not None
        and evidence.parent_after > evidence.parent_before
    ):
        return (
            f"killed by SIGKILL while the parent cgroup {evidence.parent or '?'} counted "
            f"{evidence.parent_after - evidence.parent_before} OOM kill(s) (cgroup v2)"
        )
    return None
