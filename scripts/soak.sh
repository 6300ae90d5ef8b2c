#!/usr/bin/env bash
# `make soak`: the release proxy under normal and hostile load at once for SOAK_SECONDS
# (default 600), its RSS sampled every second. Prints a table per 10 s window (RSS MiB, and
# the probe's miss and forwarded-HGET latency, below) and the RSS minimum and maximum after a
# warm-up of SOAK_WARMUP seconds (default 60); exits non-zero if
# the proxy died, stopped answering, or passed SOAK_RSS_LIMIT_MIB (default 2048, where it is
# killed so a regression cannot take the machine's memory).
#
# Normal load: redis-benchmark GET -P 16 on cached keys (RESP), wrk on /lookup of cached
# keys, wrk on /lookup of fresh keys (every request a miss, fetched from Redis).
# Hostile load: never-reading pipeliners of 20,000 GETs of a 1 MB key (RESP and HTTP),
# re-opened every 30 s; slow senders trickling a request that never completes, one byte
# every 200 ms; MGETs naming the 1 MB key 3,000 times. Forwarding attackers: (a) a client
# pipelining 100 `LRANGE biglist 0 -1` (each reply about 3 MB, over the soak's
# PROXY_MAX_REPLY_BYTES) that reads for 3 s and closes, again every second; (b) `SRANDMEMBER
# one -SOAK_SRAND_COUNT` (5,000,000 copies of a 3-byte member, about 45 MB of reply built by
# Redis): 100 pipelined every 10 s to a second, strict proxy (the default, negative counts
# refused), and 4 pipelined every 10 s to the main proxy (two of them with a tenth of the
# count, 4.5 MB), which allows it
# (PROXY_FORWARD_ALLOW=srandmember), so Redis builds the replies and the reply limit refuses
# them; (c) two clients pipelining 20,000 forwarded `LRANGE list100 0 99` that never read,
# re-opened every 30 s. Everything listens on 127.0.0.1, and every client is bounded in
# count and time.
# Measured besides the RSS: what the attackers cost everyone else, scripts/soak-probe.py, a
# client of its own asking 50 cache misses (fresh keys) and 50 forwarded HGETs a second, one
# at a time, with their p50/p99/max per 10 s window; after SOAK_SECONDS every load stops and
# the RSS is sampled 15 s more (memory returned to the allocator), then the proxy gets
# SIGTERM with a never-reading client connected.
# The proxy runs with the defaults of every limit except PROXY_MAX_REPLY_BYTES (2 MiB here,
# so that the 1 MB key is still served and the forwarded attackers' replies are over it) and
# PROXY_FORWARD_ALLOW=srandmember; any PROXY_* / REDIS_* variable set in the environment
# (e.g. PROXY_MAX_BUFFER_BYTES) passes through to it.
# Output: the tables on stdout; target/soak/rss.txt ("second MiB"), target/soak/probe.txt
# (the probe's windows), read by scripts/bench-report.py.
# shellcheck disable=SC2016 # the bash -c programs get their arguments as $1, $2
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
WARMUP=${SOAK_WARMUP:-60}
RSS_LIMIT_MIB=${SOAK_RSS_LIMIT_MIB:-2048}
KEYS=${SOAK_KEYS:-10000}
SRAND_COUNT=${SOAK_SRAND_COUNT:-5000000}
COOLDOWN=20
# The release build, where cargo puts it (CARGO_TARGET_DIR when set); PROXY_BIN runs another.
PROXY_BIN=${PROXY_BIN:-${CARGO_TARGET_DIR:-target}/release/proxyredis}
[ "$WARMUP" -lt "$SOAK_SECONDS" ] || WARMUP=$((SOAK_SECONDS / 2))
OUT=target/soak
mkdir -p "$OUT"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  # Our own background jobs, by pid, and the children they started.
  for p in "${PIDS[@]}"; do
    pkill -TERM -P "$p" 2>/dev/null || true
    kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing $1: sudo apt-get install -y $2" >&2; exit 1; }; }
need redis-server redis-server
need redis-cli redis-tools
need redis-benchmark redis-tools
need wrk wrk
need curl curl
need python3 python3

port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# Below the ephemeral range (32768+), so no client socket holds the port.
# pick_port VAR: a free port, never one handed out before in this run.
TAKEN=" "
pick_port() {
  local p=$((20000 + RANDOM % 12000))
  while [[ $TAKEN == *" $p "* ]] || ! port_free "$p"; do p=$((p + 1)); done
  TAKEN+="$p "
  printf -v "$1" '%s' "$p"
}
wait_port() { for _ in $(seq 200); do port_free "$1" || return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null && [ -n "$(rss_kib "$1")" ]; }

echo "== building the release binary"
cargo build --release --bin proxyredis

# --- Redis: KEYS keys "key:%012d" (redis-benchmark's key names) and the 1 MB key "big" ---
pick_port REDIS_PORT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=("$!"); wait_port "$REDIS_PORT"
awk -v n="$KEYS" 'BEGIN { for (i = 0; i < n; i++) { k = sprintf("key:%012d", i); v = sprintf("value:%026d", i);
  printf "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n", k, v } }' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
head -c 1048576 /dev/zero | tr '\0' x > "$TMP/big.value"
redis-cli -p "$REDIS_PORT" -x SET big < "$TMP/big.value" >/dev/null
# For the forwarding attackers and the probe: biglist (30,000 elements of 100 bytes, about
# 3 MB as a reply), list100 (100 elements of 16 bytes), the one-member set "one", a hash.
awk 'BEGIN { v = sprintf("%0100d", 0); for (i = 0; i < 30; i++) { printf "*1002\r\n$5\r\nRPUSH\r\n$7\r\nbiglist\r\n";
  for (j = 0; j < 1000; j++) printf "$100\r\n%s\r\n", v }
  printf "*102\r\n$5\r\nRPUSH\r\n$7\r\nlist100\r\n"; for (j = 0; j < 100; j++) printf "$16\r\n%s\r\n", sprintf("element:%08d", j) }' \
  | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
redis-cli -p "$REDIS_PORT" SADD one one >/dev/null
redis-cli -p "$REDIS_PORT" HSET hash:probe f probe-value >/dev/null

# --- the proxy -----------------------------------------------------------------------------
pick_port PROXY_PORT; pick_port RESP_PORT
env PROXY_HOST=127.0.0.1 PROXY_PORT="$PROXY_PORT" PROXY_RESP_PORT="$RESP_PORT" \
  REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG="${PROXY_LOG:-warn}" \
  PROXY_MAX_KEYS="${PROXY_MAX_KEYS:-$((KEYS * 2))}" PROXY_TTL_MS="${PROXY_TTL_MS:-30000}" \
  PROXY_MAX_REPLY_BYTES="${PROXY_MAX_REPLY_BYTES:-2097152}" PROXY_FORWARD_ALLOW="${PROXY_FORWARD_ALLOW:-srandmember}" \
  "$PROXY_BIN" --env-file /dev/null 2> "$OUT/proxy.log" &
PROXY_PID=$!; PIDS+=("$PROXY_PID"); wait_port "$PROXY_PORT"; wait_port "$RESP_PORT"
# The strict proxy: the same, without PROXY_FORWARD_ALLOW, so negative counts are refused.
pick_port STRICT_PORT; pick_port STRICT_RESP_PORT
env PROXY_HOST=127.0.0.1 PROXY_PORT="$STRICT_PORT" PROXY_RESP_PORT="$STRICT_RESP_PORT" PROXY_WORKERS=1 \
  REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG="${PROXY_LOG:-warn}" PROXY_FORWARD_ALLOW= \
  PROXY_MAX_REPLY_BYTES="${PROXY_MAX_REPLY_BYTES:-2097152}" \
  "$PROXY_BIN" --env-file /dev/null 2> "$OUT/proxy-strict.log" &
STRICT_PID=$!; PIDS+=("$STRICT_PID"); wait_port "$STRICT_PORT"; wait_port "$STRICT_RESP_PORT"
# Forwarding starts once each proxy has read Redis's COMMAND table.
forwards() { [ "$(timeout 5 redis-cli -p "$1" HGET hash:probe f 2>/dev/null)" = probe-value ]; }
for _ in $(seq 200); do forwards "$RESP_PORT" && forwards "$STRICT_RESP_PORT" && break; sleep 0.05; done
if ! forwards "$RESP_PORT" || ! forwards "$STRICT_RESP_PORT"; then echo "the proxies do not forward HGET" >&2; exit 1; fi
# Warm the cache: every key through MGETs of 100, and the big key.
awk -v n="$KEYS" 'BEGIN { b = 100; for (i = 0; i < n; i += b) { m = (n - i < b) ? n - i : b;
  printf "*%d\r\n$4\r\nMGET\r\n", m + 1; for (j = i; j < i + m; j++) printf "$16\r\n%s\r\n", sprintf("key:%012d", j) } }' \
  | redis-cli -p "$RESP_PORT" --pipe >/dev/null
redis-cli -p "$RESP_PORT" GET big | wc -c >/dev/null

START=$(date +%s)
END=$((START + SOAK_SECONDS))
left() { echo $((END - $(date +%s))); }
echo "== soak: ${SOAK_SECONDS}s, proxy pid $PROXY_PID (HTTP $PROXY_PORT, RESP $RESP_PORT), Redis $REDIS_PORT, $(nproc) cores"

# --- normal load ---------------------------------------------------------------------------
timeout $((SOAK_SECONDS + 5)) redis-benchmark -h 127.0.0.1 -p "$RESP_PORT" -t get -P 16 -c 16 \
  -r "$KEYS" -n 2000000000 -q > "$OUT/redis-benchmark.txt" 2>&1 &
RB_PID=$!; PIDS+=("$RB_PID")
cat > "$TMP/hot.lua" <<LUA
local i = 0
request = function()
  i = (i + 7919) % $KEYS
  return wrk.format("GET", string.format("/lookup?key=key:%012d", i))
end
LUA
timeout $((SOAK_SECONDS + 10)) wrk -t1 -c16 -d"${SOAK_SECONDS}s" --timeout 5s -s "$TMP/hot.lua" \
  "http://127.0.0.1:$PROXY_PORT" > "$OUT/wrk-hot.txt" 2>&1 &
WRK_PIDS=("$!"); PIDS+=("$!")
cat > "$TMP/fresh.lua" <<'LUA'
local n = 0
local prefix = "fresh:" .. os.time() .. ":"
request = function()
  n = n + 1
  return wrk.format("GET", "/lookup?key=" .. prefix .. n)
end
LUA
timeout $((SOAK_SECONDS + 10)) wrk -t1 -c4 -d"${SOAK_SECONDS}s" --timeout 5s -s "$TMP/fresh.lua" \
  "http://127.0.0.1:$PROXY_PORT" > "$OUT/wrk-fresh.txt" 2>&1 &
WRK_PIDS+=("$!"); PIDS+=("$!")

# --- hostile load --------------------------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" }' > "$TMP/flood.resp"
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "GET /lookup?key=big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" }' > "$TMP/flood.http"
awk 'BEGIN { printf "*3001\r\n$4\r\nMGET\r\n"; for (i = 0; i < 3000; i++) printf "$3\r\nbig\r\n" }' > "$TMP/mget.resp"

# A never-reading pipeliner on port $1 sending file $2, opened every 30 s until the end.
pipeliner() {
  local t0
  while [ "$(left)" -gt 0 ]; do
    t0=$(date +%s)
    # timeout ends the whole attempt (cat blocked by back-pressure included) after 30 s;
    # the socket then closes with its replies unread. If the proxy cuts it off sooner, the
    # next one still waits for its turn.
    timeout 30 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat "$2" >&3 && exec sleep 31' _ "$1" "$2" || true
    while [ $(($(date +%s) - t0)) -lt 30 ] && [ "$(left)" -gt 0 ]; do sleep 1; done
  done
}
# Slow senders: every 10 s, 8 connections (half HTTP, half RESP) trickling a request that
# never completes, one byte every 200 ms, each for at most 12 s.
slow_sender() { # port payload
  timeout 12 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
    p=$2
    for ((i = 0; i < 60; i++)); do
      c=${p:i:1}; printf "%s" "${c:-a}" >&3 || exit 0; sleep 0.2
    done' _ "$1" "$2" 2>/dev/null || true
}
slow_senders() {
  local http=$'GET /lookup?key=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '
  local resp=$'*2\r\n$3\r\nGET\r\n$1000\r\n'
  while [ "$(left)" -gt 12 ]; do
    for _ in 1 2 3 4; do slow_sender "$PROXY_PORT" "$http" & slow_sender "$RESP_PORT" "$resp" & done
    sleep 10
  done
  wait
}
# Repeated-key MGETs: every 5 s one, reading only the first line of the answer (so a huge
# reply is not taken in here); the first lines are counted at the end.
mgets() {
  while [ "$(left)" -gt 0 ]; do
    { timeout 20 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat "$2" >&3 && IFS= read -r -t 15 line <&3 && printf "%s\n" "$line"' \
        _ "$RESP_PORT" "$TMP/mget.resp" || echo "(no answer)"; } | tr -d '\r' >> "$TMP/mget.answers"
    sleep 5
  done
}

# --- forwarding attackers ------------------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 100; i++) printf "*4\r\n$6\r\nLRANGE\r\n$7\r\nbiglist\r\n$1\r\n0\r\n$2\r\n-1\r\n" }' > "$TMP/lrange-big.resp"
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "*4\r\n$6\r\nLRANGE\r\n$7\r\nlist100\r\n$1\r\n0\r\n$2\r\n99\r\n" }' > "$TMP/lrange-unread.resp"
srand_resp() { # copies count
  awk -v n="$1" -v c="-$2" 'BEGIN { for (i = 0; i < n; i++)
    printf "*3\r\n$11\r\nSRANDMEMBER\r\n$3\r\none\r\n$%d\r\n%s\r\n", length(c), c }'
}
srand_resp 100 "$SRAND_COUNT" > "$TMP/srand-strict.resp"
# Allowed: two of the full count, and two of a tenth (still over the reply limit, built by
# Redis within REDIS_TIMEOUT_MS, so that the reply limit is what answers them).
{ srand_resp 2 $((SRAND_COUNT / 10)); srand_resp 2 "$SRAND_COUNT"; } > "$TMP/srand-allowed.resp"
# Sends file $2 to port $1 and reads for $3 seconds, then closes; the error replies it got
# (one line each, "-ERR ...") are appended to file $4, and "attempt" once per attempt.
send_and_read() {
  echo attempt >> "$4"
  timeout "$3" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat "$2" >&3 && cat <&3' _ "$1" "$2" 2>/dev/null \
    | grep -a $'^-.*\r$' | tr -d '\r' >> "$4" || true
}
# (a) 100 LRANGE biglist 0 -1 (each reply about 3 MB, over the reply limit), read for 3 s,
# closed; again a second later.
lrange_big() { while [ "$(left)" -gt 0 ]; do send_and_read "$RESP_PORT" "$TMP/lrange-big.resp" 3 "$TMP/lrange-big.answers"; sleep 1; done; }
# (b) every 10 s: 100 SRANDMEMBER one -N to the strict proxy (refused), 4 to the main proxy
# (allowed: Redis builds each reply, the proxy drops it past the reply limit), read for 8 s;
# a line cut by the end of the read is not counted.
srand() {
  while [ "$(left)" -gt 0 ]; do
    send_and_read "$STRICT_RESP_PORT" "$TMP/srand-strict.resp" 8 "$TMP/srand-strict.answers" &
    send_and_read "$RESP_PORT" "$TMP/srand-allowed.resp" 8 "$TMP/srand-allowed.answers"
    wait
    sleep 2
  done
}
ATTACK_PIDS=()
pipeliner "$RESP_PORT" "$TMP/flood.resp" 2>/dev/null &
ATTACK_PIDS+=("$!")
pipeliner "$PROXY_PORT" "$TMP/flood.http" 2>/dev/null &
ATTACK_PIDS+=("$!")
slow_senders 2>/dev/null &
ATTACK_PIDS+=("$!")
mgets 2>/dev/null &
ATTACK_PIDS+=("$!")
lrange_big 2>/dev/null &
ATTACK_PIDS+=("$!")
srand 2>/dev/null &
ATTACK_PIDS+=("$!")
# (c) forwarded LRANGEs pipelined and never read, two clients, re-opened every 30 s.
pipeliner "$RESP_PORT" "$TMP/lrange-unread.resp" 2>/dev/null &
ATTACK_PIDS+=("$!")
pipeliner "$RESP_PORT" "$TMP/lrange-unread.resp" 2>/dev/null &
ATTACK_PIDS+=("$!")
PIDS+=("${ATTACK_PIDS[@]}")
# Stops background loops by pid: their children first (an attempt under way), then the loop.
stop_jobs() { local p; for p in "$@"; do pkill -TERM -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; }

# --- the well-behaved client: miss and forwarded-HGET latency per 10 s window ----------------
python3 scripts/soak-probe.py "$RESP_PORT" $((SOAK_SECONDS + COOLDOWN)) --hash hash:probe --field f \
  > "$OUT/probe.txt" 2> "$OUT/probe.err" &
PROBE_PID=$!; PIDS+=("$PROBE_PID")

# --- RSS every second (and the strict proxy's) -------------------------------------------------
: > "$OUT/rss.txt"
: > "$OUT/rss-strict.txt"
died=""
over=""
over_limit() { local k; k=$(rss_kib "$PROXY_PID"); [ "${k:-0}" -gt $((RSS_LIMIT_MIB * 1024)) ]; }
for ((s = 1; s <= SOAK_SECONDS; s++)); do
  # Paced against the start, so the samples do not drift; the limit is checked at 10 Hz.
  while [ "$(date +%s)" -lt $((START + s)) ]; do
    if over_limit; then over=$s; break; fi
    sleep 0.1
  done
  if ! alive "$PROXY_PID"; then died=$s; break; fi
  kib=$(rss_kib "$PROXY_PID"); kib=${kib:-0}
  printf '%d %.1f\n' "$s" "$(awk -v k="$kib" 'BEGIN { print k / 1024 }')" >> "$OUT/rss.txt"
  kib=$(rss_kib "$STRICT_PID"); printf '%d %.1f\n' "$s" "$(awk -v k="${kib:-0}" 'BEGIN { print k / 1024 }')" >> "$OUT/rss-strict.txt"
  if [ -n "$over" ] || over_limit; then
    over=$s; kill -KILL "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; break
  fi
done

# The proxy still answers at the end (a cached key and a miss), before the load is stopped.
final_ok=""
if [ -z "$died" ] && [ -z "$over" ]; then
  hit=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/lookup?key=key:000000000001" || true)
  miss=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/lookup?key=soak-end-$$" || true)
  resp=$(timeout 5 redis-cli -p "$RESP_PORT" GET key:000000000002 || true)
  [ "$hit" = 200 ] && [ "$miss" = 404 ] && [ "$resp" = "value:00000000000000000000000002" ] && final_ok=1
fi

# Counters of the forwarding lane, while the attackers are still there.
STATS_AT_END=$(curl -s -m 5 "http://127.0.0.1:$PROXY_PORT/stats" || true)
STRICT_STATS=$(curl -s -m 5 "http://127.0.0.1:$STRICT_PORT/stats" || true)
# Every attacker stops, then the normal load (wrk prints its summary when its duration is
# over, a second or two from now); the RSS is sampled COOLDOWN seconds more, the probe going on.
stop_jobs "${ATTACK_PIDS[@]}"
for p in "${WRK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
kill "$RB_PID" 2>/dev/null || true
STOPPED=$(($(date +%s) - START))
if [ -z "$died" ] && [ -z "$over" ]; then
  for ((s = SOAK_SECONDS + 1; s <= SOAK_SECONDS + COOLDOWN; s++)); do
    while [ "$(date +%s)" -lt $((START + s)) ]; do sleep 0.1; done
    if ! alive "$PROXY_PID"; then died=$s; break; fi
    kib=$(rss_kib "$PROXY_PID")
    printf '%d %.1f\n' "$s" "$(awk -v k="${kib:-0}" 'BEGIN { print k / 1024 }')" >> "$OUT/rss.txt"
    kib=$(rss_kib "$STRICT_PID")
    printf '%d %.1f\n' "$s" "$(awk -v k="${kib:-0}" 'BEGIN { print k / 1024 }')" >> "$OUT/rss-strict.txt"
  done
fi
wait "$PROBE_PID" 2>/dev/null || true

# --- report --------------------------------------------------------------------------------
echo
echo "== over time, per 10 s window: the proxy's RSS (at the window's end and its peak in it) and what a"
echo "   well-behaved client saw (scripts/soak-probe.py: 50 misses/s on fresh keys, 50 forwarded HGET/s)"
echo "   every load stops after second $SOAK_SECONDS (the last windows: no load but the probe)"
printf '%7s %8s %8s | %6s %8s %8s %9s | %6s %8s %8s %9s | %6s\n' second "RSS MiB" "peak" \
  misses "p50 ms" "p99 ms" "max ms" hgets "p50 ms" "p99 ms" "max ms" errors
awk 'NR == FNR { rss[$1] = $2; next }
  { w = $1; peak = 0; for (s = w - 9; s <= w; s++) if ((s in rss) && rss[s] > peak) peak = rss[s]
    printf "%7d %8s %8.1f | %6d %8.2f %8.2f %9.2f | %6d %8.2f %8.2f %9.2f | %6d\n", w, ((w in rss) ? rss[w] : "-"),
      peak, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$OUT/rss.txt" "$OUT/probe.txt"
echo
rss_at() { awk -v s="$1" '$1 == s { print $2 }' "$OUT/rss.txt"; }
echo "RSS: $(rss_at 1) MiB at second 1, peak $(awk '$2 > m { m = $2 } END { print m }' "$OUT/rss.txt") MiB," \
     "$(rss_at "$SOAK_SECONDS") MiB when the load stopped (second $SOAK_SECONDS; every load was gone by second $STOPPED)," \
     "$(rss_at $((SOAK_SECONDS + 15))) MiB 15 s after the load stopped"
echo "strict proxy RSS: peak $(awk '$2 > m { m = $2 } END { print m }' "$OUT/rss-strict.txt") MiB," \
     "$(awk -v s=$((SOAK_SECONDS + 15)) '$1 == s { print $2 }' "$OUT/rss-strict.txt") MiB 15 s after the load stopped"
awk -v w="$WARMUP" '$1 > w { if (n == 0 || $2 < min) min = $2; if ($2 > max) max = $2; n++ }
  END { if (n) printf "after the %d s warm-up (%d samples): min %.1f MiB, max %.1f MiB\n", w, n, min, max;
        else print "no samples after the warm-up" }' "$OUT/rss.txt"
echo "normal load:"
# redis-benchmark -q prints "GET: rps=<last interval> (overall: <mean>) ..." every 250 ms.
tr '\r' '\n' < "$OUT/redis-benchmark.txt" | grep -a 'rps=' > "$TMP/rb.lines" || true
rb_overall=$(tail -n 1 "$TMP/rb.lines" | sed -n 's/.*rps=[0-9.]* (overall: \([0-9.]*\)).*/\1/p')
rb_stalls=$(grep -c 'rps=0\.0 ' "$TMP/rb.lines" || true)
echo "  redis-benchmark GET -P 16: ${rb_overall:-?} req/s overall; ${rb_stalls:-?} of $(wc -l < "$TMP/rb.lines") 250 ms intervals with no reply"
for f in hot fresh; do
  reqs=$(awk '/requests in/ { print $1 }' "$OUT/wrk-$f.txt" 2>/dev/null || true)
  rps=$(awk '/Requests\/sec/ { print $2 }' "$OUT/wrk-$f.txt" 2>/dev/null || true)
  errs=$(grep -E 'Non-2xx|Socket errors' "$OUT/wrk-$f.txt" 2>/dev/null | tr '\n' ' ' || true)
  note=""; [ "$f" = fresh ] && note=" (every fresh key is a 404: non-2xx expected)"
  echo "  wrk /lookup ($f keys): ${reqs:-?} requests, ${rps:-?} req/s ${errs}${note}"
done
echo "hostile load: repeated-key MGET answers:"
sort "$TMP/mget.answers" 2>/dev/null | uniq -c | sed 's/^/  /' || echo "  none"
# Each file: "attempt" once per connection, then the error lines it got.
answers() { # title file
  echo "$1:"
  if [ -s "$2" ]; then sort "$2" | uniq -c | sed 's/^/  /'; else echo "  (none)"; fi
}
answers "forwarding attackers: (a) 100 x LRANGE biglist 0 -1 per attempt, 3 s each" "$TMP/lrange-big.answers"
answers "  (b) 100 x SRANDMEMBER one -$SRAND_COUNT per attempt to the strict proxy" "$TMP/srand-strict.answers"
answers "  (b) 2 x SRANDMEMBER one -$((SRAND_COUNT / 10)) then 2 x -$SRAND_COUNT per attempt to the main proxy (PROXY_FORWARD_ALLOW=srandmember)" "$TMP/srand-allowed.answers"
counter() { grep -o "\"$2\":[0-9]*" <<< "$1" | head -1 | cut -d: -f2; }
echo "  main proxy /stats at the end of the load: replies_too_large $(counter "$STATS_AT_END" replies_too_large)," \
     "forwards_dropped $(counter "$STATS_AT_END" forwards_dropped); strict proxy: replies_too_large" \
     "$(counter "$STRICT_STATS" replies_too_large)"
[ ! -s "$OUT/probe.err" ] || { echo "probe errors:"; sed 's/^/  /' "$OUT/probe.err" | head -5; }
echo "proxy log: $OUT/proxy.log; samples: $OUT/rss.txt, $OUT/rss-strict.txt, $OUT/probe.txt"

fail() { echo "FAIL: $*" >&2; echo "last lines of $OUT/proxy.log:" >&2; tail -n 20 "$OUT/proxy.log" >&2; exit 1; }
[ -z "$died" ] || fail "the proxy died during second $died"
[ -z "$over" ] || fail "the proxy's RSS passed ${RSS_LIMIT_MIB} MiB at second $over (killed)"
[ -n "$final_ok" ] || fail "the proxy did not answer correctly at the end (hit ${hit:-?}, miss ${miss:-?}, RESP ${resp:-?})"
# A clean shutdown with hostile clients there: a never-reading pipeliner of GETs of the 1 MB
# key and one of forwarded LRANGEs connected, then SIGTERM, exit 0 within 5 s.
for f in flood.resp lrange-unread.resp; do
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat "$2" >&3 && exec sleep 11' _ "$RESP_PORT" "$TMP/$f" 2>/dev/null &
  PIDS+=("$!")
done
sleep 1
kill -TERM "$PROXY_PID"
for _ in $(seq 50); do alive "$PROXY_PID" || break; sleep 0.1; done
if alive "$PROXY_PID"; then
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  fail "the proxy did not exit within 5 s of SIGTERM"
fi
wait "$PROXY_PID" || fail "the proxy exited with status $? on SIGTERM"
echo "OK: the proxy stayed up for ${SOAK_SECONDS}s"
