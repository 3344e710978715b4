#!/bin/sh
# Three DTN nodes on one machine: alice -> bus -> carol; alice and carol never meet.
# The bus picks the encrypted message up from alice, is stopped, and delivers it to
# carol after it starts again (store-carry-forward across a restart). TCPCLv4 sessions
# run over TLS 1.3 with both node IDs authenticated (mesh serve --tls, default on).
# Each node has its own state directory. Run from a scratch directory.
set -eu
for n in alice bus carol; do
  FOGCTL_HOME=$PWD/$n fogctl init --quiet --json >/dev/null
  printf 'mesh:\n  name: %s\n' "$n" > "$n/config.yaml"
done
# carol's prekeys reach alice out of band; alice checks the fingerprint
FOGCTL_HOME=$PWD/carol fogctl mesh keys publish --json > carol.key
FOGCTL_HOME=$PWD/alice fogctl mesh keys trust carol.key --json >/dev/null
echo "meet at the north gate" | FOGCTL_HOME=$PWD/alice fogctl mesh send --to dtn://carol/

wait_for() {  # wait_for SECONDS COMMAND...: poll until COMMAND succeeds
  n=$(($1 * 5)); shift
  while ! "$@" >/dev/null 2>&1; do
    n=$((n - 1)); [ "$n" -gt 0 ] || { echo "timed out: $*" >&2; return 1; }
    sleep 0.2
  done
}
bus_holds() { FOGCTL_HOME=$PWD/bus fogctl mesh bundles --json | grep -q dtn://carol/; }
carol_has() { FOGCTL_HOME=$PWD/carol fogctl mesh inbox --json | grep -q mesh-message; }

FOGCTL_HOME=$PWD/alice fogctl mesh serve --tcpcl 127.0.0.1:4601 & A=$!
FOGCTL_HOME=$PWD/bus fogctl mesh serve --tcpcl off --peer tcpcl://127.0.0.1:4601 & B=$!
wait_for 30 bus_holds
kill $B; wait $B || true          # SIGTERM: the bus stops cleanly, the bundle is stored
kill $A; wait $A || true

FOGCTL_HOME=$PWD/carol fogctl mesh serve --tcpcl 127.0.0.1:4603 & C=$!
FOGCTL_HOME=$PWD/bus fogctl mesh serve --tcpcl off --peer tcpcl://127.0.0.1:4603 & B=$!
wait_for 30 carol_has
FOGCTL_HOME=$PWD/carol fogctl mesh inbox
ID=$(FOGCTL_HOME=$PWD/carol fogctl mesh inbox --json | head -n1 | sed 's/.*"id":"\([^"]*\)".*/\1/')
FOGCTL_HOME=$PWD/carol fogctl mesh read "$ID"
kill $B $C
wait
