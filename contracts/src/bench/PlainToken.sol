// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A plain OpenZeppelin ERC20, the gas reference for tests/bench/bench_chain.py
contract PlainToken is ERC20 {
    constructor(uint256 supply) ERC20("Plain", "PLN") {
        _mint(msg.sender, supply);
    }
}
