#!/usr/bin/env bash
# Forwarded commands against twemproxy (section 5 of `make bench`; runs on its own too):
# ProxyRedis and twemproxy (Debian's nutcracker) in front of the same redis-server, and
# redis-server itself as a reference, with redis-benchmark at -P 1 and -P 16:
#   HGET hash:__rand_int__ field        (100 hashes, one 32-byte field): forwarded by both;
#   LRANGE list:__rand_int__ 0 99       (10 lists of 150 16-byte elements): forwarded by both;
#   GET key:__rand_int__, misses        (FORWARD_MISS_KEYS keys, the proxy with PROXY_TTL_MS=1
#                                        and 1,000 keys of capacity): through ProxyRedis a
#                                        cache miss fetched from Redis, NOT a forward (the
#                                        share of misses is measured from /stats); through
#                                        twemproxy a forward;
#   GET key:__rand_int__, hits          (100 keys, cached before): through ProxyRedis a cache
#                                        hit, Redis is not asked; through twemproxy a forward.
# Then `redis-benchmark -t set,get,incr,lpush,lrange_100 -P 8` through the proxy with
# PROXY_FORWARD=all against redis-server directly (one run per test so that each gets its
# own CPU figure; lrange_100 is sent as the command it stands for, `LRANGE mylist 0 99`, after
# the lpush run filled mylist, so that its run is not the LPUSH prefill redis-benchmark adds).
#
# The metric is requests per proxy CPU-second: requests / CPU seconds (user + system, all
# threads, /proc/PID/stat) the front process used during the run; both are single-node
# proxies with one event loop here (PROXY_WORKERS=1; nutcracker has one thread). Raw req/s
# is given too. Ratios: ProxyRedis / twemproxy per row.
#
# Knobs: FORWARD_REQUESTS (100000 per -P 1 run, 4x at -P 16, split over the rounds),
# FORWARD_ROUNDS (2; the order of the fronts is reversed every other round, ABBA),
# FORWARD_CONNECTIONS (50), FORWARD_MISS_KEYS (100000), FORWARD_SUITE_REQUESTS (200000 per
# test of the -P 8 suite). Everything listens on 127.0.0.1 and every run is bounded in count;
# the trap stops every process started here. Pinning as in bench.sh: servers (redis-server,
# proxies, nutcracker) on core 0, redis-benchmark on core 1.
# Output: tables on stdout, target/bench/forward.json (read by scripts/bench-report.py).
# shellcheck disable=SC2034,SC2154 # names built with printf -v and read back indirectly
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

REQUESTS=${FORWARD_REQUESTS:-100000}
ROUNDS=${FORWARD_ROUNDS:-2}
CONNECTIONS=${FORWARD_CONNECTIONS:-50}
MISS_KEYS=${FORWARD_MISS_KEYS:-100000}
SUITE_REQUESTS=${FORWARD_SUITE_REQUESTS:-200000}
OUT=target/bench
mkdir -p "$OUT"

need redis-server redis-server
need redis-cli redis-tools
need redis-benchmark redis-tools
need curl curl
if command -v nutcracker >/dev/null 2>&1; then HAVE_TWEMPROXY=1; else HAVE_TWEMPROXY=""
  echo "note: twemproxy not installed, its rows are skipped (sudo apt-get install -y nutcracker)" >&2; fi
[ -x "$PROXY_BIN" ] || cargo build --release --bin proxyredis
TICKS=$(getconf CLK_TCK)

# --- Redis: string keys, hashes, lists ---------------------------------------------------------
REDIS_PORT=$(free_port)
$SERVER_CPU redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!; PIDS+=("$REDIS_PID"); wait_port "$REDIS_PORT"
awk -v n="$MISS_KEYS" 'BEGIN { for (i = 0; i < n; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n",
  sprintf("key:%012d", i), sprintf("value:%026d", i) }' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
awk 'BEGIN { for (i = 0; i < 100; i++) printf "*4\r\n$4\r\nHSET\r\n$17\r\n%s\r\n$5\r\nfield\r\n$32\r\n%s\r\n",
  sprintf("hash:%012d", i), sprintf("field-value:%020d", i) }' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
awk 'BEGIN { for (i = 0; i < 10; i++) { printf "*152\r\n$5\r\nRPUSH\r\n$17\r\n%s\r\n", sprintf("list:%012d", i);
  for (j = 0; j < 150; j++) printf "$16\r\n%s\r\n", sprintf("element:%08d", j) } }' \
  | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
[ "$(redis-cli -p "$REDIS_PORT" LLEN list:000000000009)" = 150 ] || { echo "the lists were not made" >&2; exit 1; }

# --- the fronts ---------------------------------------------------------------------------------
stat_of() { curl -s "http://127.0.0.1:$1/stats" | grep -o "\"$2\":[^,}]*" | head -1 | cut -d: -f2 | tr -d '"'; }
# start_proxy NAME extra-env...: a proxy with one event loop on SERVER_CPU; sets NAME_PID,
# NAME_PORT (RESP) and NAME_HTTP, once its tracking connection is up and it forwards HGET.
start_proxy() {
  local name=$1 http resp pid state="" ok=""; shift
  http=$(free_port); resp=$(free_port)
  # shellcheck disable=SC2086 # SERVER_CPU is a command prefix or nothing
  env PROXY_HOST=127.0.0.1 PROXY_PORT="$http" PROXY_RESP_PORT="$resp" PROXY_WORKERS=1 \
    REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG=warn "$@" \
    $SERVER_CPU "$PROXY_BIN" --env-file /dev/null 2> "$TMP/$name.log" &
  pid=$!; PIDS+=("$pid"); wait_port "$http"; wait_port "$resp"
  for _ in $(seq 200); do
    state=$(stat_of "$http" state); [ "$state" = tracking ] || [ "$state" = off ] && break; sleep 0.05
  done
  # Forwarding starts once the proxy has read Redis's COMMAND table.
  for _ in $(seq 200); do
    [ "$(redis-cli -p "$resp" HGET hash:000000000000 field)" = "field-value:$(printf %020d 0)" ] && { ok=1; break; }
    sleep 0.05
  done
  [ -n "$ok" ] || { echo "proxy $name does not forward HGET (tracking: $state)" >&2; cat "$TMP/$name.log" >&2; exit 1; }
  printf -v "${name}_PID" '%s' "$pid"; printf -v "${name}_PORT" '%s' "$resp"; printf -v "${name}_HTTP" '%s' "$http"
}
progress "5. forwarded commands against twemproxy: starting redis-server, the proxies, nutcracker"
# proxy: the default PROXY_FORWARD=reads, long TTL (the hits); proxymiss: every GET a miss;
# proxyall: PROXY_FORWARD=all for the -P 8 suite.
start_proxy proxy PROXY_MAX_KEYS=10000 PROXY_TTL_MS=3600000
start_proxy proxymiss PROXY_MAX_KEYS=1000 PROXY_TTL_MS=1
start_proxy proxyall PROXY_MAX_KEYS=10000 PROXY_TTL_MS=3600000 PROXY_FORWARD=all
HOT_KEYS=$(for i in $(seq 0 99); do printf 'key:%012d ' "$i"; done)
# shellcheck disable=SC2086 # one argument per key
redis-cli -p "$proxy_PORT" MGET $HOT_KEYS >/dev/null
cached=$(stat_of "$proxy_HTTP" keys)
[ "${cached:-0}" -ge 100 ] || { echo "the proxy did not cache the 100 hot keys (${cached:-?})" >&2; exit 1; }
redis_PID=$REDIS_PID; redis_PORT=$REDIS_PORT
FRONTS=(proxy redis)
if [ -n "$HAVE_TWEMPROXY" ]; then
  twem_PORT=$(free_port); TWEM_STATS_PORT=$(free_port)
  cat > "$TMP/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$twem_PORT
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  timeout: 2000
  servers:
   - 127.0.0.1:$REDIS_PORT:1
YML
  $SERVER_CPU nutcracker -c "$TMP/nutcracker.yml" -s "$TWEM_STATS_PORT" -a 127.0.0.1 -o "$TMP/nutcracker.log" &
  twem_PID=$!; PIDS+=("$twem_PID"); wait_port "$twem_PORT"
  FRONTS=(proxy twem redis)
fi

# --- measuring -------------------------------------------------------------------------------------
seconds_between() { awk -v a="$2" -v b="$1" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }'; }
# redis-benchmark --csv (one test) -> "rps p50_us p99_us"
rb_parse() {
  awk '/^"/ && !/^"test"/ { gsub(/"/, ""); split($0, f, ","); printf "%.0f %.1f %.1f\n", f[2], f[5] * 1000, f[7] * 1000; exit }' "$1"
}
# measure NAME PORT FRONT_PID REQUESTS PIPELINE redis-benchmark-test-arguments...: sets
# M_NAME="req/s p50_us p99_us front_cpu_s run_s redis_cpu_s".
measure() {
  local name=$1 port=$2 pid=$3 n=$4 pipeline=$5 before rbefore after rafter r; shift 5
  before=$(cpu_ticks "$pid"); rbefore=$(cpu_ticks "$REDIS_PID")
  # shellcheck disable=SC2086 # LOAD_CPU is a command prefix or nothing
  $LOAD_CPU redis-benchmark -p "$port" -n "$n" -c "$CONNECTIONS" -P "$pipeline" --csv "$@" > "$TMP/rb-$name.csv" 2>/dev/null
  after=$(cpu_ticks "$pid"); rafter=$(cpu_ticks "$REDIS_PID")
  r=$(rb_parse "$TMP/rb-$name.csv")
  [ -n "$r" ] || { echo "redis-benchmark $name gave no result" >&2; exit 1; }
  printf -v "M_$name" '%s %s %s %s' "$r" "$(seconds_between "$before" "$after")" \
    "$(awk -v n="$n" -v r="${r%% *}" 'BEGIN { printf "%.3f", n / r }')" "$(seconds_between "$rbefore" "$rafter")"
}
# Sums rounds: req/s over the summed run time, latency percentiles averaged, CPU summed.
combine() { # OUT_NAME MEASUREMENT_NAME...
  local out=$1 all="" m; shift
  for m in "$@"; do all+="${!m}"$'\n'; done
  printf -v "$out" '%s' "$(awk 'NF { q += $1 * $5; d += $5; a += $2; b += $3; c += $4; r += $6; n++ }
    END { printf "%.0f %.1f %.1f %.2f %.3f %.2f", q / d, a / n, b / n, c, d, r }' <<< "$all")"
}
per_cpu() { awk -v r="$1" -v c="$2" -v d="$3" 'BEGIN { if (c > 0) printf "%.0f", r * d / c; else print 0 }'; }

WORKLOADS=(hget lrange getmiss gethit)
test_of() { # workload -> redis-benchmark test arguments
  case $1 in
    hget) echo "-r 100 HGET hash:__rand_int__ field" ;;
    lrange) echo "-r 10 LRANGE list:__rand_int__ 0 99" ;;
    getmiss) echo "-r $MISS_KEYS GET key:__rand_int__" ;;
    gethit) echo "-r 100 GET key:__rand_int__" ;;
  esac
}
port_of() { # workload front -> "port pid"
  local f=$2; [ "$1" = getmiss ] && [ "$f" = proxy ] && f=proxymiss
  local p="${f}_PORT" i="${f}_PID"; echo "${!p} ${!i}"
}
miss_before=$(stat_of "$proxymiss_HTTP" misses); hit_before=$(stat_of "$proxymiss_HTTP" hits)
for ((round = 1; round <= ROUNDS; round++)); do
  order=("${FRONTS[@]}"); ((round % 2)) || mapfile -t order < <(printf '%s\n' "${FRONTS[@]}" | tac)
  for P in 1 16; do
    n=$((REQUESTS / ROUNDS)); [ "$P" = 1 ] || n=$((n * 4))
    for w in "${WORKLOADS[@]}"; do
      progress "5. $w -P $P, round $round of $ROUNDS: ${order[*]}"
      for front in "${order[@]}"; do
        read -r port pid <<< "$(port_of "$w" "$front")"
        # shellcheck disable=SC2046 # test_of is several arguments
        measure "${w}_${front}_${P}_$round" "$port" "$pid" "$n" "$P" $(test_of "$w")
      done
    done
  done
done
misses=$(($(stat_of "$proxymiss_HTTP" misses) - miss_before)); hits=$(($(stat_of "$proxymiss_HTTP" hits) - hit_before))
MISS_SHARE=$(awk -v m="$misses" -v h="$hits" 'BEGIN { if (m + h > 0) printf "%.1f", 100 * m / (m + h); else print "?" }')
for P in 1 16; do
  for w in "${WORKLOADS[@]}"; do
    for front in "${FRONTS[@]}"; do
      names=(); for ((round = 1; round <= ROUNDS; round++)); do names+=("M_${w}_${front}_${P}_$round"); done
      combine "M_${w}_${front}_$P" "${names[@]}"
    done
  done
done

# --- the -P 8 suite, PROXY_FORWARD=all against redis-server ------------------------------------------
SUITE=(set get incr lpush lrange_100)
suite_args() { if [ "$1" = lrange_100 ]; then echo "LRANGE mylist 0 99"; else echo "-t $1"; fi; }
for ((round = 1; round <= ROUNDS; round++)); do
  order=(proxyall redis); ((round % 2)) || order=(redis proxyall)
  progress "5. -P 8 suite, round $round of $ROUNDS: ${order[*]}"
  for front in "${order[@]}"; do
    p="${front}_PORT"; i="${front}_PID"
    for t in "${SUITE[@]}"; do
      # shellcheck disable=SC2046 # suite_args is several arguments
      measure "suite_${t}_${front}_$round" "${!p}" "${!i}" $((SUITE_REQUESTS / ROUNDS)) 8 $(suite_args "$t")
    done
  done
done
for t in "${SUITE[@]}"; do
  for front in proxyall redis; do
    names=(); for ((round = 1; round <= ROUNDS; round++)); do names+=("M_suite_${t}_${front}_$round"); done
    combine "M_suite_${t}_$front" "${names[@]}"
  done
done

# --- tables ---------------------------------------------------------------------------------------
RESULTS=()
row() { # label req/s p50 p99 front_cpu redis_cpu per_cpu ratio-text
  printf '%-52s %9s %8s %8s %7s %7s %10s   %s\n' "$@"
  RESULTS+=("{\"name\":\"$1\",\"req_per_s\":$2,\"p50_us\":$3,\"p99_us\":$4,\"server_cpu_s\":$5,\"redis_cpu_s\":$6,\"req_per_cpu_s\":$7,\"ratio\":\"$8\"}")
}
header() {
  printf '\n%s\n%-52s %9s %8s %8s %7s %7s %10s   %s\n' "$1" workload "req/s" "p50 us" "p99 us" "cpu s" \
    "redis s" "req/cpu-s" "ratio (req/cpu-s: requests per CPU-second of the front process)"
}
# emit LABEL MEASUREMENT [REF_MEASUREMENT REF_NAME]
emit() {
  local rps p50 p99 cpu dur rcpu rrps rcpuref rdur mine ref text="reference"
  read -r rps p50 p99 cpu dur rcpu <<< "$2"
  mine=$(per_cpu "$rps" "$cpu" "$dur")
  if [ -n "${4:-}" ]; then
    read -r rrps _ _ rcpuref rdur _ <<< "$3"
    ref=$(per_cpu "$rrps" "$rcpuref" "$rdur")
    text="x$(ratio "$mine" "$ref") of $4 per cpu-s, x$(ratio "$rps" "$rrps") req/s"
  fi
  row "$1" "$rps" "$p50" "$p99" "$cpu" "$rcpu" "$mine" "$text"
}
label() { case $1 in
  hget) echo "HGET" ;; lrange) echo "LRANGE 0 99" ;; getmiss) echo "GET miss" ;; gethit) echo "GET hit" ;; esac; }
what() { # workload front -> what the front does with it
  case "$1/$2" in
    getmiss/proxy) echo "proxy, cache miss -> Redis GET" ;; gethit/proxy) echo "proxy, cache hit" ;;
    */proxy) echo "proxy, forwarded" ;; */twem) echo "twemproxy, forwarded, ref" ;; */redis) echo "redis-server, ref" ;;
  esac
}
echo
echo "== 5. forwarded commands: ProxyRedis against twemproxy in front of the same Redis," \
     "redis-benchmark -c $CONNECTIONS, $REQUESTS requests at -P 1 and $((REQUESTS * 4)) at -P 16 in $ROUNDS" \
     "rounds (ABBA), $PIN"
header "ratio: ProxyRedis / twemproxy (x1.00 = even); GET through ProxyRedis is a cache miss or hit, not a forward"
for P in 1 16; do
  for w in "${WORKLOADS[@]}"; do
    pm="M_${w}_proxy_$P"; tm="M_${w}_twem_$P"; rm_="M_${w}_redis_$P"
    if [ -n "$HAVE_TWEMPROXY" ]; then
      emit "resp $(label "$w") -P $P ($(what "$w" proxy))" "${!pm}" "${!tm}" twemproxy
      emit "resp $(label "$w") -P $P ($(what "$w" twem))" "${!tm}" "${!rm_}" redis
    else
      emit "resp $(label "$w") -P $P ($(what "$w" proxy))" "${!pm}" "${!rm_}" redis
    fi
    emit "resp $(label "$w") -P $P ($(what "$w" redis))" "${!rm_}"
  done
done
echo "GET miss rows: ${MISS_SHARE}% of the proxy's GETs were misses ($misses misses, $hits hits; TTL 1 ms," \
     "capacity 1,000, $MISS_KEYS keys)"
[ -n "$HAVE_TWEMPROXY" ] || echo "(twemproxy rows skipped: sudo apt-get install -y nutcracker)"
echo
echo "summary, ProxyRedis / twemproxy per proxy CPU-second (req/s):"
if [ -n "$HAVE_TWEMPROXY" ]; then
  for w in "${WORKLOADS[@]}"; do
    line="  $(printf '%-12s' "$(label "$w")")"
    for P in 1 16; do
      pm="M_${w}_proxy_$P"; tm="M_${w}_twem_$P"
      read -r a _ _ ac ad _ <<< "${!pm}"; read -r b _ _ bc bd _ <<< "${!tm}"
      line+="  -P $P: x$(ratio "$(per_cpu "$a" "$ac" "$ad")" "$(per_cpu "$b" "$bc" "$bd")") (x$(ratio "$a" "$b") req/s)"
    done
    echo "$line"
  done
fi

header "== 5b. redis-benchmark -P 8 -c $CONNECTIONS, $SUITE_REQUESTS requests per test: the proxy with PROXY_FORWARD=all against redis-server"
for t in "${SUITE[@]}"; do
  pm="M_suite_${t}_proxyall"; rm_="M_suite_${t}_redis"
  case $t in
    get) note="proxy, cache hit" ;; lrange_100) note="proxy, forwarded LRANGE mylist 0 99" ;; *) note="proxy, forwarded write" ;;
  esac
  emit "$t -P 8 ($note)" "${!pm}" "${!rm_}" redis
  emit "$t -P 8 (redis-server, ref)" "${!rm_}"
done
echo "(get: the key was set by the set run through the same proxy and is then cached, so these are hits;" \
     "a client's pipelined writes go to Redis as one chain on one lane connection, in its order)"
echo
{
  echo "{\"cores\":$(nproc),\"pinning\":\"$PIN\",\"connections\":$CONNECTIONS,\"requests\":$REQUESTS,\"rounds\":$ROUNDS,\"miss_share_pct\":\"$MISS_SHARE\",\"results\":["
  (IFS=,; echo "${RESULTS[*]}")
  echo "]}"
} > "$OUT/forward.json"
echo "JSON: $OUT/forward.json"
