#!/usr/bin/env bash
# `make run-cluster`: a local Redis Cluster with ProxyRedis in front, without Docker:
#   - six redis-servers (3 masters, 3 replicas) on 127.0.0.1:CLUSTER_PORT.. (default
#     7000-7005), cluster bus on CLUSTER_BUS_PORT.. (default 7100-7105), data and logs in a
#     temporary directory;
#   - three release proxies (target/release/proxyredis) with REDIS_CLUSTER_NODES set, HTTP on
#     CLUSTER_HTTP_PORT+1..3 (8001-8003), RESP on CLUSTER_RESP_PORT+1..3 (6381-6383);
#   - HAProxy (deploy/haproxy.cfg) on CLUSTER_HTTP_PORT (8000) and CLUSTER_RESP_PORT (6380),
#     sending traffic only to proxies whose GET /readyz answers 200; stats on
#     CLUSTER_STATS_PORT (8404).
# Ctrl-C (or any exit) stops everything and removes the directory (KEEP_TMP=1 keeps it).
# Everything else in ./env applies to the proxies, and the environment overrides it (for
# example REDIS_READ_FROM=replica).
set -euo pipefail
cd "$(dirname "$0")/.."

redis_base=${CLUSTER_PORT:-7000}
bus_base=${CLUSTER_BUS_PORT:-7100}
http_front=${CLUSTER_HTTP_PORT:-8000}
resp_front=${CLUSTER_RESP_PORT:-6380}
stats_port=${CLUSTER_STATS_PORT:-8404}
nodes=6
proxies=3
binary=target/release/proxyredis

listening() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# The status code of GET $2 on 127.0.0.1:$1, or nothing.
http_status() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    read -r _ code _ <&3 && echo "$code"' _ "$1" "$2" 2>/dev/null || true
}

# Polls "$@" every 0.1 s for up to $1 seconds.
poll() {
  local tries=$(($1 * 10))
  shift
  until "$@"; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.1
  done
}

fail() {
  echo "run-cluster: $*" >&2
  exit 1
}

# --- preflight: tools, binary, ports ---------------------------------------------------
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || fail "$tool is missing; run: make ensure-redis"
done
if ! command -v haproxy >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "haproxy is missing; installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null ||
      fail "apt-get install haproxy failed"
  else
    fail "haproxy is missing; install it with: sudo apt-get install -y haproxy"
  fi
fi
[ -x "$binary" ] || fail "$binary is missing; build it with: cargo build --release"

redis_ports=() bus_ports=() http_ports=() resp_ports=()
for i in $(seq 0 $((nodes - 1))); do
  redis_ports+=($((redis_base + i)))
  bus_ports+=($((bus_base + i)))
done
for i in $(seq 1 "$proxies"); do
  http_ports+=($((http_front + i)))
  resp_ports+=($((resp_front + i)))
done
for port in "${redis_ports[@]}" "${bus_ports[@]}" "${http_ports[@]}" "${resp_ports[@]}" \
  "$http_front" "$resp_front" "$stats_port"; do
  if listening "$port"; then
    fail "port $port is in use; choose other ranges with CLUSTER_PORT (redis, default 7000)," \
      "CLUSTER_BUS_PORT (7100), CLUSTER_HTTP_PORT (8000), CLUSTER_RESP_PORT (6380)," \
      "CLUSTER_STATS_PORT (8404)"
  fi
done

# --- cleanup on any exit ---------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/proxyredis-cluster.XXXXXX")
redis_pids=() proxy_pids=() haproxy_pid=""
stopping=""
cleanup() {
  local status=$?
  stopping=1
  trap - INT TERM
  echo
  echo "stopping HAProxy, proxies and redis-servers"
  local pids=("${proxy_pids[@]}" "${redis_pids[@]}")
  [ -n "$haproxy_pid" ] && pids+=("$haproxy_pid")
  if [ ${#pids[@]} -gt 0 ]; then
    # A node someone stopped with SIGSTOP (a failover experiment) must resume to exit.
    kill -CONT "${pids[@]}" 2>/dev/null || true
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "${pids[@]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "logs and data kept in $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Redis Cluster ---------------------------------------------------------------------
echo "starting $nodes redis-servers in $tmp"
for i in $(seq 0 $((nodes - 1))); do
  port=${redis_ports[$i]}
  mkdir -p "$tmp/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --protected-mode no \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-port "${bus_ports[$i]}" --cluster-node-timeout "${CLUSTER_NODE_TIMEOUT_MS:-2000}" \
    --save "" --appendonly no --repl-diskless-sync-delay 0 \
    --dir "$tmp/redis-$port" --logfile "$tmp/redis-$port/redis.log" &
  redis_pids+=($!)
done
addrs=()
for port in "${redis_ports[@]}"; do addrs+=("127.0.0.1:$port"); done
seeds=$(IFS=,; echo "${addrs[*]}")
if ! CLUSTER_REPLICAS=1 deploy/cluster-create.sh "${addrs[@]}" >"$tmp/cluster-create.log" 2>&1; then
  cat "$tmp/cluster-create.log" >&2
  fail "creating the cluster failed; with KEEP_TMP=1 the node logs stay in $tmp/redis-*/"
fi
echo "Redis Cluster ready: $seeds"

# --- proxies ---------------------------------------------------------------------------
for i in $(seq 0 $((proxies - 1))); do
  # REDIS_HOST/PORT point at a seed too, for a binary that predates cluster support.
  PROXY_HOST=127.0.0.1 PROXY_PORT=${http_ports[$i]} PROXY_RESP_PORT=${resp_ports[$i]} \
    REDIS_CLUSTER_NODES=$seeds REDIS_HOST=127.0.0.1 REDIS_PORT=${redis_ports[0]} \
    "$binary" >"$tmp/proxy-$((i + 1)).log" 2>&1 &
  proxy_pids+=($!)
done
for i in $(seq 0 $((proxies - 1))); do
  pid=${proxy_pids[$i]} http=${http_ports[$i]} log=$tmp/proxy-$((i + 1)).log
  healthy() { [ "$(http_status "$http" /healthz)" = 200 ] || ! kill -0 "$pid" 2>/dev/null; }
  if ! poll 15 healthy; then
    tail -n 20 "$log" >&2
    fail "proxy $((i + 1)) did not answer /healthz on :$http (its log is above)"
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$log" >&2
    fail "proxy $((i + 1)) exited (its log is above)"
  fi
done
# The cluster backend may need a moment to learn the slot map: wait for all, within 10 s.
all_ready() {
  for http in "${http_ports[@]}"; do
    [ "$(http_status "$http" /readyz)" = 200 ] || return 1
  done
}
poll 10 all_ready || true
for i in $(seq 0 $((proxies - 1))); do
  http=${http_ports[$i]}
  status=$(http_status "$http" /readyz)
  if [ "$status" = 200 ]; then
    echo "proxy $((i + 1)) ready (HTTP :$http, RESP :${resp_ports[$i]})"
  else
    echo "proxy $((i + 1)) runs but its /readyz answers ${status:-nothing} (HTTP :$http);" \
      "HAProxy keeps it out until it answers 200; see $tmp/proxy-$((i + 1)).log"
  fi
done

# --- HAProxy ---------------------------------------------------------------------------
lb_env=(
  "LB_HTTP_BIND=127.0.0.1:$http_front" "LB_RESP_BIND=127.0.0.1:$resp_front"
  "LB_STATS_BIND=127.0.0.1:$stats_port"
)
for i in $(seq 1 "$proxies"); do
  lb_env+=("LB_PROXY${i}_HOST=127.0.0.1" "LB_PROXY${i}_HTTP_PORT=${http_ports[$((i - 1))]}"
    "LB_PROXY${i}_RESP_PORT=${resp_ports[$((i - 1))]}")
done
env "${lb_env[@]}" haproxy -c -q -f deploy/haproxy.cfg || fail "deploy/haproxy.cfg is invalid"
env "${lb_env[@]}" haproxy -db -f deploy/haproxy.cfg >"$tmp/haproxy.log" 2>&1 &
haproxy_pid=$!
poll 10 listening "$http_front" || { cat "$tmp/haproxy.log" >&2; fail "HAProxy did not start"; }

master_pids=""
for i in $(seq 0 $((nodes - 1))); do
  if redis-cli -p "${redis_ports[$i]}" role 2>/dev/null | head -n 1 | grep -q master; then
    master_pids+=" ${redis_pids[$i]}"
  fi
done
cat <<EOF

ProxyRedis in front of a local Redis Cluster (Ctrl-C stops everything):
  HAProxy        HTTP 127.0.0.1:$http_front  RESP 127.0.0.1:$resp_front  stats http://127.0.0.1:$stats_port/
  proxies        HTTP ${http_ports[*]}  RESP ${resp_ports[*]}  (pids ${proxy_pids[*]})
  Redis Cluster  ${redis_ports[*]}  bus ${bus_ports[*]}  (master pids:$master_pids)
  logs           $tmp/{haproxy,proxy-N}.log, $tmp/redis-PORT/redis.log

Try it:
  redis-cli -c -p ${redis_ports[0]} set greeting hello
  curl 'http://127.0.0.1:$http_front/lookup?key=greeting'
  redis-cli -p $resp_front get greeting
  redis-cli -p ${redis_ports[0]} cluster nodes
  kill -STOP PID   (a master: a replica takes over after the node timeout; kill -CONT PID)
EOF

# --- run until interrupted ------------------------------------------------------------
# A redis-server or a proxy may be stopped on purpose (failover experiments): say so, keep
# running. Without HAProxy nothing is reachable: stop.
reported=" "
while [ -z "$stopping" ]; do
  sleep 1 &
  wait $! || true
  kill -0 "$haproxy_pid" 2>/dev/null || { tail -n 20 "$tmp/haproxy.log" >&2; fail "HAProxy exited"; }
  for pid in "${proxy_pids[@]}" "${redis_pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null && [[ $reported != *" $pid "* ]]; then
      echo "process $pid exited; the others keep running"
      reported+="$pid "
    fi
  done
done
