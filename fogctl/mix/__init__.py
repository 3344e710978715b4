"""fogctl mix: a Loopix-style Sphinx mixnet.

Layout (protocol cores are sans-IO; only :mod:`fogctl.mix.net` does I/O):

- :mod:`~fogctl.mix.primitives`: X25519, HKDF-SHA256, AES-128-CTR, HMAC-SHA256/16,
  LIONESS (ChaCha20 + BLAKE2b); cryptography and pynacl only.
- :mod:`~fogctl.mix.sphinx`: packet creation, processing, SURBs (sizes documented there:
  384-byte header, 2048-byte payload, 2432 bytes on the wire, up to 7 Sphinx hops =
  entry provider + 5 mix layers + exit provider).
- :mod:`~fogctl.mix.replay`, :mod:`~fogctl.mix.keys`: Bloom-filter replay protection
  persisted in the state dir, epoch key rotation with an overlap window.
- :mod:`~fogctl.mix.vrf`: ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381) for verifiable delays.
- :mod:`~fogctl.mix.directory`: signed descriptors, stratified topology, path selection.
- :mod:`~fogctl.mix.message`: what a Sphinx body carries (sealed frames, parts, acks).
- :mod:`~fogctl.mix.node`: the mix, provider and client state machines (Poisson delays,
  Loopix cover traffic, acks and resends, multi-packet messages).
- :mod:`~fogctl.mix.net`: the asyncio UDP/TCP adapter; :mod:`~fogctl.mix.daemon`: the
  long-running client; :mod:`~fogctl.mix.localnet`: a whole network in one event loop;
  :mod:`~fogctl.mix.engine`: the functions the CLI calls.
- :mod:`~fogctl.mix.anonymity`, :mod:`~fogctl.mix.stats`, :mod:`~fogctl.mix.bench`:
  the sender-entropy simulation, KS tests, and the same-run benchmarks.

Nothing heavy is imported here: ``fogctl mix --help`` stays fast.
"""

from __future__ import annotations

from fogctl.mix.errors import (
    MacMismatch,
    MalformedPacket,
    MixProtocolError,
    ReplayedPacket,
    TaggedPayload,
)

__all__ = [
    "MacMismatch",
    "MalformedPacket",
    "MixProtocolError",
    "ReplayedPacket",
    "TaggedPayload",
]
