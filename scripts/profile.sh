#!/usr/bin/env bash
# Instruction counts per request on the hit path, with callgrind (repeatable, unlike time).
# Runs the release proxy under callgrind twice, with N and 2N hits of one cached key, and
# reports (Ir(2N) - Ir(N)) / N for HTTP and RESP at pipeline depths 1 and 16, so start-up and
# shutdown cancel out. The annotated profile of the last run is left in target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${PROFILE_REQUESTS:-20000}
OUT=target/bench
BIN=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"
cargo build --release --bin proxyredis --example hit_client >/dev/null 2>&1
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT
port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
free_port() { local p=$((20000 + RANDOM % 12000)); while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_port() { for _ in $(seq 600); do port_free "$1" || return 0; sleep 0.05; done; exit 1; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" --logfile "$TMP/redis.log" &
wait_port "$REDIS_PORT"
redis-cli -p "$REDIS_PORT" SET key:000000000000 value:00000000000000000000000000 >/dev/null

run() { # proto depth count -> total instructions of the proxy
  local http resp out pid
  http=$(free_port); resp=$(free_port); out="$TMP/cg.$1.$2.$3"
  env PROXY_HOST=127.0.0.1 PROXY_PORT="$http" PROXY_RESP_PORT="$resp" PROXY_WORKERS=1 REDIS_CONNECTIONS=1 \
    REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" PROXY_LOG=warn PROXY_TTL_MS=3600000 \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN/proxyredis" --env-file /dev/null 2>/dev/null &
  pid=$!
  wait_port "$http"
  local port=$http; [ "$1" = resp ] && port=$resp
  # Until CLIENT TRACKING is up (slow under callgrind) a fetched value is not cached: ask
  # until the key is a hit, or hit_client, which expects every answer the size of the
  # first, would wait for a byte that a HIT (one shorter than MISS) never brings.
  for _ in $(seq 600); do
    curl -si "http://127.0.0.1:$http/lookup?key=key:000000000000" | grep -q '^X-Cache: HIT' && break
    sleep 0.05
  done
  "$BIN/examples/hit_client" "127.0.0.1:$port" "$1" "$3" "$2" key:000000000000 >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  cp "$out" "$OUT/callgrind.$1.$2.out"
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(/,/, "", $1); print $1; done = 1 }'
}
printf '%-6s %6s %16s\n' proto depth "instructions/hit"
for proto in http resp; do
  for depth in 1 16; do
    a=$(run "$proto" "$depth" "$N"); b=$(run "$proto" "$depth" $((2 * N)))
    printf '%-6s %6s %16.0f\n' "$proto" "$depth" "$(awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN { print (b - a) / n }')"
  done
done
echo "profiles: $OUT/callgrind.*.out (callgrind_annotate FILE | head -40)"
