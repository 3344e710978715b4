// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Provider bonds for the fog network
/// @notice Providers stake FOG to become eligible for work: a provider is bonded while its
/// stake is at least `minStake`. Unstaking moves stake into an unbonding balance that can
/// be withdrawn `unbondingPeriod` seconds after the last unstake; until then it can still
/// be slashed. Rewards funded by the rewarder role stream to bonded stake pro rata
/// (reward-per-token accounting, constant gas per call, no loops over providers).
/// A slasher takes a fraction of a provider's bonded and unbonding stake to the slash
/// recipient (burned when it is the zero address), with the evidence hash in the event.
/// @dev DEFAULT_ADMIN_ROLE (governance's timelock) administers every role and parameter.
contract FogStaking is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    bytes32 public constant REWARDER_ROLE = keccak256("REWARDER_ROLE");
    /// @notice Slash fractions are parts per million of the provider's stake.
    uint256 public constant FRACTION_SCALE = 1_000_000;
    uint256 public constant MIN_UNBONDING_PERIOD = 7 days;
    uint256 public constant MAX_UNBONDING_PERIOD = 14 days;

    struct Provider {
        uint256 bonded;
        uint256 unbonding;
        uint64 unlockAt;
        uint32 slashCount;
        uint256 slashedTotal;
        uint256 rewardPerTokenPaid;
        uint256 rewards;
    }

    IERC20 public immutable token;
    uint256 public immutable unbondingPeriod;
    uint256 public minStake;
    /// @notice Where slashed stake goes; the zero address burns it.
    address public slashRecipient;

    uint256 public totalBonded;
    uint256 public totalUnbonding;

    uint256 public rewardRate;
    uint256 public periodFinish;
    uint256 public lastUpdateTime;
    uint256 public rewardPerTokenStored;

    mapping(address => Provider) private _providers;

    event Staked(address indexed provider, uint256 amount, uint256 bonded);
    event Unstaked(address indexed provider, uint256 amount, uint256 unlockAt);
    event Withdrawn(address indexed provider, uint256 amount);
    event RewardPaid(address indexed provider, uint256 amount);
    event RewardsFunded(address indexed funder, uint256 amount, uint256 rate, uint256 periodFinish);
    event Slashed(
        address indexed provider,
        address indexed slasher,
        uint256 amount,
        uint256 fraction,
        bytes32 indexed evidence,
        uint256 slashCount
    );
    event MinStakeChanged(uint256 previous, uint256 current);
    event SlashRecipientChanged(address previous, address current);

    error ZeroAmount();
    error BelowMinStake(uint256 resulting, uint256 minStake);
    error InsufficientStake(uint256 requested, uint256 bonded);
    error NothingToWithdraw();
    error StillUnbonding(uint256 unlockAt);
    error NothingToClaim();
    error InvalidFraction(uint256 fraction);
    error MissingEvidence();
    error NothingToSlash(address provider);
    error InvalidUnbondingPeriod(uint256 period);
    error InvalidRewardDuration(uint256 duration);
    error RewardRateZero();

    constructor(
        IERC20 token_,
        address admin,
        uint256 unbondingPeriod_,
        uint256 minStake_,
        address slashRecipient_,
        address initialSlasher,
        address initialRewarder
    ) {
        if (unbondingPeriod_ < MIN_UNBONDING_PERIOD || unbondingPeriod_ > MAX_UNBONDING_PERIOD) {
            revert InvalidUnbondingPeriod(unbondingPeriod_);
        }
        token = token_;
        unbondingPeriod = unbondingPeriod_;
        minStake = minStake_;
        slashRecipient = slashRecipient_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (initialSlasher != address(0)) _grantRole(SLASHER_ROLE, initialSlasher);
        if (initialRewarder != address(0)) _grantRole(REWARDER_ROLE, initialRewarder);
    }

    modifier updateReward(address provider) {
        _updateReward(provider);
        _;
    }

    // -- views -------------------------------------------------------------------------

    function lastTimeRewardApplicable() public view returns (uint256) {
        return block.timestamp < periodFinish ? block.timestamp : periodFinish;
    }

    function rewardPerToken() public view returns (uint256) {
        if (totalBonded == 0) return rewardPerTokenStored;
        uint256 elapsed = lastTimeRewardApplicable() - lastUpdateTime;
        return rewardPerTokenStored + (elapsed * rewardRate * 1e18) / totalBonded;
    }

    function earned(address provider) public view returns (uint256) {
        Provider storage p = _providers[provider];
        return p.rewards + (p.bonded * (rewardPerToken() - p.rewardPerTokenPaid)) / 1e18;
    }

    /// @notice Whether `provider` holds at least the minimum stake (eligible for work).
    function isBonded(address provider) public view returns (bool) {
        uint256 bonded = _providers[provider].bonded;
        return bonded != 0 && bonded >= minStake;
    }

    function providerInfo(address provider)
        external
        view
        returns (
            uint256 bonded,
            uint256 unbonding,
            uint256 unlockAt,
            uint256 slashCount,
            uint256 slashedTotal,
            uint256 pendingRewards,
            bool eligible
        )
    {
        Provider storage p = _providers[provider];
        return (
            p.bonded,
            p.unbonding,
            p.unlockAt,
            p.slashCount,
            p.slashedTotal,
            earned(provider),
            isBonded(provider)
        );
    }

    // -- providers -----------------------------------------------------------------------

    /// @notice Bond `amount` more FOG (needs an allowance); the result must reach `minStake`.
    function stake(uint256 amount) external nonReentrant updateReward(msg.sender) {
        _stake(msg.sender, amount);
    }

    /// @notice Bond with an ERC-2612 permit instead of a separate approval transaction.
    function stakeWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        updateReward(msg.sender)
    {
        // A front-run permit has already set the allowance; the transfer below still checks it.
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {}
            catch {}
        _stake(msg.sender, amount);
    }

    /// @notice Start unbonding `amount`; what stays bonded must be zero or at least `minStake`.
    /// The whole unbonding balance unlocks `unbondingPeriod` after the latest unstake.
    function unstake(uint256 amount) external nonReentrant updateReward(msg.sender) {
        if (amount == 0) revert ZeroAmount();
        Provider storage p = _providers[msg.sender];
        if (amount > p.bonded) revert InsufficientStake(amount, p.bonded);
        uint256 remaining = p.bonded - amount;
        if (remaining != 0 && remaining < minStake) revert BelowMinStake(remaining, minStake);
        p.bonded = remaining;
        p.unbonding += amount;
        p.unlockAt = uint64(block.timestamp + unbondingPeriod);
        totalBonded -= amount;
        totalUnbonding += amount;
        emit Unstaked(msg.sender, amount, p.unlockAt);
    }

    /// @notice Withdraw the whole unbonding balance once its unbonding period has ended.
    function withdraw() external nonReentrant returns (uint256 amount) {
        Provider storage p = _providers[msg.sender];
        amount = p.unbonding;
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < p.unlockAt) revert StillUnbonding(p.unlockAt);
        p.unbonding = 0;
        p.unlockAt = 0;
        totalUnbonding -= amount;
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    /// @notice Pay out the caller's accrued rewards.
    function claimRewards() external nonReentrant updateReward(msg.sender) returns (uint256 amount) {
        Provider storage p = _providers[msg.sender];
        amount = p.rewards;
        if (amount == 0) revert NothingToClaim();
        p.rewards = 0;
        token.safeTransfer(msg.sender, amount);
        emit RewardPaid(msg.sender, amount);
    }

    // -- roles ---------------------------------------------------------------------------

    /// @notice Fund `amount` of rewards streamed over `duration` seconds (plus any leftover).
    function fundRewards(uint256 amount, uint256 duration)
        external
        nonReentrant
        onlyRole(REWARDER_ROLE)
        updateReward(address(0))
    {
        if (amount == 0) revert ZeroAmount();
        if (duration == 0) revert InvalidRewardDuration(duration);
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 leftover = block.timestamp < periodFinish ? (periodFinish - block.timestamp) * rewardRate : 0;
        uint256 rate = (amount + leftover) / duration;
        if (rate == 0) revert RewardRateZero();
        rewardRate = rate;
        lastUpdateTime = block.timestamp;
        periodFinish = block.timestamp + duration;
        emit RewardsFunded(msg.sender, amount, rate, periodFinish);
    }

    /// @notice Take `fraction` (parts per million) of `provider`'s bonded and unbonding stake.
    function slash(address provider, uint256 fraction, bytes32 evidence)
        external
        nonReentrant
        onlyRole(SLASHER_ROLE)
        updateReward(provider)
        returns (uint256 amount)
    {
        if (fraction == 0 || fraction > FRACTION_SCALE) revert InvalidFraction(fraction);
        if (evidence == bytes32(0)) revert MissingEvidence();
        Provider storage p = _providers[provider];
        uint256 fromBonded = (p.bonded * fraction) / FRACTION_SCALE;
        uint256 fromUnbonding = (p.unbonding * fraction) / FRACTION_SCALE;
        amount = fromBonded + fromUnbonding;
        if (amount == 0) revert NothingToSlash(provider);
        p.bonded -= fromBonded;
        p.unbonding -= fromUnbonding;
        totalBonded -= fromBonded;
        totalUnbonding -= fromUnbonding;
        p.slashCount += 1;
        p.slashedTotal += amount;
        address recipient = slashRecipient;
        if (recipient == address(0)) {
            ERC20Burnable(address(token)).burn(amount);
        } else {
            token.safeTransfer(recipient, amount);
        }
        emit Slashed(provider, msg.sender, amount, fraction, evidence, p.slashCount);
    }

    function setMinStake(uint256 newMinStake) external onlyRole(DEFAULT_ADMIN_ROLE) {
        emit MinStakeChanged(minStake, newMinStake);
        minStake = newMinStake;
    }

    function setSlashRecipient(address recipient) external onlyRole(DEFAULT_ADMIN_ROLE) {
        emit SlashRecipientChanged(slashRecipient, recipient);
        slashRecipient = recipient;
    }

    // -- internals -----------------------------------------------------------------------

    function _stake(address provider, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        Provider storage p = _providers[provider];
        uint256 bonded = p.bonded + amount;
        if (bonded < minStake) revert BelowMinStake(bonded, minStake);
        p.bonded = bonded;
        totalBonded += amount;
        token.safeTransferFrom(provider, address(this), amount);
        emit Staked(provider, amount, bonded);
    }

    function _updateReward(address provider) private {
        if (totalBonded == 0) {
            // Nobody to pay: pause the stream (push its end out) instead of stranding tokens.
            if (lastUpdateTime < periodFinish) {
                periodFinish += block.timestamp - lastUpdateTime;
                lastUpdateTime = block.timestamp;
            }
        } else {
            rewardPerTokenStored = rewardPerToken();
            lastUpdateTime = lastTimeRewardApplicable();
        }
        if (provider != address(0)) {
            Provider storage p = _providers[provider];
            p.rewards = earned(provider);
            p.rewardPerTokenPaid = rewardPerTokenStored;
        }
    }
}
