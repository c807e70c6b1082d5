#!/usr/bin/env python3
"""PyTorch half of bench/train_vs_torch: the same Llama-style model as anerd's engine (pre-norm
RMSNorm eps 1e-5, interleaved-pair RoPE theta 10000, causal attention, SwiGLU, tied embedding,
residual scale 1), seq = the config's, one sequence per step, fp32 AdamW (betas 0.9/0.95, eps 1e-8,
weight decay 0.1 on matrices and the embedding, 0 on norms), global-norm clipping 1.0.
Prints one JSON line per step and a summary with the median ms/step, its fwd/bwd/optim split and
the process's peak resident set (MiB, getrusage).
Run with OMP_WAIT_POLICY=passive (measured on a 2-vCPU machine: spinning OpenMP threads halve
throughput).
"""
import argparse
import json
import math
import resource
import sys
import statistics
import time

import torch
import torch.nn.functional as F

CONFIGS = {
    "tiny": dict(dim=64, hidden=192, layers=2, heads=4, kv_heads=4, vocab=256, seq=64),
    "stories15m": dict(dim=288, hidden=768, layers=6, heads=6, kv_heads=6, vocab=32000, seq=256),
    "stories110m": dict(dim=768, hidden=2048, layers=12, heads=12, kv_heads=12, vocab=32000, seq=256),
}


class RMSNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


def rope(x, cos, sin):  # x [B, H, S, HD], interleaved pairs
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, h, hd = c["dim"], c["hidden"], c["dim"] // c["heads"]
        self.heads, self.kv_heads, self.hd = c["heads"], c["kv_heads"], hd
        self.wq = torch.nn.Linear(d, c["heads"] * hd, bias=False)
        self.wk = torch.nn.Linear(d, c["kv_heads"] * hd, bias=False)
        self.wv = torch.nn.Linear(d, c["kv_heads"] * hd, bias=False)
        self.wo = torch.nn.Linear(c["heads"] * hd, d, bias=False)
        self.w1 = torch.nn.Linear(d, h, bias=False)
        self.w2 = torch.nn.Linear(h, d, bias=False)
        self.w3 = torch.nn.Linear(d, h, bias=False)
        self.rms_att, self.rms_ffn = RMSNorm(d), RMSNorm(d)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        xn = self.rms_att(x)
        q = self.wq(xn).view(b, s, self.heads, self.hd).transpose(1, 2)
        k = self.wk(xn).view(b, s, self.kv_heads, self.hd).transpose(1, 2)
        v = self.wv(xn).view(b, s, self.kv_heads, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        r = self.heads // self.kv_heads
        k, v = k.repeat_interleave(r, dim=1), v.repeat_interleave(r, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, s, -1)
        x = x + self.wo(o)
        xn = self.rms_ffn(x)
        return x + self.w2(F.silu(self.w1(xn)) * self.w3(xn))


class Model(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = torch.nn.Embedding(c["vocab"], c["dim"])
        self.layers = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["dim"])
        hd, s = c["dim"] // c["heads"], c["seq"]
        theta = torch.arange(s)[:, None] / (10000 ** (torch.arange(0, hd, 2) / hd))[None, :]
        self.register_buffer("cos", theta.cos())
        self.register_buffer("sin", theta.sin())
        self.register_buffer("mask", torch.full((s, s), float("-inf")).triu(1))

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        logits = self.norm(x) @ self.embed.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="stories15m")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--data", required=True)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    c = CONFIGS[a.model]
    model = Model(c)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    data = torch.tensor(list(open(a.data, "rb").read()), dtype=torch.long)
    s = c["seq"]
    rows = {"ms": [], "fwd": [], "bwd": [], "optim": []}
    for i in range(a.steps + a.warmup_steps):
        pos = (i * s) % (len(data) - s - 1)
        x, y = data[pos:pos + s][None], data[pos + 1:pos + s + 1][None]
        t0 = time.perf_counter()
        loss = model(x, y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t3 = time.perf_counter()
        row = {"ms": (t3 - t0) * 1e3, "fwd": (t1 - t0) * 1e3, "bwd": (t2 - t1) * 1e3,
               "optim": (t3 - t2) * 1e3}
        print(json.dumps({"type": "step", "step": i + 1, "loss": round(loss.item(), 4),
                          **{k: round(v, 1) for k, v in row.items()}}), flush=True)
        if i >= a.warmup_steps:
            for k, v in row.items():
                rows[k].append(v)
    print(json.dumps({"type": "summary", "impl": "torch", "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "model": a.model, "steps": a.steps,
                      "median_ms": round(statistics.median(rows["ms"]), 1),
                      **{k: round(statistics.median(v), 1) for k, v in rows.items() if k != "ms"},
                      "peak_rss_mib": round(peak_rss_mib())}))


def peak_rss_mib():
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


if __name__ == "__main__":
    main()
