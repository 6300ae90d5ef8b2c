#!/usr/bin/env bash
# Latency against offered load on the HTTP hit path (section 9 of `make bench`; runs on its
# own too): examples/open_loop sends `GET /lookup` at fixed rates, open loop (each request
# has its due time and its latency is measured from it, so queueing shows and coordinated
# omission cannot hide it), from a pool of keep-alive connections with one request in flight
# on each, to the proxy with 100 cached keys and to nginx answering the same JSON with a fixed
# 200. For each rate the proxy and nginx run back to back (interleaved, so a change in the
# machine's load hits both).
#
# Knobs: BENCH_OPEN_RATES (requests/s, space-separated), BENCH_OPEN_SECONDS (per rate, 5),
# BENCH_OPEN_CONNECTIONS (64, as wrk in bench.sh). Everything listens on 127.0.0.1; each run
# sends for BENCH_OPEN_SECONDS and waits at most 5 s more for its answers.
# Pinning as in bench.sh: servers on core 0, the load generator on core 1.
# Output: a table on stdout, target/bench/open-loop.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

RATES=${BENCH_OPEN_RATES:-"10000 25000 50000 100000 130000 160000 190000 220000"}
RUN_SECONDS=${BENCH_OPEN_SECONDS:-5}
CONNECTIONS=${BENCH_OPEN_CONNECTIONS:-64}
OUT=target/bench
mkdir -p "$OUT"

need redis-server redis-server
need redis-cli redis-tools
need curl curl
[ -x "$PROXY_BIN" ] || cargo build --release
cargo build --release --quiet --example open_loop

# Below the ephemeral range (32768+), so no client socket holds the port.
# From the scheduler's own counters of all threads of process $1 (schedstat, nanoseconds,
# exact where /proc/PID/stat counts clock ticks): "time on a CPU  time runnable but waiting
# for one" (the waiting is how much the machine's other work held the server back).
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ r += $1; w += $2 } END { printf "%.0f %.0f", r, w }'; }
# Waits (at most 5 s) until server $1 used no CPU over 100 ms: the backlog of a run past
# saturation is answered (or dropped) before the next run starts.
settle() {
  local a b
  for _ in $(seq 50); do a=$(cpu_ticks "$1"); sleep 0.1; b=$(cpu_ticks "$1"); [ "$a" != "$b" ] || return 0; done
}

# --- Redis with the 100 hot keys, the proxy in front, nginx beside --------------------------
REDIS_PORT=$(free_port)
$SERVER_CPU redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=("$!"); wait_port "$REDIS_PORT"
set_hot_keys "$REDIS_PORT"

PROXY_PORT=$(free_port)
# shellcheck disable=SC2086 # SERVER_CPU is a command prefix or nothing
env PROXY_HOST=127.0.0.1 PROXY_PORT="$PROXY_PORT" PROXY_RESP_PORT=0 PROXY_WORKERS=1 \
  REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG=warn PROXY_MAX_KEYS=10000 PROXY_TTL_MS=3600000 \
  $SERVER_CPU "$PROXY_BIN" --env-file /dev/null &
PROXY_PID=$!; PIDS+=("$PROXY_PID"); wait_port "$PROXY_PORT"
# With tracking on, nothing is cached until the invalidation connection is up.
for _ in $(seq 200); do curl -s "http://127.0.0.1:$PROXY_PORT/stats" | grep -q '"state":"\(tracking\|off\)"' && break; sleep 0.05; done
warm_hot_keys "$PROXY_PORT"
hits=$(curl -s "http://127.0.0.1:$PROXY_PORT/stats" | grep -o '"keys":[0-9]*' | head -1 | cut -d: -f2)
[ "${hits:-0}" -ge 100 ] || { echo "the proxy did not cache the 100 keys (${hits:-?})" >&2; exit 1; }
SERVERS=(proxy)

if command -v nginx >/dev/null 2>&1; then
  NGINX_PORT=$(free_port)
  start_nginx_json "$NGINX_PORT" "keepalive_requests 1000000;"
  SERVERS+=(nginx)
else
  echo "note: nginx not installed, its open-loop rows are skipped (sudo apt-get install -y nginx-light)" >&2
fi

# --- the runs ---------------------------------------------------------------------------------
echo
echo "== 9. latency against offered load: open loop, GET /lookup (100 cached keys), a pool of" \
     "$CONNECTIONS connections (one request in flight on each), ${RUN_SECONDS}s per rate, $PIN"
# queued: requests that found every connection busy and waited in the client's queue; lag p99:
# how late the load generator itself sent requests (part of their latency); cpu: the server's
# CPU time per second of the run (1.00: all of core 0); wait: its time runnable but waiting
# for a CPU, per second (the machine's other load).
printf '%-6s %7s %8s %8s %8s %8s %8s %8s %7s %7s %6s %7s %5s %5s\n' server "rate/s" "answer/s" \
  "p50 us" "p90 us" "p99 us" "p999 us" "max us" queued unansw. errors "lag p99" cpu wait
field_of() { tr ' ' '\n' <<< "$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
RUNS=()
for rate in $RATES; do
  for server in "${SERVERS[@]}"; do
    case $server in proxy) port=$PROXY_PORT; pid=$PROXY_PID ;; nginx) port=$NGINX_PORT; pid=$NGINX_PID ;; esac
    settle "$pid"
    read -r r0 w0 <<< "$(sched_ns "$pid")"; t0=$(date +%s%N)
    line=$($LOAD_CPU timeout $((RUN_SECONDS + 30)) "$RELEASE_DIR/examples/open_loop" "127.0.0.1:$port" \
      "$rate" "$RUN_SECONDS" "$CONNECTIONS")
    read -r r1 w1 <<< "$(sched_ns "$pid")"; t1=$(date +%s%N)
    # Per second of the run (sending and draining).
    cpu=$(awk -v a="$r0" -v b="$r1" -v w=$((t1 - t0)) 'BEGIN { printf "%.2f", (b - a) / w }')
    rq_wait=$(awk -v a="$w0" -v b="$w1" -v w=$((t1 - t0)) 'BEGIN { printf "%.2f", (b - a) / w }')
    f() { field_of "$line" "$1"; }
    printf '%-6s %7s %8s %8s %8s %8s %8s %8s %7s %7s %6s %7s %5s %5s\n' "$server" "$rate" "$(f answered_rps)" \
      "$(f p50_us)" "$(f p90_us)" "$(f p99_us)" "$(f p999_us)" "$(f max_us)" "$(f queued)" "$(f unanswered)" \
      "$(f errors)" "$(f send_lag_p99_us)" "$cpu" "$rq_wait"
    RUNS+=("{\"server\":\"$server\",$(tr ' ' '\n' <<< "$line" | awk -F= '{ printf "\"%s\":%s,", $1, $2 }')\"server_cpu\":$cpu,\"server_wait\":$rq_wait}")
  done
done
{
  echo "{\"cores\":$(nproc),\"pinning\":\"$PIN\",\"connections\":$CONNECTIONS,\"seconds\":$RUN_SECONDS,\"runs\":["
  (IFS=,; echo "${RUNS[*]}")
  echo "]}"
} > "$OUT/open-loop.json"
echo "JSON: $OUT/open-loop.json"
