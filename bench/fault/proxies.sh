# Sourced by the bench/fault scripts: shard 1's HTTP port (127.0.0.1:18901) behind two seeded
# fault proxies, one making 1 % of its reads 10x slower (127.0.0.1:22901), one passing all
# (127.0.0.1:22902). Both stop when the sourcing script exits (by PID).
#   start_proxies APXSERVE OUT_DIR
start_proxies() {
  "$1" fault-proxy --listen 127.0.0.1:22901 --upstream 127.0.0.1:18901 --slow-fraction 0.01 --slow-factor 10 \
    > "$2/proxy-slow.log" 2>&1 &
  proxy_slow=$!
  "$1" fault-proxy --listen 127.0.0.1:22902 --upstream 127.0.0.1:18901 > "$2/proxy-clean.log" 2>&1 &
  proxy_clean=$!
  trap 'kill $proxy_slow $proxy_clean 2>/dev/null || true' EXIT
  sleep 0.5
}
