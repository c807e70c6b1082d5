#!/usr/bin/env python3
"""anerd from Python: compile and run a kernel, then start and watch a short training run.

    pip install ./client/python      # in a venv; or PYTHONPATH=<build>/client/python/gen
    python3 client/python/example.py --host unix:PATH --data /abs/stories.txt

The kernel is examples/kernels/conv1x1 (a 64->32 channel 1x1 convolution); its output is checked
against numpy. --data is read by the daemon, so it must be an absolute path under its --data-root
(write one with `anectl data synth --out FILE`). The last line printed is a JSON summary.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

import anerd

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_kernel(kernel_dir):
    """The MIL text and {path as the MIL names it: bytes} for every file under weights/."""
    with open(os.path.join(kernel_dir, "conv.mil")) as f:
        mil = f.read()
    weights = {}
    weights_dir = os.path.join(kernel_dir, "weights")
    for name in sorted(os.listdir(weights_dir)):
        with open(os.path.join(weights_dir, name), "rb") as f:
            weights["weights/" + name] = f.read()
    return mil, weights


def blob_fp16(blob, header_offset, shape):
    """The fp16 tensor whose blob header is at `header_offset` (header: magic, dtype, size, data
    offset, all little-endian)."""
    magic, _, size, data_offset = struct.unpack_from("<IIQQ", blob, header_offset)
    assert magic == 0xDEADBEEF, "not a weight blob header"
    return np.frombuffer(blob, dtype="<f2", count=size // 2, offset=data_offset).reshape(shape)


def run_kernel(client, kernel_dir, chunk_bytes):
    mil, weights = load_kernel(kernel_dir)
    compiled = client.compile_kernel(mil, weights, name="py-conv1x1", chunk_bytes=chunk_bytes)
    kernel = compiled.kernel
    print("compiled %s (%s) in %.1f ms, cache hit %s" %
          (kernel.id[:12], kernel.backend, compiled.compile_ms, compiled.cache_hit))
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(1, 64, 1, 256)).astype(np.float16)
    outputs, timing = client.eval_kernel(kernel.id, {"x": x})
    y = outputs["y"]
    w = blob_fp16(weights["weights/w.bin"], 64, (32, 64)).astype(np.float32)
    reference = np.einsum("oc,cs->os", w, x[0, :, 0, :].astype(np.float32))
    error = float(np.max(np.abs(y[0, :, 0, :].astype(np.float32) - reference)))
    scale = float(np.max(np.abs(reference)))
    print("evaluated: y %s %s, max |y - numpy| = %.4g (max |y| %.3g), %.0f us on the server" %
          (list(y.shape), y.dtype, error, scale, timing.total_us))
    return {"kernel_id": kernel.id, "output_shape": list(y.shape), "max_abs_error": error,
            "max_abs_output": scale, "weight_bytes": kernel.weight_bytes}


def run_training(client, data, steps):
    session = client.start_training(name="py-example", model="tiny", data=data, steps=steps,
                                    seed=3, has_seed=True)
    print("started session %s (%s)" % (session.id, session.state))
    losses, states = [], []
    for event in client.watch(session.id, from_step=0, timeout=600):
        kind = event.WhichOneof("kind")
        if kind == "step":
            s = event.step
            losses.append(s.loss)
            print("step %4d  loss %.4f  %.1f ms  %.0f tok/s" %
                  (s.step, s.loss, s.step_ms, s.tokens_per_s))
        elif kind == "state":
            states.append(event.state)
            print("state", event.state)
    final = client.get_session(session.id)
    return {"session_id": session.id, "state": final.state, "steps_seen": len(losses),
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "states": states}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="unix:PATH, a socket path or HOST:PORT (default: "
                        "$ANERD_HOST or the per-user socket)")
    parser.add_argument("--token", help="bearer token for TCP listeners")
    parser.add_argument("--tls-ca", help="PEM CA certificate for a TLS listener")
    parser.add_argument("--tls-cert", help="PEM client certificate (mutual TLS); needs --tls-key")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--kernel-dir", default=os.path.join(REPO, "examples/kernels/conv1x1"))
    parser.add_argument("--chunk-bytes", type=int, default=1024,
                        help="weight upload chunk size (small to show streaming)")
    parser.add_argument("--data", help="daemon-side token or text file; omit to skip training")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    try:
        return run(args)
    except anerd.AnerdError as e:  # e.g. anerd.Unavailable: the daemon is not running
        print("example.py: %s" % e, file=sys.stderr)
        return 1


def run(args):
    with anerd.connect(args.host, token=args.token, tls_ca=args.tls_ca,
                       tls_cert=args.tls_cert, tls_key=args.tls_key) as client:
        info = client.info()
        print("anerd %s (pid %d), default backend %s" %
              (info.version, info.pid, info.default_backend))
        summary = {"version": info.version, "kernel": run_kernel(client, args.kernel_dir,
                                                                  args.chunk_bytes)}
        if args.data:
            summary["training"] = run_training(client, os.path.abspath(args.data), args.steps)
    print(json.dumps(summary))
    ok = summary["kernel"]["max_abs_error"] <= 0.02 * max(1.0, summary["kernel"]["max_abs_output"])
    if args.data:
        ok = ok and summary["training"]["state"] == "completed"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
