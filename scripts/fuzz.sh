#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a while.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s each, every target)
# Findings (crash-*, timeout-*, oom-*) are written to build-fuzz/findings/<target>/ and fail
# the script; the corpus grows in build-fuzz/corpus/<target>/ (seeded from fuzz/corpus/, which
# also keeps every past finding as a regression input).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(request_json spec_yaml csv snapshot); fi
# The same configuration as scripts/sanitize.sh's ASan build: one build serves both.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DAPX_FUZZ=ON -DAPX_SANITIZE=address,undefined -DAPX_BUILD_BENCHMARKS=OFF >/dev/null
ninja_targets=()
for t in "${targets[@]}"; do ninja_targets+=("${t}_fuzz"); done
cmake --build build-asan -j "$(nproc)" --target "${ninja_targets[@]}"
status=0
for t in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$t"
  findings="build-fuzz/findings/$t"
  mkdir -p "$corpus" "$findings"
  echo "fuzz $t for ${seconds}s"
  if ! "build-asan/fuzz/${t}_fuzz" "$corpus" "fuzz/corpus/$t" -max_total_time="$seconds" \
      -max_len=65536 -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$findings/" \
      -print_final_stats=1 2>"build-fuzz/findings/$t.log"; then
    echo "fuzz $t: FAILED (see build-fuzz/findings/$t.log and $findings/)"
    tail -40 "build-fuzz/findings/$t.log"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "build-fuzz/findings/$t.log" | tr '\n' ' '
    echo
  fi
done
exit $status
