#!/usr/bin/env bash
# bench/train_vs_torch: trains the same model shapes (stories15m and stories110m by default; seq 256,
# one sequence per step, fp32 AdamW) with anerd's engine on the CPU backend and with PyTorch, in one
# run, and prints the median ms/step of both, their ratio and anerd's phase breakdown.
#
#   bench/train_vs_torch.sh [BUILD_DIR] [STEPS] [MODELS...]
# Needs the train_vs_torch_anerd binary (configure with -DANERD_BUILD_BENCH=ON) and python3-torch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
steps="${2:-6}"
shift $(( $# > 2 ? 2 : $# )) || true
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(stories15m stories110m)
bin="$build/bench/train_vs_torch_anerd"
[ -x "$bin" ] || { echo "missing $bin (cmake -DANERD_BUILD_BENCH=ON, target train_vs_torch_anerd)" >&2; exit 2; }
# Debian's python3-torch lives in the system interpreter (a pyenv python3 on PATH would miss it).
py=python3
$py -c 'import torch' 2>/dev/null || py=/usr/bin/python3
$py -c 'import torch' 2>/dev/null || { echo "PyTorch missing: apt-get install -y python3-torch" >&2; exit 2; }

# OpenBLAS 0.3.21 does not recognise Zen 4 and silently falls back to its SSE3 "Prescott" kernels
# (~10x slower); select the AVX kernels the CPU has unless the caller chose.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -r /proc/cpuinfo ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
export OMP_WAIT_POLICY=passive
data="$(mktemp /tmp/train_vs_torch.XXXXXX.txt)"
trap 'rm -f "$data"' EXIT
python3 - "$data" <<'PY'
import sys, random
random.seed(1)
words = "once upon a time there was a little cat named lily who liked to play in the park".split()
with open(sys.argv[1], "w") as f:
    f.write(" ".join(random.choice(words) for _ in range(200000)))
PY
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} steps=$steps $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${models[@]}"; do
  a="$("$bin" --model "$m" --steps "$steps" --data "$data" --blas-threads "${ANERD_BLAS_THREADS:-1}" | tail -1)"
  t="$($py "$here/train_vs_torch.py" --model "$m" --steps "$steps" --data "$data" --threads "$(nproc)" | tail -1)"
  echo "anerd: $a"
  echo "torch: $t"
  python3 - "$a" "$t" <<'PY'
import json, sys
a, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{a['model']}: anerd {a['median_ms']:.0f} ms/step, torch {t['median_ms']:.0f} ms/step, "
      f"ratio anerd/torch = {a['median_ms'] / t['median_ms']:.2f}")
PY
done
