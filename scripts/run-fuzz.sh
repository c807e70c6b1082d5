#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for SECONDS seconds on a
# copy of the seed corpus (tests/mil/valid). Exits non-zero on any crash, leak or sanitizer report.
# Needs clang and its runtime (Debian: apt-get install clang libclang-rt-14-dev).
#   scripts/run-fuzz.sh [SECONDS]     (default 60)
set -euo pipefail
SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${ROOT}/build-fuzz"
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

CC=clang CXX=clang++ cmake -S "${ROOT}" -B "${BUILD}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DANERD_BUILD_FUZZ=ON -DANERD_BUILD_TESTS=OFF \
  -DCMAKE_C_FLAGS="${SAN}" -DCMAKE_CXX_FLAGS="${SAN}" >/dev/null
TARGETS="${FUZZ_TARGETS:-mil_parser_fuzz blob_reader_fuzz cpu_planner_fuzz}"
cmake --build "${BUILD}" --target ${TARGETS} -j"${JOBS:-2}"

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
status=0
for target in ${TARGETS}; do
  mkdir -p "${WORK}/${target}"
  cp "${ROOT}"/tests/mil/valid/*.mil "${WORK}/${target}/"
  echo "== ${target}: ${SECONDS_PER_TARGET}s"
  if ! (cd "${WORK}" && "${BUILD}/tests/fuzz/${target}" -max_total_time="${SECONDS_PER_TARGET}" \
        -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 "${WORK}/${target}"); then
    echo "!! ${target} failed; reproducer (crash-*/leak-*/timeout-*) in ${WORK} copied to ${BUILD}"
    cp "${WORK}"/crash-* "${WORK}"/leak-* "${WORK}"/timeout-* "${BUILD}/" 2>/dev/null || true
    status=1
  fi
done
exit "${status}"
