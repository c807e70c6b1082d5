#!/usr/bin/env bash
# make demo: the main job on its embedded defaults. Starts anerd on a private temp socket, compiles
# and runs a kernel, trains the tiny model for 1500 steps (a few seconds) with the live step table, runs a
# probe, generates a few sentences from the model it trained, and stops the daemon cleanly.
set -euo pipefail
BUILD=${1:-build}
BIN="$(cd "$BUILD/bin" && pwd)"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/anerd-demo-XXXXXX")
SOCK="$DEMO/run/anerd.sock"
export ANERD_HOST="unix:$SOCK"
ANECTL="$BIN/anectl"
cleanup() {
  if [ -n "${PID:-}" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
  rm -rf "$DEMO"
}
trap cleanup EXIT

# Bold headings only on a terminal (and not under NO_COLOR): a piped or logged demo stays plain text.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

step "starting anerd (socket $SOCK, state $DEMO/state)"
"$BIN/anerd" --socket "$SOCK" --state-dir "$DEMO/state" --data-root "$DEMO" --log-level warn &
PID=$!
for _ in $(seq 1 200); do [ -S "$SOCK" ] && break; sleep 0.05; done

step "anectl status"
"$ANECTL" status

step "anectl kernel compile examples/kernels/conv1x1/conv.mil (1x1 conv, weights streamed in chunks)"
ID=$("$ANECTL" --json kernel compile "$ROOT/examples/kernels/conv1x1/conv.mil" |
  sed -n 's/^    "id": "\([0-9a-f]*\)",$/\1/p')
"$ANECTL" kernel show "$ID"

step "anectl kernel run (seeded random input, 200 requests)"
"$ANECTL" kernel run "$ID" --random --repeat 200

step "anectl train: tiny model, 1500 steps on a synthetic story corpus"
"$ANECTL" data synth --out "$DEMO/stories.txt" --bytes 300000
VIEW=--table
[ -t 1 ] && VIEW=
"$ANECTL" train start --name demo --data "$DEMO/stories.txt" --steps 1500 --lr 3e-3 --min-lr 3e-4 \
  --warmup 50 --checkpoint-every 500 \
  >/dev/null
"$ANECTL" train watch demo $VIEW
"$ANECTL" train ls

step "anectl probe latency (dispatch latency of the smallest kernel, in-process and through the socket)"
"$ANECTL" probe latency

step "anectl generate: a few sentences from the model it just trained (its last checkpoint)"
"$ANECTL" generate --session demo --prompt "Once upon a time" --max-tokens 300 \
  --temperature 0.5 --seed 42

step "stopping anerd (SIGTERM)"
kill -TERM "$PID"
wait "$PID"
echo "anerd exited with status $?"
PID=
