// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title FOG, the fog network's token
/// @notice ERC20 with vote delegation (ERC20Votes), gasless approvals (ERC20Permit) and a
/// hard cap on supply. The initial supply is minted once at deployment; afterwards only
/// the owner mints, and the owner is governance's TimelockController.
/// @dev The token uses the timestamp clock (ERC-6372): checkpoints, voting delays and
/// periods are in seconds, not blocks.
contract FogToken is ERC20, ERC20Burnable, ERC20Capped, ERC20Permit, ERC20Votes, Ownable {
    constructor(address timelock, address initialHolder, uint256 initialSupply, uint256 supplyCap)
        ERC20("Fog Token", "FOG")
        ERC20Capped(supplyCap)
        ERC20Permit("Fog Token")
        Ownable(timelock)
    {
        _mint(initialHolder, initialSupply);
    }

    /// @notice Mint new tokens, up to the cap. Only governance (the timelock) can.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// @notice ERC-6372 clock: the block timestamp.
    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    /// @notice ERC-6372 clock mode: timestamps.
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    function _update(address from, address to, uint256 value)
        internal
        override(ERC20, ERC20Capped, ERC20Votes)
    {
        super._update(from, to, value);
    }

    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }
}
