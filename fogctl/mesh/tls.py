"""TCPCLv4 TLS (RFC 9174 section 4.4) for ``fogctl mesh serve``.

* Each node has a TLS key (ECDSA P-256, ``keys/mesh-tls.key``, 0600, made once per
  state directory) and a self-signed certificate whose subjectAltName is the node ID
  as a URI (``dtn://NAME/``, section 4.4.1), made again when the name changes.
* TLS 1.3 only; the active entity is the TLS client.
* The passive entity is authenticated by its certificate: the active side checks that
  the certificate's URI SAN equals the node ID in the passive side's SESS_INIT
  (section 4.4.3) and that its public key matches the pin for that node.
* The active entity is authenticated by a SESS_INIT extension item
  (``EXT_FOGCTL_CLIENT_AUTH``): its certificate and an ECDSA signature over a label,
  the TLS channel binding and its node ID. (Python's ``ssl`` module cannot accept an
  unknown self-signed client certificate: it has no verify callback.) The binding is
  the TLS Finished value Python exposes as ``tls-unique``; Python 3.11 has no RFC 9266
  ``tls-exporter``. A relayed signature does not verify on another TLS session.
* Pins: trust on first use. The first certificate key seen for a node ID is pinned
  (table ``mesh_tls_pins``, SHA-256 of the SubjectPublicKeyInfo); a later session
  presenting another key for that node ID is refused and logged. Pins can also be set
  in advance (:func:`pin`), which makes the set closed for those nodes.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fogctl.mesh.errors import ProtocolError
from fogctl.mesh.store import BundleStore
from fogctl.state import State
from fogctl.state.atomic import create_exclusive, write_atomic

__all__ = [
    "MODES",
    "TlsCredentials",
    "check_pin",
    "client_auth_item",
    "client_context",
    "credentials",
    "own_key_pin",
    "pin",
    "server_context",
    "spki_sha256",
    "verify_client_auth",
    "verify_server_cert",
]

MODES = ("on", "require", "off")
LABEL = b"fogctl TCPCLv4 active entity authentication\x00"


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    cert: Path
    key: Path
    cert_der: bytes
    private_key: ec.EllipticCurvePrivateKey


def _san_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.UniformResourceIdentifier))


def credentials(state: State, node_id: str) -> TlsCredentials:
    """This node's TLS key and certificate for ``node_id`` (created on first use)."""
    key_path = state.keys_dir / "mesh-tls.key"
    if not key_path.exists():
        k = ec.generate_private_key(ec.SECP256R1())
        create_exclusive(
            key_path,
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ProtocolError(f"{key_path}: not an EC private key", reason="tls")
    name = node_id.removeprefix("dtn://").strip("/") or "node"
    tag = hashlib.sha256(node_id.encode()).hexdigest()[:16]
    cert_path = state.subdir("mesh") / f"tls-{tag}.crt"
    cert: x509.Certificate | None = None
    if cert_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if node_id not in _san_uris(cert) or cert.public_key() != loaded.public_key():
            cert = None
    if cert is None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(loaded.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(node_id)]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(loaded, hashes.SHA256())
        )
        write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return TlsCredentials(
        cert_path, key_path, cert.public_bytes(serialization.Encoding.DER), loaded
    )


def _context(purpose: int, creds: TlsCredentials) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(creds.cert), str(creds.key))
    ctx.check_hostname = False
    # certificates are checked against the node ID and the pins after SESS_INIT
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_context(creds: TlsCredentials) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_SERVER, creds)


def client_context(creds: TlsCredentials) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_CLIENT, creds)


def spki_sha256(cert_der: bytes) -> str:
    cert = x509.load_der_x509_certificate(cert_der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _cert_for(cert_der: bytes, node_id: str) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise ProtocolError("TLS: peer certificate does not parse", reason="tls") from None
    if node_id not in _san_uris(cert):
        raise ProtocolError(
            f"TLS: certificate names {_san_uris(cert) or 'no URI'}, not {node_id}",
            reason="tls",
        )
    return cert


def verify_server_cert(cert_der: bytes | None, node_id: str) -> str:
    """The passive peer's certificate must carry its SESS_INIT node ID (RFC 9174
    4.4.3); returns its key pin."""
    if not cert_der:
        raise ProtocolError("TLS: the peer sent no certificate", reason="tls")
    _cert_for(cert_der, node_id)
    return spki_sha256(cert_der)


def client_auth_item(creds: TlsCredentials, binding: bytes, node_id: str) -> bytes:
    """The value of our EXT_FOGCTL_CLIENT_AUTH item: CBOR [certificate, signature]."""
    sig = creds.private_key.sign(LABEL + binding + node_id.encode(), ec.ECDSA(hashes.SHA256()))
    return cbor2.dumps([creds.cert_der, sig])


def verify_client_auth(value: bytes | None, binding: bytes, node_id: str) -> str:
    """Check the active peer's EXT_FOGCTL_CLIENT_AUTH item; returns its key pin."""
    if value is None:
        raise ProtocolError("TLS: the active peer did not authenticate", reason="tls")
    try:
        cert_der, sig = cbor2.loads(value)
        if not isinstance(cert_der, bytes) or not isinstance(sig, bytes):
            raise ValueError
    except Exception:
        raise ProtocolError("TLS: malformed authentication item", reason="tls") from None
    cert = _cert_for(cert_der, node_id)
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise ProtocolError("TLS: the peer's key is not an EC key", reason="tls")
    try:
        pub.verify(sig, LABEL + binding + node_id.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ProtocolError(
            "TLS: the peer's signature does not verify on this session", reason="tls"
        ) from None
    return spki_sha256(cert_der)


def own_key_pin(state: State) -> str | None:
    """SHA-256 of this node's TLS public key (SPKI), or None before the key exists
    (what a peer pins for this node; creates nothing)."""
    path = state.keys_dir / "mesh-tls.key"
    if not path.exists():
        return None
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def check_pin(store: BundleStore, node: str, key_pin: str) -> bool:
    """Trust on first use: pin ``key_pin`` for ``node`` if none; True if it matches."""
    with store.tx() as conn:
        row = conn.execute("SELECT spki FROM mesh_tls_pins WHERE node = ?", (node,)).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO mesh_tls_pins(node, spki, first_seen) VALUES (?,?,?)",
                (node, key_pin, time.time()),
            )
            return True
    return bool(row[0] == key_pin)


def pin(store: BundleStore, node: str, key_pin: str) -> None:
    """Pin ``node``'s TLS key in advance (replacing any earlier pin)."""
    with store.tx() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO mesh_tls_pins(node, spki, first_seen) VALUES (?,?,?)",
            (node, key_pin, time.time()),
        )
