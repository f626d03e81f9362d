#!/usr/bin/env bash
# Serving under load (docs/serving.md, docs/BENCHMARKS.md): the same server with load control
# on and off under the same open-loop ramp, a 2x step, and a rate sweep for effective
# capacity. Usage: [UNIT=req/s] [MODES="on off"] bash bench/serve/ramp.sh [pipeline]
# (default flight-late). Needs
# build/apxserve and the pipeline's data and model (run `apxserve eval` on it once).
set -euo pipefail
cd "$(dirname "$0")/../.."
P=${1:-flight-late}
SPEC=pipelines/$P.yaml
PORT=18090
SLO=20
OUT=results/serve
mkdir -p "$OUT" docs/plots

start_server() {  # $1 = extra serve options
  build/apxserve serve -p "$SPEC" --port $PORT --slo-ms $SLO --workers 1 $1 > "$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 120); do
    grep -q "serving" "$OUT/server.log" && return 0
    sleep 0.5
  done
  echo "server did not start" >&2; cat "$OUT/server.log" >&2; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" || true; }
loadgen() {  # $1 = name, $2 = schedule
  build/apxserve loadgen -p "$SPEC" --port $PORT --schedule "$2" --connections 64 \
      --out "$OUT/$1.json" --svg "docs/plots/serve-$1.svg" 2>/dev/null | tail -1
}

# UNIT: the exact-level capacity (req/s) that every rate below is a multiple of; by default
# workers / exact service time as the first server calibrated it. MODES: which servers.
UNIT=${UNIT:-}
x() { awk -v r="$1" -v u="$UNIT" 'BEGIN { printf "%.0f", r * u }'; }  # r x UNIT, in req/s
for mode in ${MODES:-on off}; do
  if [ $mode = on ]; then start_server "--control on"; else start_server "--control off --level exact"; fi
  if [ -z "$UNIT" ]; then  # workers / exact service time, as this server calibrated it
    listing=$(curl -s "http://127.0.0.1:$PORT/v1/pipelines")
    exact_ms=$(echo "$listing" | grep -o '"exact":[0-9.e-]*' | head -1 | cut -d: -f2)
    workers=$(echo "$listing" | grep -o '"workers":[0-9]*' | cut -d: -f2)
    UNIT=$(awk -v w="$workers" -v e="$exact_ms" 'BEGIN { print w * 1000 / e }')
  fi
  # Absolute rates, the same for both servers.
  RAMP="$(x 0.5)@10s,$(x 0.5)-$(x 3)@30s,$(x 3)@10s,$(x 3)-$(x 0.5)@30s"
  echo "== $P, load control $mode, unit $UNIT req/s, ramp $RAMP"
  loadgen "$P-ramp-control-$mode" "$RAMP"
  echo "== $P, load control $mode, 2x step"
  loadgen "$P-step-control-$mode" "$(x 1)@10s,$(x 2)@20s"
  echo "== $P, load control $mode, effective capacity (steady state: 15 s per rate, first 5 s left out)"
  for r in 0.25 0.5 0.75 1 1.5 2 2.5 3 3.5 4 5; do
    # Absolute rates (the server's own estimate of its
    # exact service time drifts under load, which would move an x-rate between runs).
    rate=$(x $r)
    printf "rate %sx (%s req/s): " $r $rate
    build/apxserve loadgen -p "$SPEC" --port $PORT --schedule "${rate}@15s" --connections 64 \
        --warmup-s 5 --out "$OUT/$P-cap-control-$mode-$r.json" 2>/dev/null | tail -1
  done
  stop_server
done
