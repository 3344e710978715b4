"""This node's ``node`` record, built from the state directory and the machine.

Capacity: ``cpu`` cores, ``memory`` bytes; ``cpu_util`` is the measured busy share
of the cpu (:func:`cpu_busy_share`), ``memory_util`` the share of memory not
available to new processes."""

from __future__ import annotations

import os

from fogctl import __version__
from fogctl.records import NodeRecord
from fogctl.state import State

SAMPLE_SECONDS = 0.05  # the first measurement of a process samples this long
_sampled = False


def cpu_busy_share() -> float | None:
    """The share of this machine's cpu time that was busy, 0..1 (``None`` if unknown).

    Measured, not the load average: a load of 6 on 2 cores says processes queue,
    not that no core is ever free. The first call in a process samples for
    :data:`SAMPLE_SECONDS`; later calls (a long-running ``dht serve`` refreshing its
    descriptor) report the share since the previous call. Schedulers treat it as a
    penalty, not as cores taken (``fogctl schedule --headroom``)."""
    import psutil

    global _sampled
    try:
        percent = psutil.cpu_percent(interval=None if _sampled else SAMPLE_SECONDS)
    except (OSError, RuntimeError):  # pragma: no cover - no /proc/stat
        return None
    _sampled = True
    return round(min(max(float(percent) / 100.0, 0.0), 1.0), 3)


def node_record(state: State, *, created: bool | None = None, probe: bool = False) -> NodeRecord:
    """The local node: identity, capacity and (with ``probe``) reachable components."""
    import psutil

    from fogctl.components import probe_all

    ident = state.identity()
    components = None
    if probe:
        components = {
            name: {"reachable": st.reachable, "endpoint": st.endpoint, "detail": st.detail}
            for name, st in probe_all(state.config, state.root).items()
        }
    cpus = os.cpu_count() or 1
    busy = cpu_busy_share()
    mem = psutil.virtual_memory()
    return NodeRecord(
        id=ident.node_id,
        ed25519=ident.ed25519_public.hex(),
        x25519=ident.x25519_public.hex(),
        cpu=float(cpus),
        memory=int(mem.total),
        cpu_util=busy,
        memory_util=round(mem.percent / 100, 3),
        state_dir=str(state.root),
        version=__version__,
        created=created,
        components=components,
    )
