#!/usr/bin/env bash
# Serving-layer throughput on a cheap pipeline (pipelines/cheap.yaml: every feature exact,
# tens of rows), measured with wrk and with apxserve loadgen (docs/BENCHMARKS.md).
# Usage: bash bench/serve/throughput.sh [rate for loadgen, default 10000]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-10000}
PORT=18091
OUT=results/serve
mkdir -p "$OUT"
build/apxserve serve -p pipelines/cheap.yaml --port $PORT --control off --level exact \
    > "$OUT/cheap-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do grep -q serving "$OUT/cheap-server.log" && break; sleep 0.5; done
URL=http://127.0.0.1:$PORT/v1/pipelines/cheap/predict
echo "== wrk, 1 thread, 32 connections, 10 s (closed loop: as fast as the server answers)"
wrk -t1 -c32 -d10s --latency -s bench/serve/post.lua "$URL"
echo "== apxserve loadgen, open loop at $RATE req/s for 10 s, 32 connections"
build/apxserve loadgen -p pipelines/cheap.yaml --port $PORT --schedule "${RATE}@10s" \
    --connections 32 --out "$OUT/cheap-loadgen.json" 2>/dev/null | tail -1
