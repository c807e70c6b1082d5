#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for SECONDS seconds on a
# copy of its seed corpus (tests/mil/valid for the MIL targets, tests/fuzz/corpus/<target>/ for
# the others). Prints one line per target; on a crash, leak or sanitizer report it prints that
# target's whole libFuzzer log, keeps the reproducer and exits non-zero.
# Needs clang and its runtime (Debian: apt-get install clang libclang-rt-14-dev).
#   scripts/run-fuzz.sh [SECONDS]     (default 60)
#   FUZZ_TARGETS="npy_fuzz ..."       run only these
#   FUZZ_VERBOSE=1                    stream libFuzzer's own output
set -euo pipefail
SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${ROOT}/build-fuzz"
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

CC=clang CXX=clang++ cmake -S "${ROOT}" -B "${BUILD}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DANERD_BUILD_FUZZ=ON -DANERD_BUILD_TESTS=OFF \
  -DCMAKE_C_FLAGS="${SAN}" -DCMAKE_CXX_FLAGS="${SAN}" >/dev/null
TARGETS="${FUZZ_TARGETS:-mil_parser_fuzz blob_reader_fuzz cpu_planner_fuzz npy_fuzz state_rows_fuzz
  session_events_fuzz checkpoint_reader_fuzz model_file_fuzz tokenizer_json_fuzz tokenizer_bin_fuzz
  safetensors_header_fuzz}"
cmake --build "${BUILD}" --target ${TARGETS} -j"${JOBS:-2}" >"${BUILD}/fuzz-build.log" 2>&1 || {
  cat "${BUILD}/fuzz-build.log"
  exit 1
}

# The seed corpus of `target`, copied into `dir`.
seed() {
  local target="$1" dir="$2"
  if [ -d "${ROOT}/tests/fuzz/corpus/${target}" ]; then
    cp "${ROOT}/tests/fuzz/corpus/${target}"/* "${dir}/"
  else
    cp "${ROOT}"/tests/mil/valid/*.mil "${dir}/"
  fi
}

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
status=0
for target in ${TARGETS}; do
  mkdir -p "${WORK}/${target}"
  seed "${target}" "${WORK}/${target}"
  log="${WORK}/${target}.log"
  start=$(date +%s)
  if [ "${FUZZ_VERBOSE:-0}" = 1 ]; then
    out=/dev/stdout
  else
    out="${log}"
  fi
  if (cd "${WORK}" && "${BUILD}/tests/fuzz/${target}" -max_total_time="${SECONDS_PER_TARGET}" \
        -max_len=65536 -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
        "${WORK}/${target}") >"${out}" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "${log}" 2>/dev/null | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'cov: [0-9]*' "${log}" 2>/dev/null | tail -1 | grep -o '[0-9]*' || true)
    printf 'fuzz %-18s ok    %6ss  %10s runs  cov %s\n' "${target}" "$(( $(date +%s) - start ))" \
      "${runs:-?}" "${cov:-?}"
  else
    printf 'fuzz %-18s FAIL  after %ss\n' "${target}" "$(( $(date +%s) - start ))"
    [ -f "${log}" ] && cat "${log}"
    echo "!! ${target} failed; reproducer (crash-*/leak-*/timeout-*/oom-*) copied to ${BUILD}"
    cp "${WORK}"/crash-* "${WORK}"/leak-* "${WORK}"/timeout-* "${WORK}"/oom-* "${BUILD}/" \
      2>/dev/null || true
    status=1
  fi
done
exit "${status}"
