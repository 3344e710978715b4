"""ECVRF-EDWARDS25519-SHA512-TAI against RFC 9381 Appendix B.3, and its failure modes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from fogctl.mix import vrf
from fogctl.mix.stats import ks_exponential

DATA = json.loads((Path(__file__).parent / "vectors" / "ecvrf-rfc9381-b3.json").read_text())
H = bytes.fromhex


@pytest.mark.parametrize("v", DATA["vectors"], ids=lambda v: v["alpha"] or "empty")
def test_rfc9381_b3_examples_exactly(v: dict[str, str]) -> None:
    sk, alpha = H(v["sk"]), H(v["alpha"])
    assert vrf.public_key(sk) == H(v["pk"])
    pi = vrf.prove(sk, alpha)
    assert pi == H(v["pi"])
    assert vrf.proof_to_hash(pi) == H(v["beta"])
    assert vrf.verify(H(v["pk"]), alpha, pi) == H(v["beta"])


def test_draft09_proof_is_not_accepted() -> None:
    v = DATA["vectors"][0]
    with pytest.raises(vrf.VrfError):
        vrf.verify(H(v["pk"]), b"", H(DATA["draft09_pi_example16"]))


def test_tampered_proofs_keys_and_inputs_fail() -> None:
    sk = os.urandom(32)
    pk = vrf.public_key(sk)
    pi = vrf.prove(sk, b"hello")
    with pytest.raises(vrf.VrfError):
        vrf.verify(pk, b"HELLO", pi)
    for i in (0, 40, 60, 79):
        bad = bytearray(pi)
        bad[i] ^= 1
        with pytest.raises(vrf.VrfError):
            vrf.verify(pk, b"hello", bytes(bad))
    with pytest.raises(vrf.VrfError):
        vrf.verify(pk, b"hello", pi[:-1])
    with pytest.raises(vrf.VrfError):
        vrf.verify((1).to_bytes(32, "little"), b"hello", pi)  # identity key
    with pytest.raises(vrf.VrfError):
        vrf.verify(vrf.public_key(os.urandom(32)), b"hello", pi)


def test_vrf_delays_are_exponential_and_verifiable() -> None:
    sk = os.urandom(32)
    pk = vrf.public_key(sk)
    delays = []
    for i in range(300):
        d, pi = vrf.vrf_delay(sk, i.to_bytes(4, "big"), 0.01)
        delays.append(d)
        if i < 5:
            assert math.isclose(
                vrf.beta_to_exponential(vrf.verify(pk, i.to_bytes(4, "big"), pi), 0.01), d
            )
    assert ks_exponential(delays, 0.01) > 0.01
