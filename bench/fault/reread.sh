#!/usr/bin/env bash
# Shard 1 of two 10x slow on 1 % of its reads: answers with and without reading missed strata
# again, back to back on the same servers (docs/BENCHMARKS.md, "Reading missed strata again").
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
proxy_port=22901
"$new" fault-proxy --listen 127.0.0.1:$proxy_port --upstream 127.0.0.1:18901 --slow-fraction 0.01 --slow-factor 10 \
  > "$out/proxy.log" 2>&1 &
proxy=$!
trap 'kill $proxy 2>/dev/null || true' EXIT
sleep 0.5
export APX_CLICKHOUSE_URL=http://127.0.0.1:18900
export APX_CLICKHOUSE_URLS=http://127.0.0.1:18900,http://127.0.0.1:$proxy_port
for p in flight-network flight-delay; do
  for which in old new; do
    bin=$old
    [ "$which" = new ] && bin=$new
    echo "== $p $which"
    "$bin" eval -p "pipelines/clickhouse/$p-2shards.yaml" --n "$n" --threads 1 --out "$out/$p-$which.json" \
      --requests-out "$out/$p-$which.csv" | tail -4
  done
done
