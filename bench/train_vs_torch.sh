#!/usr/bin/env bash
# bench/train_vs_torch: issue 22's training rows in one run. For each model (stories15m and
# stories110m by default; seq 256, one sequence per step, fp32 AdamW) it trains with anerd's engine
# on the CPU backend in fp32 and in ane numerics and with PyTorch (fp32), back to back, then runs
# bench/adamw_bench over stories110m's parameter count, and prints every ratio with the load
# average before and after:
#   step time anerd fp32 / torch, anerd ane / torch, peak RSS anerd (fp32 run) / torch,
#   AdamW / the memory-traffic bound of its bytes.
#
#   bench/train_vs_torch.sh [--quick] [--build DIR] [--steps N] [MODELS...]
#   bench/train_vs_torch.sh [BUILD_DIR] [STEPS] [MODELS...]        (the older positional form)
# anerd runs as the daemon does: the CPU backend's pool as wide as OpenBLAS's thread count (the
# cores; ANERD_BLAS_THREADS=N sets it, 1 = the kernels on one thread beside the dW worker, the
# default before issue 22's CPU seats).
# --quick: stories15m only (and AdamW over its parameters), 4 steps. Needs train_vs_torch_anerd and
# adamw_bench (configure with -DANERD_BUILD_BENCH=ON) and python3-torch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../build"
steps=6
quick=0
models=()
pos=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) build="$2"; shift ;;
    --steps) steps="$2"; shift ;;
    *)
      if [ $pos -eq 0 ] && [ -d "$1" ]; then build="$1"
      elif [ $pos -le 1 ] && [[ "$1" =~ ^[0-9]+$ ]]; then steps="$1"
      else models+=("$1"); fi
      pos=$((pos + 1)) ;;
  esac
  shift
done
if [ $quick -eq 1 ]; then
  [ ${#models[@]} -eq 0 ] && models=(stories15m)
  steps=4
fi
[ ${#models[@]} -eq 0 ] && models=(stories15m stories110m)
adamw_model=stories110m
[ $quick -eq 1 ] && adamw_model="${models[0]}"
bin="$build/bench/train_vs_torch_anerd"
adamw="$build/bench/adamw_bench"
for b in "$bin" "$adamw"; do
  [ -x "$b" ] || { echo "missing $b (cmake -DANERD_BUILD_BENCH=ON, targets train_vs_torch_anerd adamw_bench)" >&2; exit 2; }
done
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
out="$(mktemp /tmp/train_vs_torch.XXXXXX.jsonl)"
trap 'rm -f "$data" "$out"' EXIT
$py - "$data" <<'PY'
import sys, random
random.seed(1)
words = "once upon a time there was a little cat named lily who liked to play in the park".split()
with open(sys.argv[1], "w") as f:
    f.write(" ".join(random.choice(words) for _ in range(200000)))
PY
load() { if [ -r /proc/loadavg ]; then cut -d' ' -f1-3 /proc/loadavg; else uptime | sed 's/.*averages*: //'; fi; }
echo "{\"type\":\"load\",\"when\":\"start\",\"load\":\"$(load)\"}" >> "$out"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} steps=$steps $(getconf _NPROCESSORS_ONLN) cores, load $(load)"
cores="$(getconf _NPROCESSORS_ONLN)"
for m in "${models[@]}"; do
  for numerics in fp32 ane; do
    a="$("$bin" --model "$m" --steps "$steps" --data "$data" --numerics "$numerics" \
         --blas-threads "${ANERD_BLAS_THREADS:-0}" | tail -1)"
    echo "anerd $numerics: $a"
    echo "$a" >> "$out"
  done
  t="$($py "$here/train_vs_torch.py" --model "$m" --steps "$steps" --data "$data" --threads "$cores" | tail -1)"
  echo "torch: $t"
  echo "$t" >> "$out"
done
a="$("$adamw" --model "$adamw_model" --threads "$cores" | tail -1)"
echo "adamw: $a"
echo "$a" >> "$out"
echo "{\"type\":\"load\",\"when\":\"end\",\"load\":\"$(load)\"}" >> "$out"
$py "$here/train_vs_torch_report.py" "$out"
