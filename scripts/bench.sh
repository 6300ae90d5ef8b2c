#!/usr/bin/env bash
# `make bench`: end-to-end benchmarks of the release proxy against references measured in
# the same run (redis-server itself, nginx answering a fixed 200, webdis when installed).
# Everything listens on 127.0.0.1 and every run is bounded in time or count.
#
# Pinning: the server under test (proxy, redis-server, nginx, webdis) gets core 0 and the
# load generator core 1 when there are at least two cores (taskset).
# Output: a table on stdout and the same as JSON in target/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
REQUESTS=${BENCH_REQUESTS:-500000}
FILL_KEYS=${BENCH_FILL_KEYS:-1000000}
OUT=target/bench
mkdir -p "$OUT"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing $1: sudo apt-get install -y $2" >&2; exit 1; }; }
need wrk wrk
need redis-server redis-server
need redis-benchmark redis-tools
need redis-cli redis-tools

if [ "$(nproc)" -ge 2 ]; then SERVER_CPU="taskset -c 0"; LOAD_CPU="taskset -c 1"; PIN="server core 0, load core 1"
else SERVER_CPU=""; LOAD_CPU=""; PIN="unpinned (one core)"; fi

port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
free_port() { local p=$((20000 + RANDOM % 20000)); while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_port() { for _ in $(seq 200); do port_free "$1" || return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

RESULTS=()
row() { # name throughput p50_us p99_us ratio_name ratio
  printf '%-34s %12s %10s %10s   %s\n' "$1" "$2" "$3" "$4" "$5"
  RESULTS+=("{\"name\":\"$1\",\"throughput\":$2,\"p50_us\":${3:-null},\"p99_us\":${4:-null},\"ratio\":\"$5\"}")
}
# wrk output -> "rps p50_us p99_us"
wrk_parse() {
  awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    END { printf "%.0f %.1f %.1f\n", rps, p50, p99 }' "$1"
}
# redis-benchmark --csv -> "rps p50_us p99_us"
rb_parse() {
  awk -F'","' '/^"GET/ { gsub(/"/, "", $0); split($0, f, ","); printf "%.0f %.1f %.1f\n", f[2], f[5] * 1000, f[7] * 1000 }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== ProxyRedis benchmarks: $(nproc) cores, $PIN, wrk -c$CONNECTIONS -d$DURATION"

# --- Redis with FILL_KEYS keys "key:%012d" (16 bytes) -> 32-byte values -------------------
REDIS_PORT=$(free_port)
$SERVER_CPU redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=($!); wait_port "$REDIS_PORT"
redis_used() { redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
used_before=$(redis_used)
awk -v n="$FILL_KEYS" 'BEGIN { for (i = 0; i < n; i++) { k = sprintf("key:%012d", i); v = sprintf("value:%026d", i);
  printf "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n", k, v } }' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
used_after=$(redis_used)

start_proxy() { # extra env assignments...
  PROXY_PORT=$(free_port); RESP_PORT=$(free_port)
  env PROXY_HOST=127.0.0.1 PROXY_PORT="$PROXY_PORT" PROXY_RESP_PORT="$RESP_PORT" PROXY_WORKERS=1 \
    REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG=warn "$@" \
    $SERVER_CPU ./target/release/proxyredis --env-file /dev/null &
  PROXY_PID=$!; PIDS+=("$PROXY_PID"); wait_port "$PROXY_PORT"
}
stop_proxy() { kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; }

# --- 4. Memory: proxy RSS per cached key vs Redis used_memory per key --------------------
start_proxy PROXY_MAX_KEYS=$((FILL_KEYS + FILL_KEYS / 10)) PROXY_TTL_MS=3600000
rss_before=$(rss_kib "$PROXY_PID")
awk -v n="$FILL_KEYS" 'BEGIN { b = 100; for (i = 0; i < n; i += b) { printf "*%d\r\n$4\r\nMGET\r\n", b + 1;
  for (j = i; j < i + b; j++) printf "$16\r\n%s\r\n", sprintf("key:%012d", j) } }' \
  | redis-cli -p "$RESP_PORT" --pipe >/dev/null
cached=$(curl -s "http://127.0.0.1:$PROXY_PORT/stats" | grep -o '"keys":[0-9]*' | cut -d: -f2)
rss_after=$(rss_kib "$PROXY_PID")
stop_proxy
proxy_per_key=$(awk -v a="$rss_after" -v b="$rss_before" -v n="$cached" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
redis_per_key=$(awk -v a="$used_after" -v b="$used_before" -v n="$FILL_KEYS" 'BEGIN { printf "%.1f", (a - b) / n }')
printf '\n%-34s %12s %10s %10s   %s\n' "workload" "req/s" "p50 us" "p99 us" "ratio"

# --- 1. HTTP hit path, with nginx's fixed 200 as the reference ---------------------------
cat > "$TMP/hot.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format("GET", string.format("/lookup?key=key:%012d", i))
end
LUA
start_proxy PROXY_MAX_KEYS=10000 PROXY_TTL_MS=3600000
for i in $(seq 0 99); do curl -s "http://127.0.0.1:$PROXY_PORT/lookup?key=key:$(printf %012d "$i")" >/dev/null; done
$LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/hot.lua" "http://127.0.0.1:$PROXY_PORT" > "$TMP/wrk-hit.txt"
read -r hit_rps hit_p50 hit_p99 < <(wrk_parse "$TMP/wrk-hit.txt")

# --- 3. RESP hit path vs redis-server's own GET, -P 1 and -P 16 ---------------------------
declare -A RB
for P in 1 16; do
  for target in proxy redis; do
    port=$RESP_PORT; [ "$target" = redis ] && port=$REDIS_PORT
    $LOAD_CPU redis-benchmark -p "$port" -t get -r 100 -n "$REQUESTS" -c 50 -P "$P" --csv > "$TMP/rb-$target-$P.csv" 2>/dev/null
    RB[$target-$P]=$(rb_parse "$TMP/rb-$target-$P.csv")
  done
done
stop_proxy

nginx_rps=""
if command -v nginx >/dev/null 2>&1; then
  NGINX_PORT=$(free_port)
  mkdir -p "$TMP/nginx"
  cat > "$TMP/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx; proxy_temp_path $TMP/nginx; fastcgi_temp_path $TMP/nginx;
  uwsgi_temp_path $TMP/nginx; scgi_temp_path $TMP/nginx;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{"key":"key:000000000000","value":"value:00000000000000000000000000","status":200}'; }
  }
}
NGINX
  $SERVER_CPU nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" &
  NGINX_PID=$!; PIDS+=("$NGINX_PID"); wait_port "$NGINX_PORT"
  $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/hot.lua" "http://127.0.0.1:$NGINX_PORT" > "$TMP/wrk-nginx.txt"
  read -r nginx_rps nginx_p50 nginx_p99 < <(wrk_parse "$TMP/wrk-nginx.txt")
  kill "$NGINX_PID" 2>/dev/null || true
fi

# --- 2. HTTP miss path: every request is a key not cached (capacity 1000, 1M-key space) ----
cat > "$TMP/miss.lua" <<'LUA'
local i = math.random(0, 999999)
request = function()
  i = (i + 7919) % 1000000
  return wrk.format("GET", string.format("/lookup?key=key:%012d", i))
end
LUA
start_proxy PROXY_MAX_KEYS=1000 PROXY_TTL_MS=3600000
$LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/miss.lua" "http://127.0.0.1:$PROXY_PORT" > "$TMP/wrk-miss.txt"
read -r miss_rps miss_p50 miss_p99 < <(wrk_parse "$TMP/wrk-miss.txt")
stop_proxy

webdis_rps=""
if command -v webdis >/dev/null 2>&1; then
  WEBDIS_PORT=$(free_port)
  cat > "$TMP/webdis.json" <<JSON
{ "redis_host": "127.0.0.1", "redis_port": $REDIS_PORT, "http_host": "127.0.0.1", "http_port": $WEBDIS_PORT,
  "threads": 1, "pool_size": 4, "daemonize": false, "verbosity": 0, "logfile": "$TMP/webdis.log" }
JSON
  $SERVER_CPU webdis "$TMP/webdis.json" &
  WEBDIS_PID=$!; PIDS+=("$WEBDIS_PID"); wait_port "$WEBDIS_PORT"
  sed 's#/lookup?key=#/GET/#' "$TMP/miss.lua" > "$TMP/webdis.lua"
  $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/webdis.lua" "http://127.0.0.1:$WEBDIS_PORT" > "$TMP/wrk-webdis.txt"
  read -r webdis_rps webdis_p50 webdis_p99 < <(wrk_parse "$TMP/wrk-webdis.txt")
  kill "$WEBDIS_PID" 2>/dev/null || true
fi

# --- table ---------------------------------------------------------------------------------
row "http hit (proxy)" "$hit_rps" "$hit_p50" "$hit_p99" "$( [ -n "$nginx_rps" ] && echo "x$(ratio "$hit_rps" "$nginx_rps") of nginx" || echo "nginx not installed")"
[ -n "$nginx_rps" ] && row "http fixed 200 (nginx, reference)" "$nginx_rps" "$nginx_p50" "$nginx_p99" "x1.00"
row "http miss (proxy -> redis)" "$miss_rps" "$miss_p50" "$miss_p99" "$( [ -n "$webdis_rps" ] && echo "x$(ratio "$miss_rps" "$webdis_rps") of webdis" || echo "webdis not installed")"
[ -n "$webdis_rps" ] && row "http GET (webdis, reference)" "$webdis_rps" "$webdis_p50" "$webdis_p99" "x1.00"
for P in 1 16; do
  read -r prps pp50 pp99 <<< "${RB[proxy-$P]}"
  read -r rrps rp50 rp99 <<< "${RB[redis-$P]}"
  row "resp GET -P $P (proxy)" "$prps" "$pp50" "$pp99" "x$(ratio "$prps" "$rrps") of redis"
  row "resp GET -P $P (redis-server, ref)" "$rrps" "$rp50" "$rp99" "x1.00"
done
beyond=$(awk -v p="$proxy_per_key" 'BEGIN { printf "%.1f", p - 48 }')
redis_beyond=$(awk -v p="$redis_per_key" 'BEGIN { printf "%.1f", p - 48 }')
echo
echo "memory, $cached keys of 16 B + 32 B: proxy RSS $proxy_per_key B/key ($beyond beyond key+value);" \
     "redis used_memory $redis_per_key B/key ($redis_beyond beyond); ratio x$(ratio "$proxy_per_key" "$redis_per_key")"
RESULTS+=("{\"name\":\"memory per key\",\"proxy_bytes\":$proxy_per_key,\"redis_bytes\":$redis_per_key,\"keys\":$cached}")
{
  echo "{\"cores\":$(nproc),\"pinning\":\"$PIN\",\"duration\":\"$DURATION\",\"connections\":$CONNECTIONS,\"results\":["
  (IFS=,; echo "${RESULTS[*]}")
  echo "]}"
} > "$OUT/results.json"
echo "JSON: $OUT/results.json"
