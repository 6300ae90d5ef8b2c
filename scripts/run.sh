#!/usr/bin/env bash
# `make run`: starts the release proxy. When REDIS_HOST:REDIS_PORT (environment, else the
# `env` file) is not set or not reachable, starts a throwaway redis-server on a free
# loopback port in a temporary directory and points the proxy at it; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

from_env_file() {
  sed -n "s/^[[:space:]]*\(export[[:space:]]\+\)\?$1=//p" env 2>/dev/null | tail -n 1 | tr -d "\"'"
}
reachable() {
  [ -n "$1" ] && [ -n "$2" ] && timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

host=${REDIS_HOST:-$(from_env_file REDIS_HOST)}
port=${REDIS_PORT:-$(from_env_file REDIS_PORT)}
tmp=""
redis_pid=""
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [ -n "$tmp" ] && rm -rf "$tmp"
  return 0
}
trap cleanup EXIT

if reachable "$host" "$port"; then
  echo "using Redis at $host:$port"
else
  echo "Redis at ${host:-<unset>}:${port:-<unset>} is not reachable; starting a local redis-server"
  tmp=$(mktemp -d)
  port=6390
  while reachable 127.0.0.1 "$port"; do port=$((port + 1)); done
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do reachable 127.0.0.1 "$port" && break; sleep 0.05; done
  reachable 127.0.0.1 "$port" || { echo "redis-server did not start; see $tmp/redis.log" >&2; exit 1; }
  host=127.0.0.1
  echo "local redis-server on 127.0.0.1:$port (pid $redis_pid); Ctrl-C stops both"
fi

http_port=${PROXY_PORT:-$(from_env_file PROXY_PORT)}
resp_port=${PROXY_RESP_PORT:-$(from_env_file PROXY_RESP_PORT)}
cat <<TRY
try it, in another terminal (straight into Redis, then through the proxy over HTTP and RESP):
  redis-cli -h $host -p $port SET greeting hello
  curl 'localhost:${http_port:-8000}/lookup?key=greeting'
  redis-cli -p ${resp_port:-6380} GET greeting
TRY
REDIS_HOST=$host REDIS_PORT=$port ./target/release/proxyredis "$@"
