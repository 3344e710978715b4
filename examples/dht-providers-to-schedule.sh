#!/bin/sh
# Find providers in the DHT and place a batch of jobs on them.
#   FOGCTL_HOME=... examples/dht-providers-to-schedule.sh HOST:8468
set -eu
BOOT=${1:?usage: $0 HOST:PORT}
fogctl dht providers --bootstrap "$BOOT" --json > providers.jsonl
echo "$(wc -l < providers.jsonl) providers" >&2
fogctl schedule --jobs examples/batch.yaml providers.jsonl
