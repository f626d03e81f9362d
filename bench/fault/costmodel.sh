#!/usr/bin/env bash
# Two builds' cut-over decisions on two ClickHouse shards, runs interleaved (old, new, old,
# new, ...) so that the machine's drift hits both alike (docs/BENCHMARKS.md, "Pricing a round
# by its queries").
#
#   bench/fault/costmodel.sh OLD_APXSERVE NEW_APXSERVE OUT_DIR [N] [REPEATS] [PIPELINES]
#
# Each pipeline runs REPEATS times per build and condition: "clean" (shard 1 behind a proxy
# that passes everything) and "slow" (the proxy makes 1 % of shard 1's reads 10x slower).
# The cluster must be up with the flight layouts ingested (see bench/fault/reread.sh).
set -euo pipefail
old=$1 new=$2 out=$3 n=${4:-1000} repeats=${5:-3} pipelines=${6:-"flight-delay flight-network"}
mkdir -p "$out"
. "$(dirname "$0")/proxies.sh"
start_proxies "$new" "$out"
export APX_CLICKHOUSE_URL=http://127.0.0.1:18900
for p in $pipelines; do
  for cond in clean slow; do
    port=22902
    [ "$cond" = slow ] && port=22901
    for r in $(seq 1 "$repeats"); do
      for build in old new; do
        bin=$new
        [ "$build" = old ] && bin=$old
        f="$out/$p-$cond-$build-$r"
        echo "== $p $cond $build $r"
        APX_CLICKHOUSE_URLS=http://127.0.0.1:18900,http://127.0.0.1:$port \
          "$bin" eval -p "pipelines/clickhouse/$p-2shards.yaml" --n "$n" --threads 1 --out "$f.json" \
          --requests-out "$f.csv" > "$f.log" 2>&1
      done
    done
  done
done
python3 - "$out" <<'PY'
import csv, glob, json, os, sys
out = sys.argv[1]
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]
print("| pipeline | fault | build | run | cut-over | mean | p50 | p99 | p99.9 | degraded | meet rate | claimed-τ meet |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    p, cond, build, r = os.path.basename(f)[:-5].rsplit("-", 3)
    a = json.load(open(f))["approx"]
    ms = [float(x["approx_ms"]) for x in csv.DictReader(open(f[:-5] + ".csv"))]
    print("| %s | %s | %s | %s | %.1f %% | %.1f | %.1f | %.1f | %.1f | %.1f %% | %.3f | %.3f |" % (
        p, cond, build, r, 100 * a["cut_over_rate"], sum(ms) / len(ms), pct(ms, .5), pct(ms, .99), pct(ms, .999),
        100 * a["degraded_rate"], a["meet_rate"], a["claimed_meet_rate"] or float("nan")))
PY
