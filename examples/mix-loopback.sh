#!/bin/sh
# A whole stratified mixnet on this machine: two providers and five mix layers, each
# its own `fogctl mix serve` process with its own state dir, then Alice sends Bob a
# message with cover traffic on and Bob answers through the SURB. Ctrl-C stops all.
# The first provider's operator also runs a DHT node: its mix publishes its own
# descriptor there, it publishes the whole directory there, and Alice fetches the
# directory from the DHT instead of from a node.
set -eu
D=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null; wait; rm -rf "$D"' EXIT INT TERM
serve() {  # NAME PORT ARGS...
  name=$1 port=$2; shift 2
  FOGCTL_HOME="$D/$name" fogctl mix serve --port "$port" --sync 1 \
    --replay-capacity 100000 --operator "op-$name" --region "r-$port" "$@" \
    2>"$D/$name.log" >/dev/null &
  PIDS="$PIDS $!"
}
FOGCTL_HOME="$D/p0" fogctl init >/dev/null
FOGCTL_HOME="$D/p0" fogctl dht serve --host 127.0.0.1 --port 8468 >/dev/null 2>"$D/dht.log" &
PIDS="$PIDS $!"
serve p0 9000 --provider
serve p1 9006 --provider --bootstrap 127.0.0.1:9000
for l in 1 2 3 4 5; do serve "m$l" "900$l" --layer "$l" --bootstrap 127.0.0.1:9000; done
sleep 3   # the nodes publish to 127.0.0.1:9000 every second

export FOGCTL_MIX_MEAN_DELAY=0.01
A="$D/alice" B="$D/bob"
FOGCTL_HOME=$B fogctl mix directory fetch --from 127.0.0.1:9000 --json >/dev/null
P1=$(FOGCTL_HOME=$B fogctl mix directory ls --json | jq -r 'select(.address=="127.0.0.1:9006").id')
BOB=$(FOGCTL_HOME=$B fogctl mix address --provider "$P1" --json | jq -r .address)
# the directory into the DHT (signed descriptors, verified again by every reader)
FOGCTL_HOME="$D/p0" fogctl mix directory fetch --from 127.0.0.1:9000 --json |
  FOGCTL_HOME="$D/p0" fogctl mix directory publish - >/dev/null
FOGCTL_HOME=$A fogctl init >/dev/null
FOGCTL_HOME=$A fogctl mix directory fetch --dht-bootstrap 127.0.0.1:8468 --json >/dev/null
FOGCTL_HOME=$A fogctl mix route --hops 5

echo "hello Bob" | FOGCTL_HOME=$A fogctl mix send --to "$BOB" --hops 5 --no-wait --json
MSG=$(FOGCTL_HOME=$B fogctl mix recv --wait 20 --json | tee /dev/stderr | jq -r .id)
echo "hello whoever you are" | FOGCTL_HOME=$B fogctl mix reply "$MSG" --json
FOGCTL_HOME=$A fogctl mix recv --wait 20 --json
fogctl mix stats --node 127.0.0.1:9003
