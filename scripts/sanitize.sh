#!/usr/bin/env bash
# Runs the unit tests under sanitizers:
#   ASan + UBSan (clang): every test but the stress suite, in build-asan/;
#   TSan (clang): the serving tests (worker pool, service, HTTP server, load generator) and the
#   ClickHouse tests (reads shard by shard on their own threads, hedged reads, faults), in
#   build-tsan/, with scripts/tsan.supp (OpenMP inside libxgboost is not instrumented).
# Usage: scripts/sanitize.sh [asan|tsan]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-both}"
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DAPX_BUILD_BENCHMARKS=OFF)
if [ "$which" = both ] || [ "$which" = asan ]; then
  # Also the fuzzers' build (scripts/fuzz.sh): coverage instrumentation is harmless here.
  cmake -S . -B build-asan "${common[@]}" -DAPX_SANITIZE=address,undefined -DAPX_FUZZ=ON >/dev/null
  cmake --build build-asan -j "$(nproc)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j 2 -LE stress
fi
if [ "$which" = both ] || [ "$which" = tsan ]; then
  cmake -S . -B build-tsan "${common[@]}" -DAPX_SANITIZE=thread >/dev/null
  cmake --build build-tsan -j "$(nproc)" --target apxserve service_test serve_http_test loadgen_test clickhouse_test fault_test
  TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
    ctest --test-dir build-tsan --output-on-failure -j 1 -R 'service_test|serve_http_test|loadgen_test|clickhouse_test|fault_test'
fi
