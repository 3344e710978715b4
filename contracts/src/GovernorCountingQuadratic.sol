// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title Quadratic vote counting for OpenZeppelin Governor
/// @notice A vote counts with the square root of the voter's weight (Buterin, Hitzig and
/// Weyl 2019), so a holder with 100x the tokens has 10x the say. Tallies returned by
/// `proposalVotes` are in square-root units (sqrt of wei). Quorum is still measured in
/// plain token weight: the for and abstain weight that took part must reach `quorum()`.
/// @dev Token-weighted quadratic voting is only as Sybil-resistant as the identity behind
/// each account: splitting tokens across accounts raises their total say. Use it where
/// accounts are vetted (for example, bonded providers).
abstract contract GovernorCountingQuadratic is Governor {
    enum VoteType {
        Against,
        For,
        Abstain
    }

    struct ProposalVote {
        uint256 againstVotes;
        uint256 forVotes;
        uint256 abstainVotes;
        uint256 participation;
        mapping(address voter => bool) hasVoted;
    }

    mapping(uint256 proposalId => ProposalVote) private _proposalVotes;

    // solhint-disable-next-line func-name-mixedcase
    function COUNTING_MODE() public pure virtual override returns (string memory) {
        return "support=bravo&quorum=for,abstain&params=quadratic";
    }

    function hasVoted(uint256 proposalId, address account) public view virtual override returns (bool) {
        return _proposalVotes[proposalId].hasVoted[account];
    }

    /// @notice Square-root-weighted tallies.
    function proposalVotes(uint256 proposalId)
        public
        view
        virtual
        returns (uint256 againstVotes, uint256 forVotes, uint256 abstainVotes)
    {
        ProposalVote storage v = _proposalVotes[proposalId];
        return (v.againstVotes, v.forVotes, v.abstainVotes);
    }

    /// @notice Plain token weight that voted for or abstained (what the quorum counts).
    function proposalParticipation(uint256 proposalId) public view virtual returns (uint256) {
        return _proposalVotes[proposalId].participation;
    }

    function _quorumReached(uint256 proposalId) internal view virtual override returns (bool) {
        return quorum(proposalSnapshot(proposalId)) <= _proposalVotes[proposalId].participation;
    }

    function _voteSucceeded(uint256 proposalId) internal view virtual override returns (bool) {
        ProposalVote storage v = _proposalVotes[proposalId];
        return v.forVotes > v.againstVotes;
    }

    function _countVote(uint256 proposalId, address account, uint8 support, uint256 totalWeight, bytes memory)
        internal
        virtual
        override
        returns (uint256)
    {
        ProposalVote storage v = _proposalVotes[proposalId];
        if (v.hasVoted[account]) revert GovernorAlreadyCastVote(account);
        v.hasVoted[account] = true;
        uint256 counted = Math.sqrt(totalWeight);
        if (support == uint8(VoteType.Against)) {
            v.againstVotes += counted;
        } else if (support == uint8(VoteType.For)) {
            v.forVotes += counted;
            v.participation += totalWeight;
        } else if (support == uint8(VoteType.Abstain)) {
            v.abstainVotes += counted;
            v.participation += totalWeight;
        } else {
            revert GovernorInvalidVoteType();
        }
        return totalWeight;
    }
}
