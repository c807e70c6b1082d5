#!/usr/bin/python3
"""Independent references for tests/integration/eval_test.cc (issue 20 item 4), on the numpy
reading of llama2.c run.c in tests/generation/runc_reference.py (float64, never anerd's output).

loss: the mean cross-entropy of a llama2.c model on `--windows` windows of a byte-level text file
(token = byte): window k has inputs data[b + k*seq, b + k*seq + seq) and targets shifted by one,
b = --begin; each window runs from position 0 with a fresh KV cache. Writes {"loss": L}.

sample: greedy continuation of --prompt (its bytes are the prompt tokens) for --steps tokens,
decoded as bytes (invalid UTF-8 replaced). Writes {"text": ..., "tokens": [...]}.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "generation"))
import runc_reference as rc  # noqa: E402


def window_loss(cfg, w, tokens):
    model = rc.Transformer(cfg, w)
    seq = len(tokens) - 1
    total = 0.0
    for pos in range(seq):
        logits = model.forward(tokens[pos], pos)
        m = np.max(logits)
        total += m + np.log(np.sum(np.exp(logits - m))) - logits[tokens[pos + 1]]
    return total / seq


def run_loss(args):
    cfg, w = rc.load_llama2c(args.model)
    data = open(args.data, "rb").read()
    seq = cfg["seq"]
    losses = []
    for k in range(args.windows):
        p = args.begin + k * seq
        losses.append(window_loss(cfg, w, list(data[p:p + seq + 1])))
    return {"loss": float(np.mean(losses))}


def run_sample(args):
    cfg, w = rc.load_llama2c(args.model)
    prompt = list(args.prompt.encode("utf-8"))
    model = rc.Transformer(cfg, w)
    for pos, t in enumerate(prompt):
        logits = model.forward(t, pos)
    out = []
    pos = len(prompt)
    while len(out) < args.steps:
        token = int(np.argmax(logits))
        out.append(token)
        if pos >= cfg["seq"] or len(out) == args.steps:
            break
        logits = model.forward(token, pos)
        pos += 1
    return {"text": bytes(out).decode("utf-8", errors="replace"), "tokens": out}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["loss", "sample"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data")
    ap.add_argument("--begin", type=int, default=0)
    ap.add_argument("--windows", type=int, default=1)
    ap.add_argument("--prompt")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    result = run_loss(args) if args.mode == "loss" else run_sample(args)
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
