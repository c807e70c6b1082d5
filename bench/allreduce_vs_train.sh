#!/usr/bin/env bash
# Issue 24: the gradient all-reduce of data-parallel training vs MPI_Allreduce of the same buffer
# in isolation, with 2 ranks on this host (shared memory). For each model: a few steps of
# `mpirun -np 2 anerd-rank` on the cpu backend (synthetic text, fp32 master weights), the median
# exposed allreduce_ms and the bytes per step from rank 0's step events (first step dropped), then
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
for m in "${models[@]}"; do
  printf 'model=%s\ndata_path=%s\nsteps=%s\nranks=2\ndigest_every=0\n' "$m" "$work/stories.txt" \
    "$steps" > "$work/spec.txt"
  rm -f "$work/events.jsonl"
  OPENBLAS_NUM_THREADS=1 mpirun "${mpirun_args[@]}" "$build/bin/anerd-rank" --spec "$work/spec.txt" \
    --backend cpu --events "$work/events.jsonl" >/dev/null
  read -r floats train_ms step_ms bytes < <("$py" - "$work/events.jsonl" <<'PY'
import json, statistics, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if json.loads(l).get("kind") == 0]
steps = steps[1:] or steps
b = steps[0]["allreduce_bytes"]
print((b - 8) // 4, statistics.median(s["allreduce_ms"] for s in steps),
      statistics.median(s["step_ms"] for s in steps), b)
PY
)
  iso=$(mpirun "${mpirun_args[@]}" "$bench" --floats "$floats" --repeat 5)
  "$py" - "$m" "$floats" "$bytes" "$train_ms" "$step_ms" "$iso" <<'PY'
import json, sys
m, floats, b, train, step, iso = sys.argv[1:]
iso = json.loads(iso)
print(json.dumps({"model": m, "bytes_per_step": int(b), "train_allreduce_ms": round(float(train), 2),
                  "isolated_allreduce_ms": iso["median_ms"],
                  "train_over_isolated": round(float(train) / iso["median_ms"], 2),
                  "step_ms": round(float(step), 1),
                  "allreduce_share_of_step": round(float(train) / float(step), 3)}))
PY
done
