"""fogctl-ble: carry BPv7 bundles over Bluetooth LE GATT for ``fogctl mesh``.

``fogctl mesh serve --transport ble`` loads :class:`BleTransport` through the
``fogctl.transports`` entry point. Framing (:mod:`fogctl_ble.framing`) is sans-IO and
tested; the radio side (:mod:`fogctl_ble.transport`, on bleak) is untested where no
radio exists -- see README.md.
"""

from fogctl_ble.framing import Chunker, Reassembler
from fogctl_ble.transport import BleTransport

__all__ = ["BleTransport", "Chunker", "Reassembler"]
