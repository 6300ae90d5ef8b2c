#!/usr/bin/env bash
# `make bench`: end-to-end benchmarks of the release proxy against references measured in
# the same run (redis-server itself, nginx answering a fixed 200, webdis and twemproxy when
# installed). Everything listens on 127.0.0.1 and every run is bounded in time or count.
#
# Sections: memory per key; HTTP and RESP hits; HTTP misses; forwarded commands (HGET,
# LRANGE, GET misses and hits) against twemproxy and Redis, and the -P 8 suite with
# PROXY_FORWARD=all (scripts/bench-forward.sh); coherence (invalidation latency, tracking
# on against off for hits and misses, hit ratio and Redis CPU under a write stream); latency
# against offered load on the HTTP hit path, open loop, proxy and nginx
# (scripts/bench-open-loop.sh).
#
# Pinning: the server under test (proxy, redis-server, nginx, webdis, nutcracker) gets core 0
# and the load generator core 1 when there are at least two cores (taskset).
# Output: tables on stdout and the same as JSON in target/bench/results.json (and
# target/bench/open-loop.json); then target/bench/report.html with charts of them and of the
# soak (scripts/bench-report.py), checked in headless chromium when installed
# (scripts/report-check.sh, which also writes target/bench/report.png). Last, before the
# report, the soak (scripts/soak.sh: cached reads, misses and the forwarding attackers, with
# the proxy's RSS and another client's miss p99 over time) runs BENCH_SOAK_SECONDS (600 by
# default; 0 skips it and the report charts the last `make soak`). With REDIS_SRC set (a
# folder with Redis's runtest and tests/), Redis's own test suite runs through the proxy
# first (scripts/redis-suite.sh, target/bench/redis-suite.json).
# shellcheck disable=SC2086,SC2154 # SERVER_CPU/LOAD_CPU are command prefixes; M_* are set by printf -v
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
REQUESTS=${BENCH_REQUESTS:-500000}
FILL_KEYS=${BENCH_FILL_KEYS:-1000000}
# Issue 13 knobs: writes timed for the invalidation latency; the write stream's read key set,
# reads per second, writes per second (over a tenth of that key set) and seconds.
LATENCY_WRITES=${BENCH_LATENCY_WRITES:-2000}
STREAM_KEYS=${BENCH_STREAM_KEYS:-10000}
READ_RATE=${BENCH_READ_RATE:-20000}
WRITE_RATE=${BENCH_WRITE_RATE:-1000}
STREAM_SECONDS=${BENCH_STREAM_SECONDS:-10}
OUT=target/bench
mkdir -p "$OUT"

need wrk wrk
need redis-server redis-server
need redis-benchmark redis-tools
need redis-cli redis-tools
need curl curl

# The coherence section's clients (examples/invalidation_latency.rs, read_write_stream.rs).
cargo build --release --quiet --example invalidation_latency --example read_write_stream
EXAMPLES=$RELEASE_DIR/examples


# Below the ephemeral range (32768+), so no client socket holds the port.
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system, all threads) a process has used, in clock ticks.
TICKS=$(getconf CLK_TCK)
seconds_between() { awk -v a="$2" -v b="$1" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }'; }
# Runs "$@" while measuring the CPU time of server pid $SERVER_PID and of redis-server; sets
# CPU_SECONDS and REDIS_CPU_SECONDS (the same figure when the server is redis-server).
with_cpu() {
  local before after rbefore rafter
  before=$(cpu_ticks "$SERVER_PID"); rbefore=$(cpu_ticks "$REDIS_PID")
  "$@"
  after=$(cpu_ticks "$SERVER_PID"); rafter=$(cpu_ticks "$REDIS_PID")
  CPU_SECONDS=$(seconds_between "$before" "$after")
  REDIS_CPU_SECONDS=$(seconds_between "$rbefore" "$rafter")
}

RESULTS=()
# Requests per second of server CPU (total requests / CPU seconds the server used): what
# one core does when it is the bottleneck, fair even when the single-threaded load
# generator is what limits req/s.
per_cpu() { awk -v r="$1" -v c="$2" -v d="$3" 'BEGIN { if (c > 0) printf "%.0f", r * d / c; else print 0 }'; }
row() { # name req/s p50_us p99_us server_cpu_s per_cpu_second ratio redis_cpu_s
  printf '%-38s %10s %9s %9s %8s %8s %12s   %s\n' "$1" "$2" "$3" "$4" "$5" "$8" "$6" "$7"
  RESULTS+=("{\"name\":\"$1\",\"req_per_s\":$2,\"p50_us\":${3:-null},\"p99_us\":${4:-null},\"server_cpu_s\":$5,\"redis_cpu_s\":$8,\"req_per_cpu_s\":$6,\"ratio\":\"$7\"}")
}
header() {
  printf '\n%s\n%-38s %10s %9s %9s %8s %8s %12s   %s\n' "$1" "workload" "req/s" "p50 us" "p99 us" \
    "cpu s" "redis s" "req/cpu-s" "ratio (req/cpu-s: requests per CPU-second of the server)"
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
# redis-benchmark --csv (one test) -> "rps p50_us p99_us"
rb_parse() {
  awk '/^"/ && !/^"test"/ { gsub(/"/, ""); split($0, f, ","); printf "%.0f %.1f %.1f\n", f[2], f[5] * 1000, f[7] * 1000; exit }' "$1"
}

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
echo "== ProxyRedis benchmarks: $(nproc) cores, $PIN, wrk -c$CONNECTIONS -d$DURATION," \
     "load average at start $(load_average)"

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

stats() { curl -s "http://127.0.0.1:$PROXY_PORT/stats"; }
# One field of the proxy's /stats by its name, for the names that occur once in it (hits,
# misses, state, messages, invalidations).
stat_of() { stats | grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2 | tr -d '"'; }
start_proxy() { # extra env assignments...
  PROXY_PORT=$(free_port); RESP_PORT=$(free_port)
  env PROXY_HOST=127.0.0.1 PROXY_PORT="$PROXY_PORT" PROXY_RESP_PORT="$RESP_PORT" PROXY_WORKERS=1 \
    REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG=warn "$@" \
    $SERVER_CPU "$PROXY_BIN" --env-file /dev/null &
  PROXY_PID=$!; PIDS+=("$PROXY_PID"); wait_port "$PROXY_PORT"
  # With tracking on, nothing is cached until the invalidation connection is up.
  local state=""
  for _ in $(seq 200); do
    state=$(stat_of state); [ "$state" = tracking ] || [ "$state" = off ] && break; sleep 0.05
  done
  [ "$state" = tracking ] || [ "$state" = off ] || { echo "tracking never came up ($state)" >&2; exit 1; }
}
stop_proxy() { kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; }
# Reads key:0 .. key:N-1 through the proxy's RESP port (MGET, 100 keys a command), caching them.
warm_keys() {
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i += 100) { e = i + 100 < n ? i + 100 : n;
    printf "*%d\r\n$4\r\nMGET\r\n", e - i + 1;
    for (j = i; j < e; j++) printf "$16\r\n%s\r\n", sprintf("key:%012d", j) } }' \
    | redis-cli -p "$RESP_PORT" --pipe >/dev/null
}

# --- 4. Memory: proxy RSS per cached key vs Redis used_memory per key --------------------
progress "4. memory"
start_proxy PROXY_MAX_KEYS=$((FILL_KEYS + FILL_KEYS / 10)) PROXY_TTL_MS=3600000
rss_before=$(rss_kib "$PROXY_PID")
warm_keys "$FILL_KEYS"
cached=$(curl -s "http://127.0.0.1:$PROXY_PORT/stats" | grep -o '"keys":[0-9]*' | head -1 | cut -d: -f2)
rss_after=$(rss_kib "$PROXY_PID")
stop_proxy
proxy_per_key=$(awk -v a="$rss_after" -v b="$rss_before" -v n="$cached" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
redis_per_key=$(awk -v a="$used_after" -v b="$used_before" -v n="$FILL_KEYS" 'BEGIN { printf "%.1f", (a - b) / n }')

# Each measurement sets M_<name>="req/s p50_us p99_us server_cpu_seconds run_seconds
# redis_cpu_seconds".
wrk_run() { # name url lua server_pid
  SERVER_PID=$4
  with_cpu $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$3" "$2" > "$TMP/wrk-$1.txt"
  local r; r=$(wrk_parse "$TMP/wrk-$1.txt")
  printf -v "M_$1" '%s %s %s %s' "$r" "$CPU_SECONDS" "${DURATION%s}" "$REDIS_CPU_SECONDS"
}
# REQUESTS requests (4x with a pipeline), 50 connections; the test is `-t get -r 100` unless
# other redis-benchmark arguments follow (`-r 100 HGET hash:__rand_int__ field`).
# RB_REQUESTS overrides the count.
rb_run() { # name port pipeline server_pid [redis-benchmark test arguments...]
  SERVER_PID=$4
  local n=${RB_REQUESTS:-$REQUESTS}; [ "$3" -gt 1 ] && n=$((n * 4))
  local test=("${@:5}"); [ ${#test[@]} -gt 0 ] || test=(-t get -r 100)
  with_cpu $LOAD_CPU redis-benchmark -p "$2" -n "$n" -c 50 -P "$3" --csv "${test[@]}" > "$TMP/rb-$1.csv" 2>/dev/null
  local r; r=$(rb_parse "$TMP/rb-$1.csv")
  [ -n "$r" ] || { echo "redis-benchmark $1 gave no result" >&2; exit 1; }
  printf -v "M_$1" '%s %s %s %s' "$r" "$CPU_SECONDS" \
    "$(awk -v n="$n" -v r="${r%% *}" 'BEGIN { printf "%.3f", n / r }')" "$REDIS_CPU_SECONDS"
}
# Sums measurements of the same workload (rounds): req/s over the summed run time, latency
# percentiles averaged, CPU seconds summed. combine OUT_NAME MEASUREMENT_NAME...
combine() {
  local out=$1 all="" m; shift
  for m in "$@"; do all+="${!m}"$'\n'; done
  printf -v "$out" '%s' "$(awk 'NF { q += $1 * $5; d += $5; a += $2; b += $3; c += $4; r += $6; n++ }
    END { printf "%.0f %.1f %.1f %.2f %.3f %.2f", q / d, a / n, b / n, c, d, r }' <<< "$all")"
}

# --- 1. HTTP hit path, with nginx's fixed 200 as the reference ---------------------------
progress "1. HTTP hits"
write_hot_lua
start_proxy PROXY_MAX_KEYS=10000 PROXY_TTL_MS=3600000
warm_hot_keys "$PROXY_PORT"
wrk_run http_hit "http://127.0.0.1:$PROXY_PORT" "$TMP/hot.lua" "$PROXY_PID"

# --- 3. RESP hit path vs redis-server's own GET, -P 1 and -P 16 ---------------------------
progress "3. RESP hits"
for P in 1 16; do
  rb_run "resp_proxy_$P" "$RESP_PORT" "$P" "$PROXY_PID"
  rb_run "resp_redis_$P" "$REDIS_PORT" "$P" "$REDIS_PID"
done
stop_proxy

if command -v nginx >/dev/null 2>&1; then
  NGINX_PORT=$(free_port)
  start_nginx_json "$NGINX_PORT"
  wrk_run nginx "http://127.0.0.1:$NGINX_PORT" "$TMP/hot.lua" "$NGINX_PID"
  kill "$NGINX_PID" 2>/dev/null || true
fi

# --- 2. HTTP miss path: every request is a key not cached (capacity 1000, 1M-key space) ----
progress "2. HTTP misses"
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

# --- 6. Tracking on against off (issue 13): RESP hits (100 cached keys) and misses (random
# keys over 1M with 1,000 cached), -P 1 and -P 16; two rounds, the modes interleaved (the
# second round in the other order) -----------------------------------------------------------
progress "6. tracking on against off (issue 13)"
HOT_KEYS=$(for i in $(seq 0 99); do printf 'key:%012d ' "$i"; done)
for round in 1 2; do
  modes=(tracking off); [ "$round" = 1 ] || modes=(off tracking)
  for mode in "${modes[@]}"; do
    start_proxy PROXY_MAX_KEYS=1000 PROXY_TTL_MS=3600000 PROXY_INVALIDATION=$mode
    # shellcheck disable=SC2086 # one argument per key
    redis-cli -p "$RESP_PORT" MGET $HOT_KEYS >/dev/null
    for P in 1 16; do
      rb_run "inv_hit${P}_${mode}_$round" "$RESP_PORT" "$P" "$PROXY_PID"
      RB_REQUESTS=$((REQUESTS / 2)) rb_run "inv_miss${P}_${mode}_$round" "$RESP_PORT" "$P" "$PROXY_PID" -t get -r 1000000
    done
    stop_proxy
  done
done
for w in hit1 hit16 miss1 miss16; do
  for mode in tracking off; do combine "M_inv_${w}_$mode" "M_inv_${w}_${mode}_1" "M_inv_${w}_${mode}_2"; done
done

# --- 7. Invalidation latency (issue 13): from a write acknowledged by Redis to the proxy
# answering the new value, LATENCY_WRITES writes over 100 cached keys; idle, then with
# redis-benchmark's -P 16 hits running on the same proxy; three runs of both --------------------------------------
progress "7. invalidation latency (issue 13)"
field_of() { tr ' ' '\n' <<< "$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
start_proxy PROXY_MAX_KEYS=10000 PROXY_TTL_MS=3600000
# shellcheck disable=SC2086 # the loaded run's keys are cached before, so its misses are the writes'
redis-cli -p "$RESP_PORT" MGET $HOT_KEYS >/dev/null
for run in 1 2 3; do
for load in idle loaded; do
  misses_before=$(stat_of misses)
  if [ "$load" = loaded ]; then
    $LOAD_CPU timeout 120 redis-benchmark -p "$RESP_PORT" -t get -r 100 -n 1000000000 -c 50 -P 16 -q >/dev/null 2>&1 &
    LOADER_PID=$!; PIDS+=("$LOADER_PID")
  fi
  line=$($LOAD_CPU timeout 120 "$EXAMPLES/invalidation_latency" "127.0.0.1:$REDIS_PORT" "127.0.0.1:$RESP_PORT" \
    "$LATENCY_WRITES" 100)
  if [ "$load" = loaded ]; then kill "$LOADER_PID" 2>/dev/null || true; wait "$LOADER_PID" 2>/dev/null || true; fi
  misses=$(($(stat_of misses) - misses_before))
  printf -v "LAT_${load}_$run" '%s refetches_per_write=%s' "$line" \
    "$(awk -v m="$misses" -v w="$LATENCY_WRITES" 'BEGIN { printf "%.2f", (m - 100) / w }')"
done
done
stop_proxy

# --- 8. Hit ratio and Redis CPU under a write stream (issue 13), tracking on against off:
# examples/read_write_stream GETs STREAM_KEYS cached keys through the proxy, READ_RATE a
# second, while it sets a tenth of them on Redis, WRITE_RATE a second, for STREAM_SECONDS;
# fixed rates, so both modes get the same load. Two rounds, the modes interleaved (the second
# round in the other order), summed ------------------------------------------------------------
progress "8. write stream (issue 13)"
for round in 1 2; do
  modes=(tracking off); [ "$round" = 1 ] || modes=(off tracking)
  for mode in "${modes[@]}"; do
    start_proxy PROXY_MAX_KEYS=$((STREAM_KEYS * 2)) PROXY_TTL_MS=60000 PROXY_INVALIDATION=$mode
    warm_keys "$STREAM_KEYS"
    h0=$(stat_of hits); m0=$(stat_of misses); i0=$(stat_of invalidations)
    r0=$(cpu_ticks "$REDIS_PID"); p0=$(cpu_ticks "$PROXY_PID")
    line=$($LOAD_CPU timeout $((STREAM_SECONDS + 60)) "$EXAMPLES/read_write_stream" "127.0.0.1:$REDIS_PORT" \
      "127.0.0.1:$RESP_PORT" "$WRITE_RATE" $((STREAM_KEYS / 10)) "$READ_RATE" "$STREAM_KEYS" "$STREAM_SECONDS")
    h1=$(stat_of hits); m1=$(stat_of misses); i1=$(stat_of invalidations)
    r1=$(cpu_ticks "$REDIS_PID"); p1=$(cpu_ticks "$PROXY_PID")
    stop_proxy
    # "reads hits misses writes invalidations redis_cpu_s proxy_cpu_s stale_reads"
    printf -v "STREAM_${mode}_$round" '%s %s %s %s %s %s %s %s' $((h1 - h0 + m1 - m0)) $((h1 - h0)) $((m1 - m0)) \
      "$(field_of "$line" writes)" $((i1 - i0)) "$(seconds_between "$r0" "$r1")" "$(seconds_between "$p0" "$p1")" \
      "$(field_of "$line" stale_reads)"
  done
done
for mode in tracking off; do
  a="STREAM_${mode}_1"; b="STREAM_${mode}_2"
  printf -v "STREAM_$mode" '%s' "$(printf '%s\n%s\n' "${!a}" "${!b}" | awk '{ for (i = 1; i <= NF; i++) t[i] += $i }
    END { printf "%d %d %d %d %d %.2f %.2f %d", t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8] }')"
done

# --- tables: ratios are of requests per server CPU-second, same run ------------------------
# label measurement [reference-measurement reference-name [second-reference name2] | note]:
# the ratio per cpu-s and of req/s to the reference, and of req/s to a second reference.
emit() {
  local rps p50 p99 cpu dur rcpu rrps rscpu rdur mine ref text
  read -r rps p50 p99 cpu dur rcpu <<< "$2"
  mine=$(per_cpu "$rps" "$cpu" "$dur")
  if [ -n "${4:-}" ] && [ -n "$3" ]; then
    read -r rrps _ _ rscpu rdur _ <<< "$3"
    ref=$(per_cpu "$rrps" "$rscpu" "$rdur")
    text="x$(ratio "$mine" "$ref") of $4 per cpu-s, x$(ratio "$rps" "$rrps") req/s"
    if [ -n "${6:-}" ] && [ -n "$5" ]; then text+="; x$(ratio "$rps" "${5%% *}") of $6 req/s"; fi
  else
    text=${3:-reference}
  fi
  row "$1" "$rps" "$p50" "$p99" "$cpu" "$mine" "$text" "$rcpu"
}
header "== 1-3. hits and misses (tracking on, the default)"
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

header "== 6. tracking on (default) against off, same run, two interleaved rounds (ABBA) summed"
for w in hit1 hit16 miss1 miss16; do
  on_m="M_inv_${w}_tracking"; off_m="M_inv_${w}_off"
  case $w in hit*) what="GET hit -P ${w#hit}" ;; *) what="GET miss -P ${w#miss}" ;; esac
  emit "resp $what (tracking)" "${!on_m}" "${!off_m}" "tracking off"
  emit "resp $what (off, ref)" "${!off_m}"
done

echo
echo "== 7. invalidation latency: write acknowledged by Redis -> proxy answers the new value"
printf '%-10s %7s %8s %8s %8s %8s %9s %14s %11s %11s %14s\n' load writes "p50 us" "p99 us" "p999 us" "max us" \
  timeouts "stale answers" "GET p50 us" "GET p99 us" "refetch/write"
for run in 1 2 3; do
for load in idle loaded; do
  l="LAT_${load}_$run"; l=${!l}
  printf '%-10s %7s %8s %8s %8s %8s %9s %14s %11s %11s %14s\n' "$load #$run" "$(field_of "$l" writes)" \
    "$(field_of "$l" p50_us)" "$(field_of "$l" p99_us)" "$(field_of "$l" p999_us)" "$(field_of "$l" max_us)" \
    "$(field_of "$l" timeouts)" "$(field_of "$l" stale_answers)" "$(field_of "$l" get_p50_us)" \
    "$(field_of "$l" get_p99_us)" "$(field_of "$l" refetches_per_write)"
  RESULTS+=("{\"name\":\"invalidation latency ($load, run $run)\",$(tr ' ' '\n' <<< "$l" | awk -F= '{ printf "%s\"%s\":%s", (NR > 1 ? "," : ""), $1, $2 }')}")
done
done

echo
echo "== 8. write stream: $READ_RATE GET/s over $STREAM_KEYS cached keys, $WRITE_RATE SET/s on Redis over" \
     "$((STREAM_KEYS / 10)) of them, ${STREAM_SECONDS}s x 2 rounds (TTL 60 s)"
printf '%-9s %9s %10s %8s %8s %12s %8s %9s %9s %11s\n' mode reads "hit ratio" misses writes "stale reads" \
  "invalid." "redis s" "proxy s" "reads/cpu-s"
for mode in tracking off; do
  m="STREAM_$mode"; read -r reads hits misses writes invals rcpu pcpu stale <<< "${!m}"
  hr=$(awk -v h="$hits" -v r="$reads" 'BEGIN { printf "%.4f", (r > 0 ? h / r : 0) }')
  printf '%-9s %9s %10s %8s %8s %12s %8s %9s %9s %11s\n' "$mode" "$reads" "$hr" "$misses" "$writes" "$stale" \
    "$invals" "$rcpu" "$pcpu" "$(awk -v r="$reads" -v c="$pcpu" 'BEGIN { printf "%.0f", (c > 0 ? r / c : 0) }')"
  RESULTS+=("{\"name\":\"write stream ($mode)\",\"reads\":$reads,\"hits\":$hits,\"misses\":$misses,\"hit_ratio\":$hr,\"writes\":$writes,\"stale_reads\":$stale,\"invalidations\":$invals,\"redis_cpu_s\":$rcpu,\"proxy_cpu_s\":$pcpu}")
done
read -r _ _ _ _ invals_on rcpu_on pcpu_on _ <<< "$STREAM_tracking"
read -r _ _ _ _ _ rcpu_off pcpu_off _ <<< "$STREAM_off"
echo "Redis CPU with tracking: x$(ratio "$rcpu_on" "$rcpu_off") of off"
# What tracking costs the proxy per invalidation: its CPU with tracking less its CPU
# without, same load, over the invalidations (each also brings the key's refetch).
echo "proxy CPU per invalidation (tracking less off, refetch included):" \
  "$(awk -v a="$pcpu_on" -v b="$pcpu_off" -v n="$invals_on" 'BEGIN { printf "%.1f", (n > 0 ? (a - b) * 1e6 / n : 0) }') us"
echo
echo "load average at end $(load_average)"
{
  echo "{\"cores\":$(nproc),\"pinning\":\"$PIN\",\"duration\":\"$DURATION\",\"connections\":$CONNECTIONS,\"results\":["
  (IFS=,; echo "${RESULTS[*]}")
  echo "]}"
} > "$OUT/results.json"
echo "JSON: $OUT/results.json"

# --- 5. Forwarded commands against twemproxy: HGET, LRANGE 0 99, GET (miss and hit) at -P 1
# and -P 16, and the -P 8 suite with PROXY_FORWARD=all against redis-server (its own script,
# tables and JSON: target/bench/forward.json; FORWARD_* knobs) ------------------------------
progress "5. forwarded commands against twemproxy (scripts/bench-forward.sh)"
scripts/bench-forward.sh || echo "note: the forwarding benchmark failed (see above)" >&2

# --- 8b. A Redis Cluster backend and TLS against nginx (their own scripts, tables and JSON:
# target/bench/cluster.json; BENCH_SKIP_EXTRA=1 leaves them out) ---------------------------
if [ "${BENCH_SKIP_EXTRA:-0}" != 1 ]; then
  progress "8b. Redis Cluster backend (scripts/bench-cluster.sh)"
  scripts/bench-cluster.sh || echo "note: the cluster benchmark failed (see above)" >&2
  progress "8c. TLS against nginx (scripts/bench-tls.sh)"
  scripts/bench-tls.sh || echo "note: the TLS benchmark failed (see above)" >&2
fi

# --- 9. Latency against offered load (open loop), then the HTML report ------------------------
progress "9. latency against offered load (open loop)"
scripts/bench-open-loop.sh
if [ -n "${REDIS_SRC:-}" ]; then
  progress "9b. Redis's own test suite through the proxy (scripts/redis-suite.sh)"
  scripts/redis-suite.sh || echo "note: the Redis suite run failed (see above)" >&2
fi
BENCH_SOAK_SECONDS=${BENCH_SOAK_SECONDS:-600}
if [ "$BENCH_SOAK_SECONDS" -gt 0 ]; then
  progress "10. soak, ${BENCH_SOAK_SECONDS}s (scripts/soak.sh)"
  SOAK_SECONDS=$BENCH_SOAK_SECONDS scripts/soak.sh || echo "note: the soak failed (see above)" >&2
fi
if command -v python3 >/dev/null 2>&1; then
  python3 scripts/bench-report.py
  if command -v chromium >/dev/null 2>&1; then scripts/report-check.sh
  else echo "note: the report is not checked in a browser: sudo apt-get install -y chromium" >&2; fi
else
  echo "note: no HTML report without python3 (sudo apt-get install -y python3)" >&2
fi
