"""One real anvil for the whole session: deploy once, evm_snapshot/evm_revert per test."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

# anvil's well-known development keys (default mnemonic); they hold only test ETH.
DEV_KEYS = {
    "deployer": "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "provider": "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "voter": "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "stranger": "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
}
ADDRESSES = {
    "deployer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "provider": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "voter": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "stranger": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
}
DAY = 86400
ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


@dataclass
class Compile:
    """A recompile of the contracts into ``out``, started when the session starts."""

    proc: subprocess.Popen[str] | None
    out: Path
    why_not: str = ""


@pytest.fixture(scope="session")
def background_compile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compile]:
    """Start solc-js early (the chain fixture asks for it): it runs while the chain tests
    wait on anvil, and tests/chain/test_reproducible_build.py checks its output."""
    import shutil

    out = tmp_path_factory.mktemp("artifacts")
    node = shutil.which("node")
    modules = CONTRACTS / "node_modules"
    if node is None:
        yield Compile(None, out, "node is not installed (.ci/run needs it for the contracts)")
        return
    if not ((modules / "solc").is_dir() and (modules / "@openzeppelin" / "contracts").is_dir()):
        yield Compile(None, out, "contracts/node_modules missing ('npm ci' in contracts/)")
        return
    proc = subprocess.Popen(
        [node, str(CONTRACTS / "build.js"), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield Compile(proc, out)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def anvil_or_skip() -> str:
    from fogctl.chain.local import find_anvil
    from fogctl.errors import OperationFailed

    try:
        return find_anvil()
    except OperationFailed:
        need(False, "anvil is not installed ('npm ci' in contracts/; .ci/run does it)")
        raise


@dataclass
class SessionChain:
    rpc_url: str
    deployment: dict[str, Any]
    local: Any

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        from fogctl.chain.rpc import rpc_call

        return rpc_call(self.rpc_url, method, params or [])

    def advance(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine")

    def now(self) -> int:
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


@pytest.fixture(scope="session")
def session_chain(
    tmp_path_factory: pytest.TempPathFactory, background_compile: Compile
) -> Iterator[SessionChain]:
    anvil_or_skip()
    from fogctl.chain.accounts import load_account
    from fogctl.chain.client import ChainClient
    from fogctl.chain.deploy import DeployParams, deploy_stack
    from fogctl.chain.local import LocalChain
    from fogctl.chain.units import WEI

    root = tmp_path_factory.mktemp("chain-session")
    local = LocalChain(root / "chain")
    rec = local.start(port=free_port())
    try:
        client = ChainClient(rec.rpc_url)
        deployer = load_account(root, environ={"FOGCTL_CHAIN_PRIVATE_KEY": DEV_KEYS["deployer"]})
        dep = deploy_stack(client, deployer, root / "chain", DeployParams())
        token = client.contract("FogToken", dep.token)
        for who in ("provider", "voter"):
            client.transact(
                token.functions.transfer(ADDRESSES[who], 2_000_000 * WEI),
                deployer,
                action="setup.transfer",
            )
        yield SessionChain(rec.rpc_url, dep.to_dict(), local)
    finally:
        local.stop()


@dataclass
class Chain(SessionChain):
    home: Path
    monkeypatch: pytest.MonkeyPatch

    def use(self, who: str) -> None:
        """Sign the next commands as one of the dev accounts."""
        self.monkeypatch.setenv("FOGCTL_CHAIN_PRIVATE_KEY", DEV_KEYS[who])


@pytest.fixture
def chain(
    session_chain: SessionChain, fog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Chain]:
    """The session chain, reverted after the test; this test's home knows the deployment."""
    deployments = fog_home / "chain" / "deployments"
    deployments.mkdir(parents=True)
    (deployments / "31337.json").write_text(json.dumps(session_chain.deployment))
    monkeypatch.setenv("FOGCTL_CHAIN_RPC_URL", session_chain.rpc_url)
    c = Chain(
        session_chain.rpc_url, session_chain.deployment, session_chain.local, fog_home, monkeypatch
    )
    c.use("deployer")
    snap = c.rpc("evm_snapshot")
    try:
        yield c
    finally:
        assert c.rpc("evm_revert", [snap]) is True
