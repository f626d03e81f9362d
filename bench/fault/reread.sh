#!/usr/bin/env bash
# Shard 1 of two 10x slow on 1 % of its reads: answers with and without reading missed strata
# again, and without the fault, back to back on the same servers (docs/BENCHMARKS.md, "Reading missed strata again").
#
#   bench/fault/reread.sh OLD_APXSERVE NEW_APXSERVE OUT_DIR [N]
#
# OLD_APXSERVE: a build without re-reads (git worktree add /tmp/apx-old 96f5df0, then build it);
# NEW_APXSERVE: this tree's. The cluster must be up with the flight layouts ingested:
#   scripts/clickhouse.sh start --shards 2 --port 18900 --dir D
#   APX_CLICKHOUSE_URL=http://127.0.0.1:18900 APX_CLICKHOUSE_URLS=http://127.0.0.1:18900,http://127.0.0.1:18901 \
#     build/apxserve ingest -p pipelines/clickhouse/flight-delay-2shards.yaml
set -euo pipefail
old=$1 new=$2 out=$3 n=${4:-1000}
mkdir -p "$out"
. "$(dirname "$0")/proxies.sh"
start_proxies "$new" "$out"
export APX_CLICKHOUSE_URL=http://127.0.0.1:18900
for p in flight-network flight-delay; do
  for run in nofault old new; do
    bin=$new port=22901
    [ "$run" = old ] && bin=$old
    [ "$run" = nofault ] && port=22902
    echo "== $p $run"
    APX_CLICKHOUSE_URLS=http://127.0.0.1:18900,http://127.0.0.1:$port \
      "$bin" eval -p "pipelines/clickhouse/$p-2shards.yaml" --n "$n" --threads 1 --out "$out/$p-$run.json" \
      --requests-out "$out/$p-$run.csv" | tail -3
  done
done
for f in "$out"/*.json; do
  python3 - "$f" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); a = j["approx"]; l = a["latency_ms"]
print("%-28s p50 %6.1f  p99 %6.1f  p99.9 %6.1f  degraded %5.1f%%  reread %5.1f%%  meet %.3f  claimed %.3f  reads %d  cut-over %4.1f%%" % (
    sys.argv[1].split("/")[-1], l["p50"], l["p99"], l["p999"], 100 * a["degraded_rate"], 100 * (a.get("reread_rate") or 0),
    a["meet_rate"], a["claimed_meet_rate"] or float("nan"), a["shard_reads"], 100 * a["cut_over_rate"]))
PY
done
