#!/usr/bin/env python3
"""PyTorch reference for tests/training/torch_reference_test.cc (issue 19 item 4).

A Qwen3-style decoder written in plain torch (not transformers), from the architecture description:
pre-norm RMSNorm, q/k/v projections, per-head RMSNorm of q and k over head_dim (QK-norm) before
RoPE, RoPE either Hugging Face "rotate_half" (pairs i and i+head_dim/2, cos/sin = cat(freqs,
freqs)) or interleaved pairs (2i, 2i+1), GQA with query head h reading KV head h // (heads /
kv_heads) (repeat_kv), causal softmax attention scaled by 1/sqrt(head_dim), SwiGLU FFN, residual
branches scaled by alpha, final RMSNorm, classifier = lm_head (untied) or the embedding (tied),
mean cross-entropy. Weights come from a flat float32 file in anerd's parameter order
(server/training/model.h ParamLayout): embed [V][D]; per layer wq [QD][D], wk, wv [KVD][D],
wo [D][QD], w1 [H][D], w2 [D][H], w3 [H][D], rms_att [D], rms_ffn [D], (q_norm [HD], k_norm
[HD]); rms_final [D]; (lm_head [V][D]).

It writes, as JSON, the loss and the gradient (float64, parameter order, to --grads) of the
first window at the given weights, then the losses of --steps AdamW steps (torch.optim.AdamW,
betas/eps/weight decay as given, decay on matrices, embedding and lm_head only, constant lr, no
clipping), one sequence per step on consecutive windows, computed in float64.
"""
import argparse
import json
import math
import sys

import torch


def parse_config(text):
    c = dict(rope_style="interleaved", rope_theta=10000.0, qk_norm=0, norm_eps=1e-5,
             residual_scale=1.0, tied=1)
    for item in text.split(","):
        k, v = item.split("=", 1)
        c[k.strip()] = v.strip()
    for k in ("dim", "hidden", "layers", "heads", "kv_heads", "head_dim", "vocab", "seq", "qk_norm",
              "tied"):
        c[k] = int(c[k])
    for k in ("rope_theta", "norm_eps", "residual_scale"):
        c[k] = float(c[k])
    return c


def unpack(c, flat):
    """Views of the flat parameter vector, in anerd's order, as leaf tensors."""
    d, h, hd, v = c["dim"], c["hidden"], c["head_dim"], c["vocab"]
    qd, kvd = c["heads"] * hd, c["kv_heads"] * hd
    shapes = [("embed", (v, d))]
    for l in range(c["layers"]):
        shapes += [(f"{l}.wq", (qd, d)), (f"{l}.wk", (kvd, d)), (f"{l}.wv", (kvd, d)),
                   (f"{l}.wo", (d, qd)), (f"{l}.w1", (h, d)), (f"{l}.w2", (d, h)),
                   (f"{l}.w3", (h, d)), (f"{l}.rms_att", (d,)), (f"{l}.rms_ffn", (d,))]
        if c["qk_norm"]:
            shapes += [(f"{l}.q_norm", (hd,)), (f"{l}.k_norm", (hd,))]
    shapes.append(("rms_final", (d,)))
    if not c["tied"]:
        shapes.append(("lm_head", (v, d)))
    params, off = {}, 0
    for name, shape in shapes:
        n = math.prod(shape)
        params[name] = flat[off:off + n].reshape(shape).clone().requires_grad_(True)
        off += n
    if off != flat.numel():
        sys.exit(f"parameter file has {flat.numel()} floats, the config needs {off}")
    return params, [name for name, _ in shapes]


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(c):
    hd, s = c["head_dim"], c["seq"]
    # As Hugging Face computes them: inv_freq in float32, angle = position * inv_freq.
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = torch.outer(torch.arange(s, dtype=torch.float32), inv_freq).double()  # [S, HD/2]
    return freqs.cos(), freqs.sin()


def apply_rope(x, cos, sin, half):  # x [NH, S, HD]
    if half:
        c2, s2 = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return x * c2 + torch.cat((-x2, x1), -1) * s2
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, b * cos + a * sin), -1).flatten(-2)


def loss_fn(c, p, tokens, targets, alpha, cos, sin):
    s, hd, nh, kvh = c["seq"], c["head_dim"], c["heads"], c["kv_heads"]
    eps, half = c["norm_eps"], c["rope_style"] == "half"
    mask = torch.full((s, s), float("-inf"), dtype=torch.float64).triu(1)
    x = p["embed"][tokens]
    for l in range(c["layers"]):
        xn = rms_norm(x, p[f"{l}.rms_att"], eps)
        q = (xn @ p[f"{l}.wq"].T).view(s, nh, hd).transpose(0, 1)
        k = (xn @ p[f"{l}.wk"].T).view(s, kvh, hd).transpose(0, 1)
        v = (xn @ p[f"{l}.wv"].T).view(s, kvh, hd).transpose(0, 1)
        if c["qk_norm"]:
            q = rms_norm(q, p[f"{l}.q_norm"], eps)
            k = rms_norm(k, p[f"{l}.k_norm"], eps)
        q, k = apply_rope(q, cos, sin, half), apply_rope(k, cos, sin, half)
        k = k.repeat_interleave(nh // kvh, dim=0)
        v = v.repeat_interleave(nh // kvh, dim=0)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1) @ v
        x = x + alpha * (att.transpose(0, 1).reshape(s, nh * hd) @ p[f"{l}.wo"].T)
        x2n = rms_norm(x, p[f"{l}.rms_ffn"], eps)
        gate = torch.nn.functional.silu(x2n @ p[f"{l}.w1"].T) * (x2n @ p[f"{l}.w3"].T)
        x = x + alpha * (gate @ p[f"{l}.w2"].T)
    xf = rms_norm(x, p["rms_final"], eps)
    logits = xf @ (p["embed"] if c["tied"] else p["lm_head"]).T
    return torch.nn.functional.cross_entropy(logits, targets)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--grads", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--alpha", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    c = parse_config(a.config)
    import numpy as np
    flat = torch.from_numpy(np.fromfile(a.params, dtype=np.float32)).double()
    data = torch.from_numpy(np.fromfile(a.tokens, dtype=np.uint16).astype(np.int64))
    params, order = unpack(c, flat)
    cos, sin = rope_tables(c)
    s = c["seq"]
    windows = (data.numel() - 1) // s

    def window(k):
        p0 = (k % windows) * s
        return data[p0:p0 + s], data[p0 + 1:p0 + 1 + s]

    loss0 = loss_fn(c, params, *window(0), a.alpha, cos, sin)
    loss0.backward()
    torch.cat([params[n].grad.reshape(-1) for n in order]).numpy().tofile(a.grads)

    for t in params.values():
        t.grad = None
    decay = [params[n] for n in order if params[n].dim() == 2]
    no_decay = [params[n] for n in order if params[n].dim() == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    losses = []
    for step in range(a.steps):
        opt.zero_grad()
        loss = loss_fn(c, params, *window(step), a.alpha, cos, sin)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(json.dumps({"loss0": loss0.item(), "losses": losses}))


if __name__ == "__main__":
    main()
