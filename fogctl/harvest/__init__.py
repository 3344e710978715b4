"""fogctl harvest: idle-compute harvesting that is safe for the owner's machine.

Public API (cheap to import; psutil, wasmtime and docker load only when used):

* :func:`enqueue` -- put job specs in the local harvest queue (``fogctl submit --harvest``).
* :func:`status` -- eligibility now, with every rule (``fogctl harvest status``).
* :func:`run_cycle` / :func:`run_loop` -- one work cycle / the foreground service.
* :func:`load_policy`, :func:`set_policy` -- the policy kept in the state dir config.
* :func:`install`, :func:`uninstall` -- systemd timer or crontab line.
* :func:`split`, :func:`merge` -- indexed jobs in chunks.

See :mod:`fogctl.harvest.policy` for the policy fields and their defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fogctl.harvest.cycle import run_cycle, run_loop
    from fogctl.harvest.engine import load_policy, policy_record, set_policy, status
    from fogctl.harvest.partition import merge, split
    from fogctl.harvest.timers import install, uninstall
    from fogctl.state import State

__all__ = [
    "enqueue",
    "install",
    "load_policy",
    "merge",
    "policy_record",
    "run_cycle",
    "run_loop",
    "set_policy",
    "split",
    "status",
    "uninstall",
]

_LAZY = {
    "run_cycle": "fogctl.harvest.cycle",
    "run_loop": "fogctl.harvest.cycle",
    "load_policy": "fogctl.harvest.engine",
    "policy_record": "fogctl.harvest.engine",
    "set_policy": "fogctl.harvest.engine",
    "status": "fogctl.harvest.engine",
    "merge": "fogctl.harvest.partition",
    "split": "fogctl.harvest.partition",
    "install": "fogctl.harvest.timers",
    "uninstall": "fogctl.harvest.timers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)


def enqueue(state: State, specs: Iterable[Any]) -> list[str]:
    """Queue job specs (``fogctl.jobs.JobSpec`` or plain mappings) for harvesting.

    WASM modules are copied into the state dir's blob store, so the queue does not
    depend on the spec's files staying in place. Returns the new task ids, in order.
    Raises ``InvalidInput`` for a spec harvest cannot run (nothing is queued then).
    """
    from fogctl.harvest.queue import enqueue as _enqueue

    return _enqueue(state, specs)
