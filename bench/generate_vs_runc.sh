#!/usr/bin/env bash
# bench/generate_vs_runc: decode tokens/s of anerd's CPU Decoder against llama2.c's run.c on the
# same model file, the same prompt, the same number of positions, on this machine, in one run
# (issue 20 item 6). run.c is compiled here with `gcc -O3 -march=native -fopenmp`; this script
# never downloads it.
#
#   LLAMA2C_DIR=/path/to/llama2.c bench/generate_vs_runc.sh [options] [MODELS...]
#   bench/generate_vs_runc.sh --runc /path/to/run.c [options] [MODELS...]
# Options:
#   --build DIR       anerd build dir holding bench/generate_vs_runc_anerd (default ./build;
#                     configure with -DANERD_BUILD_BENCH=ON, target generate_vs_runc_anerd)
#   --model FILE      a real llama2.c checkpoint (e.g. stories110M.bin) instead of random weights;
#                     MODELS is then ignored
#   --tokenizer FILE  llama2.c tokenizer.bin (default: a minimal valid one written here)
#   --steps N         positions, run.c's -n (default 256)
#   --runs N          runs per model (default 3)
#   --prompt TEXT     (default "Once upon a time")
#   --runc-threads N  OMP_NUM_THREADS for run.c (default: unset, OpenMP's all cores)
#   --anerd-threads N threads of anerd's row pool (default 0: automatic, all cores)
# MODELS: stories15m (dim 288, 6 layers, 6 heads, seq 256) and/or stories110m (dim 768, 12
# layers, 12 heads, seq 1024); both by default. Their random weights are written in llama2.c's
# format (tied classifier) by this script, with the rows of ids 0..258 (unk, bos, eos, byte
# fallbacks) zero so greedy decoding never picks them: run.c stops at bos, and every generated
# piece is printable, so the two generated texts can be compared.
#
# Prints, per run: the load (uptime), run.c's "achieved tok/s" (it times positions 1..n-1, one
# forward each, prompt included), anerd's decode tok/s (one Step per generated token) and prefill
# tok/s (the whole prompt in one call), the ratio anerd/run.c, and whether the texts match.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../build" runc="" model="" tok="" steps=256 runs=3 prompt="Once upon a time"
runc_threads="" anerd_threads=0
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runc) runc="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --tokenizer) tok="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --prompt) prompt="$2"; shift 2 ;;
    --runc-threads) runc_threads="$2"; shift 2 ;;
    --anerd-threads) anerd_threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
[ ${#models[@]} -eq 0 ] && models=(stories15m stories110m)
if [ -z "$runc" ]; then
  if [ -z "${LLAMA2C_DIR:-}" ]; then
    cat >&2 <<'MSG'
generate_vs_runc: llama2.c's run.c is needed and is not downloaded by this script.
  git clone https://github.com/karpathy/llama2.c /path/to/llama2.c
then either
  LLAMA2C_DIR=/path/to/llama2.c bench/generate_vs_runc.sh
or
  bench/generate_vs_runc.sh --runc /path/to/llama2.c/run.c
MSG
    exit 2
  fi
  runc="$LLAMA2C_DIR/run.c"
fi
[ -d "$runc" ] && runc="$runc/run.c"
[ -r "$runc" ] || { echo "generate_vs_runc: no run.c at $runc" >&2; exit 2; }
bin="$build/bench/generate_vs_runc_anerd"
[ -x "$bin" ] || { echo "missing $bin (cmake -DANERD_BUILD_BENCH=ON, target generate_vs_runc_anerd)" >&2; exit 2; }
py=/usr/bin/python3
$py -c 'import numpy' 2>/dev/null || py=python3
$py -c 'import numpy' 2>/dev/null || { echo "numpy missing: apt-get install -y python3-numpy" >&2; exit 2; }

work="$(mktemp -d /tmp/generate_vs_runc.XXXXXX)"
trap 'rm -rf "$work"' EXIT
gcc -O3 -march=native -fopenmp "$runc" -lm -o "$work/run"
# anerd's prefill GEMMs run on its own pool (BLAS single-threaded); OpenBLAS 0.3.21 does not know
# Zen 4 and would fall back to SSE3 kernels, so name the AVX ones the CPU has (as train_vs_torch).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -r /proc/cpuinfo ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi

if [ -z "$tok" ]; then
  tok="$work/tokenizer.bin"
  # A valid llama2.c tokenizer.bin of 32000 pieces: <unk>, bos, eos, the 256 byte fallbacks,
  # printable ASCII characters, a few merges for the default prompt, then distinct filler words.
  $py - "$tok" <<'PY'
import struct, sys
pieces = ["<unk>", "\n<s>\n", "\n</s>\n"] + ["<0x%02X>" % b for b in range(256)]
pieces += [chr(c) for c in range(32, 127)]
pieces += [" O", "On", "nc", " Onc", " Once", " u", "up", "po", "on", " upon", " a", " t", "ti",
           "im", "me", " time", "ime"]
i = 0
while len(pieces) < 32000:
    pieces.append(" w%d" % i if i % 2 else "s%d" % i)
    i += 1
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<i", max(len(p.encode()) for p in pieces)))
    for k, p in enumerate(pieces):
        b = p.encode()
        score = -1e9 if k < 259 + 95 else -float(k)  # merges: earlier pieces win
        f.write(struct.pack("<fi", score, len(b)) + b)
PY
fi

# Writes a random stories-shaped llama2.c file: header, then run.c's order, tied classifier.
write_model() {  # name path
  $py - "$1" "$2" <<'PY'
import sys
import numpy as np
shapes = {"stories15m": (288, 768, 6, 6, 6, 32000, 256),
          "stories110m": (768, 2048, 12, 12, 12, 32000, 1024)}
dim, hidden, L, heads, kvh, vocab, seq = shapes[sys.argv[1]]
rng = np.random.default_rng(7)
hs = dim // heads
def mat(n, fan_in):
    return (rng.random(n, dtype=np.float32) * 2 - 1) * np.float32(1.7 / np.sqrt(fan_in))
with open(sys.argv[2], "wb") as f:
    f.write(np.array([dim, hidden, L, heads, kvh, vocab, seq], dtype="<i4").tobytes())
    embed = (rng.random(vocab * dim, dtype=np.float32) * 2 - 1).reshape(vocab, dim)
    embed[:259] = 0  # unk, bos, eos, byte fallbacks: never the argmax
    f.write(embed.tobytes())
    ones = lambda n: np.ones(n, dtype=np.float32)
    f.write(ones(L * dim).tobytes())                       # rms_att
    for n, fan in [(dim * dim, dim), (kvh * hs * dim, dim), (kvh * hs * dim, dim),
                   (dim * dim, dim)]:                      # wq wk wv wo
        f.write(mat(L * n, fan).tobytes())
    f.write(ones(L * dim).tobytes())                       # rms_ffn
    f.write(mat(L * hidden * dim, dim).tobytes())          # w1
    f.write(mat(L * dim * hidden, hidden).tobytes())       # w2
    f.write(mat(L * hidden * dim, dim).tobytes())          # w3
    f.write(ones(dim).tobytes())                           # rms_final
    f.write(np.zeros(seq * hs, dtype=np.float32).tobytes())  # legacy freq_cis_real/imag
PY
}

[ -n "$runc_threads" ] && export OMP_NUM_THREADS="$runc_threads"
echo "$(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), steps=$steps," \
     "prompt \"$prompt\", run.c: gcc -O3 -march=native -fopenmp," \
     "OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset (all cores)}, anerd threads=$anerd_threads (0 = all cores)"
[ -n "$model" ] && models=("$(basename "$model")")
for name in "${models[@]}"; do
  if [ -n "$model" ]; then file="$model"; else file="$work/$name.bin"; write_model "$name" "$file"; fi
  for r in $(seq 1 "$runs"); do
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    rc_out="$("$work/run" "$file" -z "$tok" -t 0 -n "$steps" -i "$prompt" 2>"$work/runc.err" \
             >"$work/runc.txt"; grep -o 'achieved tok/s: [0-9.]*' "$work/runc.err" | cut -d' ' -f3)"
    a="$(env -u OMP_NUM_THREADS "$bin" --model "$file" --tokenizer "$tok" --steps "$steps" \
          --prompt "$prompt" --threads "$anerd_threads" --out-text "$work/anerd.txt")"
    $py - "$name" "$r" "$load" "$rc_out" "$a" "$work/runc.txt" "$work/anerd.txt" <<'PY'
import json, sys
name, run, load, runc, a = sys.argv[1:6]
a = json.loads(a)
runc_text = open(sys.argv[6], encoding="utf-8", errors="replace").read().rstrip("\n")
anerd_text = open(sys.argv[7], encoding="utf-8", errors="replace").read()
same = "identical" if runc_text == anerd_text else next(
    ("differ from char %d" % i for i, (x, y) in enumerate(zip(runc_text, anerd_text)) if x != y),
    "differ in length (%d vs %d chars)" % (len(runc_text), len(anerd_text)))
runc = float(runc)
print(f"{name} run {run} (load {load}): run.c {runc:.1f} tok/s, anerd decode "
      f"{a['decode_tok_s']:.1f} tok/s (ratio {a['decode_tok_s'] / runc:.2f}), anerd prefill "
      f"{a['prefill_tok_s']:.1f} tok/s over {a['prompt_tokens']} prompt tokens; "
      f"{a['generated_tokens']} generated, texts {same}")
PY
  done
done
