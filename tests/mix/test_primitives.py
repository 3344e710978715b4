"""Every Sphinx primitive against its RFC's published vectors."""

from __future__ import annotations

import os

import pytest

from fogctl.mix import primitives as P

H = bytes.fromhex


@pytest.mark.parametrize(
    ("scalar", "u", "out"),
    [  # RFC 7748 section 5.2
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ],
)
def test_x25519_rfc7748_vectors(scalar: str, u: str, out: str) -> None:
    assert P.x25519(H(scalar), H(u)) == H(out)


def test_x25519_rfc7748_iterated_once_and_dh() -> None:
    k = u = P.BASEPOINT
    k, u = P.x25519(k, u), k
    assert k == H("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
    a = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    assert P.x25519_base(a) == H("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert P.x25519_base(b) == H("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = H("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert P.x25519(a, P.x25519_base(b)) == shared == P.x25519(b, P.x25519_base(a))


def test_x25519_refuses_low_order_points() -> None:
    with pytest.raises(P.CryptoFailure):
        P.x25519(os.urandom(32), bytes(32))


def test_scalar_multiplication_mod_l_matches_clamped_x25519() -> None:
    """x25519_mul(e) multiplies by e mod L: blinding factors compose by multiplication."""
    for _ in range(20):
        sk = os.urandom(32)
        pk = P.x25519_base(sk)
        e = P.scalar_from_bytes(os.urandom(64))
        f = P.scalar_from_bytes(os.urandom(64))
        assert P.x25519_mul(e, P.x25519_mul(f, pk)) == P.x25519_mul(e * f % P.L, pk)
        # the clamped private key acts as its integer value mod L
        clamped = bytearray(sk)
        clamped[0] &= 248
        clamped[31] = (clamped[31] & 127) | 64
        k = int.from_bytes(clamped, "little")
        point = P.x25519_mul(e, P.BASEPOINT)
        assert P.x25519(sk, point) == P.x25519_mul(k * e % P.L, P.BASEPOINT)
    with pytest.raises(P.CryptoFailure):
        P.x25519_mul(0, P.BASEPOINT)


def test_hkdf_rfc5869_cases_1_and_3() -> None:
    ikm = bytes([0x0B]) * 22
    okm = P.hkdf_sha256(
        ikm, 42, salt=H("000102030405060708090a0b0c"), info=H("f0f1f2f3f4f5f6f7f8f9")
    )
    assert okm == H(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    assert P.hkdf_sha256(ikm, 42, salt=b"", info=b"") == H(
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_hmac_sha256_rfc4231_cases_1_2_and_truncated_5() -> None:
    assert P.hmac_sha256(bytes([0x0B]) * 20, b"Hi There") == H(
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )
    assert P.hmac_sha256(b"Jefe", b"what do ya want for nothing?") == H(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    tag = P.hmac_sha256(bytes([0x0C]) * 20, b"Test With Truncation")[:16]
    assert P.ct_equal(tag, H("a3b6167473100ee06e0c796c2955552b"))
    assert not P.ct_equal(tag, H("a3b6167473100ee06e0c796c2955552c"))


RFC8439_KEY = bytes(range(32))
RFC8439_NONCE = H("000000000000004a00000000")
SUNSCREEN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
SUNSCREEN_CT = H(
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
    "5af90bbf74a35be6b40b8eedf2785e42874d"
)


def test_chacha20_rfc8439_section_2_4_2_both_paths() -> None:
    assert P.chacha20_stream(RFC8439_KEY, RFC8439_NONCE, SUNSCREEN, counter=1) == SUNSCREEN_CT
    assert P.chacha20_xor(RFC8439_KEY, SUNSCREEN, RFC8439_NONCE) == SUNSCREEN_CT


def test_blake2b_rfc7693_appendix_a_and_keyed_kat() -> None:
    assert P.blake2b_keyed(b"", b"abc", 64) == H(
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    )
    # BLAKE2 reference KAT (blake2b-kat.txt): key 00..3f, empty input
    assert P.blake2b_keyed(bytes(range(64)), b"", 64) == H(
        "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786"
        "b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568"
    )


def test_aes128_ctr_fast_path_equals_generic_ctr_and_sp800_38a() -> None:
    for _ in range(10):
        key = os.urandom(16)
        assert P.aes128_ctr_stream(key, 384) == P.aes128_ctr_reference(key, 384)
    # NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), first block, through the generic path
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(
        algorithms.AES(H("2b7e151628aed2a6abf7158809cf4f3c")),
        modes.CTR(H("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")),
    ).encryptor()
    ct = enc.update(H("6bc1bee22e409f96e93d7e117393172a"))
    assert ct == H("874d6191b620e3261bef6864990db6ce")


def test_lioness_round_trip_and_avalanche() -> None:
    key = os.urandom(128)
    lion = P.Lioness(key)
    block = os.urandom(2048)
    ct = lion.encrypt(block)
    assert ct != block and lion.decrypt(ct) == block
    flipped = bytearray(ct)
    flipped[1000] ^= 1
    garbled = lion.decrypt(bytes(flipped))
    # a one-bit change garbles both halves, the 32-byte head included
    assert garbled[:32] != block[:32]
    assert sum(a != b for a, b in zip(garbled, block, strict=True)) > 1900
    with pytest.raises(ValueError):
        P.Lioness(b"short")


def test_fixed_base_multiplication_equals_the_ladder_on_the_base_point() -> None:
    for _ in range(20):
        e = P.scalar_from_bytes(os.urandom(64))
        assert P.x25519_base_mul(e) == P.x25519_mul(e, P.BASEPOINT)
    with pytest.raises(P.CryptoFailure):
        P.x25519_base_mul(P.L)
    with pytest.raises(ValueError):
        P.x25519(b"short", P.BASEPOINT)


def test_aes128_ctr_xor_is_data_xor_the_stream() -> None:
    for n in (1, 16, 384):
        key, data = os.urandom(16), os.urandom(n)
        assert P.aes128_ctr_xor(key, data) == P.xor(data, P.aes128_ctr_reference(key, n))


def test_lioness_layers_equal_one_layer_at_a_time() -> None:
    keys = [os.urandom(128) for _ in range(4)]
    block = os.urandom(2048)
    one = block
    for k in reversed(keys):
        one = P.Lioness(k).encrypt(one)
    assert P.lioness_encrypt_layers(keys, block) == one
    assert P.lioness_encrypt(keys[0], block) == P.Lioness(keys[0]).encrypt(block)
    assert P.lioness_decrypt(keys[0], one) == P.Lioness(keys[0]).decrypt(one)
