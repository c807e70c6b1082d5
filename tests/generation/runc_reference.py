#!/usr/bin/python3
"""An independent numpy reading of karpathy/llama2.c run.c, for tests/generation/.

forward: run.c's `forward` (one token at a time with its own KV cache [layer][pos][kv_dim]) in
float64, then greedy generation as run.c's `generate` does it (prompt tokens forced, then the
argmax). The model is a llama2.c file (--model), or (--manifest) a JSON description of a flat
float32 file with named tensors and Hugging Face Qwen3's architecture fields (rotate-half RoPE
with rope_theta, QK-norm per head before RoPE, norm_eps, head_dim != dim/heads, untied lm_head),
the run.c forward extended by exactly those. Writes {"tokens": [...], "logits": [[...], ...]}
with the logits of every generated step.

sample: run.c's `sample` on each row of a float32 [rows][vocab] logits file, in float32
arithmetic as the C code does it (xorshift RNG, temperature, softmax, sample_mult or
sample_topp with the (1 - topp) / (n - 1) cutoff and coin * cumulative_prob). Writes
{"choices": [...], "u32": [the first 8 random_u32 of the seed]}.
"""
import argparse
import json
import struct
import sys

import numpy as np

F32 = np.float32
MASK = (1 << 64) - 1


# ---------------------------------------------------------------- forward (float64)

def load_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, layers, heads, kv_heads, vocab, seq = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // heads
    kvd = kv_heads * hs
    f = np.frombuffer(raw[28:], dtype="<f4").astype(np.float64)
    at = [0]

    def take(*shape):
        n = int(np.prod(shape))
        out = f[at[0]:at[0] + n].reshape(shape)
        at[0] += n
        return out

    w = {"embed": take(vocab, dim), "rms_att": take(layers, dim), "wq": take(layers, dim, dim),
         "wk": take(layers, kvd, dim), "wv": take(layers, kvd, dim), "wo": take(layers, dim, dim),
         "rms_ffn": take(layers, dim), "w1": take(layers, hidden, dim),
         "w2": take(layers, dim, hidden), "w3": take(layers, hidden, dim), "rms_final": take(dim)}
    take(seq * hs // 2)  # freq_cis_real, unused by run.c
    take(seq * hs // 2)  # freq_cis_imag
    w["wcls"] = w["embed"] if shared else take(vocab, dim)
    cfg = dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=hs,
               vocab=vocab, seq=seq, rope_half=False, rope_theta=10000.0, qk_norm=False,
               norm_eps=1e-5)
    return cfg, w


def load_manifest(path):
    m = json.load(open(path))
    cfg = m["config"]
    flat = np.fromfile(m["data"], dtype="<f4").astype(np.float64)
    hd, L = cfg["head_dim"], cfg["layers"]
    qd, kvd = cfg["heads"] * hd, cfg["kv_heads"] * hd
    shapes = {"wq": (qd, cfg["dim"]), "wk": (kvd, cfg["dim"]), "wv": (kvd, cfg["dim"]),
              "wo": (cfg["dim"], qd), "w1": (cfg["hidden"], cfg["dim"]),
              "w2": (cfg["dim"], cfg["hidden"]), "w3": (cfg["hidden"], cfg["dim"]),
              "rms_att": (cfg["dim"],), "rms_ffn": (cfg["dim"],), "q_norm": (hd,), "k_norm": (hd,)}

    def tensor(name, shape):
        off, size = m["tensors"][name]
        assert size == int(np.prod(shape)), name
        return flat[off:off + size].reshape(shape)

    w = {k: np.stack([tensor("layers.%d.%s" % (l, k), s) for l in range(L)])
         for k, s in shapes.items() if cfg["qk_norm"] or k not in ("q_norm", "k_norm")}
    w["embed"] = tensor("embed", (cfg["vocab"], cfg["dim"]))
    w["rms_final"] = tensor("rms_final", (cfg["dim"],))
    w["wcls"] = tensor("lm_head", (cfg["vocab"], cfg["dim"])) if "lm_head" in m["tensors"] \
        else w["embed"]
    return cfg, w


def rmsnorm(x, weight, eps):
    return weight * (x / np.sqrt(np.mean(x * x) + eps))


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


def rope(vec, pos, cfg):
    """Rotates every head of `vec` (n_heads * head_dim) in place for position `pos`."""
    hd = cfg["head_dim"]
    for h in range(len(vec) // hd):
        v = vec[h * hd:(h + 1) * hd]
        for i in range(hd // 2):
            freq = 1.0 / cfg["rope_theta"] ** (2 * i / hd)
            c, s = np.cos(pos * freq), np.sin(pos * freq)
            a, b = (i, i + hd // 2) if cfg["rope_half"] else (2 * i, 2 * i + 1)
            v0, v1 = v[a], v[b]
            v[a] = v0 * c - v1 * s
            v[b] = v0 * s + v1 * c


class Transformer:
    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        kvd = cfg["kv_heads"] * cfg["head_dim"]
        self.key_cache = np.zeros((cfg["layers"], cfg["seq"], kvd))
        self.value_cache = np.zeros((cfg["layers"], cfg["seq"], kvd))

    def forward(self, token, pos):
        cfg, w = self.cfg, self.w
        hd, eps = cfg["head_dim"], cfg["norm_eps"]
        kv_mul = cfg["heads"] // cfg["kv_heads"]
        x = w["embed"][token].copy()
        for l in range(cfg["layers"]):
            xb = rmsnorm(x, w["rms_att"][l], eps)
            q = w["wq"][l] @ xb
            k = w["wk"][l] @ xb
            v = w["wv"][l] @ xb
            if cfg["qk_norm"]:
                q = np.concatenate([rmsnorm(q[i:i + hd], w["q_norm"][l], eps)
                                    for i in range(0, len(q), hd)])
                k = np.concatenate([rmsnorm(k[i:i + hd], w["k_norm"][l], eps)
                                    for i in range(0, len(k), hd)])
            rope(q, pos, cfg)
            rope(k, pos, cfg)
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v
            out = np.zeros(cfg["heads"] * hd)
            for h in range(cfg["heads"]):
                qh = q[h * hd:(h + 1) * hd]
                kvh = h // kv_mul
                keys = self.key_cache[l, :pos + 1, kvh * hd:(kvh + 1) * hd]
                att = softmax(keys @ qh / np.sqrt(hd))
                out[h * hd:(h + 1) * hd] = att @ self.value_cache[l, :pos + 1, kvh * hd:(kvh + 1) * hd]
            x = x + w["wo"][l] @ out
            xb = rmsnorm(x, w["rms_ffn"][l], eps)
            h1 = w["w1"][l] @ xb
            h3 = w["w3"][l] @ xb
            x = x + w["w2"][l] @ (h1 / (1.0 + np.exp(-h1)) * h3)
        x = rmsnorm(x, w["rms_final"], eps)
        return w["wcls"] @ x


def run_forward(args):
    cfg, w = load_manifest(args.manifest) if args.manifest else load_llama2c(args.model)
    prompt = [int(t) for t in args.prompt.split(",")]
    model = Transformer(cfg, w)
    token, tokens, logits_out = prompt[0], [], []
    for pos in range(len(prompt) - 1 + args.steps):
        logits = model.forward(token, pos)
        if pos < len(prompt) - 1:
            token = prompt[pos + 1]
        else:
            token = int(np.argmax(logits))
            tokens.append(token)
            logits_out.append([float(v) for v in logits])
    return {"tokens": tokens, "logits": logits_out}


# ---------------------------------------------------------------- sample (float32, literal)

class Rng:
    def __init__(self, seed):
        self.state = seed & MASK

    def u32(self):
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & MASK
        s ^= s >> 27
        self.state = s
        return ((s * 0x2545F4914F6CDD1D) & MASK) >> 32

    def f32(self):
        return F32(self.u32() >> 8) / F32(16777216.0)


def expf(x):
    # Correctly rounded float32 exp (what glibc's expf returns up to a rare last-bit tie).
    return np.exp(x.astype(np.float64)).astype(F32)


def softmax32(x):
    x = expf(x - np.max(x))
    total = np.add.accumulate(x, dtype=F32)[-1]  # a float sum in index order
    return x / total


def sample_topp(probs, topp, coin):
    n = len(probs)
    cutoff = (F32(1.0) - topp) / F32(n - 1)
    idx = np.nonzero(probs >= cutoff)[0]
    idx = idx[np.argsort(-probs[idx], kind="stable")]  # descending; ties keep the lower index
    cum = np.add.accumulate(probs[idx], dtype=F32)
    over = np.nonzero(cum > topp)[0]
    last = int(over[0]) if len(over) else len(idx) - 1
    r = F32(coin * cum[last])
    hit = np.nonzero(r < cum[:last + 1])[0]
    return int(idx[hit[0]]) if len(hit) else int(idx[last])


def run_sample(args):
    rows = np.fromfile(args.logits, dtype="<f4").reshape(-1, args.vocab)
    temperature, topp = F32(args.temperature), F32(args.topp)
    rng = Rng(args.seed)
    choices = []
    for row in rows:
        logits = row.astype(F32).copy()
        if temperature == 0:
            choices.append(int(np.argmax(logits)))
            continue
        probs = softmax32(logits / temperature)
        coin = rng.f32()
        if topp <= 0 or topp >= 1:
            cdf = np.add.accumulate(probs, dtype=F32)
            hit = np.nonzero(coin < cdf)[0]
            choices.append(int(hit[0]) if len(hit) else len(probs) - 1)
        else:
            choices.append(sample_topp(probs, topp, coin))
    first = Rng(args.seed)
    return {"choices": choices, "u32": [first.u32() for _ in range(8)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["forward", "sample"])
    ap.add_argument("--model")
    ap.add_argument("--manifest")
    ap.add_argument("--prompt")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--logits")
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--topp", type=float)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    result = run_forward(args) if args.mode == "forward" else run_sample(args)
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
