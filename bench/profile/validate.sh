#!/usr/bin/env bash
# Validates `apxserve profile`'s what-if model (docs/profile.md): three local clusters of 1, 2
# and 4 shards, all up at once, the flight-delay layouts ingested into each; then ROUNDS rounds
# that profile every cluster back to back (so that each round's three profiles see the same
# machine moment), with the cut-over on and off. Finally the model fitted on each shard
# count's profiles is checked against the others'.
#
#   bench/profile/validate.sh [OUT_DIR] [ROUNDS] [N]      (defaults: /tmp/apx-profile 3 200)
#
# Needs build/apxserve, data/flights.csv and data/models/flight-delay.json (README). The
# servers listen on 127.0.0.1 ports 18500-18703 and 19500-19703 and are stopped (by PID) on
# exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/apx-profile}
rounds=${2:-3}
n=${3:-200}
spec=pipelines/clickhouse/flight-delay-2shards.yaml
mkdir -p "$out"
dirs=()
cleanup() { for d in "${dirs[@]}"; do scripts/clickhouse.sh stop --dir "$d" > /dev/null || true; done; }
trap cleanup EXIT
declare -A port=([1]=18500 [2]=18600 [4]=18700)
for k in 1 2 4; do
  d=$(mktemp -d /tmp/apx-profile-ch$k.XXXXXX)
  rmdir "$d"
  scripts/clickhouse.sh start --shards $k --port ${port[$k]} --dir "$d" > /dev/null
  dirs+=("$d")
  (source "$d/env" && build/apxserve ingest -p $spec > /dev/null 2>&1)
  echo "validate: $k shard(s) up and ingested"
done
for r in $(seq 1 "$rounds"); do
  for mode in nc cut; do
    flag=""; [ $mode = nc ] && flag=--no-cut-over
    for k in 1 2 4; do
      f="$out/k$k-$mode-r$r.json"
      rm -f "$f"
      (source "${dirs[$(( k == 1 ? 0 : (k == 2 ? 1 : 2) ))]}/env" && build/apxserve profile $flag -p $spec --n "$n" --out "$f" --json > /dev/null 2>&1)
    done
  done
  echo "validate: round $r of $rounds done"
done
for mode in nc cut; do
  for base in 1 2 4; do
    echo "== $mode: fitted on $base shard(s)"
    args=()
    for f in "$out"/k$base-$mode-r*.json; do args+=("$f"); done
    for k in 1 2 4; do
      [ $k = $base ] && continue
      for f in "$out"/k$k-$mode-r*.json; do args+=("$f"); done
    done
    build/apxserve profile --from "${args[@]}" | sed -n '/^check/,$p'
  done
done
