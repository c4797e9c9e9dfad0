#!/usr/bin/env bash
# The web console's performance figures (issue 15): first contentful paint
# of `/` on loopback, the server time the Vigil-Overview dashboard's data
# take, and the server's CPU with the overview open and refreshing every
# 10 s against none open. Starts `vigil serve` (demo model, temporary data
# directory), sends some scoring requests so the dashboards have data, and
# runs tests/browser/perf.mjs (Debian's Chromium through playwright-core;
# `npm ci` in tests/browser first). See bench/README.md.
#
#   bench/console.sh                          # the debug binary, 60 s windows
#   VIGIL=target/release/vigil WINDOW=30 bench/console.sh
#
# Environment (defaults in brackets):
#   VIGIL     [target/debug/vigil]  the binary to measure
#   WINDOW    [60]     seconds of each CPU window (console closed, then open)
#   REQUESTS  [50]     scoring requests sent first
set -euo pipefail
cd "$(dirname "$0")/.."

VIGIL=${VIGIL:-target/debug/vigil}
WINDOW=${WINDOW:-60}
REQUESTS=${REQUESTS:-50}

die() { printf 'console: %s\n' "$*" >&2; exit 1; }
[[ -x $VIGIL ]] || die "no binary at $VIGIL (cargo build -p vigil)"
[[ -f tests/browser/node_modules/playwright-core/package.json ]] ||
  die "no playwright-core: run npm ci in tests/browser"
command -v curl >/dev/null || die "curl is needed"

WORK=$(mktemp -d /tmp/vigil-console.XXXXXX)
PID=
cleanup() {
  if [[ -n $PID ]]; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=127.0.0.1:$PORT
"$VIGIL" serve --listen "$addr" --data-dir "$WORK/data" >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://$addr/v2/health/ready" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || die "vigil exited: $(tail -5 "$WORK/serve.log")"
  sleep 0.1
done
for i in $(seq "$REQUESTS"); do
  body="{\"id\": \"console-$i\", \"features\": {\"amount\": $((100 + i)), \"merchant_category\": 5, \"hour\": 3, \"card_age_days\": 12, \"tx_last_hour\": 4, \"distance_from_home_km\": 800, \"foreign\": 1, \"new_device\": 1}}"
  curl -fsS -o /dev/null -H 'content-type: application/json' -d "$body" \
    "http://$addr/v1/models/fraud/score" || die "request $i failed"
done
sleep 2
printf 'console: %s on %s, %s requests sent, %s s CPU windows\n' "$VIGIL" "$addr" "$REQUESTS" "$WINDOW"
node tests/browser/perf.mjs "$addr" "$PID" "$WINDOW" "$(getconf CLK_TCK)"
