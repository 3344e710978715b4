#!/bin/sh
# Three DTN nodes on one machine: alice -> bus -> carol, alice and carol never meet.
# Each node has its own state directory. Run from a scratch directory.
set -eu
for n in alice bus carol; do
  FOGCTL_HOME=$PWD/$n fogctl init --quiet --json >/dev/null
  printf 'mesh:\n  name: %s\n' "$n" > "$n/config.yaml"
done
# carol's prekeys reach alice out of band; alice checks the fingerprint
FOGCTL_HOME=$PWD/carol fogctl mesh keys publish --json > carol.key
FOGCTL_HOME=$PWD/alice fogctl mesh keys trust carol.key
echo "meet at the north gate" | FOGCTL_HOME=$PWD/alice fogctl mesh send --to dtn://carol/
FOGCTL_HOME=$PWD/alice fogctl mesh serve --tcpcl 127.0.0.1:4601 & A=$!
FOGCTL_HOME=$PWD/carol fogctl mesh serve --tcpcl 127.0.0.1:4603 & C=$!
FOGCTL_HOME=$PWD/bus fogctl mesh serve --tcpcl 127.0.0.1:4602 \
  --peer tcpcl://127.0.0.1:4601 --peer tcpcl://127.0.0.1:4603 & B=$!
sleep 5
FOGCTL_HOME=$PWD/carol fogctl mesh inbox
ID=$(FOGCTL_HOME=$PWD/carol fogctl mesh inbox --json | head -n1 | jq -r .id)
FOGCTL_HOME=$PWD/carol fogctl mesh read "$ID"
kill $A $B $C
