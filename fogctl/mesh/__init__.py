"""fogctl mesh: delay-tolerant messaging on BPv7 bundles (store-carry-forward).

Submodules (import them directly; this package imports nothing heavy):

* :mod:`fogctl.mesh.bundle` -- RFC 9171 bundles in CBOR, CRCs, fragments, status reports
* :mod:`fogctl.mesh.store` -- the persistent bundle store in the state directory
* :mod:`fogctl.mesh.routing` -- sans-IO routers: epidemic, PRoPHET, spray-and-wait,
  flooding, direct delivery
* :mod:`fogctl.mesh.sim` -- the contact simulator behind ``fogctl mesh sim``
* :mod:`fogctl.mesh.ratchet` -- X3DH-style agreement and the Double Ratchet
"""

from __future__ import annotations

from fogctl.mesh.errors import DropCounter, ProtocolError

__all__ = ["DropCounter", "ProtocolError"]
