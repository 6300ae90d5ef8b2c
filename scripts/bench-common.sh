# Shared by the bench scripts, sourced once they are in the project root: a temporary
# directory and the processes to stop at exit (PIDS), tool checks, free loopback ports, a
# process's CPU time in clock ticks, ratios, progress lines, and the pinning: servers under
# test on core 0 (SERVER_CPU), load generators on core 1 (LOAD_CPU), when there are two.
# The release build is found where cargo puts it: under $CARGO_TARGET_DIR when that is set,
# else target/ (RELEASE_DIR, PROXY_BIN; PROXY_BIN may also be given to run another binary).
# shellcheck shell=bash
# shellcheck disable=SC2034 # used by the scripts that source this file
RELEASE_DIR=${CARGO_TARGET_DIR:-target}/release
PROXY_BIN=${PROXY_BIN:-$RELEASE_DIR/proxyredis}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck disable=SC2034 # used by the scripts that source this file
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU="taskset -c 0"; LOAD_CPU="taskset -c 1"; PIN="server core 0, load core 1"
else SERVER_CPU=""; LOAD_CPU=""; PIN="unpinned (one core)"; fi

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing $1: sudo apt-get install -y $2" >&2; exit 1; }; }
port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
free_port() { local p=$((20000 + RANDOM % 12000)); while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_port() { for _ in $(seq 200); do port_free "$1" || return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
progress() { echo "-- $(date +%T) $*" >&2; }
# The start of an nginx.conf for a reference server under $TMP/nginx: one worker in the
# foreground, no logs; the caller adds its own http settings and server blocks and closes
# the http block.
nginx_conf_head() {
  mkdir -p "$TMP/nginx"
  cat <<NGINX
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
NGINX
}

# Starts the reference nginx on 127.0.0.1:$1, answering every request with the JSON the
# proxy sends for a cached key, on SERVER_CPU; extra http directives in $2. Sets NGINX_PID.
start_nginx_json() {
  { nginx_conf_head; cat <<NGINX
  ${2:-}
  server {
    listen 127.0.0.1:$1;
    location / { default_type application/json; return 200 '{"key":"key:000000000000","value":"value:00000000000000000000000000","status":200}'; }
  }
}
NGINX
  } > "$TMP/nginx.conf"
  # shellcheck disable=SC2086 # SERVER_CPU is a command prefix or nothing
  $SERVER_CPU nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" &
  NGINX_PID=$!; PIDS+=("$NGINX_PID"); wait_port "$1"
}

# The hot-key workload: 100 keys key:000000000000 .. key:000000000099, each valued as the
# reference nginx's JSON says (value:%026d).
# Sets them in the Redis on port $1.
set_hot_keys() {
  awk 'BEGIN { for (i = 0; i < 100; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n",
    sprintf("key:%012d", i), sprintf("value:%026d", i) }' | redis-cli -p "$1" --pipe >/dev/null
}
# Writes $TMP/hot.lua: wrk cycling GET /lookup over them.
write_hot_lua() {
  cat > "$TMP/hot.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format("GET", string.format("/lookup?key=key:%012d", i))
end
LUA
}
# Looks each of them up once through the proxy's HTTP port $1, so they are cached.
warm_hot_keys() {
  local i
  for i in $(seq 0 99); do curl -s "http://127.0.0.1:$1/lookup?key=key:$(printf %012d "$i")" >/dev/null; done
}
