#!/usr/bin/env bash
# Sets up, builds, fetches the flights data and runs the demo (trains the two flight
# pipelines' models the first time). Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target apxserve
bash scripts/fetch-data.sh
./build/apxserve demo "$@"
