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
# Below the ephemeral range (32768+), so no client socket holds the port.
free_port() { local p=$((20000 + RANDOM % 12000)); while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_port() { for _ in $(seq 200); do port_free "$1" || return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system, all threads) a process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)
# Runs "$@" while measuring the CPU time of server pid $SERVER_PID; sets CPU_SECONDS.
with_cpu() {
  local before after
  before=$(cpu_ticks "$SERVER_PID")
  "$@"
  after=$(cpu_ticks "$SERVER_PID")
  CPU_SECONDS=$(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }')
}

RESULTS=()
# Requests per second of server CPU (total requests / CPU seconds the server used): what
# one core does when it is the bottleneck, fair even when the single-threaded load
# generator is what limits req/s.
per_cpu() { awk -v r="$1" -v c="$2" -v d="$3" 'BEGIN { if (c > 0) printf "%.0f", r * d / c; else print 0 }'; }
row() { # name req/s p50_us p99_us server_cpu_s per_cpu_second ratio
  printf '%-34s %10s %9s %9s %8s %12s   %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7"
  RESULTS+=("{\"name\":\"$1\",\"req_per_s\":$2,\"p50_us\":${3:-null},\"p99_us\":${4:-null},\"server_cpu_s\":$5,\"req_per_cpu_s\":$6,\"ratio\":\"$7\"}")
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
REDIS_PID=$!; PIDS+=("$REDIS_PID"); wait_port "$REDIS_PORT"
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

# Each measurement sets M_<name>="req/s p50_us p99_us server_cpu_seconds run_seconds".
wrk_run() { # name url lua server_pid
  SERVER_PID=$4
  with_cpu $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$3" "$2" > "$TMP/wrk-$1.txt"
  local r; r=$(wrk_parse "$TMP/wrk-$1.txt")
  printf -v "M_$1" '%s %s %s' "$r" "$CPU_SECONDS" "${DURATION%s}"
}
rb_run() { # name port pipeline server_pid
  SERVER_PID=$4
  local n=$REQUESTS; [ "$3" -gt 1 ] && n=$((REQUESTS * 4))
  with_cpu $LOAD_CPU redis-benchmark -p "$2" -t get -r 100 -n "$n" -c 50 -P "$3" --csv > "$TMP/rb-$1.csv" 2>/dev/null
  local r; r=$(rb_parse "$TMP/rb-$1.csv")
  printf -v "M_$1" '%s %s %s' "$r" "$CPU_SECONDS" "$(awk -v n="$n" -v r="${r%% *}" 'BEGIN { printf "%.3f", n / r }')"
}

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
wrk_run http_hit "http://127.0.0.1:$PROXY_PORT" "$TMP/hot.lua" "$PROXY_PID"

# --- 3. RESP hit path vs redis-server's own GET, -P 1 and -P 16 ---------------------------
for P in 1 16; do
  rb_run "resp_proxy_$P" "$RESP_PORT" "$P" "$PROXY_PID"
  rb_run "resp_redis_$P" "$REDIS_PORT" "$P" "$REDIS_PID"
done
stop_proxy

if command -v nginx >/dev/null 2>&1; then
  NGINX_PORT=$(free_port)
  mkdir -p "$TMP/nginx"
  cat > "$TMP/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
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
  wrk_run nginx "http://127.0.0.1:$NGINX_PORT" "$TMP/hot.lua" "$NGINX_PID"
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
wrk_run http_miss "http://127.0.0.1:$PROXY_PORT" "$TMP/miss.lua" "$PROXY_PID"
stop_proxy

if command -v webdis >/dev/null 2>&1; then
  WEBDIS_PORT=$(free_port)
  cat > "$TMP/webdis.json" <<JSON
{ "redis_host": "127.0.0.1", "redis_port": $REDIS_PORT, "http_host": "127.0.0.1", "http_port": $WEBDIS_PORT,
  "threads": 1, "pool_size": 4, "daemonize": false, "verbosity": 0, "logfile": "$TMP/webdis.log" }
JSON
  $SERVER_CPU webdis "$TMP/webdis.json" &
  WEBDIS_PID=$!; PIDS+=("$WEBDIS_PID"); wait_port "$WEBDIS_PORT"
  sed 's#/lookup?key=#/GET/#' "$TMP/miss.lua" > "$TMP/webdis.lua"
  wrk_run webdis "http://127.0.0.1:$WEBDIS_PORT" "$TMP/webdis.lua" "$WEBDIS_PID"
  kill "$WEBDIS_PID" 2>/dev/null || true
fi

# --- table: ratios are of requests per server CPU-second, same run -------------------------
printf '\n%-34s %10s %9s %9s %8s %12s   %s\n' "workload" "req/s" "p50 us" "p99 us" "cpu s" "req/cpu-s" "ratio (req/cpu-s)"
emit() { # label measurement [reference-measurement reference-name | note]
  local rps p50 p99 cpu dur rrps rp50 rp99 rcpu rdur mine ref text
  read -r rps p50 p99 cpu dur <<< "$2"
  mine=$(per_cpu "$rps" "$cpu" "$dur")
  if [ -n "${4:-}" ] && [ -n "$3" ]; then
    read -r rrps rp50 rp99 rcpu rdur <<< "$3"
    ref=$(per_cpu "$rrps" "$rcpu" "$rdur")
    text="x$(ratio "$mine" "$ref") of $4 per cpu-s, x$(ratio "$rps" "$rrps") req/s"
  else
    text=${3:-reference}
  fi
  row "$1" "$rps" "$p50" "$p99" "$cpu" "$mine" "$text"
}
if [ -n "${M_nginx:-}" ]; then
  emit "http hit (proxy)" "$M_http_hit" "$M_nginx" nginx
  emit "http fixed 200 (nginx, ref)" "$M_nginx"
else
  emit "http hit (proxy)" "$M_http_hit" "nginx not installed"
fi
if [ -n "${M_webdis:-}" ]; then
  emit "http miss (proxy -> redis)" "$M_http_miss" "$M_webdis" webdis
  emit "http GET (webdis, ref)" "$M_webdis"
else
  emit "http miss (proxy -> redis)" "$M_http_miss" "webdis not installed"
fi
for P in 1 16; do
  proxy_m="M_resp_proxy_$P"; redis_m="M_resp_redis_$P"
  emit "resp GET -P $P (proxy)" "${!proxy_m}" "${!redis_m}" redis
  emit "resp GET -P $P (redis-server, ref)" "${!redis_m}"
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
