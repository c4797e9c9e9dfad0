#!/usr/bin/env bash
# Log-on vs log-off throughput in interleaved pairs: on a machine whose speed
# drifts, a ratio from back-to-back runs of the two is the one to trust.
# Uses the configs, bodies and binary that bench/run.sh prepared, so run that
# once first (e.g. TARGETS="vigil vigil-nolog" DURATION=2 bench/run.sh).
#
#   bench/pairs.sh                 # 3 pairs, 6 s of wrk at 64 conns each
#   ROUNDS=5 DURATION=10 bench/pairs.sh
#   RATE=10000 bench/pairs.sh      # fixed-rate rounds instead: p50/p99 of the
#                                  # bare axum floor, log off and log on
#                                  # (`vigil bench`, open loop, 32 conns)
#   PAIR=metrics bench/pairs.sh    # metrics on vs off (both with the log on):
#                                  # the telemetry spine's cost
#   PAIR=traces bench/pairs.sh     # tracing on (the Default rule: 1/s + 5%)
#                                  # vs off; PAIR=traces-all: every request
#                                  # sampled vs off
#   PAIR=logs bench/pairs.sh       # the log store on vs off (both with the
#                                  # inference log on): the cost of keeping
#                                  # the access log in /vigil/access
#                                  # (the pairs: bench/pair-configs.sh)
#   BASELINE=/tmp/old/vigil bench/pairs.sh
#                                  # this build against another binary (e.g.
#                                  # the last landed commit's), both with the
#                                  # log off, then both with it on
#   BASELINE=/tmp/old/vigil PAIR=traces-all bench/pairs.sh
#                                  # ... both with the PAIR's "on" config
#                                  # (here: every request traced)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
CONNS=${CONNS:-64}
RATE=${RATE:-}
WORK=bench/results/work
VIGIL=${CARGO_TARGET_DIR:-target}/release/vigil
FLOOR=${CARGO_TARGET_DIR:-target}/release/vigil-floor
for f in "$VIGIL" "$FLOOR" "$WORK/vigil.toml" "$WORK/vigil-nolog.toml" "$WORK/v1-noid.json"; do
  [[ -e $f ]] || { echo "pairs: $f is missing: run bench/run.sh once first" >&2; exit 1; }
done

# Prints the req/s (or, with RATE, "p50 p99" in ms) of one fresh server on
# port $2: Vigil with config $1, or the floor when $1 is "floor"; $3, if
# given, is the Vigil binary to serve with.
one_run() {
  rm -rf "$WORK/vigil-data"
  if [[ $1 == floor ]]; then
    setsid "$FLOOR" "127.0.0.1:$2" >/dev/null 2>>"$WORK/pairs.log" &
  else
    setsid "${3:-$VIGIL}" serve --config "$1" >/dev/null 2>>"$WORK/pairs.log" &
  fi
  local pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && break; sleep 0.05; done
  local url="http://127.0.0.1:$2/v1/models/fraud/score"
  if [[ -n $RATE ]]; then
    "$VIGIL" bench --url "$url" --body "$WORK/v1-noid.json" --rate "$RATE" \
      --duration "$DURATION" --warmup 2 --connections 32 --json |
      python3 -c 'import json,sys; l=json.load(sys.stdin)["latency_us"]; print(l["p50"]/1e3, l["p99"]/1e3)'
  else
    BODY_FILE=$WORK/v1-noid.json wrk -t1 -c"$CONNS" -d2s -s bench/post.lua "$url" >/dev/null
    BODY_FILE=$WORK/v1-noid.json wrk -t1 -c"$CONNS" -d"${DURATION}s" -s bench/post.lua "$url" |
      sed -n 's/^RESULT .*"rps":\([0-9.]*\).*/\1/p'
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}

# Interleaved pairs of one server config against another: each pair's
# req/s and ratio, then the means. $1 $2 $3: name, config and port of the
# "off" side; $4 $5 $6: of the "on" side.
pairs() {
  local off_sum=0 on_sum=0 off on round
  for round in $(seq "$ROUNDS"); do
    off=$(one_run "$2" "$3")
    on=$(one_run "$5" "$6")
    printf 'pair %d: %s %8.0f req/s, %s %8.0f req/s, ratio %.3f\n' \
      "$round" "$1" "$off" "$4" "$on" "$(echo "$on / $off" | bc -l)"
    off_sum=$(echo "$off_sum + $off" | bc -l)
    on_sum=$(echo "$on_sum + $on" | bc -l)
  done
  printf 'mean: %s %.0f req/s, %s %.0f req/s, ratio %.3f (%d pairs, %d conns, %d s)\n' \
    "$1" "$(echo "$off_sum / $ROUNDS" | bc -l)" "$4" "$(echo "$on_sum / $ROUNDS" | bc -l)" \
    "$(echo "$on_sum / $off_sum" | bc -l)" "$ROUNDS" "$CONNS" "$DURATION"
}

# shellcheck source=bench/pair-configs.sh
source bench/pair-configs.sh
# Interleaved pairs of the $BASELINE binary against this build, both
# serving config $1 on port $2, labelled $3.
against_baseline() {
  local old_sum=0 new_sum=0 old new round
  for round in $(seq "$ROUNDS"); do
    old=$(one_run "$1" "$2" "$BASELINE")
    new=$(one_run "$1" "$2")
    printf 'pair %d (%s): baseline %8.0f req/s, this build %8.0f req/s, ratio %.3f\n' \
      "$round" "$3" "$old" "$new" "$(echo "$new / $old" | bc -l)"
    old_sum=$(echo "$old_sum + $old" | bc -l)
    new_sum=$(echo "$new_sum + $new" | bc -l)
  done
  printf 'mean (%s): baseline %.0f req/s, this build %.0f req/s, ratio %.3f (%d pairs, %d conns, %d s)\n' \
    "$3" "$(echo "$old_sum / $ROUNDS" | bc -l)" "$(echo "$new_sum / $ROUNDS" | bc -l)" \
    "$(echo "$new_sum / $old_sum" | bc -l)" "$ROUNDS" "$CONNS" "$DURATION"
}

if [[ -n ${PAIR:-} ]] && pair_configs "$PAIR" "$WORK"; then
  if [[ -n ${BASELINE:-} ]]; then
    against_baseline "$ON_CONFIG" 18091 "$ON_NAME"
  else
    pairs "$OFF_NAME" "$OFF_CONFIG" 18091 "$ON_NAME" "$ON_CONFIG" 18091
  fi
  exit 0
fi
[[ -z ${PAIR:-} ]] || { echo "PAIR=$PAIR: no such pair (see bench/pair-configs.sh)" >&2; exit 2; }

if [[ -n $RATE ]]; then
  # The floor runs in every round too: its p99 shows what the machine and
  # the load generator on the same cores allow in that moment.
  for round in $(seq "$ROUNDS"); do
    read -r fl50 fl99 < <(one_run floor 18090)
    read -r off50 off99 < <(one_run "$WORK/vigil-nolog.toml" 18094)
    read -r on50 on99 < <(one_run "$WORK/vigil.toml" 18091)
    printf 'round %d at %d req/s, p50 / p99 in ms: floor %.2f / %.2f, log off %.2f / %.2f, log on %.2f / %.2f\n' \
      "$round" "$RATE" "$fl50" "$fl99" "$off50" "$off99" "$on50" "$on99"
  done
  exit 0
fi

if [[ -n ${BASELINE:-} ]]; then
  # Each config names its port (bench/run.sh): 18091 log on, 18094 off.
  against_baseline "$WORK/vigil-nolog.toml" 18094 nolog
  against_baseline "$WORK/vigil.toml" 18091 log
  exit 0
fi

pairs "log off" "$WORK/vigil-nolog.toml" 18094 "log on" "$WORK/vigil.toml" 18091
