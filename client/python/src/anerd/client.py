"""connect() and Client: typed helpers over the anerd.v1 gRPC API.

    with anerd.connect() as client:                        # $ANERD_HOST or the per-user socket
        print(client.info().version)
    anerd.connect("unix:/run/user/1000/anerd/anerd.sock")
    anerd.connect("host.example:7443", token="...", tls_ca="ca.pem")
    anerd.connect("host.example:7443", token="...", tls_ca="ca.pem",
                  tls_cert="client.pem", tls_key="client.key")  # mutual TLS

Every call raises a subclass of anerd.AnerdError (anerd.NotFound, anerd.InvalidArgument, ...)
carrying the gRPC `code` and the daemon's `message`.
"""

import hashlib
import os

import grpc

from anerd import _stub
from anerd import errors
from anerd.tensors import numpy_to_tensor, tensor_to_numpy
from anerd.v1 import anerd_pb2 as pb
from anerd.v1 import anerd_pb2_grpc as pb_grpc

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


def open_channel(target=None, tls_ca=None, tls_cert=None, tls_key=None):
    """(grpc channel, normalised target) for `target` (see connect)."""
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
        return grpc.secure_channel(target, credentials, options=options), target
    return grpc.insecure_channel(target, options=options), target


def connect(target=None, token=None, tls_ca=None, timeout=30.0, tls_cert=None, tls_key=None):
    """Returns a Client for `target`: a socket path, "unix:PATH" or "HOST:PORT" (default:
    $ANERD_HOST, else the per-user socket). Use it as a context manager to close the channel.

    `token` is sent as "authorization: Bearer TOKEN" on every call (every TCP listener requires
    one); `tls_ca` (a PEM file) turns on TLS for TCP targets; `tls_cert` and `tls_key` (PEM files,
    both or neither) present a client certificate to a daemon started with --tls-client-ca, and
    turn on TLS too (verified against `tls_ca`, else grpc's default roots). `timeout` (seconds)
    bounds each unary call. Connecting is lazy: an unreachable daemon raises anerd.Unavailable
    on the first call.
    """
    channel, target = open_channel(target, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    return Client(channel, token=token, timeout=timeout, target=target)


class Client:
    """Typed helpers over the generated stub. Thread-safe as far as grpc channels are.

    `stub` is the generated AnerdStub with typed errors (typed_errors=False: the raw stub, whose
    calls raise grpc.RpcError); every method below goes through it.
    """

    def __init__(self, channel, token=None, timeout=30.0, target=None, typed_errors=True):
        self.channel = channel
        self.stub = _stub.TypedStub(channel, target) if typed_errors else pb_grpc.AnerdStub(channel)
        self.timeout = timeout
        self.target = target  # normalised; None when unknown (then treated as local)
        self._metadata = (("authorization", "Bearer " + token),) if token else ()

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def info(self):
        return self.stub.GetInfo(pb.GetInfoRequest(), timeout=self.timeout,
                                 metadata=self._metadata)

    # ---- Kernels ----

    def compile_kernel(self, mil_text, weights=None, name="", backend="", chunk_bytes=1 << 20,
                       numerics=""):
        """Compiles MIL text. `weights` maps the path the MIL names ("weights/w.bin") to bytes;
        they are streamed after the header in chunks of `chunk_bytes`. Returns the response
        (.kernel is the KernelInfo; .kernel.id the id to evaluate)."""
        weights = weights or {}
        header = pb.CompileKernelHeader(name=name, mil_text=mil_text,
                                        options=pb.CompileOptions(backend=backend,
                                                                  numerics=numerics))
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
            request.inputs.append(numpy_to_tensor(name, array, dtypes.get(name, "fp16")))
        response = self.stub.EvalKernel(request, timeout=self.timeout, metadata=self._metadata)
        outputs = {t.name: tensor_to_numpy(t) for t in response.outputs}
        return outputs, response.timing

    def list_kernels(self):
        """The caller's kernels (KernelInfo messages)."""
        return list(self.stub.ListKernels(pb.ListKernelsRequest(), timeout=self.timeout,
                                          metadata=self._metadata).kernels)

    def get_kernel(self, kernel_id):
        return self.stub.GetKernel(pb.GetKernelRequest(kernel_id=kernel_id),
                                   timeout=self.timeout, metadata=self._metadata)

    def delete_kernel(self, kernel_id):
        self.stub.DeleteKernel(pb.DeleteKernelRequest(kernel_id=kernel_id),
                               timeout=self.timeout, metadata=self._metadata)

    # ---- Training sessions ----

    def start_training(self, upload=None, progress=None, **spec):
        """Starts a session; keyword arguments are TrainingSpec fields (model, data, steps, ...;
        data_artifact=ID trains on a pushed dataset, val_fraction=F holds out its tail).

        `data`, `init` and `val_data` may name local files the daemon cannot read, as
        `anectl train start` allows: they are pushed first (bytes the daemon already holds are
        not sent again; `progress(path, done, total)` sees them go) and named by artifact id
        instead. `upload`: None (default) pushes up front for a TCP daemon, and for a local one
        only when it refuses a path as outside its data roots; True always pushes local files;
        False never does (the daemon must read the paths itself)."""
        remote = self.target is not None and not self.target.startswith("unix:")
        if upload or (upload is None and remote):
            self._upload_inputs(spec, progress)
        try:
            return self._start(spec)
        except (errors.AnerdError, grpc.RpcError) as e:
            if (upload is not None or remote
                    or errors.code_of(e) != grpc.StatusCode.PERMISSION_DENIED
                    or "outside the daemon's data roots" not in str(e)
                    or not self._upload_inputs(spec, progress)):
                raise
        return self._start(spec)

    def _start(self, spec):
        request = pb.StartTrainingRequest(spec=pb.TrainingSpec(**spec))
        return self.stub.StartTraining(request, timeout=self.timeout, metadata=self._metadata)

    # (path field, artifact field, artifact kind) of the TrainingSpec inputs a client may upload.
    _UPLOADABLE = (("data", "data_artifact", "dataset"), ("init", "init_artifact", "model"),
                   ("val_data", "val_artifact", "dataset"))

    def _upload_inputs(self, spec, progress):
        """Pushes each input of `spec` that is a local file and names it by artifact id
        instead (in place). Returns whether any was."""
        pushed = False
        for field, artifact_field, kind in self._UPLOADABLE:
            path = spec.get(field)
            if not path or not os.path.isfile(path):
                continue
            callback = (lambda d, t, p=path: progress(p, d, t)) if progress else None
            info, _ = self.push(path, kind=kind, progress=callback)
            del spec[field]
            spec[artifact_field] = info.id
            pushed = True
        return pushed

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
        except (errors.AnerdError, grpc.RpcError) as e:
            if errors.code_of(e) != grpc.StatusCode.NOT_FOUND:
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

    def tokenize_dataset(self, text_artifact, tokenizer_artifact="byte", add_bos=False,
                         add_eos=False, name="", progress=None):
        """Tokenizes text dataset `text_artifact` on the daemon with tokenizer artifact
        `tokenizer_artifact` (an id, or "byte") into a new token dataset artifact. Ids, not
        files: push local files first. `progress(done, total)` sees the text bytes done. Returns
        the TokenizeDatasetResult (artifact, tokens, documents, id_bytes, vocab_size)."""
        request = pb.TokenizeDatasetRequest(text_artifact=text_artifact,
                                            tokenizer_artifact=tokenizer_artifact,
                                            add_bos=add_bos, add_eos=add_eos, name=name)
        result = None
        for message in self.stub.TokenizeDataset(request, metadata=self._metadata):
            if progress:
                progress(message.bytes_done, message.bytes_total)
            if message.HasField("result"):
                result = message.result
        if result is None:
            raise errors.AnerdError("TokenizeDataset ended without a result")
        return result

    def list_sessions(self):
        return list(self.stub.ListSessions(pb.ListSessionsRequest(), timeout=self.timeout,
                                           metadata=self._metadata).sessions)

    def get_session(self, session_id):
        return self.stub.GetSession(pb.GetSessionRequest(session_id=session_id),
                                    timeout=self.timeout, metadata=self._metadata)

    def stop_session(self, session_id):
        """Checkpoints, then stops; returns the SessionInfo."""
        return self.stub.StopSession(pb.StopSessionRequest(session_id=session_id),
                                     timeout=self.timeout, metadata=self._metadata)

    def resume_session(self, session_id, extra_steps=0):
        """Continues from the last checkpoint; `extra_steps` are added to the total."""
        request = pb.ResumeSessionRequest(session_id=session_id, extra_steps=extra_steps)
        return self.stub.ResumeSession(request, timeout=self.timeout, metadata=self._metadata)

    def delete_session(self, session_id):
        self.stub.DeleteSession(pb.DeleteSessionRequest(session_id=session_id),
                                timeout=self.timeout, metadata=self._metadata)

    def export_model(self, session_id, timeout=None, best=False):
        """The session's latest weights (best=True: its best-validation checkpoint, kept with
        eval_every) as llama2.c model file bytes."""
        chunks = self.stub.ExportModel(pb.ExportModelRequest(session_id=session_id, best=best),
                                       timeout=timeout, metadata=self._metadata)
        return b"".join(chunk.data for chunk in chunks)

    def evaluate(self, timeout=None, **request):
        """Loss and perplexity of a model on token data (EvaluateRequest fields: session_id with
        checkpoint "latest" | "best", or model / model_artifact; data / data_artifact, batches).
        Returns the EvaluateResponse."""
        return self.stub.Evaluate(pb.EvaluateRequest(**request), timeout=timeout,
                                  metadata=self._metadata)
    def export(self, session_id, dest, format="llama2c", timeout=None):
        """Writes the session's latest weights as `anectl train export` does: "llama2c" a
        llama2.c model file `dest`; "hf" a directory `dest` with config.json and
        model.safetensors; "native" anerd's checkpoint file `dest`. Each file is written to
        FILE.part and renamed once the stream ended well (nothing is left on an error). Returns
        the paths written."""
        if format == "hf":
            os.makedirs(dest, exist_ok=True)
        chunks = self.stub.ExportModel(pb.ExportModelRequest(session_id=session_id,
                                                              format=format),
                                       timeout=timeout, metadata=self._metadata)
        parts = []  # (part, final)
        out = None
        try:
            for chunk in chunks:
                if chunk.file_name or not parts:
                    name = chunk.file_name or "model.bin"
                    if name.startswith(".") or "/" in name:
                        raise errors.AnerdError(
                            "the daemon sent an export file name that is not a plain name: %r"
                            % name, grpc.StatusCode.INTERNAL)
                    target = os.path.join(dest, name) if format == "hf" else dest
                    if out:
                        out.close()
                    parts.append((target + ".part", target))
                    out = open(parts[-1][0], "wb")
                out.write(chunk.data)
            if out:
                out.close()
                out = None
            if not parts:
                raise errors.AnerdError("the daemon sent no file", grpc.StatusCode.INTERNAL)
            for part, target in parts:
                os.replace(part, target)
            return [target for _, target in parts]
        finally:
            if out:
                out.close()
            for part, _ in parts:
                if os.path.exists(part):
                    os.remove(part)

    def watch(self, session_id, from_step=0, from_now=False, timeout=None):
        """Yields SessionEvents until the session leaves the active states (or `timeout`)."""
        request = pb.WatchSessionRequest(session_id=session_id, from_step=from_step,
                                         from_now=from_now)
        for event in self.stub.WatchSession(request, timeout=timeout, metadata=self._metadata):
            yield event
            if event.WhichOneof("kind") == "state" and event.state not in _ACTIVE_STATES:
                return

    # ---- Generation ----

    def generate(self, prompt="", *, session_id="", model_artifact="", model_path="",
                 weights="", tokens=None, tokenizer_artifact="", tokenizer_path="",
                 tokenizer_kind="", temperature=None, top_p=None, top_k=0,
                 repetition_penalty=None, seed=None, max_tokens=0, stop_tokens=None,
                 truncate_prompt=False, max_context=0, backend="", timeout=None):
        """Generates text on the daemon; yields a GeneratedToken per token as it is produced,
        then one GenerateSummary (the last event). Give one model source (session_id with
        weights "latest" or "live", model_artifact, or model_path) and the prompt as text or
        as `tokens` (ids). Unset sampling fields take run.c's defaults (temperature 1, top_p
        0.9; temperature 0 is greedy); the same seed gives the same tokens. Errors are typed
        (anerd.InvalidArgument naming the field, anerd.FailedPrecondition, ...). Dropping the
        iterator cancels the generation and frees its slot on the daemon."""
        request = pb.GenerateRequest(
            session_id=session_id, model_artifact=model_artifact, model_path=model_path,
            weights=weights, tokenizer_artifact=tokenizer_artifact,
            tokenizer_path=tokenizer_path, tokenizer_kind=tokenizer_kind, prompt=prompt,
            prompt_tokens=list(tokens or ()), truncate_prompt=truncate_prompt, top_k=top_k,
            max_tokens=max_tokens, stop_tokens=list(stop_tokens or ()),
            max_context=max_context, backend=backend)
        for field, value in (("temperature", temperature), ("top_p", top_p),
                             ("repetition_penalty", repetition_penalty), ("seed", seed)):
            if value is not None:
                setattr(request, field, value)
        stream = self.stub.Generate(request, timeout=timeout, metadata=self._metadata)
        try:
            for event in stream:
                yield getattr(event, event.WhichOneof("event"))
        finally:
            # Cancels the call now when the caller stopped early (a raw gRPC iterator: cancel).
            (getattr(stream, "close", None) or stream.cancel)()

    # ---- Probes ----

    def run_probe(self, probe, grid=None, repeat=0, warmup=None, backend="", timeout=None,
                  **options):
        """Yields RunProbeResponses (started, one row per measurement, then the summary).
        `grid` is a list of (channels, spatial, depth) tuples; other keyword arguments are
        RunProbeRequest fields (peak_tflops, row_budget_seconds). Stopping early cancels it."""
        request = pb.RunProbeRequest(probe=probe, repeat=repeat, backend=backend, **options)
        if warmup is not None:
            request.warmup = warmup
        for channels, spatial, depth in grid or ():
            request.grid.add(channels=channels, spatial=spatial, depth=depth)
        yield from self.stub.RunProbe(request, timeout=timeout, metadata=self._metadata)

    def list_probe_results(self, probe="", limit=0):
        """Stored probe summaries, newest first."""
        request = pb.ListProbeResultsRequest(probe=probe, limit=limit)
        return list(self.stub.ListProbeResults(request, timeout=self.timeout,
                                               metadata=self._metadata).results)

    def get_probe_result(self, result_id):
        return self.stub.GetProbeResult(pb.GetProbeResultRequest(result_id=result_id),
                                        timeout=self.timeout, metadata=self._metadata)
