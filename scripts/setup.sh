#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs the main job:
#   1. installs the Debian packages imgjudge needs (scripts/install-deps.sh),
#   2. configures and builds imgjudge in ./build (Release, Ninja, lld),
#   3. judges the bundled example images with the default constitution (scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
scripts/demo.sh
