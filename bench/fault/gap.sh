#!/usr/bin/env bash
# The p99.9 - p50 gap under the slow-shard fault, with and without degraded answers
# (docs/BENCHMARKS.md, "The tail gap, and where it comes from").
#
#   bench/fault/gap.sh APXSERVE OUT_DIR [N] [DELTAS]
#
# flight-delay on two ClickHouse shards (cluster up, layouts ingested: see bench/fault/reread.sh),
# at each δ in DELTAS (default "2 12": the spec's, and one that most requests meet in one or
# two rounds). Three runs per δ, back to back: no fault; shard 1 10x slow on 1 % of its reads
# with every round waiting for every shard (backend.late_factor: 0); the same fault with late
# shards left out (the default, late_factor 2).
set -euo pipefail
bin=$1 out=$2 n=${3:-1000} deltas=${4:-"2 12"}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
spec=$repo/pipelines/clickhouse/flight-delay-2shards.yaml
# The spec with its relative paths made absolute, and a copy that waits for every shard.
sed "s#\.\./\.\./#$repo/#g" "$spec" > "$out/default.yaml"
sed 's#^backend: {type: clickhouse, database: apx_flights_d, cluster: apx}#backend: {type: clickhouse, database: apx_flights_d, cluster: apx, late_factor: 0}#' \
  "$out/default.yaml" > "$out/wait.yaml"
grep -q 'late_factor: 0' "$out/wait.yaml" || { echo "gap.sh: the spec's backend line changed; update the sed" >&2; exit 1; }
. "$(dirname "$0")/proxies.sh"
start_proxies "$bin" "$out"
export APX_CLICKHOUSE_URL=http://127.0.0.1:18900
for d in $deltas; do
  for run in clean:22902:default slow-wait:22901:wait slow-degraded:22901:default; do
    IFS=: read -r name port variant <<< "$run"
    f="$out/d$d-$name"
    echo "== δ $d $name"
    APX_CLICKHOUSE_URLS=http://127.0.0.1:18900,http://127.0.0.1:$port \
      "$bin" eval -p "$out/$variant.yaml" --n "$n" --delta "$d" --out "$f.json" --requests-out "$f.csv" > "$f.log" 2>&1
  done
done
python3 - "$out" $deltas <<'PY'
import csv, json, os, sys
out, deltas = sys.argv[1], sys.argv[2:]
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]
print("| δ | run | p50 | p99 | p99.9 | p99.9 − p50 | degraded | cut-over | meet rate | claimed-τ meet |")
print("|---|---|---|---|---|---|---|---|---|---|")
for d in deltas:
    for name in ("clean", "slow-wait", "slow-degraded"):
        f = os.path.join(out, "d%s-%s" % (d, name))
        a = json.load(open(f + ".json"))["approx"]
        ms = [float(x["approx_ms"]) for x in csv.DictReader(open(f + ".csv"))]
        print("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f %% | %.1f %% | %.3f | %.3f |" % (
            d, name, pct(ms, .5), pct(ms, .99), pct(ms, .999), pct(ms, .999) - pct(ms, .5), 100 * a["degraded_rate"],
            100 * a["cut_over_rate"], a["meet_rate"], a["claimed_meet_rate"] or float("nan")))
PY
# What the tail is made of: per run, how many of the slowest 1 % of requests cut over (finished
# exactly) and how many ran 4 rounds or more; the share of requests that cut over after at
# least one round, with their median latency; the p99 of the requests that never cut over.
python3 - "$out" $deltas <<'PY'
import csv, os, sys
out, deltas = sys.argv[1], sys.argv[2:]
print()
print("| δ | run | slowest 1 %: cut over | slowest 1 %: rounds ≥ 4 | cut over after ≥ 1 round: share, p50 | never cut over: p99 |")
print("|---|---|---|---|---|---|")
for d in deltas:
    for name in ("clean", "slow-wait", "slow-degraded"):
        rows = list(csv.DictReader(open(os.path.join(out, "d%s-%s.csv" % (d, name)))))
        rows.sort(key=lambda r: float(r["approx_ms"]))
        top = rows[-max(1, len(rows) // 100):]
        cut = [r for r in rows if r["cut_over"] == "1" and int(r["rounds"]) >= 1]
        sampled = sorted(float(r["approx_ms"]) for r in rows if r["cut_over"] == "0")
        p50 = sorted(float(r["approx_ms"]) for r in cut)[len(cut) // 2] if cut else float("nan")
        p99s = sampled[min(len(sampled) - 1, int(.99 * len(sampled)))] if sampled else float("nan")
        print("| %s | %s | %d of %d | %d of %d | %.1f %%, %.1f ms | %.1f |" % (
            d, name, sum(r["cut_over"] == "1" for r in top), len(top),
            sum(int(r["rounds"]) >= 4 for r in top), len(top), 100.0 * len(cut) / len(rows), p50, p99s))
PY
