#!/usr/bin/env bash
# bench/interactive_wait: issue 22's p99 row. Runs interactive_wait_bench RUNS times (default 3):
# stories110m trains in the in-process server (one sequence of 256 per step) while a client
# evaluates a tiny kernel every 10 ms on the same device; each run prints the evaluations' wait
# (p50/p99/max), the longest training kernel and the ratio p99 / longest kernel (target <= 2),
# the p99 of completion - due (the wait counted from when each call was due) over the same kernel,
# the slowest calls phase by phase and each thread's wait for a CPU, with the load average before
# and after. --mode open (default): every call is sent at its due time, up to 64 in flight;
# --mode closed: one call in flight (a late client delays its own calls).
#
#   bench/interactive_wait.sh [--build DIR] [--runs N] [--steps N] [--numerics fp32|ane]
#                             [--model NAME] [--mode open|closed]
# Needs interactive_wait_bench (configure with -DANERD_BUILD_BENCH=ON).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../build"
runs=3
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --steps|--numerics|--model|--period-ms|--mode) args+=("$1" "$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bin="$build/bench/interactive_wait_bench"
[ -x "$bin" ] || { echo "missing $bin (cmake -DANERD_BUILD_BENCH=ON, target interactive_wait_bench)" >&2; exit 2; }
# As bench/train_vs_torch.sh: OpenBLAS 0.3.21 does not recognise Zen 4; pick the AVX kernels.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -r /proc/cpuinfo ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
load() { if [ -r /proc/loadavg ]; then cut -d' ' -f1-3 /proc/loadavg; else uptime | sed 's/.*averages*: //'; fi; }
ratios=()
due_ratios=()
for i in $(seq 1 "$runs"); do
  echo "run $i, load $(load)"
  out="$("$bin" ${args[@]+"${args[@]}"} 2>/dev/null)"
  echo "$out" | grep -v '^{'
  ratios+=("$(echo "$out" | sed -n 's/.*"ratio":\([0-9.]*\).*/\1/p')")
  due_ratios+=("$(echo "$out" | sed -n 's/.*"due_ratio":\([0-9.]*\).*/\1/p')")
done
echo "load at end $(load); ratio p99 wait / longest kernel per run: ${ratios[*]} (target <= 2)"
echo "p99 completion - due / longest kernel per run: ${due_ratios[*]}"
