#!/usr/bin/env bash
# Redis Cluster benchmarks of the release proxy, each against a reference measured in the
# same run (called by scripts/bench.sh; runs alone too):
#   1. HTTP miss throughput (every lookup a key not cached: PROXY_MAX_KEYS=1000 over a
#      BENCH_CLUSTER_KEYS key space walked by a stride) against one standalone redis-server
#      and against a three-master cluster (no replicas), the same keys loaded in both;
#   2. HTTP hit throughput (100 hot keys) against the same two backends;
#      1 and 2 run BENCH_ROUNDS (2) times, the backends alternating, and keep each best round;
#   3. on a 3 masters + 3 replicas cluster, paced lookups (examples/cluster_load.rs, keys
#      grouped by the slots they live in) through a manual failover (CLUSTER FAILOVER on a
#      replica), a reshard of BENCH_RESHARD_SLOTS slots (redis-cli --cluster reshard) and a
#      master stopped with SIGSTOP (twice: cluster-require-full-coverage yes, Redis's
#      default, then no): latency and errors before / during / after, per group, and the
#      time until the stopped master's keys are served again.
# Everything listens on 127.0.0.1, every run is bounded in time, and the trap stops every
# process started here (resuming a stopped one first).
#
# Pinning: servers (proxy, redis-servers) on core 0, load (wrk, cluster_load and the
# redis-cli commands it starts) on core 1 when there are two cores.
# Output: a table on stdout, JSON lines appended to $BENCH_RESULTS (default
# target/bench/cluster.json), the per-100-ms windows of part 3 in target/bench/cluster-windows.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-5s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
KEYS=${BENCH_CLUSTER_KEYS:-200000}
ROUNDS=${BENCH_ROUNDS:-2}
LOAD_CONNECTIONS=${BENCH_LOAD_CONNECTIONS:-4}
LOAD_RATE=${BENCH_LOAD_RATE:-500}
RESHARD_SLOTS=${BENCH_RESHARD_SLOTS:-1000}
REDIS_TIMEOUT=${BENCH_REDIS_TIMEOUT_MS:-1000}
NODE_TIMEOUT=${BENCH_NODE_TIMEOUT_MS:-2000}
RESULTS_FILE=${BENCH_RESULTS:-target/bench/cluster.json}
OUT=target/bench
WINDOWS=$OUT/cluster-windows.txt
BIN=${PROXY_BIN:-${CARGO_TARGET_DIR:-target}/release/proxyredis}
LOAD=${CARGO_TARGET_DIR:-target}/release/examples/cluster_load
mkdir -p "$OUT" "$(dirname "$RESULTS_FILE")"
: > "$WINDOWS"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  if [ ${#PIDS[@]} -gt 0 ]; then
    kill -CONT "${PIDS[@]}" 2>/dev/null || true
    kill "${PIDS[@]}" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "${PIDS[@]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${PIDS[@]}" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "bench-cluster: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "missing $1: sudo apt-get install -y $2" >&2; exit 1; }; }
need wrk wrk
need redis-server redis-server
need redis-cli redis-tools
need curl curl
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  cargo build --release --quiet --bin proxyredis --example cluster_load
fi
if [ ! -x "$BIN" ] || [ ! -x "$LOAD" ]; then
  fail "missing $BIN or $LOAD: cargo build --release --bins --example cluster_load"
fi

if [ "$(nproc)" -ge 2 ]; then SERVER_CPU="taskset -c 0"; LOAD_CPU="taskset -c 1"; PIN="server core 0, load core 1"
else SERVER_CPU=""; LOAD_CPU=""; PIN="unpinned (one core)"; fi

port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# Below the ephemeral range (32768+), so no client socket holds the port; never one this
# run already handed out (a redis-server's bus port is not open until it starts).
TAKEN=" "
free_port() {
  local p=$((20000 + RANDOM % 12000))
  while [[ $TAKEN == *" $p "* ]] || ! port_free "$p"; do p=$((p + 1)); done
  TAKEN+="$p "; echo "$p"
}
wait_port() { for _ in $(seq 200); do port_free "$1" || return 0; sleep 0.05; done; fail "port $1 never opened"; }
# Polls "$@" every 0.2 s for up to $1 seconds.
poll() { local n=$(($1 * 5)); shift; until "$@"; do n=$((n - 1)); [ "$n" -gt 0 ] || return 1; sleep 0.2; done; }
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
TICKS=$(getconf CLK_TCK)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
jratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "null" }'; }
json() { echo "$1" >> "$RESULTS_FILE"; }
stat_field() { curl -s "http://127.0.0.1:$1/stats" | grep -o "\"$2\":[0-9]*" | head -n 1 | cut -d: -f2; }

# --- redis-servers -------------------------------------------------------------------------
start_redis() { # name [cluster bus port]; sets RPORT, RPID
  RPORT=$(free_port)
  local extra=() dir=$TMP/$1
  mkdir -p "$dir"
  [ -n "${2:-}" ] && extra=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$2"
    --cluster-node-timeout "$NODE_TIMEOUT" --repl-diskless-sync-delay 0)
  $SERVER_CPU redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" "${extra[@]}" &
  RPID=$!; PIDS+=("$RPID"); wait_port "$RPORT"
}
start_cluster() { # nodes replicas; sets CPORTS, CPIDS (port -> pid in PID_OF), SEEDS
  CPORTS=() CPIDS=()
  local i addrs=()
  for i in $(seq "$1"); do
    start_redis "c$1-$i" "$(free_port)"
    CPORTS+=("$RPORT"); CPIDS+=("$RPID"); PID_OF[$RPORT]=$RPID; addrs+=("127.0.0.1:$RPORT")
  done
  CLUSTER_REPLICAS=$2 deploy/cluster-create.sh "${addrs[@]}" > "$TMP/create-$1.log" 2>&1 \
    || { cat "$TMP/create-$1.log" >&2; fail "creating the $1-node cluster failed"; }
  SEEDS=$(IFS=,; echo "${addrs[*]}")
}
declare -A PID_OF
# "id port slots" of every master, slots as "a-b,c,d-e" (migration marks left out).
masters() {
  redis-cli -p "$1" cluster nodes | tr -d '\r' | awk '$3 ~ /master/ && $3 !~ /fail/ {
    split($2, a, "[:@]"); s = ""
    for (i = 9; i <= NF; i++) if ($i !~ /^\[/) s = s (s == "" ? "" : ",") $i
    print $1, a[2], s }'
}
replica_of() { # cluster port, master id -> port of one replica
  redis-cli -p "$1" cluster nodes | tr -d '\r' | awk -v m="$2" '$4 == m { split($2, a, "[:@]"); print a[2]; exit }'
}
settled() { # the cluster as seen from port $1: every slot covered, all nodes agree, no open slot
  local out; out=$(redis-cli --cluster check "127.0.0.1:$1" 2>&1) || return 1
  ! grep -q -e '\[ERR\]' -e '\[WARNING\]' <<< "$out" && grep -q 'All 16384 slots covered' <<< "$out"
}
fill() { # port slots
  $LOAD sets "$KEYS" "$2" | redis-cli -p "$1" --pipe > "$TMP/fill-$1.log" 2>&1 \
    || { cat "$TMP/fill-$1.log" >&2; fail "filling :$1 failed"; }
}
fill_cluster() { # total-keys-expected: loads every master's share, then waits for the replicas
  local port slots total n
  while read -r _ port slots; do fill "$port" "$slots"; done < <(masters "${CPORTS[0]}")
  synced() {
    total=0
    for port in "${CPORTS[@]}"; do n=$(redis-cli -p "$port" dbsize); total=$((total + n)); done
    [ "$total" -eq "$1" ]
  }
  poll 30 synced "$1" || fail "the cluster's nodes hold $total keys, not $1 (replicas not synced?)"
}

# --- proxies ---------------------------------------------------------------------------------
start_proxy() { # name env...; sets PROXY_PORT, PROXY_PID
  PROXY_PORT=$(free_port)
  local name=$1; shift
  # shellcheck disable=SC2086 # SERVER_CPU is a command prefix or nothing
  env PROXY_HOST=127.0.0.1 PROXY_PORT="$PROXY_PORT" PROXY_RESP_PORT=0 PROXY_WORKERS=1 \
    PROXY_LOG=warn PROXY_TTL_MS=3600000 REDIS_HOST=127.0.0.1 "$@" \
    $SERVER_CPU "$BIN" --env-file /dev/null > "$TMP/proxy-$name.log" 2>&1 &
  PROXY_PID=$!; PIDS+=("$PROXY_PID"); wait_port "$PROXY_PORT"
  ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/readyz")" = 200 ]; }
  poll 15 ready || { cat "$TMP/proxy-$name.log" >&2; fail "proxy $name never ready"; }
}
# Caches the 100 hot keys; in a cluster a node's values are cached only once its tracking
# connection is up, so look them up again until all 100 are cached.
warm_hot() { # port
  cached() {
    for i in $(seq 0 99); do printf 'url = "http://127.0.0.1:%s/lookup?key=key:%012d"\noutput = /dev/null\n' "$1" "$i"; done \
      | curl -s -K - > /dev/null
    [ "$(stat_field "$1" keys)" -ge 100 ]
  }
  poll 10 cached "$1" || fail "the 100 hot keys were never all cached on :$1"
}

cat > "$TMP/hot.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format("GET", string.format("/lookup?key=key:%012d", i))
end
LUA
cat > "$TMP/miss.lua" <<LUA
local n = $KEYS
local i = math.random(0, n - 1)
request = function()
  i = (i + 7919) % n
  return wrk.format("GET", string.format("/lookup?key=key:%012d", i))
end
LUA

# wrk output -> "rps p50_us p99_us errors"
wrk_parse() {
  awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    /Non-2xx/ { err += $NF }
    /Socket errors/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.1f %.1f %d\n", rps, p50, p99, err }' "$1"
}
# One wrk run (after a 1 s warm-up) against the proxy on `port`; keeps in M_<name> the round
# with the most req/s: "rps p50 p99 errors cpu_s req_per_cpu_s hits misses keys_per_batch"
# (keys fetched per Redis round trip).
wrk_run() { # name round port lua server-pids...
  local name=$1 round=$2 port=$3 lua=$4; shift 4
  local before after h0 m0 h1 m1 f0 b0 f1 b1 r cpu m best
  $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d1s -s "$lua" "http://127.0.0.1:$port" > /dev/null
  h0=$(stat_field "$port" hits); m0=$(stat_field "$port" misses); before=$(cpu_ticks "$@")
  f0=$(stat_field "$port" fetches); b0=$(stat_field "$port" batches)
  $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$lua" "http://127.0.0.1:$port" > "$TMP/wrk-$name-$round.txt"
  after=$(cpu_ticks "$@"); h1=$(stat_field "$port" hits); m1=$(stat_field "$port" misses)
  f1=$(stat_field "$port" fetches); b1=$(stat_field "$port" batches)
  r=$(wrk_parse "$TMP/wrk-$name-$round.txt")
  cpu=$(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }')
  local rps=${r%% *} secs=${DURATION%s}
  m="$r $cpu $(awk -v r="$rps" -v d="$secs" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", r * d / c; else print 0 }') $((h1 - h0)) $((m1 - m0)) $(ratio $((f1 - f0)) $((b1 - b0)))"
  local f; read -r -a f <<< "$m"
  json "{\"name\":\"$name round $round\",\"req_per_s\":${f[0]},\"p50_us\":${f[1]},\"p99_us\":${f[2]},\"errors\":${f[3]},\"server_cpu_s\":${f[4]},\"req_per_cpu_s\":${f[5]},\"hits\":${f[6]},\"misses\":${f[7]},\"keys_per_batch\":\"${f[8]}\"}"
  best="M_$name"
  if [ -z "${!best:-}" ] || [ "$rps" -gt "${!best%% *}" ]; then printf -v "$best" '%s' "$m"; fi
}

echo "== ProxyRedis cluster benchmarks: $(nproc) cores, $PIN, $KEYS keys, wrk -t1 -c$CONNECTIONS -d$DURATION"
json "{\"run\":\"bench-cluster\",\"date\":\"$(date -u +%FT%TZ)\",\"commit\":\"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\",\"cores\":$(nproc),\"pinning\":\"$PIN\",\"keys\":$KEYS,\"duration\":\"$DURATION\",\"connections\":$CONNECTIONS}"

# --- 1 + 2: standalone vs three masters ------------------------------------------------------
start_redis standalone
SA_PORT=$RPORT SA_PID=$RPID
fill "$SA_PORT" 0-16383
start_cluster 3 0
C3_PIDS=("${CPIDS[@]}")
fill_cluster "$KEYS"
echo "standalone :$SA_PORT and 3-master cluster $SEEDS loaded with $KEYS keys each"

start_proxy standalone PROXY_MAX_KEYS=1000 REDIS_PORT="$SA_PORT"
SA_PROXY_PORT=$PROXY_PORT SA_PROXY_PID=$PROXY_PID
start_proxy cluster3 PROXY_MAX_KEYS=1000 REDIS_CLUSTER_NODES="$SEEDS"
C3_PROXY_PORT=$PROXY_PORT C3_PROXY_PID=$PROXY_PID
# Rounds alternate the two backends, so that load from outside this run (the machine is
# shared) weighs on both alike; the table keeps each one's best round.
for round in $(seq "$ROUNDS"); do
  warm_hot "$SA_PROXY_PORT"
  wrk_run hit_sa "$round" "$SA_PROXY_PORT" "$TMP/hot.lua" "$SA_PROXY_PID" "$SA_PID"
  warm_hot "$C3_PROXY_PORT"
  wrk_run hit_c3 "$round" "$C3_PROXY_PORT" "$TMP/hot.lua" "$C3_PROXY_PID" "${C3_PIDS[@]}"
  wrk_run miss_sa "$round" "$SA_PROXY_PORT" "$TMP/miss.lua" "$SA_PROXY_PID" "$SA_PID"
  wrk_run miss_c3 "$round" "$C3_PROXY_PORT" "$TMP/miss.lua" "$C3_PROXY_PID" "${C3_PIDS[@]}"
done
kill "$SA_PROXY_PID" "$C3_PROXY_PID" "$SA_PID" "${C3_PIDS[@]}"
wait "$SA_PROXY_PID" "$C3_PROXY_PID" "$SA_PID" "${C3_PIDS[@]}" 2>/dev/null || true

printf '\n%-30s %9s %9s %9s %6s %7s %10s %7s %6s   %s\n' workload "req/s" "p50 us" "p99 us" errors "cpu s" "req/cpu-s" "miss %" batch "cluster / standalone"
row() { # label measurement [reference]
  local rps p50 p99 err cpu per h m batch rrps rper text="reference"
  read -r rps p50 p99 err cpu per h m batch <<< "$2"
  if [ -n "${3:-}" ]; then
    read -r rrps _ _ _ _ rper _ <<< "$3"
    text="x$(ratio "$rps" "$rrps") req/s, x$(ratio "$per" "$rper") req/cpu-s"
  fi
  local miss; miss=$(awk -v h="$h" -v m="$m" 'BEGIN { if (h + m > 0) printf "%.1f", 100 * m / (h + m); else print 0 }')
  printf '%-30s %9s %9s %9s %6s %7s %10s %7s %6s   %s\n' "$1" "$rps" "$p50" "$p99" "$err" "$cpu" "$per" "$miss" "$batch" "$text"
  json "{\"name\":\"$1\",\"best_of\":$ROUNDS,\"req_per_s\":$rps,\"p50_us\":$p50,\"p99_us\":$p99,\"errors\":$err,\"server_cpu_s\":$cpu,\"req_per_cpu_s\":$per,\"hits\":$h,\"misses\":$m,\"keys_per_batch\":\"$batch\"${3:+,\"ratio_req_per_s\":$(jratio "$rps" "$rrps"),\"ratio_req_per_cpu_s\":$(jratio "$per" "$rper")}}"
}
# shellcheck disable=SC2154 # M_* are set by wrk_run through printf -v
{
  row "http miss standalone (ref)" "$M_miss_sa"
  row "http miss cluster 3 masters" "$M_miss_c3" "$M_miss_sa"
  row "http hit standalone (ref)" "$M_hit_sa"
  row "http hit cluster 3 masters" "$M_hit_c3" "$M_hit_sa"
}
echo "(best of $ROUNDS rounds by req/s; cpu s: proxy + redis-server(s) during that run; each wrk run follows"
echo " a 1 s warm-up; miss %: misses / lookups and batch: keys per Redis round trip, from /stats)"

# --- 3: failover, reshard, stopped master on 3 masters + 3 replicas --------------------------
start_cluster 6 1
C6=("${CPORTS[@]}")
fill_cluster $((KEYS * 2))
start_proxy cluster6 PROXY_MAX_KEYS=1000 REDIS_CLUSTER_NODES="$SEEDS" REDIS_TIMEOUT_MS="$REDIS_TIMEOUT"
echo
echo "== 6-node cluster $SEEDS (node timeout ${NODE_TIMEOUT} ms), proxy REDIS_TIMEOUT_MS=$REDIS_TIMEOUT;" \
     "cluster_load: $LOAD_CONNECTIONS connections per group x $LOAD_RATE req/s each, fresh keys (misses)"
load() { # label duration_ms groups... -- events...
  local label=$1 ms=$2 args=(); shift 2
  while [ "$1" != -- ]; do args+=(--group "$1"); shift; done; shift
  while [ $# -gt 0 ]; do args+=(--at "$1"); shift; done
  $LOAD_CPU "$LOAD" run "127.0.0.1:$PROXY_PORT" --keys "$KEYS" --connections "$LOAD_CONNECTIONS" \
    --rate "$LOAD_RATE" --duration-ms "$ms" --timeout-ms 5000 --probe-ms 50 --label "$label" \
    --windows "$WINDOWS" --json "$RESULTS_FILE" "${args[@]}" 2> "$TMP/load-$label.err" > "$TMP/load-$label.txt" \
    || { cat "$TMP/load-$label.err" >&2; fail "cluster_load $label failed"; }
  grep -v '^\(SUMMARY\|RECOVERY\)' "$TMP/load-$label.err" | sed 's/^/  /' || true
  cat "$TMP/load-$label.txt" >> "$TMP/summary.txt"
}
others() { # slots of every master but the one with id $1, joined
  masters "${C6[0]}" | awk -v id="$1" '$1 != id { s = s (s == "" ? "" : ",") $3 } END { print s }'
}

# 3a. CLUSTER FAILOVER on the replica of the first master.
read -r M_ID _ M_SLOTS < <(masters "${C6[0]}" | sort -k2n | head -n 1)
R_PORT=$(replica_of "${C6[0]}" "$M_ID")
load failover 6000 "own=$M_SLOTS" "other=$(others "$M_ID")" -- "2000=redis-cli -p $R_PORT cluster failover"
[ "$(redis-cli -p "$R_PORT" role | head -n 1)" = master ] || echo "  warning: :$R_PORT is not master after CLUSTER FAILOVER"
poll 30 settled "${C6[0]}" || fail "the cluster did not settle after the failover"

# 3b. Reshard RESHARD_SLOTS slots from one master to another; redis-cli moves the source's
# lowest slots, which are the "moving" group.
read -r S_ID S_PORT S_SLOTS < <(masters "${C6[0]}" | sort -k2n | sed -n 2p)
read -r T_ID _ _ < <(masters "${C6[0]}" | sort -k2n | sed -n 3p)
MOVING=$(awk -v s="$S_SLOTS" -v n="$RESHARD_SLOTS" 'BEGIN { k = split(s, r, ","); out = "";
  for (i = 1; i <= k && n > 0; i++) { split(r[i], ab, "-"); a = ab[1]; b = (ab[2] == "") ? a : ab[2];
    e = (b - a + 1 > n) ? a + n - 1 : b; out = out (out == "" ? "" : ",") a "-" e; n -= e - a + 1 } print out }')
load reshard 6000 "moving=$MOVING" "other=0-16383" -- \
  "2000=timeout 60 redis-cli --cluster reshard 127.0.0.1:$S_PORT --cluster-from $S_ID --cluster-to $T_ID --cluster-slots $RESHARD_SLOTS --cluster-yes > $TMP/reshard.log 2>&1"
poll 30 settled "${C6[0]}" || fail "the cluster did not settle after the reshard"
first_moved=${MOVING%%-*}
owner=$(masters "${C6[0]}" | awk -v s="$first_moved" '{ k = split($3, r, ","); for (i = 1; i <= k; i++) { split(r[i], ab, "-");
  if (s >= ab[1] && s <= (ab[2] == "" ? ab[1] : ab[2])) print $1 } }')
[ "$owner" = "$T_ID" ] || echo "  warning: slot $first_moved is owned by $owner, not the reshard target $T_ID"

# 3c. SIGSTOP the third master (cluster-require-full-coverage yes, the default) until its replica has long taken over, then SIGCONT.
read -r X_ID X_PORT X_SLOTS < <(masters "${C6[0]}" | sort -k2n | sed -n 3p)
X_PID=${PID_OF[$X_PORT]}
load stopped 13000 "own=$X_SLOTS" "other=$(others "$X_ID")" -- "2000=kill -STOP $X_PID" "10000=kill -CONT $X_PID"
poll 30 settled "${C6[0]}" || fail "the cluster did not settle after the stopped master came back"

# 3d. The same with cluster-require-full-coverage no: with the default (yes) every node
# answers CLUSTERDOWN from the moment the stopped master is marked failing until its
# replica is promoted, so keys of the other masters fail too; without it they are served.
for port in "${C6[@]}"; do redis-cli -p "$port" config set cluster-require-full-coverage no > /dev/null; done
read -r Y_ID Y_PORT Y_SLOTS < <(masters "${C6[0]}" | sort -k2n | head -n 1)
Y_PID=${PID_OF[$Y_PORT]}
load stopped-nfc 13000 "own=$Y_SLOTS" "other=$(others "$Y_ID")" -- "2000=kill -STOP $Y_PID" "10000=kill -CONT $Y_PID"

printf '\n%-11s %-7s %-7s %7s %7s %6s %8s %8s %8s %8s\n' event group phase "req/s" errors wrong "p50 us" "p99 us" "p999 us" "max us"
awk '$1 == "SUMMARY" { printf "%-11s %-7s %-7s %7s %7s %6s %8s %8s %8s %8s\n", $2, $3, $4, $6, $7, $8, $9, $10, $11, $12 }' "$TMP/summary.txt"
printf '\n%-11s %-7s %7s %8s %8s %8s %9s %7s %9s\n' event group errors "first" "served" "last" recovered probes routable
printf '%-11s %-7s %7s %8s %8s %8s %9s %7s %9s\n' "" "" "" "error ms" "again ms" "error ms" "ms" failed ms
awk '$1 == "RECOVERY" { printf "%-11s %-7s %7s %8s %8s %8s %9s %7s %9s\n", $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$TMP/summary.txt"
echo "(phases: before the first event, during = until the last event's command returned + 1 s, after;"
echo " times: ms from the first event to the answer; served again: the first success after the first"
echo " error; recovered: the first success of a request sent after the last error; probes: one"
echo " lookup per group every 50 ms on a connection of its own; routable: the send time of the first"
echo " successful probe after a failed one; stopped-nfc: cluster-require-full-coverage no;"
echo " per-100-ms windows in $WINDOWS;"
echo " JSON lines in $RESULTS_FILE)"
