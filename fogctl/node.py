"""This node's ``node`` record, built from the state directory and the machine."""

from __future__ import annotations

import os

from fogctl import __version__
from fogctl.records import NodeRecord
from fogctl.state import State


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
    try:
        load = os.getloadavg()[0] / cpus
    except OSError:
        load = None
    mem = psutil.virtual_memory()
    return NodeRecord(
        id=ident.node_id,
        ed25519=ident.ed25519_public.hex(),
        x25519=ident.x25519_public.hex(),
        cpu=float(cpus),
        memory=int(mem.total),
        cpu_util=None if load is None else round(min(load, 1.0), 3),
        memory_util=round(mem.percent / 100, 3),
        state_dir=str(state.root),
        version=__version__,
        created=created,
        components=components,
    )
