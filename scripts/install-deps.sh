#!/usr/bin/env bash
# Installs exactly what anerd needs to build and test. Idempotent: does nothing when all is present.
# Debian/Ubuntu: apt-get (as root, or through sudo). macOS: Homebrew.
set -euo pipefail

DEBIAN_PACKAGES=(
  cmake ninja-build g++ pkg-config python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  openssl libssl-dev libabsl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsqlite3-dev libopenblas-dev
  prometheus-cpp-dev
  libcpp-httplib-dev chromium chromium-driver  # the dashboard (server/ui/) and its headless-browser test
  libsentencepiece-dev libpcre2-dev libicu-dev python3-sentencepiece  # tokenizers (common/tokenizer/)
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-grpcio python3-protobuf python3-numpy
  python3-venv python3-pip python3-setuptools python3-wheel  # pip install ./client/python (offline)
  python3-torch  # tests/training/qwen3_reference.py (the engine's PyTorch reference) and bench/
  clang libclang-rt-14-dev
  openmpi-bin libopenmpi-dev  # data-parallel training (server/distributed/; Homebrew: open-mpi)
  libgnustep-base-dev gobjc  # Linux only: Foundation + GNU runtime headers to check the .mm (macOS has the SDK)
)
# python: the venv for client/python (pip fetches grpcio, protobuf and numpy into it; grpc's
# grpc_python_plugin and protobuf's protoc generate its stubs). pytorch: the training tests'
# PyTorch reference (python3-torch on Debian). sentencepiece, pcre2, icu4c: common/tokenizer/.
BREW_PACKAGES=(cmake ninja grpc protobuf abseil openssl@3 spdlog fmt nlohmann-json sqlite prometheus-cpp googletest google-benchmark
  python pytorch sentencepiece pcre2 icu4c
  open-mpi     # data-parallel training (server/distributed/; Debian: openmpi-bin libopenmpi-dev)
  cpp-httplib)  # the dashboard (server/ui/)
# The dashboard's browser test drives Chromium through chromedriver (casks on macOS).
BREW_CASKS=(chromium chromedriver)

install_debian() {
  local missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#DEBIAN_PACKAGES[@]} packages present"
    return
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_macos() {
  command -v brew >/dev/null || { echo "install-deps: Homebrew is required on macOS (https://brew.sh)" >&2; exit 1; }
  local missing=()
  for p in "${BREW_PACKAGES[@]}"; do brew list --versions "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all Homebrew packages present"
  else
    brew install "${missing[@]}"
  fi
  local casks=()
  for c in "${BREW_CASKS[@]}"; do brew list --cask --versions "$c" >/dev/null 2>&1 || casks+=("$c"); done
  [ ${#casks[@]} -eq 0 ] || brew install --cask "${casks[@]}"
}

case "$(uname -s)" in
  Linux)
    command -v dpkg-query >/dev/null || { echo "install-deps: only Debian/Ubuntu are automated; install the equivalents of: ${DEBIAN_PACKAGES[*]}" >&2; exit 1; }
    install_debian ;;
  Darwin) install_macos ;;
  *) echo "install-deps: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
