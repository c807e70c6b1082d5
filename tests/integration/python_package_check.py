"""Run by python_package_test.cc with the interpreter of a venv the `anerd` package was
pip-installed into: python_package_check.py HOST KERNEL_DIR DATA.

Exercises the package against a real daemon (context manager, numpy in and out, typed errors,
the watch and probe iterators) and prints one JSON object of what it saw; the C++ test asserts.
"""

import json
import os
import struct
import subprocess
import sys

import numpy as np

import anerd


def load_kernel(kernel_dir):
    with open(os.path.join(kernel_dir, "conv.mil")) as f:
        mil = f.read()
    with open(os.path.join(kernel_dir, "weights", "w.bin"), "rb") as f:
        blob = f.read()
    return mil, {"weights/w.bin": blob}


def conv_weights(blob):
    """The fp16 (32, 64) weight whose blob header sits at byte 64."""
    _, _, size, offset = struct.unpack_from("<IIQQ", blob, 64)
    return np.frombuffer(blob, dtype="<f2", count=size // 2, offset=offset).reshape(32, 64)


def error_of(call):
    """What a call that should fail raised: class, code, message (or what it returned)."""
    try:
        return {"returned": str(call())}
    except anerd.AnerdError as e:
        return {"class": type(e).__name__, "code": e.code.name, "message": e.message,
                "str": str(e)}


def check_kernel(client, kernel_dir):
    mil, weights = load_kernel(kernel_dir)
    compiled = client.compile_kernel(mil, weights, name="pkg-conv1x1", chunk_bytes=1000)
    kernel = compiled.kernel
    x = np.random.default_rng(7).uniform(-1, 1, size=(1, 64, 1, 256)).astype(np.float32)
    outputs, timing = client.eval_kernel(kernel.id, {"x": x})
    y = outputs["y"]
    w = conv_weights(weights["weights/w.bin"]).astype(np.float32)
    reference = np.einsum("oc,cs->os", w, x[0, :, 0, :].astype(np.float16).astype(np.float32))
    return {
        "kernel_id": kernel.id, "weight_bytes": kernel.weight_bytes,
        "output_type": type(y).__name__, "output_dtype": str(y.dtype),
        "output_shape": list(y.shape),
        "max_abs_error": float(np.max(np.abs(y[0, :, 0, :].astype(np.float32) - reference))),
        "max_abs_output": float(np.max(np.abs(reference))),
        "listed": kernel.id in [k.id for k in client.list_kernels()],
        "wrong_input": error_of(lambda: client.eval_kernel(kernel.id, {"z": x})),
        "wrong_shape": error_of(lambda: client.eval_kernel(kernel.id, {"x": x[:, :5]})),
    }


def check_training(client, data):
    session = client.start_training(name="pkg-watch", model="tiny", data=data, steps=5, seed=3,
                                    has_seed=True)
    steps, states = [], []
    for event in client.watch(session.id, timeout=300):
        kind = event.WhichOneof("kind")
        if kind == "step":
            steps.append(event.step.step)
        elif kind == "state":
            states.append(event.state)
    return {"steps": steps, "states": states, "final": client.get_session(session.id).state,
            "listed": session.id in [s.id for s in client.list_sessions()],
            "stop_finished": error_of(lambda: client.stop_session(session.id))}


def check_probe(client):
    kinds, result_id = [], None
    for response in client.run_probe("peak", grid=[(32, 8, 1)], repeat=2, warmup=1):
        kind = response.WhichOneof("kind")
        kinds.append(kind)
        if kind == "summary":
            result_id = response.summary.result_id
    stored = client.get_probe_result(result_id)
    return {"kinds": kinds, "stored_rows": len(stored.rows),
            "listed": result_id in [r.result_id for r in client.list_probe_results()]}


def uncaught_error_stderr(host):
    """stderr of a script that lets anerd.NotFound escape: what a user's traceback shows."""
    run = subprocess.run([sys.executable, "-c",
                          "import anerd, sys\nanerd.connect(sys.argv[1]).get_kernel('nope')", host],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return {"exit_code": run.returncode, "stderr": run.stderr}


def main():
    host, kernel_dir, data = sys.argv[1:4]
    summary = {"anerd_file": anerd.__file__}
    with anerd.connect(host) as client:
        summary["version"] = client.info().version
        summary["kernel"] = check_kernel(client, kernel_dir)
        summary["missing_kernel"] = error_of(lambda: client.get_kernel("0" * 64))
        summary["training"] = check_training(client, data)
        summary["probe"] = check_probe(client)
    try:
        client.info()
        summary["after_close"] = "call succeeded"
    except ValueError as e:  # grpc refuses calls on a closed channel
        summary["after_close"] = str(e)
    summary["uncaught"] = uncaught_error_stderr(host)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
