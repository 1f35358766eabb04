#!/usr/bin/env bash
# Installs everything imgjudge needs to build and test, from Debian 12 packages.
# Used by README's setup command and by .ci/run. Safe to run again.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build lld pkg-config
  # model runtime. libopenblas0-openmp becomes the libblas.so.3 alternative
  # that Debian's libtorch calls for float32 products: ~150 GFLOP/s on 2
  # threads instead of the reference BLAS's 2-6 (docs/performance.md). The
  # openmp variant follows libtorch's thread count; the pthread one does not.
  libtorch-dev libopenblas0-openmp
  # core
  libfmt-dev libtomlplusplus-dev nlohmann-json3-dev
  # image decoding (well-kept, fuzzed decoders)
  libjpeg-dev libpng-dev libwebp-dev libgif-dev
  # tokenizers: Unicode regexes (PCRE2) and normalization/case mapping (ICU)
  libpcre2-dev libicu-dev
  # SentencePiece tokenizer.model files (InternLM2, Llama-2-style, SigLIP's spiece.model)
  libsentencepiece-dev
  # `imgjudge serve`: the HTTP server (and its tests' client)
  libcpp-httplib-dev
  # evaluation plots (PNG via PLplot's cairo driver)
  libplplot-dev plplot-driver-cairo
  # tests
  catch2 libeigen3-dev
  # the Go binding's tests (examples/go); the Rust binding uses rustup's cargo where present
  golang-go
  # the Python package (python/) and its tests: numpy and PIL inputs, Dask batch jobs,
  # building its wheel offline (setuptools, pip), a venv to pip-install it into
  python3-pytest python3-numpy python3-pil python3-distributed python3-setuptools python3-pip python3-venv
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
