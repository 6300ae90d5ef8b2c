#!/usr/bin/env bash
# A/B of two proxy builds on the hit paths, interleaved in one run so that a shared, noisy
# machine moves both alike: scripts/bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS].
# Each round runs, for each build in turn (tracking on, the default): RESP GET hits
# (redis-benchmark -t get -r 100 -c 50, -P 1 and -P 16) and HTTP hits (wrk, 100 keys).
# Prints requests per server CPU-second per build and workload (summed over the rounds), the
# ratio new/old of those sums, and the ratio within each round (the builds ran back to back). Build an old commit with e.g.
#   git archive <commit> | tar -x -C /tmp/old && cp -a target/release /tmp/old/target/ \
#     && (cd /tmp/old && cargo build --release --bin proxyredis)
# Server on core 0, load on core 1 (taskset), 127.0.0.1 only, every run bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [ROUNDS]" >&2; exit 2; }
BINS=("$1" "$2"); NAMES=(old new); ROUNDS=${3:-3}
REQUESTS=${BENCH_REQUESTS:-500000}
DURATION=${BENCH_DURATION:-5s}
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

REDIS_PORT=$(free_port)
$SERVER_CPU redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
  --logfile "$TMP/redis.log" &
PIDS+=($!); wait_port "$REDIS_PORT"
set_hot_keys "$REDIS_PORT"
write_hot_lua
KEYS=$(for i in $(seq 0 99); do printf 'key:%012d ' "$i"; done)

declare -A REQ CPU
for round in $(seq "$ROUNDS"); do
  for b in 0 1; do
    http=$(free_port); resp=$(free_port)
    env PROXY_HOST=127.0.0.1 PROXY_PORT="$http" PROXY_RESP_PORT="$resp" PROXY_WORKERS=1 REDIS_HOST=127.0.0.1 \
      REDIS_PORT="$REDIS_PORT" PROXY_LOG=warn PROXY_MAX_KEYS=1000 PROXY_TTL_MS=3600000 \
      $SERVER_CPU "${BINS[$b]}" --env-file /dev/null &
    pid=$!; PIDS+=("$pid"); wait_port "$http"
    for _ in $(seq 200); do curl -s "http://127.0.0.1:$http/stats" | grep -q '"state":"tracking"' && break; sleep 0.05; done
    # shellcheck disable=SC2086 # one argument per key
    redis-cli -p "$resp" MGET $KEYS >/dev/null
    for w in resp1 resp16 http; do
      before=$(cpu_ticks "$pid")
      case $w in
        resp1) n=$REQUESTS; $LOAD_CPU redis-benchmark -p "$resp" -t get -r 100 -n "$n" -c 50 -P 1 -q >/dev/null 2>&1 ;;
        resp16) n=$((REQUESTS * 4)); $LOAD_CPU redis-benchmark -p "$resp" -t get -r 100 -n "$n" -c 50 -P 16 -q >/dev/null 2>&1 ;;
        http) n=$($LOAD_CPU wrk -t1 -c64 -d"$DURATION" -s "$TMP/hot.lua" "http://127.0.0.1:$http" \
                | awk '/requests in/ { print $1 }') ;;
      esac
      k="${NAMES[$b]} $w"; used=$(( $(cpu_ticks "$pid") - before ))
      REQ[$k]=$(( ${REQ[$k]:-0} + n )); CPU[$k]=$(( ${CPU[$k]:-0} + used ))
      REQ[$k $round]=$n; CPU[$k $round]=$used
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
TICKS=$(getconf CLK_TCK)
per_cpu() { awk -v r="$1" -v c="$2" -v t="$TICKS" 'BEGIN { printf "%.0f", (c > 0 ? r * t / c : 0) }'; }
printf '%-8s %14s %14s %8s   %s\n' workload "old req/cpu-s" "new req/cpu-s" "new/old" "new/old per round"
for w in resp1 resp16 http; do
  o=$(per_cpu "${REQ[old $w]}" "${CPU[old $w]}"); n=$(per_cpu "${REQ[new $w]}" "${CPU[new $w]}")
  rounds=""
  for round in $(seq "$ROUNDS"); do
    rounds+=" $(awk -v a="$(per_cpu "${REQ[new $w $round]}" "${CPU[new $w $round]}")" \
      -v b="$(per_cpu "${REQ[old $w $round]}" "${CPU[old $w $round]}")" 'BEGIN { printf "x%.2f", (b > 0 ? a / b : 0) }')"
  done
  printf '%-8s %14s %14s %8s  %s\n' "$w" "$o" "$n" "$(awk -v a="$n" -v b="$o" 'BEGIN { printf "x%.2f", a / b }')" "$rounds"
done
