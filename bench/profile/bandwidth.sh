#!/usr/bin/env bash
# `apxserve profile` at emulated bandwidths (docs/profile.md, "Emulated bandwidth"): inside a
# private network namespace (unshare -n, so the shaping touches nothing else), two local
# shards are profiled with the plan fixed (--no-cut-over) at the loopback's own speed, then
# with the loopback shaped by a token bucket (tc tbf, burst 4 KB, MTU 1500) to each RATE.
#
#   bench/profile/bandwidth.sh [OUT_DIR] [N] [RATE_MBIT ...]    (defaults: /tmp/apx-bw 200 10 2)
#
# Then: build/apxserve profile --from OUT_DIR/full.json --shards 2 --bandwidth-mbps 10 2
# predicts what OUT_DIR/10.json and OUT_DIR/2.json measured. Needs root (network namespaces)
# and the data and model of bench/profile/validate.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${APX_IN_NETNS:-}" ]; then
  exec env APX_IN_NETNS=1 unshare -n "$0" "$@"
fi
out=${1:-/tmp/apx-bw}
n=${2:-200}
shift $(( $# > 2 ? 2 : $# )) || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(10 2)
spec=pipelines/clickhouse/flight-delay-2shards.yaml
mkdir -p "$out"
ip link set lo up
ip link set lo mtu 1500
d=$(mktemp -d /tmp/apx-bw-ch.XXXXXX)
rmdir "$d"
trap 'tc qdisc del dev lo root 2>/dev/null || true; scripts/clickhouse.sh stop --dir "$d" > /dev/null || true' EXIT
scripts/clickhouse.sh start --shards 2 --port 18800 --dir "$d" > /dev/null
source "$d/env"
build/apxserve ingest -p $spec > /dev/null 2>&1
rm -f "$out/full.json"
build/apxserve profile --no-cut-over -p $spec --n "$n" --out "$out/full.json" --json > /dev/null 2>&1
for r in "${rates[@]}"; do
  tc qdisc replace dev lo root tbf rate "${r}mbit" burst 4kb latency 5000ms
  rm -f "$out/$r.json"
  build/apxserve profile --no-cut-over -p $spec --n "$n" --out "$out/$r.json" --json > /dev/null 2>&1
  echo "bandwidth: $r Mbit/s done"
done
