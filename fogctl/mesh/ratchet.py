"""End-to-end encryption for mesh messages: X3DH-style key agreement and the Double
Ratchet (Signal specifications, revision 1 and 4), on ``cryptography`` primitives.

Why not the PyPI ``x3dh``/``doubleratchet`` packages: they were tried (1.3.0) and do
not fit a sans-IO core -- every operation is ``async``, the X3DH state reads
``time.time()`` itself, and they pull in pydantic and XEdDSA's native bindings. This
module implements the same specifications with vetted primitives only:

* X25519 for every DH, Ed25519 (the node's identity key) to sign the prekey bundle,
  so no XEdDSA conversion is needed;
* HKDF-SHA256 for KDF_RK and X3DH's KDF, HMAC-SHA256 for KDF_CK (constants 0x01/0x02);
* ChaCha20-Poly1305 per message, key and nonce derived from the one-time message key;
  the associated data binds both parties' identity keys and the header.

Properties: forward secrecy (chain keys are replaced after each use; one-time prekeys
are deleted when used), post-compromise recovery by the DH ratchet, out-of-order
delivery (up to ``MAX_SKIP`` skipped message keys kept per session), and a tampered
or replayed message raises :class:`DecryptError` without touching the session state.

Wire form of a message (CBOR): ``[1, [dh_pub, pn, n], x3dh, ciphertext]`` where
``x3dh`` is ``null`` or, on the first messages of a session,
``[ik_ed, ik_x, ek_pub, spk_pub, opk_pub | null]``.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from fogctl.errors import Refused
from fogctl.mesh.errors import ProtocolError

__all__ = [
    "MAX_SKIP",
    "DecryptError",
    "PrekeyBundle",
    "PrekeySecrets",
    "Session",
    "accept_session",
    "fingerprint",
    "make_prekeys",
    "start_session",
]

MAX_SKIP = 1000
_INFO_X3DH = b"fogctl-mesh-x3dh-v1"
_INFO_RK = b"fogctl-mesh-ratchet-v1"
_INFO_MSG = b"fogctl-mesh-message-v1"
_SPK_DOMAIN = b"fogctl-mesh-prekeys-v1"


class DecryptError(Refused):
    """A message failed authentication (tampered, replayed or not for this session)."""

    code = "decrypt"


def _x_priv() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def _pub(k: X25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _priv_bytes(k: X25519PrivateKey) -> bytes:
    return k.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _dh(priv: bytes, pub: bytes) -> bytes:
    try:
        return X25519PrivateKey.from_private_bytes(priv).exchange(
            X25519PublicKey.from_public_bytes(pub)
        )
    except ValueError:
        raise ProtocolError("invalid X25519 public key", reason="crypto") from None


def _hkdf(ikm: bytes, salt: bytes, info: bytes, n: int) -> bytes:
    return HKDF(hashes.SHA256(), n, salt, info).derive(ikm)


def _hmac(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def fingerprint(ik_ed: bytes, ik_x: bytes) -> str:
    """A human-comparable fingerprint of an identity (8 groups of 4 hex digits)."""
    d = hashlib.sha256(b"fogctl-mesh-fp" + ik_ed + ik_x).hexdigest()[:32]
    return " ".join(d[i : i + 4] for i in range(0, 32, 4))


# -- prekeys ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrekeyBundle:
    """What a node publishes so others can start sessions with it while it is offline."""

    node: str
    ik_ed: bytes
    ik_x: bytes
    spk: bytes
    opks: tuple[bytes, ...]
    signature: bytes

    def signed_part(self) -> bytes:
        return cbor2.dumps(
            [_SPK_DOMAIN, self.node, self.ik_ed, self.ik_x, self.spk, list(self.opks)]
        )

    def verify(self) -> None:
        try:
            Ed25519PublicKey.from_public_bytes(self.ik_ed).verify(
                self.signature, self.signed_part()
            )
        except (InvalidSignature, ValueError):
            raise Refused(f"prekey bundle of {self.node}: bad signature") from None

    def to_bytes(self) -> bytes:
        return cbor2.dumps(
            [self.node, self.ik_ed, self.ik_x, self.spk, list(self.opks), self.signature]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PrekeyBundle:
        try:
            node, ik_ed, ik_x, spk, opks, sig = cbor2.loads(data)
            ok = (
                isinstance(node, str)
                and all(isinstance(x, bytes) and len(x) == 32 for x in (ik_ed, ik_x, spk))
                and isinstance(opks, list)
                and all(isinstance(x, bytes) and len(x) == 32 for x in opks)
                and isinstance(sig, bytes)
                and len(sig) == 64
            )
        except Exception:
            ok = False
        if not ok:
            raise ProtocolError("malformed prekey bundle", reason="crypto")
        b = cls(node, ik_ed, ik_x, spk, tuple(opks), sig)
        b.verify()
        return b

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.ik_ed, self.ik_x)


@dataclass(slots=True)
class PrekeySecrets:
    """This node's private prekeys (kept in the keys directory, mode 0600)."""

    spk: bytes
    opks: dict[bytes, bytes] = field(default_factory=dict)  # public -> private

    def to_bytes(self) -> bytes:
        return cbor2.dumps([self.spk, self.opks])

    @classmethod
    def from_bytes(cls, data: bytes) -> PrekeySecrets:
        spk, opks = cbor2.loads(data)
        return cls(spk, dict(opks))


def make_prekeys(
    node: str, ik_sign: Ed25519PrivateKey, ik_x_priv: bytes, *, one_time: int = 20
) -> tuple[PrekeyBundle, PrekeySecrets]:
    """A fresh signed prekey and ``one_time`` one-time prekeys, signed by the node's
    Ed25519 identity key."""
    spk = _x_priv()
    opk_privs = [_x_priv() for _ in range(one_time)]
    secrets = PrekeySecrets(_priv_bytes(spk), {_pub(k): _priv_bytes(k) for k in opk_privs})
    ik_ed = ik_sign.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ik_x = _pub(X25519PrivateKey.from_private_bytes(ik_x_priv))
    unsigned = PrekeyBundle(node, ik_ed, ik_x, _pub(spk), tuple(secrets.opks), b"")
    sig = ik_sign.sign(unsigned.signed_part())
    return PrekeyBundle(node, ik_ed, ik_x, unsigned.spk, unsigned.opks, sig), secrets


# -- the Double Ratchet --------------------------------------------------------------


def _kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    out = _hkdf(dh_out, rk, _INFO_RK, 64)
    return out[:32], out[32:]


def _kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    return _hmac(ck, b"\x02"), _hmac(ck, b"\x01")


def _seal(mk: bytes, plaintext: bytes, ad: bytes) -> bytes:
    km = _hkdf(mk, b"\x00" * 32, _INFO_MSG, 44)
    return ChaCha20Poly1305(km[:32]).encrypt(km[32:], plaintext, ad)


def _open(mk: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    km = _hkdf(mk, b"\x00" * 32, _INFO_MSG, 44)
    try:
        return ChaCha20Poly1305(km[:32]).decrypt(km[32:], ciphertext, ad)
    except InvalidTag:
        raise DecryptError("message failed authentication (tampered or not ours)") from None


@dataclass(slots=True)
class Session:
    """One Double Ratchet session with a peer (serialisable with :meth:`to_bytes`)."""

    ad: bytes
    rk: bytes
    dhs_priv: bytes
    dhr: bytes | None
    cks: bytes | None
    ckr: bytes | None
    ns: int = 0
    nr: int = 0
    pn: int = 0
    skipped: dict[tuple[bytes, int], bytes] = field(default_factory=dict)
    x3dh: list[Any] | None = None  # sent with each message until the peer answers

    # serialisation -------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return cbor2.dumps(
            [
                1,
                self.ad,
                self.rk,
                self.dhs_priv,
                self.dhr,
                self.cks,
                self.ckr,
                self.ns,
                self.nr,
                self.pn,
                [[k[0], k[1], v] for k, v in self.skipped.items()],
                self.x3dh,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Session:
        v = cbor2.loads(data)
        if v[0] != 1:
            raise ProtocolError("unknown session format", reason="crypto")
        return cls(
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            v[6],
            v[7],
            v[8],
            v[9],
            {(a, n): mk for a, n, mk in v[10]},
            v[11],
        )

    # encryption ---------------------------------------------------------------
    def encrypt(self, plaintext: bytes) -> bytes:
        if self.cks is None:
            raise ProtocolError("session cannot send yet", reason="crypto")
        self.cks, mk = _kdf_ck(self.cks)
        header = [_pub(X25519PrivateKey.from_private_bytes(self.dhs_priv)), self.pn, self.ns]
        self.ns += 1
        ct = _seal(mk, plaintext, self.ad + cbor2.dumps(header))
        return cbor2.dumps([1, header, self.x3dh, ct])

    def decrypt(self, message: bytes) -> bytes:
        """Decrypt; on any failure the session is left exactly as it was."""
        header, _x3dh, ct = _parse(message)
        trial = copy.deepcopy(self)
        pt = trial._decrypt(header, ct)
        for f in self.__slots__:  # commit
            setattr(self, f, getattr(trial, f))
        return pt

    def _decrypt(self, header: list[Any], ct: bytes) -> bytes:
        dh, pn, n = header
        ad = self.ad + cbor2.dumps(header)
        mk = self.skipped.pop((dh, n), None)
        if mk is not None:
            return _open(mk, ct, ad)
        if dh != self.dhr:
            self._skip(pn)
            self._dh_ratchet(dh)
        self._skip(n)
        assert self.ckr is not None
        self.ckr, mk = _kdf_ck(self.ckr)
        self.nr += 1
        pt = _open(mk, ct, ad)
        self.x3dh = None  # the peer has answered: it holds the session
        return pt

    def _skip(self, until: int) -> None:
        if self.ckr is None:
            return
        if until - self.nr > MAX_SKIP:
            raise DecryptError(f"message skips more than {MAX_SKIP} keys")
        while self.nr < until:
            self.ckr, mk = _kdf_ck(self.ckr)
            assert self.dhr is not None
            self.skipped[(self.dhr, self.nr)] = mk
            self.nr += 1
        while len(self.skipped) > MAX_SKIP:
            self.skipped.pop(next(iter(self.skipped)))

    def _dh_ratchet(self, dh: bytes) -> None:
        self.pn = self.ns
        self.ns = self.nr = 0
        self.dhr = dh
        self.rk, self.ckr = _kdf_rk(self.rk, _dh(self.dhs_priv, dh))
        new = _x_priv()
        self.dhs_priv = _priv_bytes(new)
        self.rk, self.cks = _kdf_rk(self.rk, _dh(self.dhs_priv, dh))


def _parse(message: bytes) -> tuple[list[Any], list[Any] | None, bytes]:
    try:
        v, header, x3dh, ct = cbor2.loads(message)
        ok = (
            v == 1
            and isinstance(header, list)
            and len(header) == 3
            and isinstance(header[0], bytes)
            and len(header[0]) == 32
            and all(
                isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32
                for x in header[1:]
            )
            and isinstance(ct, bytes)
            and (x3dh is None or (isinstance(x3dh, list) and len(x3dh) == 5))
        )
    except Exception:
        ok = False
    if not ok:
        raise ProtocolError("malformed encrypted message", reason="crypto")
    return header, x3dh, ct


def _ad(a_ed: bytes, a_x: bytes, b_ed: bytes, b_x: bytes) -> bytes:
    return b"".join((a_ed, a_x, b_ed, b_x))


def start_session(
    ik_sign: Ed25519PrivateKey, ik_x_priv: bytes, peer: PrekeyBundle, *, opk_index: int = 0
) -> Session:
    """Initiator side of X3DH (Alice) against ``peer``'s verified prekey bundle.

    Without a prekey server, several senders may pick the same one-time prekey; pick
    ``opk_index`` at random to make that unlikely (the second such session fails
    authentication and the sender must re-key)."""
    peer.verify()
    ek = _x_priv()
    ek_priv = _priv_bytes(ek)
    opk = peer.opks[opk_index % len(peer.opks)] if peer.opks else None
    dh = _dh(ik_x_priv, peer.spk) + _dh(ek_priv, peer.ik_x) + _dh(ek_priv, peer.spk)
    if opk is not None:
        dh += _dh(ek_priv, opk)
    sk = _hkdf(b"\xff" * 32 + dh, b"\x00" * 32, _INFO_X3DH, 32)
    my_ed = ik_sign.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    my_x = _pub(X25519PrivateKey.from_private_bytes(ik_x_priv))
    dhs = _x_priv()
    rk, cks = _kdf_rk(sk, _dh(_priv_bytes(dhs), peer.spk))
    return Session(
        ad=_ad(my_ed, my_x, peer.ik_ed, peer.ik_x),
        rk=rk,
        dhs_priv=_priv_bytes(dhs),
        dhr=peer.spk,
        cks=cks,
        ckr=None,
        x3dh=[my_ed, my_x, _pub(ek), peer.spk, opk],
    )


def accept_session(
    ik_x_priv: bytes, ik_ed_pub: bytes, secrets: PrekeySecrets, message: bytes
) -> tuple[Session, bytes, bytes]:
    """Responder side (Bob): build the session from an initial message; returns
    (session, the sender's Ed25519 identity key, plaintext). The used one-time prekey
    is removed from ``secrets`` (the caller persists it) -- forward secrecy."""
    _header, x3dh, _ct = _parse(message)
    if x3dh is None:
        raise DecryptError("no session with this sender and no key agreement in the message")
    a_ed, a_x, ek, spk_pub, opk = x3dh
    if not all(isinstance(x, bytes) and len(x) == 32 for x in (a_ed, a_x, ek, spk_pub)):
        raise ProtocolError("malformed key agreement header", reason="crypto")
    spk_priv = secrets.spk
    if _pub(X25519PrivateKey.from_private_bytes(spk_priv)) != spk_pub:
        raise DecryptError("message uses a signed prekey this node no longer has")
    dh = _dh(spk_priv, a_x) + _dh(ik_x_priv, ek) + _dh(spk_priv, ek)
    if opk is not None:
        opk_priv = secrets.opks.get(opk) if isinstance(opk, bytes) else None
        if opk_priv is None:
            raise DecryptError("message uses a one-time prekey already consumed")
        dh += _dh(opk_priv, ek)
    sk = _hkdf(b"\xff" * 32 + dh, b"\x00" * 32, _INFO_X3DH, 32)
    my_x = _pub(X25519PrivateKey.from_private_bytes(ik_x_priv))
    s = Session(
        ad=_ad(a_ed, a_x, ik_ed_pub, my_x), rk=sk, dhs_priv=spk_priv, dhr=None, cks=None, ckr=None
    )
    pt = s.decrypt(message)
    if opk is not None:
        secrets.opks.pop(opk, None)
    return s, a_ed, pt
