"""Sans-IO DTN routers behind one interface; the simulator and the real node run these.

A node owns one :class:`Router`. On every contact the two nodes

1. call :meth:`Router.contact_up` (PRoPHET: encounter update and aging),
2. swap :meth:`Router.advertise` outputs and feed the peer's to
   :meth:`Router.learn` (PRoPHET: transitivity; the others advertise nothing),
3. swap *summary vectors* -- the IDs each holds or has seen (Vahdat & Becker's
   anti-entropy, used by every router so nothing is sent twice),
4. for each bundle the peer lacks, ask :meth:`Router.decide` whether to hand it over,
   with how many copies, and how many to keep (0 = drop the local copy).

Time is in seconds (floats) and passed in; nothing here reads a clock or a global RNG.

Routers (choose per node with ``mesh.router``):

==============  ===================================================================
``epidemic``    every contact gets a copy of every bundle it lacks
``prophet``     RFC 6693 delivery predictabilities; GRTR, GRTR+ (default) or GTMX
``spray``       binary spray-and-wait: L copies halved at each hand-over, then direct
``flooding``    managed flooding: relay while hops < TTL within a relay window
``direct``      only hand the bundle to its destination (the floor)
==============  ===================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ROUTERS",
    "SPRAY_COPIES",
    "Carried",
    "Decision",
    "DirectDelivery",
    "Epidemic",
    "Flooding",
    "Prophet",
    "ProphetParams",
    "Router",
    "SprayAndWait",
    "make_router",
]


#: Binary spray-and-wait's default copy count L (``--copies``, ``mesh.spray_copies``).
SPRAY_COPIES = 8


@dataclass(slots=True)
class Carried:
    """What a router needs to know about a bundle a node holds."""

    id: str
    destination: str  # destination node name
    copies: int = 1
    hops: int = 0
    received_at: float = 0.0
    p_max: float = 0.0  # PRoPHET GRTR+: best P(B,D) this node handed the bundle to
    forwards: int = 0  # PRoPHET GTMX: how often this node forwarded it


@dataclass(frozen=True, slots=True)
class Decision:
    give: int  # copies handed to the peer (>= 1)
    keep: int  # copies this node keeps (0: drop the local copy)


class Router:
    """Direct delivery; the base of every router (bundles for the peer itself always go)."""

    name = "direct"
    #: exchange delivery acknowledgements and delete acknowledged copies (PRoPHET's
    #: acknowledged bundles in its bundle offers, RFC 6693); epidemic, spray and flooding do not
    acks = False

    def __init__(self, me: str) -> None:
        self.me = me

    def initial_copies(self) -> int:
        return 1

    def contact_up(self, peer: str, now: float) -> None:
        del peer, now

    def contact_down(self, peer: str, now: float) -> None:
        del peer, now

    def advertise(self, now: float) -> Mapping[str, float] | None:
        del now
        return None

    def learn(self, peer: str, advert: Mapping[str, float] | None, now: float) -> None:
        del peer, advert, now

    def decide(self, item: Carried, peer: str, now: float) -> Decision | None:
        del now
        if peer == item.destination:
            return Decision(1, 0)
        return None


class DirectDelivery(Router):
    name = "direct"


class Epidemic(Router):
    """Epidemic routing (Vahdat & Becker 2000): copy to every peer that lacks it."""

    name = "epidemic"

    def decide(self, item: Carried, peer: str, now: float) -> Decision | None:
        if peer == item.destination:
            return Decision(1, 0)
        return Decision(1, item.copies)


class SprayAndWait(Router):
    """Binary spray-and-wait (Spyropoulos et al. 2005) with ``copies`` = L."""

    name = "spray"

    def __init__(self, me: str, copies: int = SPRAY_COPIES) -> None:
        super().__init__(me)
        if copies < 1:
            raise ValueError("spray-and-wait needs at least one copy")
        self.copies = copies

    def initial_copies(self) -> int:
        return self.copies

    def decide(self, item: Carried, peer: str, now: float) -> Decision | None:
        if peer == item.destination:
            return Decision(1, 0)
        if item.copies > 1:
            give = item.copies // 2
            return Decision(give, item.copies - give)
        return None  # wait phase: direct delivery only


class Flooding(Router):
    """Managed flooding (as in Bluetooth mesh): relay a bundle to peers met within
    ``window`` seconds of receiving it while its hop count is below ``ttl``; the
    summary vector plays the role of the message cache."""

    name = "flooding"

    def __init__(self, me: str, ttl: int = 7, window: float = 600.0) -> None:
        super().__init__(me)
        self.ttl = ttl
        self.window = window

    def decide(self, item: Carried, peer: str, now: float) -> Decision | None:
        if peer == item.destination:
            return Decision(1, 0)
        if item.hops < self.ttl and now - item.received_at <= self.window:
            return Decision(1, item.copies)
        return None


@dataclass(frozen=True, slots=True)
class ProphetParams:
    """RFC 6693 section 3.3 defaults (not the 2003 paper's 0.75/0.25/0.98)."""

    p_encounter_max: float = 0.7
    p_encounter_first: float = 0.5
    p_first_threshold: float = 0.1
    delta: float = 0.01
    beta: float = 0.9
    gamma: float = 0.999
    i_typ: float = 300.0  # typical inter-encounter interval (s), deployment specific
    time_unit: float = 1.0  # seconds per aging unit K
    strategy: str = "grtr+"  # grtr, grtr+, gtmx (RFC 6693 section 3.7)
    nf_max: int = 4  # GTMX: forward a bundle at most this many times


class Prophet(Router):
    """PRoPHET (RFC 6693): delivery predictabilities with encounter, aging and
    transitivity updates, and the GRTR forwarding strategy (forward a copy to B when
    P(B,D) > P(A,D))."""

    name = "prophet"
    acks = True

    def __init__(self, me: str, params: ProphetParams | None = None) -> None:
        super().__init__(me)
        self.params = params or ProphetParams()
        self.p: dict[str, float] = {}
        self.last_encounter: dict[str, float] = {}
        self.last_aged: float | None = None
        self.peers_p: dict[str, dict[str, float]] = {}

    def age(self, now: float) -> None:
        """P = P_old * gamma^K, K = elapsed time units (RFC 6693 eq. 2)."""
        if self.last_aged is None:
            self.last_aged = now
            return
        k = math.floor((now - self.last_aged) / self.params.time_unit)
        if k <= 0:
            return
        factor = self.params.gamma**k
        self.last_aged += k * self.params.time_unit
        for d in list(self.p):
            v = self.p[d] * factor
            if v < self.params.p_first_threshold:
                del self.p[d]
            else:
                self.p[d] = v

    def contact_up(self, peer: str, now: float) -> None:
        """RFC 6693 eq. 1; P_encounter scales with the interval since the last
        encounter up to I_typ (section 2.1.1); a first encounter sets P_encounter_first."""
        self.age(now)
        pr = self.params
        old = self.p.get(peer)
        if old is None:
            self.p[peer] = pr.p_encounter_first
        else:
            intvl = now - self.last_encounter.get(peer, -math.inf)
            scale = min(1.0, intvl / pr.i_typ) if pr.i_typ > 0 else 1.0
            self.p[peer] = old + (1 - pr.delta - old) * pr.p_encounter_max * scale
        self.last_encounter[peer] = now

    def advertise(self, now: float) -> Mapping[str, float]:
        self.age(now)
        return dict(self.p)

    def learn(self, peer: str, advert: Mapping[str, float] | None, now: float) -> None:
        """Transitivity (eq. 3): P(A,C) = max(P(A,C)_old, P(A,B) * P(B,C) * beta)."""
        if not advert:
            self.peers_p[peer] = {}
            return
        pab = self.p.get(peer, 0.0)
        clean: dict[str, float] = {}
        for c, pbc in advert.items():
            if not isinstance(pbc, float | int) or isinstance(pbc, bool) or not 0 <= pbc <= 1:
                continue
            clean[c] = float(pbc)
            if c == self.me:
                continue
            v = pab * float(pbc) * self.params.beta
            if v > self.p.get(c, 0.0):
                self.p[c] = v
        self.peers_p[peer] = clean

    def decide(self, item: Carried, peer: str, now: float) -> Decision | None:
        if peer == item.destination:
            return Decision(1, 0)
        theirs = self.peers_p.get(peer, {}).get(item.destination, 0.0)
        if theirs <= self.p.get(item.destination, 0.0):  # GRTR: P(B,D) > P(A,D)
            return None
        strategy = self.params.strategy
        if strategy == "grtr+":
            if theirs <= item.p_max:  # only to a better node than any given so far
                return None
            item.p_max = theirs
        elif strategy == "gtmx":
            if item.forwards >= self.params.nf_max:
                return None
            item.forwards += 1
        return Decision(1, item.copies)

    def contact_down(self, peer: str, now: float) -> None:
        self.peers_p.pop(peer, None)


ROUTERS = ("epidemic", "prophet", "spray", "flooding", "direct")


def make_router(name: str, me: str, **options: float | str) -> Router:
    """A router by name (``ROUTERS``); ``options`` pass router parameters."""
    if name == "epidemic":
        return Epidemic(me)
    if name == "prophet":
        return Prophet(me, ProphetParams(**options))  # type: ignore[arg-type]
    if name == "spray":
        return SprayAndWait(me, int(options.get("copies", SPRAY_COPIES)))
    if name == "flooding":
        return Flooding(me, int(options.get("ttl", 7)), float(options.get("window", 600.0)))
    if name == "direct":
        return DirectDelivery(me)
    raise ValueError(f"unknown router {name!r}; choose one of {', '.join(ROUTERS)}")
