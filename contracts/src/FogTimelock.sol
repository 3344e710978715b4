// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title The DAO's timelock
/// @notice OpenZeppelin's TimelockController with its initial delay held to 2-7 days.
/// It owns FogToken's minting and FogStaking's parameters and roles; FogGovernor is its
/// proposer and canceller, anyone may execute a ready operation.
contract FogTimelock is TimelockController {
    uint256 public constant MIN_DELAY_FLOOR = 2 days;
    uint256 public constant MIN_DELAY_CEILING = 7 days;

    error FogTimelockDelayOutOfRange(uint256 delay);

    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {
        if (minDelay < MIN_DELAY_FLOOR || minDelay > MIN_DELAY_CEILING) {
            revert FogTimelockDelayOutOfRange(minDelay);
        }
    }
}
