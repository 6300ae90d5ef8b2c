#!/usr/bin/env bash
# Redis's own test suite (its Tcl `runtest`, external mode) run directly against a
# redis-server and through the proxy (RESP port, PROXY_FORWARD=all) in front of another,
# identical redis-server; reports, per unit, the cases that pass directly, how many of
# those pass through the proxy, the ratio, and the cases that pass directly but fail
# through the proxy, grouped by cause (the proxy's error reply where there is one).
#
# The suite is not in this repository and is never copied into it: REDIS_SRC names a
# folder holding Redis's `runtest` and `tests/` (best the tree of the installed
# redis-server's version). Without it the script prints how to get one and exits 0
# ("skipped"), as in CI, which cannot fetch it. For example, for redis-server 7.0.15:
#   git clone --depth 1 --branch 7.0.15 https://github.com/redis/redis target/redis-src
#   REDIS_SRC=target/redis-src make redis-suite
#
# Excluded tags (the same for both runs; `external:skip` is applied by the suite itself in
# external mode), all of which test the server, not the commands a client sends:
#   needs:repl              SYNC from the server (the replication stream)
#   needs:debug             DEBUG, and OBJECT/memory internals
#   needs:pfdebug           PFDEBUG
#   needs:config-maxmemory  CONFIG SET of memory limits and eviction
#   needs:config-resetstat  CONFIG RESETSTAT
#   needs:reset             RESET of the connection
#   needs:save              SAVE
#   needs:latency           LATENCY
#   needs:local-process     the server's process on this machine
# Tests outside those tags that still use CONFIG, DEBUG, CLIENT, ... count as failures.
#
# Both runs use --singledb (db 0, no SELECT 9), so that the proxy's cache is in the path
# (GET, MGET, EXISTS, STRLEN, TTL, PTTL answered from it); SUITE_SINGLEDB=0 lets the suite
# SELECT 9, where the proxy forwards everything uncached. Each test runs with --durable (an
# error in a test body fails that test and the unit goes on); an error outside any test
# (a start_server block's own commands) ends the unit: its remaining tests are "not run".
#
# The proxy: PROXY_FORWARD=all, PROXY_WORKERS=1, authentication off, and
# PROXY_FORWARD_ALLOW naming the @dangerous (not @admin) and amplifying commands the suite
# uses (SUITE_FORWARD_ALLOW); @admin commands (CONFIG, DEBUG, ...) go only to an admin
# principal, and the suite cannot authenticate, so they are refused. PROXY_MAX_KEYS and
# PROXY_TTL_MS are the defaults unless set in the environment.
#
# Knobs: REDIS_SRC (required), SUITE_UNITS (the units below), SUITE_SINGLEDB (1),
# SUITE_TEST_TIMEOUT (60: seconds without progress before the suite gives up on a unit,
# its --timeout), SUITE_UNIT_SECONDS (900: `timeout` around each runtest), SUITE_FORWARD_ALLOW,
# PROXY_BIN; SUITE_REPORT_ONLY=1 reads the last run's logs again. Everything listens on 127.0.0.1; the trap stops every process started here.
# Output: a table on stdout, target/bench/redis-suite.json, the suite's logs under
# target/bench/redis-suite/.
# shellcheck disable=SC2154 # NAME_PORT variables are set with printf -v
set -euo pipefail
cd "$(dirname "$0")/.."

UNITS=${SUITE_UNITS:-"type/string type/incr type/hash type/list type/set type/zset multi pubsub scripting"}
SINGLEDB=${SUITE_SINGLEDB:-1}
TEST_TIMEOUT=${SUITE_TEST_TIMEOUT:-60}
UNIT_SECONDS=${SUITE_UNIT_SECONDS:-900}
ALLOW=${SUITE_FORWARD_ALLOW:-"flushall,flushdb,keys,sort,sort_ro,swapdb,restore,srandmember,hrandfield,zrandmember,lcs,scan,sscan,hscan,zscan"}
EXCLUDED="needs:repl needs:debug needs:pfdebug needs:config-maxmemory needs:config-resetstat needs:reset needs:save needs:latency needs:local-process"

if [ -z "${REDIS_SRC:-}" ] || [ ! -f "${REDIS_SRC}/runtest" ] || [ ! -d "${REDIS_SRC}/tests" ]; then
  v=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
  echo "redis-suite: skipped: REDIS_SRC must name a folder with Redis's runtest and tests/" \
    "(${REDIS_SRC:-unset})."
  echo "  git clone --depth 1 --branch ${v:-7.0.15} https://github.com/redis/redis target/redis-src"
  echo "  REDIS_SRC=target/redis-src make redis-suite"
  exit 0
fi
REDIS_SRC=$(cd "$REDIS_SRC" && pwd)

# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
# bench-common.sh's trap, made sure to end: a redis-server busy in a script a failing test
# left running ignores SIGTERM, so its scripts are killed first and whatever is left gets
# SIGKILL after a second.
stop_all() {
  local p alive
  for p in ${direct_PORT:-} ${behind_PORT:-} ${behind_admin_PORT:-}; do
    timeout 2 redis-cli -p "$p" SCRIPT KILL >/dev/null 2>&1 || true
    timeout 2 redis-cli -p "$p" FUNCTION KILL >/dev/null 2>&1 || true
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 20); do
    alive=""
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.05
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap stop_all EXIT
need redis-server redis-server
need redis-cli redis-tools
need tclsh tcl
need python3 python3
need timeout coreutils
[ -x "$PROXY_BIN" ] || cargo build --release --bin proxyredis

OUT=target/bench
LOGS=$OUT/redis-suite
mkdir -p "$LOGS"

if [ "${SUITE_REPORT_ONLY:-0}" != 1 ]; then
rm -f "$LOGS"/*.log "$LOGS"/*.stderr
# start_redis NAME: a redis-server on a free port in $TMP/NAME; sets NAME_PORT. DEBUG is
# enabled, as in the suite's own servers (tests outside needs:debug use it).
start_redis() {
  local port; port=$(free_port); mkdir -p "$TMP/$1"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP/$1" \
    --logfile "$TMP/$1/redis.log" --enable-debug-command yes &
  PIDS+=("$!"); wait_port "$port"
  printf -v "${1}_PORT" '%s' "$port"
}
# start_proxy NAME REDIS_PORT extra-env...: the proxy in front of that Redis; sets NAME_PORT
# (RESP) once it forwards (it reads Redis's COMMAND table first).
start_proxy() {
  local name=$1 redis=$2 http resp ok=""; shift 2
  http=$(free_port); resp=$(free_port)
  env PROXY_HOST=127.0.0.1 PROXY_PORT="$http" PROXY_RESP_PORT="$resp" PROXY_WORKERS=1 \
    REDIS_HOST=127.0.0.1 REDIS_PORT="$redis" PROXY_FORWARD=all PROXY_FORWARD_ALLOW="$ALLOW" \
    PROXY_LOG=warn "$@" "$PROXY_BIN" --env-file /dev/null 2> "$LOGS/$name.stderr" &
  PIDS+=("$!"); wait_port "$http"; wait_port "$resp"
  for _ in $(seq 200); do
    [ "$(printf 'AUTH %s\nLPUSH redis-suite:probe x\n' "$TOKEN" | redis-cli -p "$resp" 2>/dev/null \
      | tail -1)" -ge 1 ] 2>/dev/null && { ok=1; break; }
    sleep 0.05
  done
  [ -n "$ok" ] || { echo "proxy $name does not forward LPUSH" >&2; cat "$LOGS/$name.stderr" >&2; exit 1; }
  printf -v "${name}_PORT" '%s' "$resp"
}

progress "redis-suite: starting three redis-servers and two proxies"
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'suite admin %s\n' "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" > "$TMP/principals"
start_redis direct
start_redis behind
start_redis behind_admin
start_proxy proxy "$behind_PORT"
start_proxy admin "$behind_admin_PORT" PROXY_AUTH_FILE="$TMP/principals"

# The admin run's copy of the suite: Redis's files untouched but for tests/support/redis.tcl,
# whose connect proc gets a wrapper sending `AUTH <token>` first (the 7.0 suite has no
# password option), so that its clients are the admin principal.
mkdir -p "$TMP/suite-admin"
cp -r "$REDIS_SRC/runtest" "$REDIS_SRC/tests" "$TMP/suite-admin/"
rm -rf "$TMP/suite-admin/tests/tmp"; mkdir -p "$TMP/suite-admin/tests/tmp"
cat >> "$TMP/suite-admin/tests/support/redis.tcl" <<'TCL'

# Added by proxyredis's scripts/redis-suite.sh: every connection authenticates first.
rename redis ::redis::connect_without_auth
proc redis {args} {
    set handle [::redis::connect_without_auth {*}$args]
    set fd $::redis::fd($::redis::id)
    set token $::env(SUITE_PROXY_TOKEN)
    puts -nonewline $fd "*2\r\n\$4\r\nAUTH\r\n\$[string length $token]\r\n$token\r\n"
    flush $fd
    set reply [string trim [gets $fd]]
    if {$reply ne "+OK"} { error "AUTH through the proxy: $reply" }
    return $handle
}
TCL

TAGS=""
for t in $EXCLUDED; do TAGS="$TAGS -$t"; done
ARGS=(--host 127.0.0.1 --tags "${TAGS# }" --timeout "$TEST_TIMEOUT" --durable --clients 1)
[ "$SINGLEDB" = 1 ] && ARGS+=(--singledb)

# run_unit TARGET PORT SUITE UNIT: one runtest, bounded by `timeout` (which signals its whole
# process group: the suite's test client too); killed by the trap if the script stops.
run_unit() {
  local log pid rc=0
  log="$LOGS/$1.${4//\//_}.log"
  ( cd "$3" && SUITE_PROXY_TOKEN=$TOKEN exec timeout -k 10 "$UNIT_SECONDS" ./runtest "${ARGS[@]}" \
      --port "$2" --single "unit/$4" ) > "$log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait "$pid" || rc=$?
  unset 'PIDS[${#PIDS[@]}-1]'
  [ "$rc" = 124 ] && echo "[timeout]: unit/$4 after ${UNIT_SECONDS}s" >> "$log"
  return 0
}

# A script a failing test left running in Redis (one whose SCRIPT KILL was never reached)
# would make the next units fail with BUSY: each unit starts with none running.
kill_scripts() {
  local p
  for p in "$direct_PORT" "$behind_PORT" "$behind_admin_PORT"; do
    redis-cli -p "$p" SCRIPT KILL >/dev/null 2>&1 || true
    redis-cli -p "$p" FUNCTION KILL >/dev/null 2>&1 || true
  done
}

for unit in $UNITS; do
  [ -f "$REDIS_SRC/tests/unit/$unit.tcl" ] || { echo "no unit $unit in $REDIS_SRC" >&2; exit 1; }
  kill_scripts
  progress "unit/$unit: directly"
  run_unit direct "$direct_PORT" "$REDIS_SRC" "$unit"
  progress "unit/$unit: through the proxy, anonymous"
  run_unit proxy "$proxy_PORT" "$REDIS_SRC" "$unit"
  progress "unit/$unit: through the proxy, as an admin principal"
  run_unit admin "$admin_PORT" "$TMP/suite-admin" "$unit"
done
fi

python3 - "$LOGS" "$OUT/redis-suite.json" "$UNITS" "$EXCLUDED" "$SINGLEDB" "$ALLOW" \
  "$(redis-server --version)" "$REDIS_SRC" <<'PY'
import json, re, sys
from collections import OrderedDict

logs, out, units, excluded, singledb, allow, version, src = sys.argv[1:]
units = units.split()
RUNS = [("proxy", "through the proxy, anonymous (the suite as it is)"),
        ("admin", "through the proxy as an admin principal (the suite's client sends AUTH)")]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STATUS = re.compile(r"^\[(ok|err|exception|timeout|ignore|skip|TIMEOUT)\]: (.*)$")
IN_FILE = re.compile(r" in tests/unit/\S+\.tcl$")
REPLY = re.compile(r"^-?(ERR|WRONGTYPE|NOSCRIPT|BUSY|EXECABORT|NOPERM|NOAUTH|WRONGPASS|OOM|"
                   r"UNKILLABLE|NOTBUSY|READONLY|I/O error|error reading|couldn't|"
                   r"Executing test client|AUTH through)")


def parse(path):
    """Each test's name (numbered when a unit repeats it) -> (passed, first error line);
    the errors outside any test (a start_server block stops there; with --durable the unit
    goes on with the next block) and the unit's end by an exception or a timeout."""
    try:
        lines = [ANSI.sub("", l.rstrip("\n")) for l in open(path, errors="replace")]
    except FileNotFoundError:
        return OrderedDict(), [], "no log"
    tests, seen, blocks, abort = OrderedDict(), {}, [], None
    i = 0
    while i < len(lines):
        m = STATUS.match(lines[i])
        i += 1
        if not m:
            continue
        status, data = m.groups()
        if status in ("ignore", "skip"):
            continue
        body = [data]
        if status != "ok":
            while i < len(lines) and not STATUS.match(lines[i]) and not lines[i].startswith("["):
                body.append(lines[i])
                i += 1
        if status in ("exception", "timeout", "TIMEOUT"):
            abort = first_error(body)
            continue
        if status == "ok":
            name, err = re.sub(r" \(\d+ ms\)$", "", data), None
        elif IN_FILE.search(data):
            name, err = IN_FILE.sub("", data), first_error(body[1:])
        else:
            blocks.append(first_error(body))
            continue
        n = seen.get(name, 0) + 1
        seen[name] = n
        tests[name if n == 1 else f"{name} #{n}"] = (status == "ok", err)
    return tests, blocks, abort


def first_error(body):
    """The most telling line of a failure: an error reply (errorInfo's first line has it in
    full; --durable cuts the first 10 characters off the message line), else the
    assertion's first line."""
    body = [l.strip() for l in body if l.strip()]
    for l in body:
        if REPLY.match(l):
            return l
    return body[0] if body else "(no message)"


BLOCKING = {"blpop", "brpop", "brpoplpush", "blmove", "blmpop", "bzpopmin", "bzpopmax",
            "bzmpop", "wait", "waitaof", "xread", "xreadgroup"}
SUBSCRIBE = {"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
             "sunsubscribe"}
REFUSED = re.compile(r"-?ERR (.+?) is not (?:forwarded|supported) by proxyredis[ :(]*([^)]*)\)?")


def cause(err):
    """A failure's cause, by what the proxy lacks: the command its refusal names, else the
    kind of difference (some are cascades: an earlier failing test left its connection in
    RESP3 or in the client's raw mode, or left a script running)."""
    err = re.sub(r"^Executing test client: ", "", err)
    inner = re.search(r"'(-(?:ERR|WRONGPASS|NOPERM|NOAUTH)[^']*)'", err)
    text = inner.group(1) if inner and not REPLY.match(err) else err
    m = REFUSED.search(text)
    if m:
        cmd, why = m.group(1), m.group(2).strip()
        first = cmd.split()[0].lower()
        if first in BLOCKING:
            return "blocking commands refused (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZMPOP, ...)"
        if first in SUBSCRIBE:
            return "subscriber mode refused (SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE)"
        return f"{cmd.upper()} refused: {why}"
    if "blocked clients" in err:
        return ("blocking commands refused: the test waits for a client blocked in"
                " BLPOP/BRPOPLPUSH/... that was refused")
    if "backend unavailable" in text:
        return ("a deeply nested reply (a recursive Lua table): the proxy answers"
                " -ERR backend unavailable")
    if err.startswith("BUSY"):
        return ("Redis BUSY: a script left running by an earlier failing test"
                " (SCRIPT KILL never reached)")
    if re.match(r"Expected 'PONG' to match 'BUSY", err):
        return "PING answered by the proxy itself: no BUSY while a script runs in Redis"
    if re.match(r"Expected 'QUEUED' to match '\*Command not allowed inside a transaction", err):
        return ("MULTI queued by the proxy: a no-multi command (SAVE, SHUTDOWN) is QUEUED,"
                " Redis refuses it when queued")
    if re.match(r"Expected '[^']*' to match 'EXECABORT", err):
        return ("MULTI queued by the proxy: Redis's queue-time error (BUSY during a script)"
                " not seen, EXEC runs the transaction")
    if re.search(r"\{\S+ -?\d+\.\d+\}|to be equal to '-?\d+\.0'", err):
        return ("RESP3 replies (doubles, pairs) where RESP2 is expected: the connection"
                " was left in RESP3 by an earlier failing test (cascade)")
    if re.match(r"Expected '(assertion:|[$:+*][^']*')|Expected '[^']*' to (be equal to|equal or match) '[$:+*]", err):
        return ("the client's raw-reply mode left on by an earlier failing test (cascade)")
    if inner:
        return "different reply: the proxy answered " + re.sub(r"\d+", "N", inner.group(1))[:90]
    if "proxyredis" in text:
        return "proxy error: " + re.sub(r"\d+", "N", text)[:110]
    if err.startswith("Expected") or err.startswith("assertion"):
        return "different reply (assertion; see the case)"
    return "error: " + re.sub(r"\d+", "N", err)[:110]


def not_run(blocks, abort):
    if abort:
        return f"not run: the unit ended: {cause(abort)}"
    if blocks:
        cs = sorted({cause(b) for b in blocks})
        return "not run: its start_server block stopped outside any test: " + "; ".join(cs)
    return "not run: the unit skipped it (a condition on INFO, which the proxy answers itself)"


result = {"redis_server": version, "redis_src": src, "singledb": singledb == "1",
          "excluded_tags": excluded.split(), "proxy_forward_allow": allow.split(","),
          "units": [], "runs": {}}
totals = {"direct": 0, **{r: 0 for r, _ in RUNS}}
fails = {r: [] for r, _ in RUNS}
for unit in units:
    key = unit.replace("/", "_")
    direct, dblocks, dabort = parse(f"{logs}/direct.{key}.log")
    passing = [n for n, (ok, _) in direct.items() if ok]
    row = {"unit": unit, "run_direct": len(direct), "pass_direct": len(passing),
           "direct_ended": dabort}
    totals["direct"] += len(passing)
    for run, _ in RUNS:
        tests, blocks, abort = parse(f"{logs}/{run}.{key}.log")
        both = [n for n in passing if tests.get(n, (False, None))[0]]
        row[f"pass_{run}"] = len(both)
        row[f"ratio_{run}"] = round(len(both) / len(passing), 4) if passing else None
        row[f"{run}_errors_outside_tests"] = blocks
        row[f"{run}_ended"] = abort
        totals[run] += len(both)
        for n in passing:
            if n in both:
                continue
            if n in tests:
                err = tests[n][1] or "(no message)"
                c = cause(err)
            else:
                c = not_run(blocks, abort)
                err = c
            fails[run].append({"unit": unit, "test": n, "error": err, "cause": c})
    result["units"].append(row)


def pct(a, b):
    return f"{a / b:.2f}" if b else "n/a"


print(f"\nRedis test suite ({version.split(' sha')[0]}; {src}), external mode,"
      f" {'--singledb' if singledb == '1' else 'db 9 (SELECT 9)'}, --durable")
print(f"excluded tags: {excluded} (and external:skip)")
print("proxy: PROXY_FORWARD=all, PROXY_FORWARD_ALLOW=" + allow)
print(f"\n{'unit':<14}{'run':>5}{'direct':>8}{'proxy':>7}{'ratio':>7}{'admin':>7}{'ratio':>7}")
for r in result["units"]:
    print(f"{r['unit']:<14}{r['run_direct']:>5}{r['pass_direct']:>8}"
          f"{r['pass_proxy']:>7}{pct(r['pass_proxy'], r['pass_direct']):>7}"
          f"{r['pass_admin']:>7}{pct(r['pass_admin'], r['pass_direct']):>7}")
print(f"{'overall':<14}{'':>5}{totals['direct']:>8}{totals['proxy']:>7}"
      f"{pct(totals['proxy'], totals['direct']):>7}{totals['admin']:>7}"
      f"{pct(totals['admin'], totals['direct']):>7}")
print("direct: cases passing against redis-server; proxy / admin: of those, the ones passing"
      " through the proxy\n(anonymous, the suite unchanged / as an admin principal, the"
      " suite's client sending AUTH first)")
for run, title in RUNS:
    groups = OrderedDict()
    for f in fails[run]:
        groups.setdefault(f["cause"], []).append(f)
    print(f"\nPassing directly, failing {title}: {len(fails[run])}, by cause")
    for c, fs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(fs):>4}  {c}")
    result["runs"][run] = {"title": title, "pass_direct": totals["direct"],
                           "pass": totals[run],
                           "ratio": round(totals[run] / totals["direct"], 4)
                           if totals["direct"] else None,
                           "causes": {c: len(fs) for c, fs in groups.items()},
                           "failures": fails[run]}
print(f"\nEach case failing as an admin principal (unit: test: first error line):")
for f in fails["admin"]:
    print(f"  {f['unit']}: {f['test']}: {f['error'][:150]}")
json.dump(result, open(out, "w"), indent=1)
print(f"\nwrote {out}; the anonymous run's cases are there too; logs in {logs}/")
PY
