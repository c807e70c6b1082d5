"""Hugging Face checkpoints for anerd's tests, and a plain-PyTorch reference forward (issue 19).

  hf_reference.py gen DIR KIND SEED DTYPE [SHARDS]
      Writes a small random checkpoint (config.json + model.safetensors, or SHARDS shards and
      model.safetensors.index.json) of KIND llama (GQA, tied, theta 1e4, eps 1e-5) or qwen3 (GQA,
      head_dim != hidden/heads, QK-norm, theta 1e6, eps 1e-6, untied). DTYPE F32, F16 or BF16;
      values are fp16-representable so anerd's fp16 weight staging is exact.
  hf_reference.py ref DIR TOKENS TARGETS [TARGETS...]
      Loads DIR's safetensors by transformers' tensor names (no transformers: it is not packaged)
      and runs the LlamaForCausalLM / Qwen3ForCausalLM forward in float64 torch: RMSNorm, QK-norm
      per head before RoPE, rotate_half RoPE, GQA via repeat_kv, SwiGLU. Prints JSON: the mean
      cross-entropy for each TARGETS list ("loss"), the same with the RoPE pairs taken as
      interleaved ("loss_interleaved", which a wrong import permutation would match instead), and
      the logits of the first position ("logits0").
The safetensors files are written and read with numpy from the format's definition.
"""
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16}


def bf16_bits(a):
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors:
        raw = bf16_bits(arr).tobytes() if dtype == "BF16" else arr.astype(DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out, base = {}, 8 + n
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, e_ = e["data_offsets"]
        raw = data[base + b:base + e_]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, DTYPES[e["dtype"]])
        out[name] = arr.astype(np.float64).reshape(e["shape"])
    return out


def config_for(kind):
    c = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 96,
         "max_position_embeddings": 16, "hidden_act": "silu", "bos_token_id": 1,
         "eos_token_id": 2, "torch_dtype": "float32"}
    if kind == "llama":
        c.update(architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=10000.0,
                 rms_norm_eps=1e-5, tie_word_embeddings=True, attention_bias=False, mlp_bias=False)
    else:
        c.update(architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=32,
                 rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                 attention_bias=False)
    return c


def gen(d, kind, seed, dtype, shards=1):
    c = config_for(kind)
    rng = np.random.default_rng(seed)
    D, H, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    nh, kv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim", D // nh)

    def mat(o, i, scale=1.0):
        return (rng.uniform(-1, 1, (o, i)) * scale / np.sqrt(i)).astype(np.float16)

    def norm(n):
        return (1 + 0.3 * rng.uniform(-1, 1, n)).astype(np.float16)

    t = [("model.embed_tokens.weight", rng.uniform(-0.5, 0.5, (V, D)).astype(np.float16))]
    for l in range(L):
        p = "model.layers.%d." % l
        t += [(p + "self_attn.q_proj.weight", mat(nh * hd, D, 3.0)),
              (p + "self_attn.k_proj.weight", mat(kv * hd, D, 3.0)),
              (p + "self_attn.v_proj.weight", mat(kv * hd, D)),
              (p + "self_attn.o_proj.weight", mat(D, nh * hd))]
        if kind == "qwen3":
            # QK-norm scales q and k to unit RMS: weights near 3 keep attention peaked, so the
            # RoPE pairing visibly matters.
            t += [(p + "self_attn.q_norm.weight", 3 * norm(hd)),
                  (p + "self_attn.k_norm.weight", 3 * norm(hd))]
        t += [(p + "mlp.gate_proj.weight", mat(H, D)), (p + "mlp.up_proj.weight", mat(H, D)),
              (p + "mlp.down_proj.weight", mat(D, H)),
              (p + "input_layernorm.weight", norm(D)),
              (p + "post_attention_layernorm.weight", norm(D))]
    t.append(("model.norm.weight", norm(D)))
    if not c["tie_word_embeddings"]:
        t.append(("lm_head.weight", rng.uniform(-0.5, 0.5, (V, D)).astype(np.float16)))
    t = [(n, a.astype(np.float32)) for n, a in t]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), t, dtype)
        return
    weight_map, per = {}, (len(t) + shards - 1) // shards
    for s in range(shards):
        name = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        part = t[s * per:(s + 1) * per]
        write_safetensors(os.path.join(d, name), part, dtype)
        weight_map.update({n: name for n, _ in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


def forward(d, tokens, interleaved=False):
    import torch
    c = json.load(open(os.path.join(d, "config.json")))
    w = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(d, "model.safetensors")).items()}
    D, nh, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim") or D // nh
    eps, theta = c["rms_norm_eps"], c["rope_theta"]
    qwen3 = c["architectures"][0] == "Qwen3ForCausalLM"
    S = len(tokens)

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g

    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(S, dtype=torch.float64)[:, None] * inv[None, :]  # [S, hd/2]

    def rope(x):  # x [S, heads, hd]
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        if interleaved:
            a, b = x[..., 0::2], x[..., 1::2]
            return torch.stack([a * cos - b * sin, b * cos + a * sin], -1).reshape(x.shape)
        a, b = x[..., :hd // 2], x[..., hd // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)  # x·cos + rotate_half(x)·sin

    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    mask = torch.full((S, S), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(S, nh, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(S, kv, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(S, kv, hd)
        if qwen3:
            q, k = rms(q, w[p + "self_attn.q_norm.weight"]), rms(k, w[p + "self_attn.k_norm.weight"])
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(nh // kv, 1), v.repeat_interleave(nh // kv, 1)  # repeat_kv
        att = torch.einsum("shd,thd->hst", q, k) / hd ** 0.5 + mask
        o = torch.einsum("hst,thd->shd", att.softmax(-1), v).reshape(S, nh * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        f = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
        x = x + f @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if c["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def ref(d, tokens, target_lists):
    import torch
    out = {"loss": [], "loss_interleaved": []}
    for key, inter in (("loss", False), ("loss_interleaved", True)):
        logits = forward(d, tokens, inter)
        if not inter:
            out["logits0"] = logits[0].tolist()
        for tg in target_lists:
            out[key].append(float(torch.nn.functional.cross_entropy(logits, torch.tensor(tg))))
    print(json.dumps(out))


def ints(s):
    return [int(v) for v in s.split(",")]


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5],
            int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    else:
        ref(sys.argv[2], ints(sys.argv[3]), [ints(a) for a in sys.argv[4:]])
