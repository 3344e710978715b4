// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {VestingWallet} from "@openzeppelin/contracts/finance/VestingWallet.sol";
import {VestingWalletCliff} from "@openzeppelin/contracts/finance/VestingWalletCliff.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";

/// @title Token vesting for team, investors and grants
/// @notice OpenZeppelin's VestingWallet with a cliff: FOG sent to it vests linearly from
/// `start` over `duration` seconds, nothing before `cliff`; the beneficiary (its owner)
/// releases what has vested. The beneficiary may also delegate the votes of the FOG
/// still locked here, so vesting holders take part in governance.
contract FogVesting is VestingWalletCliff {
    constructor(address beneficiary, uint64 startTimestamp, uint64 durationSeconds, uint64 cliffSeconds)
        VestingWallet(beneficiary, startTimestamp, durationSeconds)
        VestingWalletCliff(cliffSeconds)
    {}

    /// @notice Delegate the votes of `token` held by this wallet (beneficiary only).
    function delegate(IVotes token, address delegatee) external onlyOwner {
        token.delegate(delegatee);
    }
}
