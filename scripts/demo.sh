#!/usr/bin/env bash
# make demo: starts anerd on a private temp socket, drives it with anectl, and stops it cleanly.
set -euo pipefail
BUILD=${1:-build}
BIN="$(cd "$BUILD/bin" && pwd)"
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/anerd-demo-XXXXXX")
SOCK="$DEMO/run/anerd.sock"
export ANERD_HOST="unix:$SOCK"
cleanup() {
  if [ -n "${PID:-}" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
  rm -rf "$DEMO"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting anerd (socket $SOCK, state $DEMO/state)"
"$BIN/anerd" --socket "$SOCK" --state_dir "$DEMO/state" --log_level warn &
PID=$!
for _ in $(seq 1 200); do [ -S "$SOCK" ] && break; sleep 0.05; done

step "anectl status"
"$BIN/anectl" status

step "stopping anerd (SIGTERM)"
kill -TERM "$PID"
wait "$PID"
echo "anerd exited with status $?"
PID=
