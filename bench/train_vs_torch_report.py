#!/usr/bin/env python3
"""Prints issue 22's training rows from the JSON lines bench/train_vs_torch.sh collected in one run:
step-time ratios anerd/PyTorch per model and numerics, peak RSS anerd (fp32 session) / PyTorch,
AdamW / its memory-traffic bound, with the load average at start and end."""
import json
import sys

TARGETS = {("stories110m", "fp32"): 0.60, ("stories110m", "ane"): 0.75, ("stories15m", "ane"): 0.55}


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    load = {r["when"]: r["load"] for r in rows if r.get("type") == "load"}
    anerd = {(r["model"], r["numerics"]): r for r in rows if r.get("impl") == "anerd"}
    torch = {r["model"]: r for r in rows if r.get("impl") == "torch"}
    print(f"\nissue 22 training rows (load average start {load.get('start')}, end {load.get('end')})")
    print("| what | anerd | reference | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for (model, numerics), a in anerd.items():
        t = torch.get(model)
        if not t:
            continue
        target = TARGETS.get((model, numerics))
        print(f"| {model} step, {numerics} numerics, vs PyTorch fp32 | {a['median_ms']:.0f} ms | "
              f"{t['median_ms']:.0f} ms | {a['median_ms'] / t['median_ms']:.2f} | "
              f"{'≤ %.2f' % target if target else '-'} |")
    for model, t in torch.items():
        a = anerd.get((model, "fp32"))
        if a:
            print(f"| {model} peak RSS, anerd fp32 session vs PyTorch process | "
                  f"{a['peak_rss_mib']:.0f} MiB | {t['peak_rss_mib']:.0f} MiB | "
                  f"{a['peak_rss_mib'] / t['peak_rss_mib']:.2f} | ≤ 1.00 |")
    for r in rows:
        if r.get("type") == "adamw":
            print(f"| AdamW over {r['model']} parameters ({r['params'] / 1e6:.1f} M) vs the same "
                  f"bytes' traffic pass | {r['adamw_ms']:.1f} ms | {r['traffic_ms']:.1f} ms "
                  f"({r['traffic_gbs']:.1f} GB/s) | {r['ratio']:.2f} | ≤ 1.40 |")
    print("\nanerd phase medians (ms): " + "; ".join(
        f"{m} {n}: kernel {a['kernel']:.0f}, io {a['io']:.0f}, cls {a['cls']:.0f}, "
        f"elem {a['elem']:.0f}, rms {a['rms']:.0f}, dw_wait {a['dw_wait']:.0f}, optim {a['optim']:.0f}"
        for (m, n), a in anerd.items()))
    print("PyTorch medians (ms): " + "; ".join(
        f"{m}: fwd {t['fwd']:.0f}, bwd {t['bwd']:.0f}, optim {t['optim']:.0f}" for m, t in torch.items()))
    for r in rows:
        if r.get("type") == "adamw":
            print(f"AdamW: portable (SSE) path {r['portable_ms']:.1f} ms ({r['portable_ratio']:.2f}x the "
                  f"traffic pass); STREAM triad {r['triad_gbs']:.1f} GB/s")


if __name__ == "__main__":
    main()
