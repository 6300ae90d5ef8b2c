#!/usr/bin/env bash
# Makes sure redis-server and redis-tools (redis-cli, redis-benchmark) are installed:
# installs them with apt-get when running as root on Debian, else says what to run.
set -euo pipefail
missing=()
for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "missing: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing redis-server and redis-tools with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
  exit 0
fi
echo "install them with: sudo apt-get install -y redis-server redis-tools" >&2
exit 1
