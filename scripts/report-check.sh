#!/usr/bin/env bash
# Checks target/bench/report.html (scripts/bench-report.py) in a real headless browser:
# Debian's chromium renders it to a screenshot and dumps its DOM; fails when the page logs
# a console error, when it asks for anything over the network, or when a panel's chart (inline
# SVG) or its "run make ..." note is missing. Usage: scripts/report-check.sh [REPORT] [PNG]
# (defaults target/bench/report.html, target/bench/report.png). Needs chromium
# (sudo apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT=${1:-target/bench/report.html}
PNG=${2:-target/bench/report.png}
command -v chromium >/dev/null 2>&1 || { echo "missing chromium: sudo apt-get install -y chromium" >&2; exit 1; }
[ -f "$REPORT" ] || { echo "no $REPORT: run scripts/bench-report.py" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
url="file://$(realpath "$REPORT")"
# --no-sandbox: root cannot use chromium's sandbox; every background service is off so that
# nothing but the page is fetched, and --host-resolver-rules makes any lookup fail loudly.
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --disable-extensions --hide-scrollbars
  --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$TMP/profile" --enable-logging=stderr --v=0)
timeout 120 chromium "${flags[@]}" --window-size="${REPORT_WINDOW:-1200,2600}" --screenshot="$PNG" "$url" 2> "$TMP/shot.log" >/dev/null
timeout 120 chromium "${flags[@]}" --dump-dom "$url" 2> "$TMP/dom.log" > "$TMP/dom.html"

fail=""
# Console messages from the page ("CONSOLE(...)" / "Uncaught") and failed loads of anything it asked for.
if grep -hE 'CONSOLE|Uncaught|ERR_NAME_NOT_RESOLVED|net::ERR_' "$TMP/shot.log" "$TMP/dom.log" \
    | grep -v 'ERR_INTERNET_DISCONNECTED' > "$TMP/errors"; then
  echo "FAIL: the page logged errors:" >&2; sed 's/^/  /' "$TMP/errors" >&2; fail=1
fi
svgs=$({ grep -o '<svg' "$TMP/dom.html" || true; } | wc -l)
for panel in "(a) Throughput" "(b) Latency" "(c) Proxy RSS"; do
  grep -qF "$panel" "$TMP/dom.html" || { echo "FAIL: panel '$panel' missing from the DOM" >&2; fail=1; }
done
# Each panel has its chart, or says how to make its data.
for want in 'workloads beside their anchors|run <code>make bench</code>' \
            'latency against offered load|scripts/bench-open-loop.sh' \
            'proxy RSS over the soak|run <code>make soak</code>'; do
  grep -qE "$want" "$TMP/dom.html" || { echo "FAIL: neither a chart nor its note: $want" >&2; fail=1; }
done
grep -qiE '<script|src="http|href="http' "$TMP/dom.html" && { echo "FAIL: the report loads scripts or remote files" >&2; fail=1; }
[ -s "$PNG" ] || { echo "FAIL: no screenshot $PNG" >&2; fail=1; }
[ -z "$fail" ] || exit 1
echo "report check: OK in $(chromium --version 2>/dev/null | head -1): $svgs SVG charts, no console errors; screenshot $PNG"
