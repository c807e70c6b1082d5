#!/usr/bin/env bash
# Issue 24: the gradient all-reduce of data-parallel training vs MPI_Allreduce of the same buffer
# in isolation, with 2 ranks on this host (shared memory). For each model: a few steps of
# `mpirun -np 2 anerd-rank` on the cpu backend (synthetic text, fp32 master weights), overlapped
# (item 2: buckets of BUCKET_KB KiB, default the spec's 4096, reduced on a communication thread
# during backward) and, unless OVERLAP_OFF_RUN=0, once more with allreduce_overlap=0. From rank
# 0's step events (first step dropped): the median exposed allreduce_ms, the median reduction time
# on the communication thread (allreduce_total_ms), the fraction of it hidden behind the backward
# pass (sum of allreduce_hidden_ms / sum of allreduce_total_ms), buckets and bytes per step; then
# bench/allreduce_bench on a buffer of as many floats. Prints one JSON line per model.
#   bench/allreduce_vs_train.sh [BUILD_DIR] [STEPS] [MODEL...]   (defaults: build 4 stories15m)
# allreduce_bench is built with -DANERD_BUILD_BENCH=ON, or pass ALLREDUCE_BENCH=path.
set -euo pipefail
build=${1:-build}
steps=${2:-4}
shift $(( $# > 2 ? 2 : $# )) || true
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(stories15m)
py=/usr/bin/python3
bench=${ALLREDUCE_BENCH:-$build/bench/allreduce_bench}
mpirun_args=(-np 2 --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun_args+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -c "import sys; sys.stdout.write('Once upon a time a small cat sat on a warm mat. ' * 40000)" \
  > "$work/stories.txt"
echo "# load: $(uptime)"
# run MODEL OVERLAP(0|1) -> "floats exposed_ms total_ms hidden_ms buckets step_ms bytes" (medians;
# total/hidden are sums over the kept steps, "nan" without overlap)
run() {
  printf 'model=%s\ndata_path=%s\nsteps=%s\nranks=2\ndigest_every=0\nallreduce_overlap=%s\n' \
    "$1" "$work/stories.txt" "$steps" "$2" > "$work/spec.txt"
  [ -n "${BUCKET_KB:-}" ] && echo "allreduce_bucket_kb=$BUCKET_KB" >> "$work/spec.txt"
  rm -f "$work/events.jsonl"
  OPENBLAS_NUM_THREADS=1 mpirun "${mpirun_args[@]}" "$build/bin/anerd-rank" --spec "$work/spec.txt" \
    --backend cpu --events "$work/events.jsonl" >/dev/null
  "$py" - "$work/events.jsonl" <<'PY'
import json, statistics, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if json.loads(l).get("kind") == 0]
steps = steps[1:] or steps
b = steps[0]["allreduce_bytes"]
med = lambda k: statistics.median(s[k] for s in steps)
tot = sum(s.get("allreduce_total_ms", float("nan")) for s in steps)
hid = sum(s.get("allreduce_hidden_ms", float("nan")) for s in steps)
print((b - 8) // 4, med("allreduce_ms"), tot, hid, steps[0].get("allreduce_buckets", 0),
      med("step_ms"), b)
PY
}
for m in "${models[@]}"; do
  read -r floats exposed total hidden buckets step_ms bytes < <(run "$m" 1)
  off_exposed=nan off_step=nan
  if [ "${OVERLAP_OFF_RUN:-1}" != 0 ]; then
    read -r _ off_exposed _ _ _ off_step _ < <(run "$m" 0)
  fi
  iso=$(mpirun "${mpirun_args[@]}" "$bench" --floats "$floats" --repeat 5)
  "$py" - "$m" "$bytes" "$exposed" "$total" "$hidden" "$buckets" "$step_ms" "$off_exposed" \
    "$off_step" "$steps" "$iso" <<'PY'
import json, math, sys
m, b, exposed, total, hidden, buckets, step, off_exposed, off_step, steps, iso = sys.argv[1:]
iso = json.loads(iso)
exposed, total, hidden, step = float(exposed), float(total), float(hidden), float(step)
kept = max(1, int(steps) - 1)
r = lambda x, n=2: None if math.isnan(x) else round(x, n)
print(json.dumps({"model": m, "bytes_per_step": int(b), "buckets": int(buckets),
                  "exposed_allreduce_ms": r(exposed),
                  "total_allreduce_ms": r(total / kept),
                  "hidden_fraction": r(hidden / total if total > 0 else float("nan"), 3),
                  "isolated_allreduce_ms": iso["median_ms"],
                  "total_over_isolated": r(total / kept / iso["median_ms"]),
                  "exposed_over_isolated": r(exposed / iso["median_ms"]),
                  "step_ms": r(step, 1),
                  "no_overlap_exposed_ms": r(float(off_exposed)),
                  "no_overlap_step_ms": r(float(off_step), 1)}))
PY
done
