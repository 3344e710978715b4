"""fogctl's chain domain: the FOG token, provider staking with slashing, and the DAO.

``fogctl stake`` and ``fogctl vote`` are thin wrappers over :mod:`fogctl.chain.ops`
(one function per command); :mod:`fogctl.chain.local` runs the local anvil chain;
:mod:`fogctl.chain.reverts` is the one place that turns backend exceptions into
fogctl errors with decoded revert reasons. web3 is imported only inside those modules,
never here, so importing this package stays cheap.
"""

from __future__ import annotations

from fogctl.chain.records import (
    AccountRecord,
    ChainRecord,
    DeploymentRecord,
    ProposalRecord,
    StakeStatusRecord,
    TxRecord,
    VestingRecord,
)

__all__ = [
    "AccountRecord",
    "ChainRecord",
    "DeploymentRecord",
    "ProposalRecord",
    "StakeStatusRecord",
    "TxRecord",
    "VestingRecord",
]
