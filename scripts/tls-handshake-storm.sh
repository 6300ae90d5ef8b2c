#!/usr/bin/env bash
# TLS handshake storm (not part of `make test`): does a burst of new TLS clients stall the
# established ones? The release proxy (PROXY_WORKERS=1, so every connection shares one loop)
# with an ECDSA P-256 certificate; one established keep-alive TLS client looks one cached key
# up every millisecond and records each lookup's latency, first alone, then while STORM_N
# (default 1000) TLS handshakes are kept in flight at once by a second process (each
# connection closed once its handshake is done and replaced by a new one). Prints p50 / p99 /
# max of the established client's lookups in both phases, and the handshakes completed.
# Loopback only; bounded in time (STORM_SECONDS, default 5, per phase) and in connections
# (STORM_N + 1, under the proxy's cap). PROXY_BIN picks the binary (to compare two builds).
# shellcheck disable=SC2154 # TMP, PIDS come from bench-common.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

N=${STORM_N:-1000}
SECONDS_PER_PHASE=${STORM_SECONDS:-5}
BIN=${PROXY_BIN:-target/release/proxyredis}
need openssl openssl
need redis-server redis-server
need redis-cli redis-tools
need python3 python3
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set PROXY_BIN)" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$TMP/server.key" -out "$TMP/server.crt" 2>/dev/null

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=($!); wait_port "$REDIS_PORT"
redis-cli -p "$REDIS_PORT" set hot v >/dev/null

PORT=$(free_port); RESP=$(free_port)
env PROXY_HOST=127.0.0.1 PROXY_PORT="$PORT" PROXY_RESP_PORT="$RESP" PROXY_WORKERS=1 \
  PROXY_MAX_CONNECTIONS=$((N + 100)) PROXY_TTL_MS=3600000 PROXY_LOG=warn \
  REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" \
  PROXY_TLS_CERT_FILE="$TMP/server.crt" PROXY_TLS_KEY_FILE="$TMP/server.key" \
  $SERVER_CPU "$BIN" --env-file /dev/null 2> "$TMP/proxy.log" &
PIDS+=($!); wait_port "$PORT"
progress "proxy $BIN on 127.0.0.1:$PORT (TLS, one loop), $N handshakes in flight, ${SECONDS_PER_PHASE}s per phase"
ulimit -n $((N + 1024)) 2>/dev/null || true

python3 - "$PORT" "$TMP/server.crt" "$N" "$SECONDS_PER_PHASE" <<'PY'
import multiprocessing, selectors, socket, ssl, sys, time

port, cafile, n, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

def context():
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    return ctx

def measure(seconds):
    """One established keep-alive TLS client: a lookup every millisecond; latencies in ms."""
    s = context().wrap_socket(socket.create_connection(("127.0.0.1", port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"GET /lookup?key=hot HTTP/1.1\r\nHost: x\r\n\r\n"
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.perf_counter()
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, body = buf.split(b"\r\n\r\n", 1)
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(body) < length:
            body += s.recv(65536)
        out.append((time.perf_counter() - began) * 1000)
        time.sleep(0.001)
    s.close()
    return out

def storm(n, seconds, done):
    """Keeps n TLS handshakes in flight; counts those completed into done."""
    ctx, sel = context(), selectors.DefaultSelector()
    def start():
        raw = socket.socket()
        raw.setblocking(False)
        raw.connect_ex(("127.0.0.1", port))
        s = ctx.wrap_socket(raw, do_handshake_on_connect=False)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    for _ in range(n):
        start()
    end, count = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                s.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                continue
            except (ssl.SSLError, OSError):
                pass
            else:
                count += 1
            sel.unregister(s)
            s.close()
            start()
    done.value = count

def summary(name, lat):
    lat = sorted(lat)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{name:<22} lookups {len(lat):>6}  p50 {pick(0.5):7.3f} ms  p99 {pick(0.99):7.3f} ms  max {lat[-1]:7.3f} ms")

summary("established, alone", measure(seconds))
done = multiprocessing.Value("l", 0)
p = multiprocessing.Process(target=storm, args=(n, seconds + 1, done))
p.start()
time.sleep(0.5)  # let the storm reach n connections in flight
lat = measure(seconds)
p.join()
summary(f"during {n} handshakes", lat)
print(f"handshakes completed during the storm: {done.value} ({done.value / (seconds + 1):.0f}/s)")
PY
