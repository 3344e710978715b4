"""The bundle agent: what a mesh node does with bundles, without any I/O of its own.

It owns the store, the router, the reassembler, the drop counter and the end-to-end
keys, and is driven by the asyncio node (:mod:`fogctl.mesh.node`) and by one-shot
commands (``mesh send``, ``inbox``, ``read``, ``keys``). Time is passed in as DTN
milliseconds.

Reception (:meth:`Agent.receive`): decode (malformed -> dropped and counted), drop
expired bundles and bundles past their hop limit, reassemble fragments addressed to
this node, answer status-report requests, deliver ``dtn://ME/inbox`` bundles to the
inbox (decrypting them), treat ``dtn://ME/~routing`` bundles as the peer's routing
message, and store everything else for forwarding.

Contacts: on a new contact the node sends a routing message (summary vector, router
advertisement, delivery acknowledgements, its prekey bundle) to ``dtn://PEER/~routing``;
once the peer's arrives, :meth:`Agent.outgoing` yields what the router decides to hand
over (hop count + 1, previous node, bundle age, and for spray-and-wait the number of
copies in a private extension block, type 193).

Payloads of inbox bundles are CBOR ``[kind, body]``: kind 1 is a Double Ratchet
message (:mod:`fogctl.mesh.ratchet`), kind 0 plain bytes (``--plain``; relays read it);
any other payload (from another BPv7 implementation) is delivered as plain bytes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cbor2

from fogctl.errors import InvalidInput, Refused
from fogctl.mesh.bundle import (
    BLOCK_DISCARD_UNPROCESSED,
    DTN_EPOCH_UNIX,
    EID,
    REPORT_DELETION,
    REPORT_DELIVERY,
    REPORT_FORWARDING,
    REPORT_RECEPTION,
    Bundle,
    CanonicalBlock,
    Reassembler,
    decode_bundle,
    fragment,
    make_status_report,
    new_bundle,
    parse_status_report,
)
from fogctl.mesh.errors import DropCounter, ProtocolError
from fogctl.mesh.ratchet import (
    DecryptError,
    PrekeyBundle,
    PrekeySecrets,
    Session,
    accept_session,
    make_prekeys,
    start_session,
)
from fogctl.mesh.records import MeshKeyRecord, MeshMessageRecord, MeshPeerRecord, MeshSentRecord
from fogctl.mesh.routing import Carried, Router, make_router
from fogctl.mesh.store import BundleStore
from fogctl.state import State
from fogctl.state.atomic import write_atomic

__all__ = ["Agent", "dtn_now", "node_name"]

BLOCK_COPIES = 193  # private-use extension block: spray-and-wait copies handed over
PREKEY_FILE = "mesh-prekeys.cbor"
ROUTING_SERVICE = "~routing"
INBOX_SERVICE = "inbox"


def dtn_now() -> int:
    """Current DTN time in ms (only the I/O edge calls this)."""
    return int((time.time() - DTN_EPOCH_UNIX) * 1000)


def node_name(state: State, flag: str | None = None) -> str:
    """This node's mesh name: ``--name`` > ``FOGCTL_MESH_NAME`` > config > node id."""
    name = state.config.get("mesh.name", None, flag=flag)
    if not name:
        name = state.identity().node_id[:12]
    name = str(name)
    EID.parse(f"dtn://{name}/")  # validates
    return name


def _node_of(eid: EID) -> str:
    return str(eid.node)


@dataclass
class Agent:
    state: State
    name: str
    router_name: str = "epidemic"
    router_options: dict[str, Any] = field(default_factory=dict)
    quota: int = 256 * 1024 * 1024
    drops: DropCounter = field(default_factory=DropCounter)

    def __post_init__(self) -> None:
        self.me = EID.parse(f"dtn://{self.name}/")
        self.store = BundleStore(self.state, quota_bytes=self.quota)
        self.router: Router = make_router(self.router_name, str(self.me), **self.router_options)
        self.reassembler = Reassembler()
        self.peer_sv: dict[str, set[str]] = {}
        self.acked: set[str] = set()
        self._pending_keep: dict[str, int] = {}
        self._drops_saved: dict[str, int] = {}
        self._load_router()

    # -- drop counters ----------------------------------------------------------------
    def record_drops(self) -> None:
        """Add this process's drop counts to the persistent totals (kv ``drops``)."""
        new = dict(self.drops)
        delta = {k: v - self._drops_saved.get(k, 0) for k, v in new.items()}
        with self.store.tx() as conn:
            row = conn.execute("SELECT value FROM mesh_kv WHERE key = 'drops'").fetchone()
            total: dict[str, int] = dict(cbor2.loads(bytes(row[0]))) if row else {}
            for k, v in delta.items():
                total[k] = total.get(k, 0) + v
            conn.execute(
                "INSERT OR REPLACE INTO mesh_kv(key, value) VALUES ('drops', ?)",
                (cbor2.dumps(total),),
            )
        self._drops_saved = new

    def drop_totals(self) -> dict[str, int]:
        raw = self.store.kv_get("drops")
        return dict(cbor2.loads(raw)) if raw else {}

    # -- router state persistence ---------------------------------------------------
    def _load_router(self) -> None:
        raw = self.store.kv_get(f"router:{self.router_name}")
        p = getattr(self.router, "p", None)
        if raw and isinstance(p, dict):
            try:
                data = cbor2.loads(raw)
                p.update({str(k): float(v) for k, v in data["p"].items()})
                self.router.last_encounter.update(data["last"])  # type: ignore[attr-defined]
                self.router.last_aged = data["aged"]  # type: ignore[attr-defined]
            except Exception:  # corrupt router state is rebuilt from contacts
                p.clear()

    def _save_router(self) -> None:
        p = getattr(self.router, "p", None)
        if isinstance(p, dict):
            data = {
                "p": p,
                "last": self.router.last_encounter,  # type: ignore[attr-defined]
                "aged": self.router.last_aged,  # type: ignore[attr-defined]
            }
            self.store.kv_set(f"router:{self.router_name}", cbor2.dumps(data))

    # -- sequence numbers -------------------------------------------------------------
    def _next_sequence(self, now: int) -> int:
        """Creation-timestamp sequence number: one counter that only grows, shared by
        every process on this state dir (``mesh send`` and ``mesh serve``), so no two
        bundles from here share (time, sequence) even when clocks are read out of
        order."""
        with self.store.tx() as conn:
            row = conn.execute("SELECT value FROM mesh_kv WHERE key = 'sequence'").fetchone()
            _, last_s = cbor2.loads(bytes(row[0])) if row else (0, -1)
            seq = last_s + 1
            conn.execute(
                "INSERT OR REPLACE INTO mesh_kv(key, value) VALUES ('sequence', ?)",
                (cbor2.dumps([now, seq]),),
            )
        return seq

    # -- keys -------------------------------------------------------------------------
    def _identity_keys(self) -> tuple[Any, bytes]:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        ident = self.state.identity()
        x = ident.exchange_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return ident.signing_key, x

    def _secrets(self) -> PrekeySecrets | None:
        path = self.state.keys_dir / PREKEY_FILE
        if not path.exists():
            return None
        return PrekeySecrets.from_bytes(path.read_bytes())

    def _save_secrets(self, s: PrekeySecrets) -> None:
        write_atomic(self.state.keys_dir / PREKEY_FILE, s.to_bytes(), mode=0o600)

    def publish_keys(self, *, rotate: bool = False, one_time: int = 20) -> PrekeyBundle:
        """This node's prekey bundle (made on first use; ``rotate`` makes a new one)."""
        raw = self.store.kv_get("prekeys")
        if raw and not rotate and self._secrets() is not None:
            return PrekeyBundle.from_bytes(raw)
        sign, x = self._identity_keys()
        bundle, sec = make_prekeys(str(self.me), sign, x, one_time=one_time)
        old = self._secrets()
        if old is not None:  # keep unused one-time keys of earlier bundles working
            sec.opks = {**old.opks, **sec.opks}
        self._save_secrets(sec)
        self.store.kv_set("prekeys", bundle.to_bytes())
        return bundle

    def key_record(self, b: PrekeyBundle, trusted: bool) -> MeshKeyRecord:
        return MeshKeyRecord(
            node=b.node,
            identity_key=b.ik_ed.hex(),
            signed_prekey=b.spk.hex(),
            one_time_prekeys=len(b.opks),
            fingerprint=b.fingerprint,
            trusted=trusted,
            prekeys=b.to_bytes().hex(),
        )

    def remember_keys(self, b: PrekeyBundle, *, trusted: bool) -> bool:
        """Store a verified prekey bundle; a different identity for a trusted node is
        refused (no silent key change)."""
        b.verify()
        rows = self.state.db.query(
            "SELECT bundle, trusted FROM mesh_keys WHERE node = ?", (b.node,)
        )
        if rows:
            old = PrekeyBundle.from_bytes(bytes(rows[0][0]))
            if rows[0][1] and (old.ik_ed, old.ik_x) != (b.ik_ed, b.ik_x):
                raise Refused(
                    f"{b.node}: identity key differs from the trusted one "
                    f"({old.fingerprint}); remove it first"
                )
            trusted = trusted or bool(rows[0][1])
        with self.store.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO mesh_keys(node, bundle, trusted) VALUES (?,?,?)",
                (b.node, b.to_bytes(), int(trusted)),
            )
        return trusted

    def trust(self, node: str, fingerprint: str | None = None) -> MeshKeyRecord:
        eid = _node_of(
            EID.parse(node if "://" in node or node.startswith("ipn:") else f"dtn://{node}/")
        )
        rows = self.state.db.query("SELECT bundle FROM mesh_keys WHERE node = ?", (eid,))
        if not rows:
            raise InvalidInput(
                f"no prekey bundle known for {eid}: import one with "
                "'fogctl mesh keys trust FILE' or meet the node first"
            )
        b = PrekeyBundle.from_bytes(bytes(rows[0][0]))
        if fingerprint is not None and fingerprint.replace(" ", "") != b.fingerprint.replace(
            " ", ""
        ):
            raise Refused(f"{eid}: fingerprint mismatch (known key has {b.fingerprint})")
        with self.store.tx() as conn:
            conn.execute("UPDATE mesh_keys SET trusted = 1 WHERE node = ?", (eid,))
        return self.key_record(b, True)

    def keys(self) -> list[MeshKeyRecord]:
        rows = self.state.db.query("SELECT bundle, trusted FROM mesh_keys ORDER BY node")
        return [self.key_record(PrekeyBundle.from_bytes(bytes(r[0])), bool(r[1])) for r in rows]

    def _trusted(self, node: str) -> PrekeyBundle | None:
        rows = self.state.db.query(
            "SELECT bundle FROM mesh_keys WHERE node = ? AND trusted = 1", (node,)
        )
        return PrekeyBundle.from_bytes(bytes(rows[0][0])) if rows else None

    def _known(self, node: str) -> tuple[PrekeyBundle, bool] | None:
        rows = self.state.db.query("SELECT bundle, trusted FROM mesh_keys WHERE node = ?", (node,))
        return (PrekeyBundle.from_bytes(bytes(rows[0][0])), bool(rows[0][1])) if rows else None

    def _session(self, peer: str) -> Session | None:
        rows = self.state.db.query("SELECT state FROM mesh_sessions WHERE peer = ?", (peer,))
        return Session.from_bytes(bytes(rows[0][0])) if rows else None

    def _save_session(self, peer: str, s: Session) -> None:
        """Write a session; callers hold the write transaction they loaded it in, so a
        concurrent ``mesh send`` and ``mesh serve`` never lose a ratchet step."""
        self.state.db.execute(
            "INSERT OR REPLACE INTO mesh_sessions(peer, state) VALUES (?, ?)",
            (peer, s.to_bytes()),
        )

    # -- sending ----------------------------------------------------------------------
    def send(
        self,
        to: str,
        data: bytes,
        *,
        now: int,
        lifetime_ms: int = 3_600_000,
        encrypt: bool = True,
        fragment_size: int | None = None,
        report: bool = False,
    ) -> MeshSentRecord:
        """Encrypt ``data`` for ``to`` and queue it for store-carry-forward delivery."""
        dest = EID.parse(to)
        if (
            dest.scheme == 1
            and isinstance(dest.ssp, str)
            and dest.ssp.endswith("/")
            and dest.ssp.count("/") == 3
        ):
            dest = EID(1, dest.ssp + INBOX_SERVICE)
        peer = _node_of(dest)
        if encrypt:
            sign, x = self._identity_keys()
            with self.store.tx():
                sess = self._session(peer)
                if sess is None:
                    keys = self._trusted(peer)
                    if keys is None:
                        raise Refused(
                            f"no trusted key for {peer}: run 'fogctl mesh keys trust' "
                            "first (or send with --plain)"
                        )
                    sess = start_session(
                        sign, x, keys, opk_index=secrets.randbelow(max(1, len(keys.opks)))
                    )
                body = [1, sess.encrypt(data)]
                self._save_session(peer, sess)
        else:
            body = [0, data]
        flags = REPORT_DELIVERY if report else 0
        b = new_bundle(
            EID.parse(f"{self.me}{INBOX_SERVICE}"),
            dest,
            cbor2.dumps(body),
            now=now,
            sequence=self._next_sequence(now),
            lifetime_ms=lifetime_ms,
            flags=flags,
        )
        parts = fragment(b, fragment_size) if fragment_size else [b]
        copies = self.router.initial_copies()
        for p in parts:
            r = self.store.add(p, now=now, origin="local", copies=copies)
            if not r.stored:
                raise InvalidInput(f"bundle not stored: {r.reason}")
        return MeshSentRecord(
            id=b.id,
            destination=str(dest),
            size=len(data),
            fragments=len(parts),
            encrypted=encrypt,
            expires_at=b.expires_at(now),
        )

    # -- receiving --------------------------------------------------------------------
    def receive(self, raw: bytes, *, now: int, peer: str | None = None) -> str:
        """Process one bundle from a convergence layer; returns what happened
        (``stored``, ``delivered``, ``routing``, ``duplicate``, or ``dropped:REASON``)."""
        try:
            b = decode_bundle(raw)
        except ProtocolError as exc:
            self.drops.drop(exc)
            return f"dropped:{exc.reason}"
        try:
            return self._process(b, raw, now=now, peer=peer)
        except ProtocolError as exc:
            self.drops.drop(exc)
            return f"dropped:{exc.reason}"

    def _process(self, b: Bundle, raw: bytes, *, now: int, peer: str | None) -> str:
        p = b.primary
        if b.is_expired(now):
            self.drops.drop("expired")
            self._report(b, "deleted", now, reason=1)
            return "dropped:expired"
        if b.hop_limit_exceeded():
            self.drops.drop("hop-limit")
            self._report(b, "deleted", now, reason=9)
            return "dropped:hop-limit"
        if p.flags & REPORT_RECEPTION:
            self._report(b, "received", now)
        if _node_of(p.destination) == str(self.me):
            if str(p.destination).endswith("/" + ROUTING_SERVICE):
                if peer is not None:
                    self._on_routing(peer, b.payload, now)
                return "routing"
            if self.store.seen(b.id):
                return "duplicate"
            self.store.mark_seen(b.id, now=now, expires=b.expires_at(now))
            whole = self.reassembler.add(b)
            if whole is None:
                return "fragment"
            self.acked.add(b.id)
            return self._deliver(whole, now)
        r = self.store.add(b, now=now, raw=raw, copies=self._copies(b))
        if r.stored:
            return "stored"
        if r.reason == "quota":
            self.drops.drop("quota")
            self._report(b, "deleted", now, reason=4)
            return "dropped:quota"
        return "duplicate"

    @staticmethod
    def _copies(b: Bundle) -> int:
        blk = b.block(BLOCK_COPIES)
        if blk is None:
            return 1
        try:
            v = cbor2.loads(blk.data)
        except Exception:
            return 1
        return v if isinstance(v, int) and 1 <= v <= 1 << 16 else 1

    def _report(self, b: Bundle, status: str, now: int, reason: int = 0) -> None:
        flag = {
            "forwarded": REPORT_FORWARDING,
            "received": REPORT_RECEPTION,
            "delivered": REPORT_DELIVERY,
            "deleted": REPORT_DELETION,
        }.get(status, 0)
        if (
            not b.primary.flags & flag
            or b.primary.is_admin
            or str(b.primary.report_to) == "dtn:none"
        ):
            return
        rep = make_status_report(b, status, source=self.me, now=now, reason=reason)
        self.store.add(rep, now=now, origin="local")

    def _deliver(self, b: Bundle, now: int) -> str:
        p = b.primary
        if p.is_admin:
            sr = parse_status_report(b)
            self.store.kv_set(
                f"report:{sr.subject_source}:{sr.subject_time}:{sr.subject_sequence}",
                cbor2.dumps([list(sr.status), sr.reason, now]),
            )
            return "delivered"
        sender = _node_of(p.source)
        try:
            kind, body = cbor2.loads(b.payload)
            if kind not in (0, 1) or not isinstance(body, bytes):
                raise ValueError
        except Exception:
            kind, body = 0, b.payload  # another implementation's plain application data
        encrypted = kind == 1
        trusted = False
        if encrypted:
            body, trusted = self._decrypt(sender, body)
        digest, inline = self.store.put_bytes(body)  # a blob is durable before the row
        with self.store.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO mesh_inbox(id, sender, received_at, blob, size, encrypted,"
                " read, data) VALUES (?,?,?,?,?,?,0,?)",
                (
                    b.id,
                    sender + ("" if trusted or not encrypted else "?"),
                    now,
                    digest,
                    len(body),
                    int(encrypted),
                    inline,
                ),
            )
        self._report(b, "delivered", now)
        return "delivered"

    def _decrypt(self, sender: str, msg: bytes) -> tuple[bytes, bool]:
        with self.store.tx():
            return self._decrypt_locked(sender, msg)

    def _decrypt_locked(self, sender: str, msg: bytes) -> tuple[bytes, bool]:
        known = self._known(sender)
        sess = self._session(sender)
        if sess is not None:
            try:
                pt = sess.decrypt(msg)
                self._save_session(sender, sess)
                return pt, bool(known and known[1])
            except DecryptError:
                pass  # maybe the sender started a new session: try the agreement header
        sec = self._secrets()
        if sec is None:
            raise ProtocolError("encrypted message but this node has no prekeys", reason="decrypt")
        _, x = self._identity_keys()
        ident = self.state.identity()
        try:
            new, a_ed, pt = accept_session(x, ident.ed25519_public, sec, msg)
        except DecryptError:
            raise ProtocolError(
                f"message from {sender} failed authentication", reason="decrypt"
            ) from None
        trusted = False
        if known is not None:
            if known[0].ik_ed != a_ed:
                if known[1]:
                    raise ProtocolError(
                        f"{sender} used an identity key that is not the trusted one",
                        reason="decrypt",
                    )
            else:
                trusted = known[1]
        self._save_secrets(sec)  # the used one-time prekey is gone for good
        self._save_session(sender, new)
        return pt, trusted

    # -- inbox ------------------------------------------------------------------------
    def inbox(self) -> list[MeshMessageRecord]:
        rows = self.state.db.query(
            "SELECT id, sender, received_at, size, read, encrypted FROM mesh_inbox"
            " ORDER BY received_at, id"
        )
        return [
            MeshMessageRecord(
                id=r["id"],
                sender=r["sender"].rstrip("?"),
                received_at=r["received_at"],
                size=r["size"],
                read=bool(r["read"]),
                encrypted=bool(r["encrypted"]),
                sender_trusted=not r["sender"].endswith("?"),
            )
            for r in rows
        ]

    def read(self, message_id: str) -> tuple[MeshMessageRecord, bytes]:
        rows = self.state.db.query(
            "SELECT id, blob, data FROM mesh_inbox WHERE id = ? OR id LIKE ?",
            (message_id, message_id + "%"),
        )
        if len(rows) != 1:
            raise InvalidInput(
                f"no message {message_id!r} in the inbox"
                if not rows
                else f"{message_id!r} is ambiguous"
            )
        mid = rows[0]["id"]
        data = self.store.get_bytes(rows[0]["blob"], rows[0]["data"])
        with self.store.tx() as conn:
            conn.execute("UPDATE mesh_inbox SET read = 1 WHERE id = ?", (mid,))
        rec = next(m for m in self.inbox() if m.id == mid)
        return rec, data

    # -- contacts ---------------------------------------------------------------------
    def contact_up(self, peer: str, now: int) -> bytes:
        """Start a contact with ``peer`` (a node EID): returns our routing bundle."""
        t = now / 1000
        self.router.contact_up(peer, t)
        self.store.purge_expired(now)
        self._save_router()
        payload: dict[str, Any] = {
            "sv": self.store.ids()
            + [
                r[0]
                for r in self.state.db.query(
                    "SELECT id FROM mesh_seen ORDER BY at DESC LIMIT 100000"
                )
            ],
            "adv": dict(self.router.advertise(t) or {}),
            "acks": sorted(self.acked) if self.router.acks else [],
        }
        keys = self.store.kv_get("prekeys")
        if keys:
            payload["keys"] = keys
        b = new_bundle(
            self.me,
            EID.parse(f"{peer}{ROUTING_SERVICE}"),
            cbor2.dumps(payload),
            now=now,
            sequence=self._next_sequence(now),
            lifetime_ms=60_000,
            hop_limit=1,
        )
        return b.to_bytes()

    def _on_routing(self, peer: str, payload: bytes, now: int) -> None:
        try:
            msg = cbor2.loads(payload)
            sv = msg.get("sv", [])
            adv = msg.get("adv", {})
            acks = msg.get("acks", [])
            if not (isinstance(sv, list) and isinstance(adv, dict) and isinstance(acks, list)):
                raise ValueError
        except Exception:
            raise ProtocolError("malformed routing message", reason="routing") from None
        self.peer_sv[peer] = theirs = {x for x in sv if isinstance(x, str)}
        # a bundle for the peer itself that it already has was delivered (its
        # acknowledgement was lost, e.g. it crashed after storing it): let go of it
        for rec in self.store.records():
            if rec.id in theirs and _node_of(EID.parse(rec.destination)) == peer:
                self.store.remove(rec.id, now=now)
        self.router.learn(peer, {str(k): v for k, v in adv.items()}, now / 1000)
        if self.router.acks:
            new = {x for x in acks if isinstance(x, str)} - self.acked
            self.acked |= new
            for bid in new:
                self.store.remove(bid, now=now)
        if isinstance(msg.get("keys"), bytes):
            try:
                kb = PrekeyBundle.from_bytes(msg["keys"])
                if kb.node == peer:
                    self.remember_keys(kb, trusted=False)
            except (ProtocolError, Refused):
                self.drops.drop("keys")
        self._save_router()

    def contact_down(self, peer: str, now: int) -> None:
        self.router.contact_down(peer, now / 1000)
        self.peer_sv.pop(peer, None)

    def ready(self, peer: str) -> bool:
        return peer in self.peer_sv

    def outgoing(
        self, peer: str, now: int, *, blind: bool = False
    ) -> Iterator[tuple[str, bytes, bool]]:
        """Bundles to hand to ``peer`` now: (id, wire bytes, drop-local-copy-after-ack).

        ``blind``: the peer runs no fogctl routing exchange (MTCP/UDP peers); only
        bundles the router would give it are sent, without a summary vector."""
        sv = self.peer_sv.get(peer)
        if sv is None:
            if not blind:
                return
            sv = self.peer_sv.setdefault(peer, set())
        t = now / 1000
        for rec in self.store.records():
            if rec.id in sv:
                continue
            if rec.expires_at <= now:
                continue
            try:
                b = self.store.get(rec.id)
            except (KeyError, ProtocolError):
                continue
            item = Carried(
                rec.id,
                _node_of(b.primary.destination),
                rec.copies,
                rec.hop_count or 0,
                rec.received_at / 1000,
            )
            d = self.router.decide(item, peer, t)
            if d is None:
                continue
            sv.add(rec.id)
            out = b.with_hop().with_previous_node(self.me)
            if b.primary.creation_time == 0:
                out = out.with_age((b.age or 0) + now - rec.received_at)
            else:
                out = out.with_age(now - b.primary.creation_time)
            if d.give > 1 or self.router_name == "spray":
                out = out.replace_block(
                    CanonicalBlock(
                        BLOCK_COPIES,
                        self._free_number(out),
                        cbor2.dumps(d.give),
                        BLOCK_DISCARD_UNPROCESSED,
                    )
                )
            if d.keep > 0 and d.keep != rec.copies:
                self._pending_keep[rec.id] = d.keep  # applied once the peer has it
            yield rec.id, out.to_bytes(), d.keep <= 0

    @staticmethod
    def _free_number(b: Bundle) -> int:
        old = b.block(BLOCK_COPIES)
        return old.number if old is not None else max(b.block_numbers() | {1}) + 1

    def forwarded(self, bundle_id: str, *, drop: bool, now: int) -> None:
        """A convergence layer handed ``bundle_id`` over (acknowledged where it can)."""
        try:
            b = self.store.get(bundle_id)
        except (KeyError, ProtocolError, OSError):
            return
        self._report(b, "forwarded", now)
        keep = self._pending_keep.pop(bundle_id, None)
        if drop:
            self.store.remove(bundle_id, now=now)
        elif keep is not None:
            self.store.set_copies(bundle_id, keep)

    # -- listings ---------------------------------------------------------------------
    def peers(self) -> list[MeshPeerRecord]:
        rows = self.state.db.query("SELECT * FROM mesh_peers ORDER BY last_seen DESC")
        trusted = {r[0] for r in self.state.db.query("SELECT node FROM mesh_keys WHERE trusted=1")}
        pins = {r[0]: r[1] for r in self.state.db.query("SELECT node, spki FROM mesh_tls_pins")}
        p = getattr(self.router, "p", {})
        return [
            MeshPeerRecord(
                node=r["node"],
                address=r["address"],
                convergence_layer=r["cl"],
                last_seen=r["last_seen"],
                predictability=p.get(r["node"]),
                trusted=r["node"] in trusted,
                tls_key=pins.get(r["node"]),
            )
            for r in rows
        ]

    def note_peer(self, peer: str, address: str, cl: str, when: float) -> None:
        with self.store.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO mesh_peers(node, address, cl, last_seen) VALUES (?,?,?,?)",
                (peer, address, cl, when),
            )
