#!/usr/bin/env bash
# Server CPU per request at a fixed rate, by thread: a figure that a busy
# machine barely moves (unlike req/s or p99), for log on against log off.
# Uses what bench/run.sh prepared (run it once first).
#
#   bench/cpu.sh                    # 10,000 req/s for 8 s, log off then on
#   RATE=5000 DURATION=10 ROUNDS=3 bench/cpu.sh
#   PAIR=logs bench/cpu.sh          # the log store off then on (both with the
#                                   # inference log on): the cost of Vigil's
#                                   # own groups /vigil/access and /vigil/inference
#   PAIR=traces bench/cpu.sh        # tracing off then on (the Default rule);
#   PAIR=traces-all bench/cpu.sh    # ... or with every request sampled
#   PAIR=metrics bench/cpu.sh       # (the pairs of bench/pair-configs.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-10000}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
WORK=bench/results/work
VIGIL=${CARGO_TARGET_DIR:-target}/release/vigil
TICK=$(getconf CLK_TCK)

# "comm ticks" for every thread of $1.
thread_ticks() {
  for t in /proc/"$1"/task/*; do
    # comm may hold spaces: take the fields after its closing parenthesis.
    local stat comm rest
    stat=$(<"$t/stat") || continue
    comm=${stat#*(}; comm=${comm%)*}; rest=${stat##*) }
    read -r -a f <<<"$rest"
    echo "${comm// /_} $((f[11] + f[12]))"
  done
}

one() { # config port label
  rm -rf "$WORK/vigil-data"
  setsid "$VIGIL" serve --config "$1" >/dev/null 2>>"$WORK/cpu.log" &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && break; sleep 0.05; done
  local before after sent
  before=$(thread_ticks "$pid")
  sent=$("$VIGIL" bench --url "http://127.0.0.1:$2/v1/models/fraud/score" \
    --body "$WORK/v1-noid.json" --rate "$RATE" --duration "$DURATION" --warmup 0 \
    --connections 32 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  after=$(thread_ticks "$pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  python3 - "$3" "$sent" "$TICK" <<PY
import sys, collections
label, sent, tick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def parse(s):
    d = collections.Counter()
    for line in s.strip().splitlines():
        name, t = line.rsplit(" ", 1)
        d[name] += int(t)
    return d
b, a = parse("""$before"""), parse("""$after""")
us = {k: (a[k] - b.get(k, 0)) * 1e6 / tick / max(sent, 1) for k in a}
total = sum(us.values())
parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(us.items(), key=lambda kv: -kv[1]) if v >= 0.05)
print(f"{label}: {total:.1f} µs CPU per request ({sent} requests) [{parts}]")
PY
}

# shellcheck source=bench/pair-configs.sh
source bench/pair-configs.sh
if [[ -n ${PAIR:-} ]] && pair_configs "$PAIR" "$WORK"; then
  for round in $(seq "$ROUNDS"); do
    one "$OFF_CONFIG" 18091 "round $round $OFF_NAME"
    one "$ON_CONFIG" 18091 "round $round $ON_NAME "
  done
  exit 0
fi
[[ -z ${PAIR:-} ]] || { echo "PAIR=$PAIR: no such pair (see bench/pair-configs.sh)" >&2; exit 2; }

for round in $(seq "$ROUNDS"); do
  one "$WORK/vigil-nolog.toml" 18094 "round $round log off"
  one "$WORK/vigil.toml" 18091 "round $round log on "
done
