#!/usr/bin/env bash
# `make soak`: the release proxy under normal and hostile load at once for SOAK_SECONDS
# (default 600), its RSS sampled every second. Prints a table (second, RSS MiB) and the
# minimum and maximum after a warm-up of SOAK_WARMUP seconds (default 60); exits non-zero if
# the proxy died, stopped answering, or passed SOAK_RSS_LIMIT_MIB (default 2048, where it is
# killed so a regression cannot take the machine's memory).
#
# Normal load: redis-benchmark GET -P 16 on cached keys (RESP), wrk on /lookup of cached
# keys, wrk on /lookup of fresh keys (every request a miss, fetched from Redis).
# Hostile load: never-reading pipeliners of 20,000 GETs of a 1 MB key (RESP and HTTP),
# re-opened every 30 s; slow senders trickling a request that never completes, one byte
# every 200 ms; MGETs naming the 1 MB key 3,000 times. Everything listens on 127.0.0.1,
# and every client is bounded in count and time.
# The proxy runs with the defaults of every limit; any PROXY_* / REDIS_* variable set in the
# environment (e.g. PROXY_MAX_BUFFER_BYTES) passes through to it.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
WARMUP=${SOAK_WARMUP:-60}
RSS_LIMIT_MIB=${SOAK_RSS_LIMIT_MIB:-2048}
KEYS=${SOAK_KEYS:-10000}
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
cargo build --release

# --- Redis: KEYS keys "key:%012d" (redis-benchmark's key names) and the 1 MB key "big" ---
pick_port REDIS_PORT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=("$!"); wait_port "$REDIS_PORT"
awk -v n="$KEYS" 'BEGIN { for (i = 0; i < n; i++) { k = sprintf("key:%012d", i); v = sprintf("value:%026d", i);
  printf "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n", k, v } }' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
head -c 1048576 /dev/zero | tr '\0' x > "$TMP/big.value"
redis-cli -p "$REDIS_PORT" -x SET big < "$TMP/big.value" >/dev/null

# --- the proxy -----------------------------------------------------------------------------
pick_port PROXY_PORT; pick_port RESP_PORT
env PROXY_HOST=127.0.0.1 PROXY_PORT="$PROXY_PORT" PROXY_RESP_PORT="$RESP_PORT" \
  REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG="${PROXY_LOG:-warn}" \
  PROXY_MAX_KEYS="${PROXY_MAX_KEYS:-$((KEYS * 2))}" PROXY_TTL_MS="${PROXY_TTL_MS:-30000}" \
  ./target/release/proxyredis --env-file /dev/null 2> "$OUT/proxy.log" &
PROXY_PID=$!; PIDS+=("$PROXY_PID"); wait_port "$PROXY_PORT"; wait_port "$RESP_PORT"
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
pipeliner "$RESP_PORT" "$TMP/flood.resp" 2>/dev/null &
PIDS+=("$!")
pipeliner "$PROXY_PORT" "$TMP/flood.http" 2>/dev/null &
PIDS+=("$!")
slow_senders 2>/dev/null &
PIDS+=("$!")
mgets 2>/dev/null &
PIDS+=("$!")

# --- RSS every second ----------------------------------------------------------------------
: > "$OUT/rss.txt"
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

# wrk prints its summary when its duration is over (a second or two from now).
for p in "${WRK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
kill "$RB_PID" 2>/dev/null || true

# --- report --------------------------------------------------------------------------------
echo
printf '%8s %10s\n' second "RSS MiB"
awk '{ printf "%8d %10.1f\n", $1, $2 }' "$OUT/rss.txt"
echo
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
echo "proxy log: $OUT/proxy.log; samples: $OUT/rss.txt"

fail() { echo "FAIL: $*" >&2; echo "last lines of $OUT/proxy.log:" >&2; tail -n 20 "$OUT/proxy.log" >&2; exit 1; }
[ -z "$died" ] || fail "the proxy died during second $died"
[ -z "$over" ] || fail "the proxy's RSS passed ${RSS_LIMIT_MIB} MiB at second $over (killed)"
[ -n "$final_ok" ] || fail "the proxy did not answer correctly at the end (hit ${hit:-?}, miss ${miss:-?}, RESP ${resp:-?})"
# A clean shutdown with the hostile clients still there: SIGTERM, exit 0 within 5 s.
kill -TERM "$PROXY_PID"
for _ in $(seq 50); do alive "$PROXY_PID" || break; sleep 0.1; done
if alive "$PROXY_PID"; then
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  fail "the proxy did not exit within 5 s of SIGTERM"
fi
wait "$PROXY_PID" || fail "the proxy exited with status $? on SIGTERM"
echo "OK: the proxy stayed up for ${SOAK_SECONDS}s"
