#!/bin/sh
# An offline Tor lab on 127.0.0.1: a private network, a managed tor joined to it,
# an onion service in front of a local web server, and a fetch by .onion address.
# Nothing leaves the machine. Needs Debian's tor (apt-get install tor), curl, python3.
set -eu
export FOGCTL_HOME="${FOGCTL_HOME:-$(mktemp -d)}"
NET="$FOGCTL_HOME/tor/testnet"

fogctl tor testnet up --relays 3 --json | jq -c '{state, nodes, ready_s}'
fogctl tor up --testnet "$NET" --json | jq -c '{state, bootstrap, socks}'

python3 -m http.server 8080 --bind 127.0.0.1 --directory . >/dev/null 2>&1 &
WEB=$!
trap 'kill $WEB; fogctl tor down -q >/dev/null; fogctl tor testnet down -q >/dev/null' EXIT

ONION=$(fogctl tor onion add 80:127.0.0.1:8080 --json | jq -r .address)
SOCKS=$(fogctl tor testnet status --json | jq -r .socks)
echo "serving on $ONION"
# socks5h: tor resolves the name; retry while the descriptor propagates
curl -sS --retry 5 --retry-all-errors --socks5-hostname "$SOCKS" "http://$ONION/" | head -5

fogctl tor circuits --json | jq -r 'select(.status=="BUILT") | [.id, .purpose, (.path | map(.nickname) | join(" > "))] | @tsv'
