#!/usr/bin/env bash
# A governance proposal on the local chain: raise the minimum stake to 2000 FOG.
# propose -> vote -> queue -> execute, skipping the delays with 'chain advance'.
set -euo pipefail
export FOGCTL_HOME="${FOGCTL_HOME:-$(mktemp -d)}"
port="${PORT:-18546}"

fogctl stake chain up --port "$port" --json >/dev/null
trap 'fogctl stake chain down >/dev/null' EXIT
fogctl stake deploy --json >/dev/null

fogctl vote delegate --json | jq -c '{action, status}'
fogctl stake chain advance 1 --json >/dev/null   # votes count from the next second on
id=$(fogctl vote propose --title 'Raise the minimum stake' \
       --action 'staking.setMinStake(2000)' --json | jq -r .details.proposal)
fogctl stake chain advance 1d --json >/dev/null  # the voting delay
fogctl vote cast "$id" for --json | jq -c '{action, weight: .details.weight}'
fogctl stake chain advance 7d --json >/dev/null  # the voting period
fogctl vote queue "$id" --json | jq -c '{action, eta: .details.etaSeconds}'
fogctl stake chain advance 2d --json >/dev/null  # the timelock delay
fogctl vote execute "$id" --json | jq -c '{action, status}'
fogctl vote show "$id" --json | jq -c '{state, votes_for, quorum, actions}'
fogctl stake status --json | jq -c '{min_stake}'
