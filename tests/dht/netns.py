"""Linux network namespaces for NAT tests: a public net with coturn, two NAT routers, two hosts.

Addresses (198.18.0.0/15 for the "internet", 10.x behind the NATs) exist only inside
namespaces this module creates; :meth:`Topology.close` deletes them all.

    P   (public)   br0 198.18.0.1, 198.18.0.2   coturn; default route to a black hole
    R1  (NAT)      198.18.0.11  <-> 10.1.0.1      MASQUERADE (endpoint-independent)
    R2  (NAT)      198.18.0.12  <-> 10.2.0.1      MASQUERADE --random (symmetric) if asked
    H1  (host)     10.1.0.2  via 10.1.0.1
    H2  (host)     10.2.0.2  via 10.2.0.1

Routers set ip_forward=1 and drop unsolicited WAN packets (INPUT and FORWARD) except
ESTABLISHED/RELATED, so a peer's first punch packet cannot take the conntrack entry.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field


def sh(*args: str, ns: str | None = None) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
    return res.stdout


@dataclass
class Topology:
    symmetric: bool = False
    tag: str = field(default_factory=lambda: f"fog{os.getpid() % 100000}")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return f"{self.tag}{name}"

    def build(self) -> Topology:
        for n in ("P", "R1", "R2", "H1", "H2"):
            sh("ip", "netns", "add", self.ns(n))
            sh("ip", "link", "set", "lo", "up", ns=self.ns(n))
        p = self.ns("P")
        sh("ip", "link", "add", "br0", "type", "bridge", ns=p)
        sh("ip", "link", "set", "br0", "up", ns=p)
        sh("ip", "addr", "add", "198.18.0.1/24", "dev", "br0", ns=p)
        sh("ip", "addr", "add", "198.18.0.2/24", "dev", "br0", ns=p)
        # coturn closes an allocation when relaying to an unroutable address: route
        # everything else to a black-hole neighbour
        sh(
            "ip",
            "neigh",
            "replace",
            "198.18.0.254",
            "lladdr",
            "02:00:00:00:00:fe",
            "dev",
            "br0",
            "nud",
            "permanent",
            ns=p,
        )
        sh("ip", "route", "add", "default", "via", "198.18.0.254", "dev", "br0", ns=p)
        for i, sym in ((1, False), (2, self.symmetric)):
            r, h = self.ns(f"R{i}"), self.ns(f"H{i}")
            sh(
                "ip",
                "link",
                "add",
                f"p{i}",
                "netns",
                p,
                "type",
                "veth",
                "peer",
                "name",
                "wan",
                "netns",
                r,
            )
            sh("ip", "link", "set", f"p{i}", "master", "br0", "up", ns=p)
            sh("ip", "addr", "add", f"198.18.0.{10 + i}/24", "dev", "wan", ns=r)
            sh("ip", "link", "set", "wan", "up", ns=r)
            sh(
                "ip",
                "link",
                "add",
                "lan",
                "netns",
                r,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                h,
            )
            sh("ip", "addr", "add", f"10.{i}.0.1/24", "dev", "lan", ns=r)
            sh("ip", "link", "set", "lan", "up", ns=r)
            sh("ip", "addr", "add", f"10.{i}.0.2/24", "dev", "eth0", ns=h)
            sh("ip", "link", "set", "eth0", "up", ns=h)
            sh("ip", "route", "add", "default", "via", f"10.{i}.0.1", ns=h)
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=r)
            masq = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
            sh(*masq, *(["--random"] if sym else []), ns=r)
            for chain in ("INPUT", "FORWARD"):
                sh(
                    "iptables",
                    "-A",
                    chain,
                    "-i",
                    "wan",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "ESTABLISHED,RELATED",
                    "-j",
                    "ACCEPT",
                    ns=r,
                )
                sh("iptables", "-A", chain, "-i", "wan", "-j", "DROP", ns=r)
        return self

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.procs.append(proc)
        return proc

    def start_coturn(self, user: str = "fog", password: str = "fogpass") -> None:
        self.spawn(
            "P",
            "turnserver",
            "-n",
            "--listening-ip",
            "198.18.0.1",
            "--listening-ip",
            "198.18.0.2",
            "--relay-ip",
            "198.18.0.1",
            "--listening-port",
            "3478",
            "--min-port",
            "49152",
            "--max-port",
            "49999",
            "--lt-cred-mech",
            "--user",
            f"{user}:{password}",
            "--realm",
            "fog.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file",
            "stdout",
            "--pidfile",
            f"/tmp/{self.tag}-turn.pid",
        )
        self.wait_udp("P", ["198.18.0.1:3478", "198.18.0.2:3478"])

    def wait_udp(self, name: str, endpoints: list[str], timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = sh("ss", "-Hlnu", ns=self.ns(name))
            if all(e in out for e in endpoints):
                return
            for proc in self.procs:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    out2 = proc.stdout.read().decode() if proc.stdout else ""
                    raise RuntimeError(f"{proc.args} exited: {err[-500:]} {out2[-500:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{endpoints} not listening in {name} after {timeout}s")

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for n in ("H1", "H2", "R1", "R2", "P"):
            subprocess.run(["ip", "netns", "del", self.ns(n)], capture_output=True)
