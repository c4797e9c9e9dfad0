#!/usr/bin/env bash
# What an idle `vigil serve` costs: the CPU time (utime + stime, in clock
# ticks, from /proc/PID/stat) and the context switches (every thread's, from
# /proc/PID/task/*/status) of a server that received a few requests and then
# nothing for QUIET seconds. Once with the inference log on (the demo model,
# SQLite in a temporary data directory, access log on), once with it off.
# See bench/README.md.
#
#   bench/idle.sh                      # builds the release binary, 60 s per mode
#   VIGIL=/tmp/vigil-old QUIET=30 bench/idle.sh
#
# Environment (defaults in brackets):
#   VIGIL     [target/release/vigil, built first]  the binary to measure
#   QUIET     [60]        seconds of no traffic measured per mode
#   SETTLE    [2]         seconds after the last request before measuring
#   REQUESTS  [5]         scoring requests sent before the quiet period
#   MODES     [log nolog] which modes, in this order
set -euo pipefail
cd "$(dirname "$0")/.."

QUIET=${QUIET:-60}
SETTLE=${SETTLE:-2}
REQUESTS=${REQUESTS:-5}
MODES=${MODES:-"log nolog"}

die() { printf 'idle: %s\n' "$*" >&2; exit 1; }

if [[ -z "${VIGIL:-}" ]]; then
  cargo build --release -p vigil >&2
  VIGIL=${CARGO_TARGET_DIR:-target}/release/vigil
fi
[[ -x $VIGIL ]] || die "no binary at $VIGIL"
command -v curl >/dev/null || die "curl is needed"

WORK=$(mktemp -d /tmp/vigil-idle.XXXXXX)
PID=
cleanup() {
  if [[ -n $PID ]]; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime + stime of the whole process (every thread), in clock ticks. The
# command name may hold spaces, so the fields are counted after its ")".
ticks() {
  local rest
  rest=$(sed 's/.*) //' "/proc/$1/stat")
  # shellcheck disable=SC2086
  set -- $rest
  echo $(( ${12} + ${13} ))
}

# Context switches (voluntary + involuntary) of every thread, one
# "TID COUNT" line each: a thread that sleeps on a timer shows here even when
# its ticks round to 0.
switches() {
  local task
  for task in /proc/"$1"/task/*; do
    awk -v tid="${task##*/}" '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 }
      END { print tid, n + 0 }' "$task/status" 2>/dev/null || true
  done
}

# Switches between two `switches` readings: threads alive at both count
# their difference, threads born in between count all of theirs (a thread
# that ended in between, such as an idle blocking-pool worker, took its
# count with it).
switched() { # before after
  awk 'NR == FNR { was[$1] = $2; next } { n += $2 - ($1 in was ? was[$1] : 0) } END { print n + 0 }' \
    <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

BODY='{"features": {"amount": 950, "merchant_category": 5, "hour": 3, "card_age_days": 12,
  "tx_last_hour": 4, "distance_from_home_km": 800, "foreign": 1, "new_device": 1}}'
HZ=$(getconf CLK_TCK)

measure() { # mode
  local mode=$1 data=$WORK/$1-data config=$WORK/$1.toml
  local args=(serve --listen 127.0.0.1:0 --data-dir "$data")
  if [[ $mode == nolog ]]; then
    # The same demo model, with the inference log off.
    printf '[store]\nenabled = false\n\n[[models]]\nname = "fraud"\npath = "%s"\n' \
      "$(realpath crates/vigil-server/assets/demo-fraud.json)" > "$config"
    args+=(--config "$config")
  fi
  # stdout: the "listening" line, then the access log.
  "$VIGIL" "${args[@]}" > "$WORK/$mode.out" 2> "$WORK/$mode.err" &
  PID=$!
  local addr="" i
  for i in $(seq 1 200); do
    addr=$(sed -n 's/.*"msg":"listening".*"addr":"\([^"]*\)".*/\1/p;s/.*"addr":"\([^"]*\)".*"msg":"listening".*/\1/p' \
      "$WORK/$mode.out" | head -n 1)
    [[ -n $addr ]] && break
    kill -0 "$PID" 2>/dev/null || { tail "$WORK/$mode.err" >&2; die "$mode: the server exited"; }
    sleep 0.05
  done
  [[ -n $addr ]] || die "$mode: no \"listening\" line after 10 s"
  for i in $(seq 1 "$REQUESTS"); do
    curl -fsS -o /dev/null -H 'content-type: application/json' -d "$BODY" \
      "http://$addr/v1/models/fraud/score" || die "$mode: request $i failed"
  done
  sleep "$SETTLE"
  local t0 s0 t1 s1
  t0=$(ticks "$PID"); s0=$(switches "$PID")
  sleep "$QUIET"
  t1=$(ticks "$PID"); s1=$(switches "$PID")
  local switched_n
  switched_n=$(switched "$s0" "$s1")
  local threads
  threads=$(ls /proc/"$PID"/task | wc -l)
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
  PID=
  printf '%-6s  %3d ticks (%d ms of CPU) and %5d context switches in %d s idle, %d threads\n' \
    "$mode" $((t1 - t0)) $(( (t1 - t0) * 1000 / HZ )) "$switched_n" "$QUIET" "$threads"
}

echo "idle: $VIGIL, $REQUESTS requests, then $QUIET s without traffic (CLK_TCK=$HZ)"
for mode in $MODES; do
  measure "$mode"
done
