#!/usr/bin/env bash
# Lists the tests ctest's last run skipped, each with the reason the test gave (GTEST_SKIP's
# message), so the end of `make test` says what did not run and why.
#   scripts/print-skips.sh BUILD_DIR
set -euo pipefail
LOG="${1:?usage: print-skips.sh BUILD_DIR}/Testing/Temporary/LastTest.log"
[ -f "${LOG}" ] || exit 0
awk '
  / Skipped$/ { getline reason; next }
  /^\[  SKIPPED \] [^ ]+ \(/ { printf "skipped %s: %s\n", $4, reason; count++ }
  END { if (count) printf "%d test(s) skipped\n", count }
' "${LOG}"
