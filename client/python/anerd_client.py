"""A small Python client for anerd (the anerd.v1 gRPC API).

The stubs (anerd/v1/anerd_pb2.py, anerd_pb2_grpc.py) are generated, never committed: build the
`anerd_python_stubs` CMake target (they land in <build>/client/python/gen) or run gen_stubs.sh, and
put that directory and this one on PYTHONPATH.

    client = anerd_client.connect("unix:/run/user/1000/anerd/anerd.sock")
    client = anerd_client.connect("host.example:7443", token="...", tls_ca="ca.pem")
    client = anerd_client.connect("host.example:7443", token="...", tls_ca="ca.pem",
                                  tls_cert="client.pem", tls_key="client.key")  # mutual TLS
"""

import hashlib
import os

import grpc
import numpy as np

from anerd.v1 import anerd_pb2 as pb
from anerd.v1 import anerd_pb2_grpc as pb_grpc

# anerd tensor dtype names -> numpy dtypes (data is little-endian, C order).
DTYPES = {
    "fp16": np.float16,
    "fp32": np.float32,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}

_MAX_MESSAGE = 256 << 20
_ARTIFACT_CHUNK = 1 << 20  # the daemon takes at most 4 MiB per upload message
_ACTIVE_STATES = ("queued", "compiling", "running", "checkpointing")


def default_target():
    """$ANERD_HOST, else the Linux default per-user socket."""
    if os.environ.get("ANERD_HOST"):
        return os.environ["ANERD_HOST"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return "unix:" + os.path.join(runtime, "anerd", "anerd.sock")
    return "unix:" + os.path.expanduser("~/.local/state/anerd/anerd.sock")


def _normalise_target(target):
    if target.startswith("/"):
        return "unix:" + target
    return target


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def connect(target=None, token=None, tls_ca=None, timeout=30.0, tls_cert=None, tls_key=None):
    """Returns a Client for `target`: a socket path, "unix:PATH" or "HOST:PORT".

    `token` is sent as "authorization: Bearer TOKEN" on every call (every TCP listener requires
    one); `tls_ca` (a PEM file) turns on TLS for TCP targets; `tls_cert` and `tls_key` (PEM files,
    both or neither) present a client certificate to a daemon started with --tls_client_ca, and
    turn on TLS too (verified against `tls_ca`, else grpc's default roots). Connecting is lazy:
    errors surface on the first call.
    """
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("tls_cert and tls_key go together (a client certificate and its key)")
    target = _normalise_target(target or default_target())
    options = [("grpc.max_receive_message_length", _MAX_MESSAGE),
               ("grpc.max_send_message_length", 64 << 20)]
    if (tls_ca or tls_cert) and not target.startswith("unix:"):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(tls_ca) if tls_ca else None,
            private_key=_read(tls_key) if tls_key else None,
            certificate_chain=_read(tls_cert) if tls_cert else None)
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    return Client(channel, token=token, timeout=timeout)


class Client:
    """Typed helpers over the generated stub. Thread-safe as far as grpc channels are."""

    def __init__(self, channel, token=None, timeout=30.0):
        self.channel = channel
        self.stub = pb_grpc.AnerdStub(channel)
        self.timeout = timeout
        self._metadata = (("authorization", "Bearer " + token),) if token else ()

    def close(self):
        self.channel.close()

    def info(self):
        return self.stub.GetInfo(pb.GetInfoRequest(), timeout=self.timeout,
                                 metadata=self._metadata)

    def compile_kernel(self, mil_text, weights=None, name="", backend="", chunk_bytes=1 << 20):
        """Compiles MIL text. `weights` maps the path the MIL names ("weights/w.bin") to bytes;
        they are streamed after the header in chunks of `chunk_bytes`. Returns the response."""
        weights = weights or {}
        header = pb.CompileKernelHeader(name=name, mil_text=mil_text,
                                        options=pb.CompileOptions(backend=backend))
        for path, data in weights.items():
            header.weight_files.add(path=path, size=len(data))

        def requests():
            yield pb.CompileKernelRequest(header=header)
            for path, data in weights.items():
                for offset in range(0, len(data), chunk_bytes):
                    chunk = pb.WeightChunk(path=path, offset=offset,
                                           data=data[offset:offset + chunk_bytes])
                    yield pb.CompileKernelRequest(chunk=chunk)

        return self.stub.CompileKernel(requests(), timeout=self.timeout + 60,
                                       metadata=self._metadata)

    def eval_kernel(self, kernel_id, inputs, dtypes=None):
        """Evaluates a kernel. `inputs` maps names to numpy arrays, converted to `dtypes[name]`
        (an anerd dtype name; default fp16). Returns (outputs as numpy arrays, timing)."""
        dtypes = dtypes or {}
        request = pb.EvalKernelRequest(kernel_id=kernel_id)
        for name, array in inputs.items():
            dtype = dtypes.get(name, "fp16")
            data = np.ascontiguousarray(array, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<"))
            request.inputs.add(name=name, dtype=dtype, shape=list(data.shape), data=data.tobytes())
        response = self.stub.EvalKernel(request, timeout=self.timeout, metadata=self._metadata)
        outputs = {t.name: tensor_to_numpy(t) for t in response.outputs}
        return outputs, response.timing

    def start_training(self, **spec):
        """Starts a session; keyword arguments are TrainingSpec fields (model, data, steps, ...;
        data_artifact=ID trains on a pushed dataset, val_fraction=F holds out its tail)."""
        request = pb.StartTrainingRequest(spec=pb.TrainingSpec(**spec))
        return self.stub.StartTraining(request, timeout=self.timeout, metadata=self._metadata)

    # ---- Artifacts (datasets, models, tokenizers; the id is the SHA-256 of the bytes) ----

    def push(self, path, kind="dataset", name=None, progress=None):
        """Uploads the file at `path` as an artifact. Bytes the daemon already holds for this
        client are not sent again. `progress(done, total)` is called as bytes go out. Returns
        (ArtifactInfo, bytes_sent)."""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_ARTIFACT_CHUNK), b""):
                digest.update(block)
        sha = digest.hexdigest()
        size = os.path.getsize(path)
        try:
            self.stub.GetArtifact(pb.GetArtifactRequest(id=sha), timeout=self.timeout,
                                  metadata=self._metadata)
            have = True
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            have = False
        header = pb.ArtifactHeader(kind=kind, name=name or os.path.basename(path), size=size,
                                   sha256=sha)
        sent = [0]

        def requests():
            yield pb.UploadArtifactRequest(header=header)
            if have:
                return
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(_ARTIFACT_CHUNK), b""):
                    yield pb.UploadArtifactRequest(
                        chunk=pb.ArtifactChunk(offset=sent[0], data=block))
                    sent[0] += len(block)
                    if progress:
                        progress(sent[0], size)

        info = self.stub.UploadArtifact(requests(), timeout=self.timeout + 60.0 * size / 1e8,
                                        metadata=self._metadata)
        return info, sent[0]

    def pull(self, artifact_id, out_path, progress=None):
        """Downloads artifact `artifact_id` into `out_path` (via out_path.partial, checked against
        the id). Returns the bytes written; raises ValueError if they do not hash to the id."""
        partial = out_path + ".partial"
        digest = hashlib.sha256()
        written = 0
        total = 0
        try:
            with open(partial, "wb") as f:
                request = pb.DownloadArtifactRequest(id=artifact_id)
                for chunk in self.stub.DownloadArtifact(request, metadata=self._metadata):
                    total = chunk.total_bytes or total
                    f.write(chunk.data)
                    digest.update(chunk.data)
                    written += len(chunk.data)
                    if progress:
                        progress(written, total)
            if digest.hexdigest() != artifact_id:
                raise ValueError("the %d bytes received do not hash to artifact %s"
                                 % (written, artifact_id))
            os.replace(partial, out_path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return written

    def list_artifacts(self, kind=""):
        """The caller's artifacts (every one for admins), newest first."""
        return list(self.stub.ListArtifacts(pb.ListArtifactsRequest(kind=kind),
                                            timeout=self.timeout,
                                            metadata=self._metadata).artifacts)

    def delete_artifact(self, artifact_id):
        self.stub.DeleteArtifact(pb.DeleteArtifactRequest(id=artifact_id), timeout=self.timeout,
                                 metadata=self._metadata)

    def get_session(self, session_id):
        return self.stub.GetSession(pb.GetSessionRequest(session_id=session_id),
                                    timeout=self.timeout, metadata=self._metadata)

    def watch(self, session_id, from_step=0, from_now=False, timeout=None):
        """Yields SessionEvents until the session leaves the active states (or `timeout`)."""
        request = pb.WatchSessionRequest(session_id=session_id, from_step=from_step,
                                         from_now=from_now)
        for event in self.stub.WatchSession(request, timeout=timeout, metadata=self._metadata):
            yield event
            if event.WhichOneof("kind") == "state" and event.state not in _ACTIVE_STATES:
                return


def tensor_to_numpy(tensor):
    """An anerd Tensor message as a numpy array of its dtype and shape."""
    dtype = np.dtype(DTYPES[tensor.dtype]).newbyteorder("<")
    return np.frombuffer(tensor.data, dtype=dtype).reshape(list(tensor.shape))
