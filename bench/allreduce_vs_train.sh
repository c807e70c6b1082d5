#!/usr/bin/env bash
# Issue 24: the gradient all-reduce of data-parallel training vs MPI_Allreduce of the same buffer
# in isolation, with 2 ranks on this host (shared memory). For each model: a few steps of
# `mpirun -np 2 anerd-rank` on the cpu backend (synthetic text, fp32 master weights), overlapped
# (item 2: buckets of BUCKET_KB KiB, default the spec's 4096, reduced on a communication thread
# during backward) and, unless OVERLAP_OFF_RUN=0, once more with allreduce_overlap=0. From rank
# 0's step events (first step dropped): the mean exposed allreduce_ms of both runs, the mean
# reduction time on the communication thread (allreduce_total_ms), the fraction of it hidden
# behind the backward pass (sum of allreduce_hidden_ms / sum of allreduce_total_ms), buckets and
# bytes per step, and each step's figures; then bench/allreduce_bench on a buffer of as many
# floats. Prints one JSON line per model.
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
# run MODEL OVERLAP(0|1) OUT: OUT gets the kept steps' figures as JSON (the first step dropped)
run() {
  printf 'model=%s\ndata_path=%s\nsteps=%s\nranks=2\ndigest_every=0\nallreduce_overlap=%s\n' \
    "$1" "$work/stories.txt" "$steps" "$2" > "$work/spec.txt"
  [ -n "${BUCKET_KB:-}" ] && echo "allreduce_bucket_kb=$BUCKET_KB" >> "$work/spec.txt"
  rm -f "$work/events.jsonl"
  OPENBLAS_NUM_THREADS=1 mpirun "${mpirun_args[@]}" "$build/bin/anerd-rank" --spec "$work/spec.txt" \
    --backend cpu --events "$work/events.jsonl" >/dev/null
  "$py" - "$work/events.jsonl" > "$3" <<'PY'
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if json.loads(l).get("kind") == 0]
steps = steps[1:] or steps
keys = ("step_ms", "allreduce_ms", "allreduce_total_ms", "allreduce_hidden_ms")
print(json.dumps({"bytes": steps[0]["allreduce_bytes"],
                  "buckets": steps[0].get("allreduce_buckets", 0),
                  **{k: [s.get(k) for s in steps] for k in keys}}))
PY
}
for m in "${models[@]}"; do
  run "$m" 1 "$work/on.json"
  echo '{}' > "$work/off.json"
  [ "${OVERLAP_OFF_RUN:-1}" != 0 ] && run "$m" 0 "$work/off.json"
  floats=$("$py" -c 'import json,sys; print((json.load(open(sys.argv[1]))["bytes"] - 8) // 4)' \
    "$work/on.json")
  iso=$(mpirun "${mpirun_args[@]}" "$bench" --floats "$floats" --repeat 5)
  "$py" - "$m" "$work/on.json" "$work/off.json" "$iso" <<'PY'
import json, statistics, sys
m, on, off, iso = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), \
    json.loads(sys.argv[4])
mean = lambda v: round(statistics.mean(v), 2) if v else None
total = sum(on["allreduce_total_ms"])
print(json.dumps({
    "model": m, "bytes_per_step": on["bytes"], "buckets": on["buckets"],
    "steps_kept": len(on["step_ms"]),
    # means over the kept steps: exposed (waited for), total (on the communication thread)
    "exposed_allreduce_ms": mean(on["allreduce_ms"]),
    "total_allreduce_ms": mean(on["allreduce_total_ms"]),
    "hidden_fraction": round(sum(on["allreduce_hidden_ms"]) / total, 3) if total > 0 else None,
    "isolated_allreduce_ms": iso["median_ms"],
    "total_over_isolated": round(mean(on["allreduce_total_ms"]) / iso["median_ms"], 2),
    "exposed_over_isolated": round(mean(on["allreduce_ms"]) / iso["median_ms"], 2),
    "step_ms": mean(on["step_ms"]),
    "no_overlap_exposed_ms": mean(off.get("allreduce_ms", [])),
    "no_overlap_step_ms": mean(off.get("step_ms", [])),
    "per_step_exposed_total_hidden_ms": [
        [round(a, 1), round(b, 1), round(c, 1)] for a, b, c in
        zip(on["allreduce_ms"], on["allreduce_total_ms"], on["allreduce_hidden_ms"])]}))
PY
done
