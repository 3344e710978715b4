#!/usr/bin/env bash
# Start (or check) the long-running real components the tests share: one dockerd.
# Usage: .ci/services.sh start
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

start_dockerd() {
  if docker version >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "dockerd is not installed" >&2
    return 1
  fi
  echo "starting dockerd" >&2
  $SUDO mkdir -p /var/log
  # setsid: dockerd outlives this script and serves the whole test session.
  $SUDO setsid dockerd --log-level=warn >/var/log/fogctl-ci-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 300); do
    if docker version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "dockerd did not start; see /var/log/fogctl-ci-dockerd.log" >&2
  tail -20 /var/log/fogctl-ci-dockerd.log >&2 || true
  return 1
}

case "${1:-start}" in
  start) start_dockerd ;;
  *) echo "usage: $0 start" >&2; exit 2 ;;
esac
