#!/usr/bin/env bash
# Stages the `anerd` package outside CMake and pip: gen_stubs.sh OUT_DIR (default ./gen) copies
# src/anerd to OUT_DIR/anerd and generates its stubs (OUT_DIR/anerd/v1/anerd_pb2*.py).
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/gen}"
mkdir -p "$out"
cp -R "$here/src/anerd" "$out/"
protoc --proto_path="$here/../../proto" --python_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
  "$here/../../proto/anerd/v1/anerd.proto"
echo "package in $out/anerd; use PYTHONPATH=$out (and $here for anerd_client)"
