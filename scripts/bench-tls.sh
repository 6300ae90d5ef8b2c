#!/usr/bin/env bash
# TLS benchmark (issue 15): the release proxy (PROXY_WORKERS=1) against nginx serving the same
# JSON body, both with the same certificate, in one run:
#   1. HTTPS hits with keep-alive (wrk), TLS 1.3 and TLS 1.2;
#   2. handshakes: one new TLS connection per request (wrk with `Connection: close`, which
#      makes a new SSL object per connection and never offers a session to resume), so every
#      handshake is a full one on both servers;
#   3. plain HTTP hits, the proxy against plain nginx (the plaintext ratio, TLS off).
# One certificate for both: a throwaway CA and a server certificate (ECDSA P-256, or RSA 2048
# with BENCH_TLS_KEY=rsa) made by openssl in a temp dir. The TLS version is pinned on the
# client side (wrk reads OPENSSL_CONF: MinProtocol = MaxProtocol); both servers offer 1.2
# and 1.3. Session state is alike on both servers: an in-memory session cache of 256 entries,
# no stateless tickets (rustls's default; nginx `ssl_session_cache builtin:256`,
# `ssl_session_tickets off`), so both send the same stateful TLS 1.3 tickets (2) and neither
# is ever asked to resume.
# Everything listens on 127.0.0.1; every run is bounded in time; the trap kills every process
# started here. Server on core 0, load on core 1 (taskset); server CPU from /proc/PID/stat.
# Rounds: BENCH_ROUNDS (2) with the order reversed in every other round (ABBA), summed.
# shellcheck disable=SC2034,SC2154,SC2001 # names built with printf -v and read back indirectly
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
HS_CONNECTIONS=${BENCH_HS_CONNECTIONS:-16}
STIME_CLIENTS=${BENCH_STIME_CLIENTS:-4}
ROUNDS=${BENCH_ROUNDS:-2}
KEY_KIND=${BENCH_TLS_KEY:-ec}
VERSIONS=${BENCH_TLS_VERSIONS:-"1.3 1.2"}

need wrk wrk
need nginx nginx-light
need openssl openssl
need redis-server redis-server
need redis-cli redis-tools
need curl curl
[ -x "$PROXY_BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }


TICKS=$(getconf CLK_TCK)

# --- certificates: CA and server (127.0.0.1, localhost) -------------------------------------
P=$TMP/pki; mkdir -p "$P"
newkey() { if [ "$KEY_KIND" = rsa ]; then echo "-newkey rsa:2048"; else echo "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1"; fi; }
# shellcheck disable=SC2046 # newkey is several arguments
openssl req -x509 $(newkey) -nodes -days 2 -subj /CN=bench-ca -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
# shellcheck disable=SC2046
openssl req $(newkey) -nodes -subj /CN=localhost -keyout "$P/server.key" -out "$P/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$P/server.ext"
openssl x509 -req -in "$P/server.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
  -extfile "$P/server.ext" -out "$P/server.crt" 2>/dev/null
# Both servers send the same chain: the server certificate then the CA.
cat "$P/server.crt" "$P/ca.crt" > "$P/chain.crt"
CERT_DESC=$([ "$KEY_KIND" = rsa ] && echo "RSA 2048" || echo "ECDSA P-256")

# Client OpenSSL configs pinning the version (wrk and openssl s_client read OPENSSL_CONF).
for v in 1.2 1.3; do
  cat > "$TMP/client-$v.cnf" <<CNF
openssl_conf = init
[init]
ssl_conf = ssl
[ssl]
system_default = client
[client]
MinProtocol = TLSv$v
MaxProtocol = TLSv$v
CNF
done

# --- Redis with 100 keys, two proxies (plain and TLS), nginx (plain and TLS) -----------------
REDIS_PORT=$(free_port)
$SERVER_CPU redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=($!); wait_port "$REDIS_PORT"
set_hot_keys "$REDIS_PORT"

start_proxy() { # name extra-env...
  local name=$1 port resp; shift
  port=$(free_port); resp=$(free_port)
  # shellcheck disable=SC2086 # SERVER_CPU is a command prefix or nothing
  env PROXY_HOST=127.0.0.1 PROXY_PORT="$port" PROXY_RESP_PORT="$resp" PROXY_WORKERS=1 \
    PROXY_MAX_KEYS=10000 PROXY_TTL_MS=3600000 REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" \
    PROXY_LOG=warn "$@" $SERVER_CPU "$PROXY_BIN" --env-file /dev/null 2> "$TMP/$name.log" &
  local pid=$!; PIDS+=("$pid"); wait_port "$port"
  printf -v "PID_$name" '%s' "$pid"; printf -v "PORT_$name" '%s' "$port"
}
start_proxy proxy_plain
start_proxy proxy_tls PROXY_TLS_CERT_FILE="$P/chain.crt" PROXY_TLS_KEY_FILE="$P/server.key"
URL_proxy_plain="http://127.0.0.1:$PORT_proxy_plain"
URL_proxy_tls="https://127.0.0.1:$PORT_proxy_tls"
CURL=(curl -s --cacert "$P/ca.crt")
stat_of() { "${CURL[@]}" "$1/stats" | grep -o "\"$2\":[^,}]*" | head -1 | cut -d: -f2 | tr -d '"'; }
for u in "$URL_proxy_plain" "$URL_proxy_tls"; do
  state=""
  for _ in $(seq 200); do state=$(stat_of "$u" state); [ "$state" = tracking ] && break; sleep 0.05; done
  [ "$state" = tracking ] || { echo "tracking never came up at $u ($state)" >&2; exit 1; }
  for i in $(seq 0 99); do "${CURL[@]}" -o /dev/null "$u/lookup?key=key:$(printf %012d "$i")"; done
  [ "$(stat_of "$u" keys)" = 100 ] || { echo "the proxy at $u did not cache the 100 keys" >&2; exit 1; }
done

# nginx answers what the proxy answers for key:000000000000, same Content-Type and X-Cache.
BODY=$("${CURL[@]}" "$URL_proxy_tls/lookup?key=key:000000000000")
CTYPE=$("${CURL[@]}" -o /dev/null -w '%{content_type}' "$URL_proxy_tls/lookup?key=key:000000000000")
NGINX_PLAIN=$(free_port); NGINX_TLS=$(free_port)
{ nginx_conf_head; cat <<NGINX
  keepalive_requests 1000000;
  log_format tls '\$ssl_protocol \$ssl_cipher \$ssl_curve \$ssl_session_reused';
  server {
    listen 127.0.0.1:$NGINX_PLAIN;
    location / { default_type $CTYPE; add_header X-Cache HIT; return 200 '$BODY'; }
  }
  server {
    listen 127.0.0.1:$NGINX_TLS ssl;
    ssl_certificate $P/chain.crt;
    ssl_certificate_key $P/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache builtin:256;
    ssl_session_tickets off;
    location /check { access_log $TMP/nginx/tls.log tls; default_type $CTYPE; return 200 '$BODY'; }
    location / { default_type $CTYPE; add_header X-Cache HIT; return 200 '$BODY'; }
  }
}
NGINX
} > "$TMP/nginx.conf"
$SERVER_CPU nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" &
PID_nginx=$!; PIDS+=("$PID_nginx"); wait_port "$NGINX_PLAIN"; wait_port "$NGINX_TLS"
PID_nginx_plain=$PID_nginx; PID_nginx_tls=$PID_nginx
URL_nginx_plain="http://127.0.0.1:$NGINX_PLAIN"
URL_nginx_tls="https://127.0.0.1:$NGINX_TLS"
[ "$(curl -s "$URL_nginx_plain/x")" = "$BODY" ] || { echo "nginx does not answer the proxy's body" >&2; exit 1; }

cat > "$TMP/close-check.lua" <<'LUA'
request = function() return wrk.format("GET", "/check", { ["Connection"] = "close" }) end
LUA
# --- what each version negotiates: wrk's own handshake as nginx logs it; s_client to both ----
declare -A NEGOTIATED
for v in $VERSIONS; do
  : > "$TMP/nginx/tls.log"
  OPENSSL_CONF=$TMP/client-$v.cnf timeout 10 wrk -t1 -c1 -d1s "$URL_nginx_tls/check" > /dev/null
  wrk_saw=$(sort "$TMP/nginx/tls.log" | uniq -c | sort -rn | head -1 | sed 's/^ *//')
  for s in nginx_tls proxy_tls; do
    u="URL_$s"; hostport=${!u#https://}
    out=$(OPENSSL_CONF=$TMP/client-$v.cnf timeout 10 openssl s_client -connect "$hostport" -CAfile "$P/ca.crt" \
      -verify_return_error < /dev/null 2>&1 || true)
    NEGOTIATED[$v,$s]=$(awk '/Verify return code/ { sub(/.*code: /, ""); vr = $1 } /Peer signature type/ { sig = $4 }
      /Server Temp Key/ { gsub(",", "", $4); tk = $4 } /^New, / { gsub(",", ""); proto = $2; cipher = $5 }
      END { printf "%s %s %s %s verify=%s", proto, cipher, tk, sig, vr }' <<< "$out")
  done
  NEGOTIATED[$v,wrk]=$wrk_saw
  # Resumption as nginx sees it: wrk with Connection: close (SSL_clear keeps the session, so
  # wrk offers it again) against s_time -new.
  : > "$TMP/nginx/tls.log"
  OPENSSL_CONF=$TMP/client-$v.cnf timeout 10 wrk -t1 -c4 -d1s -s "$TMP/close-check.lua" "$URL_nginx_tls" > /dev/null
  NEGOTIATED[$v,wrk_close]=$(awk '{ n++; if ($4 == "r") r++ } END { printf "%d of %d resumed", r, n }' "$TMP/nginx/tls.log")
  : > "$TMP/nginx/tls.log"
  timeout 10 openssl s_time -connect "${URL_nginx_tls#https://}" -new "-tls1_${v#1.}" -www /check -time 1 > /dev/null 2>&1
  NEGOTIATED[$v,stime]=$(awk '{ n++; if ($4 == "r") r++ } END { printf "%d of %d resumed", r, n }' "$TMP/nginx/tls.log")
done

# --- measurements ----------------------------------------------------------------------------
write_hot_lua
cat > "$TMP/close.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format("GET", string.format("/lookup?key=key:%012d", i), { ["Connection"] = "close" })
end
LUA
wrk_parse() {
  awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /Requests\/sec/ { rps = $2 }
    / requests in / { n = $1 }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    /Socket errors/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx/ { err += $NF }
    END { printf "%.0f %.1f %.1f %d %d\n", rps, p50, p99, n, err }' "$1"
}
# Each run sets M_<name>_<round>="req/s p50 p99 requests errors cpu_s seconds handshakes
# handshake_failures" (the last two from the TLS proxy's /stats, less the /stats call's own).
measure() { # name server lua connections version|plain
  local pid="PID_$2" url="URL_$2" conf=/dev/null before after h0 h1 f0=0 f1=0 start end
  [ "$5" = plain ] || conf=$TMP/client-$5.cnf
  h0=0; [[ $2 != proxy_tls ]] || { h0=$(stat_of "${!url}" tls_handshakes); f0=$(stat_of "${!url}" tls_handshake_failures); }
  before=$(cpu_ticks "${!pid}"); start=$(date +%s.%N)
  OPENSSL_CONF=$conf $LOAD_CPU timeout 120 wrk -t1 -c"$4" -d"$DURATION" --latency -s "$3" "${!url}" > "$TMP/wrk-$1.txt"
  end=$(date +%s.%N); after=$(cpu_ticks "${!pid}")
  h1=0; [[ $2 != proxy_tls ]] || { h1=$(($(stat_of "${!url}" tls_handshakes) - 1)); f1=$(stat_of "${!url}" tls_handshake_failures); }
  printf -v "M_$1" '%s %s %s %s %s' "$(wrk_parse "$TMP/wrk-$1.txt")" \
    "$(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }')" \
    "$(awk -v a="$end" -v b="$start" 'BEGIN { printf "%.2f", a - b }')" $((h1 - h0)) $((f1 - f0))
}
# Full handshakes: STIME_CLIENTS `openssl s_time -new` loops (a new session every connection,
# never resumed), each an HTTP/1.0 GET of a cached key, so the server closes after answering.
# Sets the same fields as measure; no latency percentiles (s_time gives none).
measure_stime() { # name server version
  local pid="PID_$2" url="URL_$2" before after h0=0 h1=0 f0=0 f1=0 start end n=0 i
  [[ $2 != proxy_tls ]] || { h0=$(stat_of "${!url}" tls_handshakes); f0=$(stat_of "${!url}" tls_handshake_failures); }
  before=$(cpu_ticks "${!pid}"); start=$(date +%s.%N)
  for i in $(seq "$STIME_CLIENTS"); do
    $LOAD_CPU timeout 120 openssl s_time -connect "${!url#https://}" -new "-tls1_${3#1.}" \
      -www /lookup?key=key:000000000000 -time "${DURATION%s}" > "$TMP/stime-$1-$i.txt" 2>&1 &
  done
  local clients; mapfile -t clients < <(jobs -p | tail -n "$STIME_CLIENTS")
  wait "${clients[@]}"
  end=$(date +%s.%N); after=$(cpu_ticks "${!pid}")
  [[ $2 != proxy_tls ]] || { h1=$(($(stat_of "${!url}" tls_handshakes) - 1)); f1=$(stat_of "${!url}" tls_handshake_failures); }
  for i in $(seq "$STIME_CLIENTS"); do
    n=$((n + $(awk '/connections in .* real seconds/ { print $1; f = 1 } END { if (!f) print 0 }' "$TMP/stime-$1-$i.txt")))
  done
  local secs; secs=$(awk -v a="$end" -v b="$start" 'BEGIN { printf "%.2f", a - b }')
  printf -v "M_$1" '%s %s %s %s %s %s %s %s %s' "$(awk -v n="$n" -v d="$secs" 'BEGIN { printf "%.0f", n / d }')" - - \
    "$n" "$(cat "$TMP"/stime-"$1"-*.txt | grep -ci error || true)" \
    "$(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }')" "$secs" \
    $((h1 - h0)) $((f1 - f0))
}
WORKLOADS=(plain_hit)
for v in $VERSIONS; do WORKLOADS+=("tls${v/./}_hit" "tls${v/./}_full" "tls${v/./}_hs"); done
run_workload() { # workload server-kind(proxy|nginx) round
  local w=$1 k=$2 r=$3
  case $w in
    plain_hit) measure "${w}_${k}_$r" "${k}_plain" "$TMP/hot.lua" "$CONNECTIONS" plain ;;
    tls*_hit) measure "${w}_${k}_$r" "${k}_tls" "$TMP/hot.lua" "$CONNECTIONS" "$(sed 's/tls\(.\)\(.\)_.*/\1.\2/' <<< "$w")" ;;
    tls*_full) measure_stime "${w}_${k}_$r" "${k}_tls" "$(sed 's/tls\(.\)\(.\)_.*/\1.\2/' <<< "$w")" ;;
    tls*_hs) measure "${w}_${k}_$r" "${k}_tls" "$TMP/close.lua" "$HS_CONNECTIONS" "$(sed 's/tls\(.\)\(.\)_.*/\1.\2/' <<< "$w")" ;;
  esac
}
echo "== ProxyRedis TLS benchmark: $(nproc) cores, $PIN, $CERT_DESC certificate, TLS $VERSIONS," \
     "wrk -t1 (-c$CONNECTIONS keep-alive, -c$HS_CONNECTIONS Connection: close), $DURATION x $ROUNDS rounds," \
     "load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  order=(proxy nginx); [ $((r % 2)) = 1 ] || order=(nginx proxy)
  for w in "${WORKLOADS[@]}"; do
    for k in "${order[@]}"; do progress "round $r $w $k"; run_workload "$w" "$k" "$r"; done
  done
done

# --- tables --------------------------------------------------------------------------------
# Sum of the rounds: "req/s p50 p99 requests errors cpu_s seconds handshakes"
combine() { # workload kind
  local all="" m r
  for r in $(seq "$ROUNDS"); do m="M_$1_$2_$r"; all+="${!m}"$'\n'; done
  awk 'NF { a += ($2 == "-" ? 0 : $2); b += ($3 == "-" ? 0 : $3); n += $4; e += $5; c += $6; d += $7; h += $8; f += $9; k++ }
    END { printf "%.0f %.1f %.1f %d %d %.2f %.2f %d %d\n", n / d, a / k, b / k, n, e, c, d, h, f }' <<< "$all"
}
per_cpu() { awk -v n="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", n / c; else print 0 }'; }
label() {
  case $1 in
    plain_hit) echo "HTTP hit, plain" ;;
    tls13_hit) echo "HTTPS hit, TLS 1.3 keep-alive" ;; tls12_hit) echo "HTTPS hit, TLS 1.2 keep-alive" ;;
    tls13_full) echo "full handshake+hit, TLS 1.3 (s_time -new)" ;;
    tls12_full) echo "full handshake+hit, TLS 1.2 (s_time -new)" ;;
    tls13_hs) echo "resumed handshake+hit, TLS 1.3 (wrk close)" ;;
    tls12_hs) echo "resumed handshake+hit, TLS 1.2 (wrk close)" ;;
  esac
}
echo
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' workload server req/s "p50 µs" "p99 µs" \
  "server CPU s" "req/cpu-s" errors "ratio (proxy / nginx)"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
for w in "${WORKLOADS[@]}"; do
  read -r prps pp50 pp99 pn perr pcpu _ phs pfail <<< "$(combine "$w" proxy)"
  read -r nrps np50 np99 nn nerr ncpu _ _ <<< "$(combine "$w" nginx)"
  pc=$(per_cpu "$pn" "$pcpu"); nc=$(per_cpu "$nn" "$ncpu")
  case $w in tls*_full) pp50=-; pp99=-; np50=-; np99=- ;; esac
  extra=""; case $w in tls*_hs | tls*_full) extra=" (proxy: $phs handshakes, $pfail failed, for $pn requests)" ;; esac
  printf '| %s | proxy | %s | %s | %s | %s | %s | %s | **x%s nginx per cpu-s**, x%s req/s%s |\n' "$(label "$w")" \
    "$prps" "$pp50" "$pp99" "$pcpu" "$pc" "$perr" "$(ratio "$pc" "$nc")" "$(ratio "$prps" "$nrps")" "$extra"
  printf '| %s | nginx | %s | %s | %s | %s | %s | %s | reference |\n' "$(label "$w")" \
    "$nrps" "$np50" "$np99" "$ncpu" "$nc" "$nerr"
done
echo
echo "negotiated (openssl s_client: protocol cipher key-exchange signature; wrk as nginx logged it:"
echo "count protocol cipher curve reused, '.' = a full handshake):"
for v in $VERSIONS; do
  echo "  TLS $v: proxy ${NEGOTIATED[$v,proxy_tls]}; nginx ${NEGOTIATED[$v,nginx_tls]}; wrk->nginx ${NEGOTIATED[$v,wrk]}"
  echo "  TLS $v at nginx: wrk Connection: close ${NEGOTIATED[$v,wrk_close]}; s_time -new ${NEGOTIATED[$v,stime]}"
done
echo "proxy failures: tls_handshake_failures=$(stat_of "$URL_proxy_tls" tls_handshake_failures);" \
     "stderr lines: plain $(wc -l < "$TMP/proxy_plain.log"), tls $(wc -l < "$TMP/proxy_tls.log")"
[ ! -s "$TMP/proxy_tls.log" ] || { echo "proxy (TLS) stderr:"; head -20 "$TMP/proxy_tls.log"; }
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
