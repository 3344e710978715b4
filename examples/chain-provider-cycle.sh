#!/usr/bin/env bash
# A provider's life on the local chain: bond, earn, unbond, withdraw; then a slash.
# Runs in a throwaway state directory; needs anvil ('npm ci' in contracts/).
set -euo pipefail
export FOGCTL_HOME="${FOGCTL_HOME:-$(mktemp -d)}"
port="${PORT:-18545}"

fogctl stake chain up --port "$port" --json >/dev/null
trap 'fogctl stake chain down >/dev/null' EXIT
fogctl stake deploy --json | jq -c 'select(.kind=="deployment") | {token, staking, governor}'

fogctl stake deposit 1500 --json | jq -c '{action, status, gas_used}'
fogctl stake rewards fund 7000 --duration 7d --json | jq -c '{action, status}'
fogctl stake chain advance 1d --json | jq -c '{timestamp}'
fogctl stake rewards claim --json | jq -c '{action, amount: .details.amount}'

fogctl stake unstake 500 --json | jq -c '{action, unlock: .details.unlockAt}'
fogctl stake withdraw || echo "withdraw refused while unbonding (exit $?)"
fogctl stake chain advance 8d --json >/dev/null
fogctl stake withdraw --json | jq -c '{action, amount: .details.amount}'

me=$(fogctl stake account --json | jq -r .address)
printf 'job 42 returned a wrong result\n' > "$FOGCTL_HOME/evidence.txt"
fogctl stake slash "$me" --fraction 0.1 --evidence "$FOGCTL_HOME/evidence.txt" --json \
  | jq -c '{action, slashed: .details.amount, evidence: .details.evidence}'
fogctl stake status --provider "$me" --json | jq -c '{bonded, stake, slash_count}'
