#!/usr/bin/env bash
# Generates the Python stubs outside CMake: gen_stubs.sh OUT_DIR (default ./gen).
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/gen}"
mkdir -p "$out"
protoc --proto_path="$here/../../proto" --python_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
  "$here/../../proto/anerd/v1/anerd.proto"
echo "stubs in $out; use PYTHONPATH=$out:$here"
