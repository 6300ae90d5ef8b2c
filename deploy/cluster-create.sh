#!/bin/sh
# Joins fresh cluster-enabled redis-servers into one Redis Cluster and waits until it is
# usable: every node answers cluster_state:ok and reports the same slot map and roles.
# Does nothing (exit 0) when the first node already belongs to a healthy cluster, so it can
# run on every `docker compose up`. Used by scripts/run-cluster.sh and docker-compose.yml.
#
#   deploy/cluster-create.sh HOST:PORT HOST:PORT ...     (at least 3 masters' worth)
#
# CLUSTER_REPLICAS (default 1): replicas per master; CLUSTER_WAIT_S (default 30): bound on
# each wait. Host names are resolved to IPv4 addresses first, since CLUSTER MEET (which
# `redis-cli --cluster create` sends) takes addresses only. POSIX sh: it also runs in the
# busybox shell of the redis:7-alpine image.
set -eu

replicas=${CLUSTER_REPLICAS:-1}
wait_s=${CLUSTER_WAIT_S:-30}
[ $# -ge 3 ] || { echo "usage: $0 HOST:PORT HOST:PORT HOST:PORT ..." >&2; exit 2; }

cli() { # cli HOST:PORT ARGS...
  cli_addr=$1
  shift
  redis-cli -h "${cli_addr%:*}" -p "${cli_addr##*:}" "$@"
}

# Polls "$@" every 0.2 s, up to $wait_s seconds.
until_true() {
  tries=$((wait_s * 5))
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.2
  done
}

answers() { [ "$(cli "$1" ping 2>/dev/null)" = PONG ]; }

state_ok() { cli "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

# Node id, role, master id and slot ranges of every member, as NODE sees them.
slot_map() {
  cli "$1" cluster nodes | tr -d '\r' | awk '{
    role = ($3 ~ /master/) ? "master" : "replica"
    slots = ""
    for (i = 9; i <= NF; i++) if ($i !~ /^\[/) slots = slots " " $i
    print $1, role, $4, slots
  }' | sort
}

agreed() {
  first=""
  for node in "$@"; do
    state_ok "$node" || return 1
    [ "$(cli "$node" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')" = $# ] ||
      return 1
    map=$(slot_map "$node") || return 1
    [ -z "$first" ] && first=$map
    [ "$map" = "$first" ] || return 1
  done
}

for node in "$@"; do
  until_true answers "$node" || { echo "redis at $node does not answer PING" >&2; exit 1; }
done

if state_ok "$1"; then
  echo "$1 already belongs to a healthy cluster; nothing to create"
  exit 0
fi

addrs=""
for node in "$@"; do
  host=${node%:*}
  case $host in
    *[!0-9.]*)
      ip=$(getent hosts "$host" | awk '$1 ~ /^[0-9.]+$/ { print $1; exit }')
      [ -n "$ip" ] || { echo "cannot resolve $host to an IPv4 address" >&2; exit 1; }
      ;;
    *) ip=$host ;;
  esac
  addrs="$addrs $ip:${node##*:}"
done

# shellcheck disable=SC2086 # one word per node address
redis-cli --cluster create $addrs --cluster-replicas "$replicas" --cluster-yes

if ! until_true agreed "$@"; then
  echo "the cluster did not settle within ${wait_s}s; as $1 sees it:" >&2
  cli "$1" cluster nodes >&2 || true
  exit 1
fi
echo "cluster ready: $# nodes, $replicas replica(s) per master"
