#!/usr/bin/env bash
# The macOS CI recipe: build anerd with the private-framework ANE device (ane_*_apple.mm)
# and run the whole test suite, including the hardware tests that skip everywhere else.
#
#   scripts/ci-macos.sh [BUILD_DIR]        (default build-macos)
#
# Needs: Apple silicon, Xcode command-line tools (clang with Objective-C++ and the macOS SDK),
# Homebrew. Steps:
#   1. dependencies via Homebrew (scripts/install-deps.sh);
#   2. configure + build: CMake selects server/backend/ane/ane_device_apple.mm and
#      ane_requests_apple.mm only on Apple and links Foundation and IOSurface;
#   3. `anerd --help` smoke test, then ctest: the conformance suite runs on cpu, ane-sim and —
#      when AppleNeuralEngine.framework loads and the canary matches the CPU — ane;
#      backend_ane_hw_test runs its checks on the real device (on Linux it skips with a reason);
#   4. `anectl doctor --json` against a temporary daemon, printed for the CI log.
# A run where backend_ane_hw_test reports skipped tests on a Mac means the ANE was not offered:
# the daemon log line "backend ane unavailable: ..." says why. The script fails in that case.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build-macos}"
[[ "$(uname -s)" == "Darwin" ]] || { echo "ci-macos: run this on macOS" >&2; exit 1; }

scripts/install-deps.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$(brew --prefix)"
cmake --build "$BUILD" -j "$(sysctl -n hw.ncpu)"
"$BUILD/bin/anerd" --help >/dev/null

ctest --test-dir "$BUILD" --output-on-failure -j "$(sysctl -n hw.ncpu)" --timeout 600

# The hardware tests must have run, not skipped, on a Mac.
if "$BUILD/tests/backend/backend_ane_hw_test" 2>&1 | tee /dev/stderr | grep -q '\[  SKIPPED \]'; then
  echo "ci-macos: the ANE backend was not available on this Mac (see the reason above)" >&2
  exit 1
fi

# Doctor against a throw-away daemon.
TMP="$(mktemp -d)"
trap 'kill "${PID:-0}" 2>/dev/null || true; rm -rf "$TMP"' EXIT
"$BUILD/bin/anerd" --socket "$TMP/anerd.sock" --state-dir "$TMP/state" --backend auto \
  2>"$TMP/anerd.log" &
PID=$!
for _ in $(seq 50); do [[ -S "$TMP/anerd.sock" ]] && break; sleep 0.2; done
"$BUILD/bin/anectl" --host "unix:$TMP/anerd.sock" doctor --json
echo "ci-macos: ok"
