#!/usr/bin/env bash
# Private ClickHouse servers for apxserve's tests and benchmarks (docs/clickhouse.md).
#
#   scripts/clickhouse.sh start [--shards N] [--replicas R] [--dir D] [--port P] [--cluster-port I=Q ...]
#   scripts/clickhouse.sh stop  [--dir D]
#   scripts/clickhouse.sh restart --shard I [--dir D]
#   scripts/clickhouse.sh status [--dir D]
#
# start runs N servers (default 1) listening on 127.0.0.1 only, HTTP ports P, P+1, ...
# (default 18123) and native ports P+1000, P+1001, ...; their data, logs and configs live in D
# (default: a new folder under ${TMPDIR:-/tmp}). Every server knows the cluster `apx`, one shard
# per server, so a Distributed table created on server 0 spans them all. --replicas R (default
# 1) runs R servers per shard, N x R in all: server j is shard j's first replica, server
# N x r + j its replica r (same rows: a Distributed insert writes every replica; the cluster
# reads the first replica that answers, load_balancing in_order). --cluster-port I=Q
# makes the cluster reach shard I's native port through port Q instead (a fault proxy
# forwarding Q to P+1000+I: see `apxserve fault-proxy`). It writes
#   D/pids  the servers' PIDs, one per line (stop kills exactly these)
#   D/env   APX_CLICKHOUSE_URL (server 0's HTTP interface), APX_CLICKHOUSE_SHARDS,
#           APX_CLICKHOUSE_URLS (every shard's, comma-separated; a shard's replicas joined by
#           '|'), APX_CLICKHOUSE_DIR; source it
# and prints D on its last line. stop kills the recorded PIDs (never by name), waits for them
# and removes D. restart stops server I (its recorded PID), starts it again on the same data and
# ports, waits until it answers and records its new PID (a shard restarted mid-run). Needs clickhouse-server (scripts/setup.sh installs it).
set -euo pipefail

cmd="${1:-}"
[ -n "$cmd" ] && shift
shards=1
replicas=1
dir=""
port=18123
cluster_ports=""
shard=""
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) shards="$2"; shift 2 ;;
    --replicas) replicas="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --shard) shard="$2"; shift 2 ;;
    --cluster-port)
      case "$2" in [0-9]=[0-9]*|[0-9][0-9]=[0-9]*) ;; *) echo "clickhouse.sh: --cluster-port needs I=PORT, got '$2'" >&2; exit 2 ;; esac
      cluster_ports+=" $2"; shift 2 ;;
    *) echo "clickhouse.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
case "$shards" in ''|*[!0-9]*) echo "clickhouse.sh: --shards needs a number, got '$shards'" >&2; exit 2 ;; esac
case "$port" in ''|*[!0-9]*) echo "clickhouse.sh: --port needs a number, got '$port'" >&2; exit 2 ;; esac
[ "$shards" -ge 1 ] && [ "$shards" -le 8 ] || { echo "clickhouse.sh: --shards must be 1..8" >&2; exit 2; }
case "$replicas" in ''|*[!0-9]*) echo "clickhouse.sh: --replicas needs a number, got '$replicas'" >&2; exit 2 ;; esac
[ "$replicas" -ge 1 ] && [ "$replicas" -le 3 ] || { echo "clickhouse.sh: --replicas must be 1..3" >&2; exit 2; }
servers=$((shards * replicas))

server_bin="$(command -v clickhouse-server || true)"
[ -n "$server_bin" ] || [ -x /usr/sbin/clickhouse-server ] && server_bin="${server_bin:-/usr/sbin/clickhouse-server}"

ping() { curl -sf --max-time 1 "http://127.0.0.1:$1/ping" >/dev/null 2>&1; }

stop_dir() {
  local d="$1"
  [ -f "$d/pids" ] || { echo "clickhouse.sh: no servers recorded in $d" >&2; return 1; }
  d="$(cd "$d" && pwd)"
  local pids
  # Only processes that are still our servers (their command line names this folder): a PID
  # the system reused since is left alone.
  pids=""
  for pid in $(cat "$d/pids"); do
    if { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$d/"; then pids+="$pid "; fi
  done
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for pid in $pids; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  # Only remove what start created (the marker file says so).
  if [ -f "$d/.apx-clickhouse" ]; then rm -rf "$d"; fi
  echo "clickhouse.sh: stopped $pids"
}

case "$cmd" in
  start)
    [ -n "$server_bin" ] || { echo "clickhouse.sh: clickhouse-server not found (run scripts/setup.sh)" >&2; exit 1; }
    if [ -z "$dir" ]; then
      dir="$(mktemp -d "${TMPDIR:-/tmp}/apx-clickhouse.XXXXXX")"
    else
      [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ] && { echo "clickhouse.sh: $dir is not empty" >&2; exit 1; }
      mkdir -p "$dir"
    fi
    dir="$(cd "$dir" && pwd)"
    touch "$dir/.apx-clickhouse"
    cluster=""
    urls=""
    for j in $(seq 0 $((shards - 1))); do
      cluster+="<shard><internal_replication>false</internal_replication>"
      urls+="${urls:+,}"
      for r in $(seq 0 $((replicas - 1))); do
        i=$((r * shards + j))
        native=$((port + 1000 + i))
        for cp in $cluster_ports; do
          [ "${cp%%=*}" = "$i" ] && native="${cp#*=}"
        done
        case "$native" in ''|*[!0-9]*) echo "clickhouse.sh: --cluster-port $i needs a number" >&2; exit 2 ;; esac
        cluster+="<replica><host>127.0.0.1</host><port>$native</port></replica>"
        [ "$r" -gt 0 ] && urls+="|"
        urls+="http://127.0.0.1:$((port + i))"
      done
      cluster+="</shard>"
    done
    # A port some other process listens on would make a foreign server answer our pings: refuse.
    for i in $(seq 0 $((servers - 1))); do
      for p in $((port + i)) $((port + 1000 + i)) $((port + 2000 + i)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
          echo "clickhouse.sh: port $p is already in use (choose another --port)" >&2
          rm -f "$dir/.apx-clickhouse"; rmdir "$dir" 2>/dev/null || true
          exit 1
        fi
      done
    done
    : > "$dir/pids"
    # A failure or an interrupt before every server answers stops the ones already started.
    trap 'stop_dir "$dir" >&2 || true' EXIT
    trap 'exit 130' INT TERM HUP
    for i in $(seq 0 $((servers - 1))); do
      d="$dir/shard-$i"
      mkdir -p "$d/data" "$d/tmp" "$d/log" "$d/user_files"
      cat > "$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage>
    <load_balancing>in_order</load_balancing></default></profiles>
  <users><default><password></password>
    <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
EOF
      cat > "$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/error.log</errorlog>
    <size>100M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$((port + i))</http_port>
  <tcp_port>$((port + 1000 + i))</tcp_port>
  <interserver_http_port>$((port + 2000 + i))</interserver_http_port>
  <max_connections>256</max_connections>
  <keep_alive_timeout>30</keep_alive_timeout>
  <max_concurrent_queries>64</max_concurrent_queries>
  <uncompressed_cache_size>1073741824</uncompressed_cache_size>
  <mark_cache_size>1073741824</mark_cache_size>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <remote_servers><apx>$cluster</apx></remote_servers>
  <macros><shard>$((i % shards))</shard></macros>
</yandex>
EOF
      "$server_bin" --config-file="$d/config.xml" >"$d/log/stdout.log" 2>&1 &
      echo $! >> "$dir/pids"
    done
    i=0
    for pid in $(cat "$dir/pids"); do
      ok=0
      for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break   # it died: no use waiting
        if ping $((port + i)); then ok=1; break; fi
        sleep 0.1
      done
      if [ "$ok" -ne 1 ]; then
        echo "clickhouse.sh: server $i (port $((port + i)), PID $pid) did not start; its log:" >&2
        tail -20 "$dir/shard-$i/log/error.log" "$dir/shard-$i/log/stdout.log" >&2 2>/dev/null || true
        exit 1   # the EXIT trap stops the others
      fi
      i=$((i + 1))
    done
    trap - EXIT INT TERM HUP
    cat > "$dir/env" <<EOF
export APX_CLICKHOUSE_URL=http://127.0.0.1:$port
export APX_CLICKHOUSE_URLS='$urls'
export APX_CLICKHOUSE_SHARDS=$shards
export APX_CLICKHOUSE_DIR=$dir
EOF
    echo "clickhouse.sh: $servers server(s) up on 127.0.0.1:$port.. (PIDs $(tr '\n' ' ' < "$dir/pids"))" >&2
    echo "$dir"
    ;;
  stop)
    [ -n "$dir" ] || dir="${APX_CLICKHOUSE_DIR:-}"
    [ -n "$dir" ] || { echo "clickhouse.sh: stop needs --dir (or APX_CLICKHOUSE_DIR)" >&2; exit 2; }
    stop_dir "$dir"
    ;;
  restart)
    [ -n "$dir" ] || dir="${APX_CLICKHOUSE_DIR:-}"
    [ -n "$dir" ] && [ -f "$dir/pids" ] || { echo "clickhouse.sh: restart needs --dir with recorded servers" >&2; exit 2; }
    case "$shard" in ''|*[!0-9]*) echo "clickhouse.sh: restart needs --shard I" >&2; exit 2 ;; esac
    dir="$(cd "$dir" && pwd)"
    d="$dir/shard-$shard"
    [ -f "$d/config.xml" ] || { echo "clickhouse.sh: no server $shard in $dir" >&2; exit 2; }
    pid="$(sed -n "$((shard + 1))p" "$dir/pids")"
    if [ -n "$pid" ] && { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$d/"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; sleep 0.2; fi
    fi
    http_port="$(sed -n 's:.*<http_port>\([0-9]*\)</http_port>.*:\1:p' "$d/config.xml")"
    "$server_bin" --config-file="$d/config.xml" >>"$d/log/stdout.log" 2>&1 &
    new=$!
    sed -i "$((shard + 1))s/.*/$new/" "$dir/pids"
    for _ in $(seq 1 300); do
      kill -0 "$new" 2>/dev/null || break
      if ping "$http_port"; then echo "clickhouse.sh: server $shard restarted (PID $new)" >&2; exit 0; fi
      sleep 0.1
    done
    echo "clickhouse.sh: server $shard (PID $new) did not come back; its log:" >&2
    tail -20 "$d/log/error.log" >&2 2>/dev/null || true
    exit 1
    ;;
  status)
    [ -n "$dir" ] || dir="${APX_CLICKHOUSE_DIR:-}"
    [ -n "$dir" ] && [ -f "$dir/pids" ] || { echo "clickhouse.sh: no servers recorded" >&2; exit 1; }
    for pid in $(cat "$dir/pids"); do
      if kill -0 "$pid" 2>/dev/null; then echo "$pid running"; else echo "$pid gone"; fi
    done
    ;;
  *)
    echo "usage: scripts/clickhouse.sh start [--shards N] [--replicas R] [--dir D] [--port P] [--cluster-port I=Q] | stop [--dir D] | restart --shard I [--dir D] | status [--dir D]" >&2
    exit 2
    ;;
esac
