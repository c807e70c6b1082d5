"""Builds the anerd package, generating its gRPC stubs from anerd.proto (never committed).

Metadata lives in pyproject.toml; this file only adds the stub step:
- build_py (pip install, wheels) writes anerd/v1/anerd_pb2.py and anerd_pb2_grpc.py into the
  build (into src/anerd/v1 for an editable install, where .gitignore keeps them out of git);
- sdist puts a copy of the proto at proto/anerd/v1/anerd.proto so the sdist builds on its own.

anerd.proto is looked for in $ANERD_PROTO_DIR (a folder holding anerd/v1/anerd.proto), then in
./proto (an sdist), then in ../../proto (this folder inside a checkout of the repository); the
build fails naming those places when none has it. The stubs are generated with `protoc` and
`grpc_python_plugin` when both are on PATH (Debian: protobuf-compiler protobuf-compiler-grpc;
Homebrew: protobuf grpc; $ANERD_PROTOC and $ANERD_GRPC_PYTHON_PLUGIN override them), else with
the grpcio-tools package (`python -m grpc_tools.protoc`). protoc comes first because Debian's
python3-grpc-tools is far older than its protobuf runtime. Each candidate's output is imported
once with the building interpreter (when it has protobuf) before it is used.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join("anerd", "v1", "anerd.proto")
GENERATED = ("anerd_pb2.py", "anerd_pb2_grpc.py")


class StubError(Exception):
    pass


def proto_root():
    """The folder holding anerd/v1/anerd.proto, or StubError naming where it was looked for."""
    candidates = []
    if os.environ.get("ANERD_PROTO_DIR"):
        candidates.append(("$ANERD_PROTO_DIR", os.environ["ANERD_PROTO_DIR"]))
    candidates.append(("the sdist copy", os.path.join(HERE, "proto")))
    candidates.append(("the repository", os.path.join(HERE, "..", "..", "proto")))
    for _, root in candidates:
        if os.path.isfile(os.path.join(root, PROTO)):
            return os.path.abspath(root)
    looked = "; ".join("%s (%s)" % (what, os.path.normpath(os.path.join(root, PROTO)))
                       for what, root in candidates)
    raise StubError(
        "anerd.proto not found; looked in %s. Build from a checkout of the anerd repository "
        "(pip install ./client/python) or set ANERD_PROTO_DIR to its proto/ folder" % looked)


def generators():
    """(description, argv prefix) of each stub generator available, preferred first."""
    found = []
    protoc = os.environ.get("ANERD_PROTOC") or shutil.which("protoc")
    plugin = os.environ.get("ANERD_GRPC_PYTHON_PLUGIN") or shutil.which("grpc_python_plugin")
    if protoc and plugin:
        found.append(("%s with %s" % (protoc, plugin),
                      [protoc, "--plugin=protoc-gen-grpc_python=" + plugin]))
    if importlib.util.find_spec("grpc_tools") is not None:
        found.append(("grpc_tools.protoc", [sys.executable, "-m", "grpc_tools.protoc"]))
    if not found:
        raise StubError(
            "cannot generate the anerd gRPC stubs: need protoc and grpc_python_plugin on PATH "
            "(Debian: apt-get install protobuf-compiler protobuf-compiler-grpc; Homebrew: brew "
            "install protobuf grpc) or the grpcio-tools package for %s" % sys.executable)
    return found


_IMPORT_CHECK = """
import importlib.util, sys
try:
    import google.protobuf
except ImportError:
    sys.exit(0)  # an isolated build environment: nothing to check against
spec = importlib.util.spec_from_file_location("anerd_pb2_check", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
"""


def generate_stubs(out_root):
    """Writes anerd/v1/anerd_pb2.py and anerd_pb2_grpc.py under `out_root`."""
    root = proto_root()
    failures = []
    for description, argv in generators():
        with tempfile.TemporaryDirectory() as tmp:
            run = subprocess.run(
                argv + ["--proto_path=" + root, "--python_out=" + tmp,
                        "--grpc_python_out=" + tmp, os.path.join(root, PROTO)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            gen = os.path.join(tmp, "anerd", "v1")
            if run.returncode == 0:
                run = subprocess.run([sys.executable, "-c", _IMPORT_CHECK,
                                      os.path.join(gen, GENERATED[0])],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     universal_newlines=True)
            if run.returncode != 0:
                failures.append("%s: %s" % (description, run.stdout.strip()[-600:]))
                continue
            target = os.path.join(out_root, "anerd", "v1")
            os.makedirs(target, exist_ok=True)
            for name in GENERATED:
                shutil.copyfile(os.path.join(gen, name), os.path.join(target, name))
            return
    raise StubError("generating the anerd gRPC stubs from %s failed:\n%s"
                    % (os.path.join(root, PROTO), "\n".join(failures)))


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        try:
            generate_stubs(os.path.join(HERE, "src") if editable else self.build_lib)
        except StubError as e:
            sys.exit("error: %s" % e)


class SdistWithProto(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        try:
            source = os.path.join(proto_root(), PROTO)
        except StubError as e:
            sys.exit("error: %s" % e)
        target = os.path.join(base_dir, "proto", PROTO)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProto})
