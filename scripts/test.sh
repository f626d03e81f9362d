#!/usr/bin/env bash
# Builds apxserve (Release) and runs every test with ctest. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j 2 "$@"
