#!/usr/bin/env bash
# Side-by-side HTTP load comparison of Vigil, the HTTP floor and the Python
# peers, in one run, on the same model and body. See bench/README.md.
#
#   bench/run.sh                               # everything, 10 s per run
#   TARGETS="floor vigil" DURATION=5 bench/run.sh
#
# Environment (defaults in brackets):
#   TARGETS   [floor vigil vigil-nolog fastapi mlserver]  which servers, in this order;
#             `vigil-nolog` is Vigil with the inference log off (store.enabled =
#             false), for the log-on vs log-off comparison:
#             TARGETS="vigil vigil-nolog" bench/run.sh
#   DURATION  [10]     seconds per wrk run and per fixed-rate run
#   WARMUP    [3]      seconds of wrk load before each target's measured runs
#   RATE      [10000]  req/s of the fixed-rate run (floor and vigil only)
#   MODEL     [crates/vigil-model/tests/fixtures/ulb_xgb_200.json]
#   CASES     [MODEL without .json + .cases.csv]  first row = the request body
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=${TARGETS:-"floor vigil vigil-nolog fastapi mlserver"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
RATE=${RATE:-10000}
MODEL=${MODEL:-crates/vigil-model/tests/fixtures/ulb_xgb_200.json}
CASES=${CASES:-${MODEL%.json}.cases.csv}
OUT=bench/results
WORK=$OUT/work
VENV=bench/.venv

declare -A PORT=([floor]=18090 [vigil]=18091 [fastapi]=18092 [mlserver]=18093 [vigil-nolog]=18094)
declare -A KIND=([floor]=floor [vigil]=v1 [fastapi]=v1 [mlserver]=oip [vigil-nolog]=v1)

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for t in $TARGETS; do
  [[ -n "${PORT[$t]:-}" ]] || die "unknown target $t (known: floor vigil vigil-nolog fastapi mlserver)"
done
[[ -f $MODEL ]] || die "no model at $MODEL"
[[ -f $CASES ]] || die "no cases file at $CASES (its first row is the request body)"

# Every server this script starts runs in its own process group (setsid);
# on exit each group is stopped, whatever happened.
SERVER_PGIDS=()
cleanup() {
  for pgid in "${SERVER_PGIDS[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  sleep 0.3
  for pgid in "${SERVER_PGIDS[@]}"; do
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ------------------------------------------------------------------
log "building vigil and the floor (release)"
cargo build --release -p vigil -p vigil-floor
VIGIL=${CARGO_TARGET_DIR:-target}/release/vigil
FLOOR=${CARGO_TARGET_DIR:-target}/release/vigil-floor

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

if [[ " $TARGETS " == *" fastapi "* || " $TARGETS " == *" mlserver "* ]]; then
  stamp=$VENV/.requirements.sha
  want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
  if [[ ! -x $VENV/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "setting up $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -r bench/requirements.txt
    echo "$want" > "$stamp"
  fi
fi

# --- bodies: the first row of the cases file ---------------------------------
mkdir -p "$WORK"
rm -f "$WORK/results.jsonl"
python3 - "$CASES" "$WORK" <<'EOF'
import csv, json, sys
cases, work = sys.argv[1], sys.argv[2]
with open(cases) as f:
    reader = csv.reader(f)
    header = next(reader)
    row = next(reader)
names = [h for h in header if not h.startswith("out_")]
values = [float(v) for v in row[: len(names)]]
expect = float(row[header.index("out_0")])
with open(f"{work}/v1.json", "w") as f:
    json.dump({"id": "bench-1", "features": dict(zip(names, values))}, f)
# Vigil logs each request under its `id`: a fixed id would make every request
# after the first a replay, so Vigil's body has none (each gets a new UUIDv7).
with open(f"{work}/v1-noid.json", "w") as f:
    json.dump({"features": dict(zip(names, values))}, f)
with open(f"{work}/oip.json", "w") as f:
    json.dump({"id": "bench-1", "inputs": [{"name": "input-0", "shape": [1, len(values)],
               "datatype": "FP64", "data": values}]}, f)
with open(f"{work}/expected.txt", "w") as f:
    f.write(repr(expect))
EOF
EXPECT=$(cat "$WORK/expected.txt")

# Vigil's config: the gateway's global token bucket (10,000 req/s by default)
# and the prediction cache are off, so every request is scored, never
# throttled or answered from cache (the body never changes). The inference
# log is on with its defaults (SQLite, durability "os") in a fresh data
# directory; its body has no `id` (v1-noid.json), so every request gets a new
# UUIDv7 and is written, never replayed. `vigil-nolog` is the same with the
# log off.
vigil_config() { # port store-table
  cat <<EOF
[server]
listen = "127.0.0.1:$1"

[gateway]
rate_per_s = 0

[cache]
max_entries = 0

[store]
$2

[[models]]
name = "fraud"
path = "$(realpath "$MODEL")"
EOF
}
rm -rf "$WORK/vigil-data"
vigil_config "${PORT[vigil]}" "data_dir = \"$(realpath "$WORK")/vigil-data\"" > "$WORK/vigil.toml"
vigil_config "${PORT[vigil-nolog]}" "enabled = false" > "$WORK/vigil-nolog.toml"

# --- per-target commands -----------------------------------------------------
url_of() {
  case $1 in
    mlserver) echo "http://127.0.0.1:${PORT[$1]}/v2/models/fraud/infer" ;;
    *) echo "http://127.0.0.1:${PORT[$1]}/v1/models/fraud/score" ;;
  esac
}
body_of() {
  case $1 in
    mlserver) echo "$WORK/oip.json" ;;
    vigil | vigil-nolog) echo "$WORK/v1-noid.json" ;;
    *) echo "$WORK/v1.json" ;;
  esac
}

# Prints the command (one word per line) that starts target $1.
cmd_of() {
  case $1 in
    floor) printf '%s\n' "$FLOOR" "127.0.0.1:${PORT[floor]}" ;;
    vigil | vigil-nolog) printf '%s\n' "$VIGIL" serve --config "$WORK/$1.toml" ;;
    fastapi) printf '%s\n' env "VIGIL_BENCH_MODEL=$MODEL" "$VENV/bin/python" -m uvicorn \
      --app-dir bench/peers fastapi_app:app --host 127.0.0.1 --port "${PORT[fastapi]}" \
      --workers 1 --loop uvloop --http httptools --no-access-log --log-level warning ;;
    mlserver) printf '%s\n' env OMP_NUM_THREADS=1 "$VENV/bin/mlserver" start bench/peers/mlserver ;;
  esac
}

probe() { python3 bench/probe.py "$@"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Start target $1 in its own process group; sets SERVER_PID.
start_server() {
  local t=$1 cmd
  mapfile -t cmd < <(cmd_of "$t")
  port_free "${PORT[$t]}" || die "port ${PORT[$t]} is already in use: cannot start $t"
  setsid "${cmd[@]}" >/dev/null 2>>"$WORK/$t.log" &
  SERVER_PID=$!
  SERVER_PGIDS+=("$SERVER_PID")
  if ! probe ready --kind "${KIND[$t]}" --url "$(url_of "$t")" --body "$(body_of "$t")" \
      --expect "$EXPECT" --timeout 120; then
    tail -n 20 "$WORK/$t.log" >&2 || true
    die "$t did not start or did not score correctly (log: $WORK/$t.log)"
  fi
}

stop_server() {
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}

# Sum VmRSS over the process group (MLServer may fork), VmHWM of the leader.
memory() {
  local pid=$1 rss=0 hwm pids
  pids=$(pgrep -g "$pid" || echo "$pid")
  for p in $pids; do
    rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  printf '{"vmrss_kib":%d,"vmhwm_kib":%d}' "$rss" "$hwm"
}

record() { # target test json
  python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["target"]=sys.argv[1]; d["test"]=sys.argv[2]; print(json.dumps(d))' \
    "$1" "$2" "$3" >> "$WORK/results.jsonl"
}

run_wrk() { # target threads conns secs
  local out
  out=$(BODY_FILE=$(body_of "$1") wrk -t"$2" -c"$3" -d"$4s" --timeout 10s -s bench/post.lua "$(url_of "$1")")
  grep '^RESULT ' <<<"$out" | sed 's/^RESULT //'
}

# --- the runs -------------------------------------------------------------------
for t in $TARGETS; do
  : > "$WORK/$t.log"
  log "$t: cold start (launch → first correct scoring response, median of 3)"
  mapfile -t cmd < <(cmd_of "$t")
  port_free "${PORT[$t]}" || die "port ${PORT[$t]} is already in use: cannot start $t"
  cold=$(probe coldstart --kind "${KIND[$t]}" --url "$(url_of "$t")" --body "$(body_of "$t")" \
    --expect "$EXPECT" --timeout 120 --log "$WORK/$t.log" -- "${cmd[@]}") \
    || { tail -n 20 "$WORK/$t.log" >&2; die "$t: cold start failed (log: $WORK/$t.log)"; }
  echo "$cold" >&2
  record "$t" coldstart "$cold"

  log "$t: load"
  start_server "$t"
  pid=$SERVER_PID
  run_wrk "$t" 2 64 "$WARMUP" >/dev/null
  for spec in "1 1" "2 8" "2 64"; do
    read -r threads conns <<<"$spec"
    result=$(run_wrk "$t" "$threads" "$conns" "$DURATION")
    [[ -n $result ]] || die "$t: wrk printed no result at $conns connections"
    echo "$t c$conns $result" >&2
    record "$t" "c$conns" "$result"
  done
  if [[ $t == floor || $t == vigil || $t == vigil-nolog ]]; then
    result=$("$VIGIL" bench --url "$(url_of "$t")" --body "$(body_of "$t")" --rate "$RATE" \
      --duration "$DURATION" --warmup 2 --connections 32 --json)
    echo "$t rate $result" >&2
    record "$t" rate "$result"
  fi
  record "$t" rss "$(memory "$pid")"
  stop_server "$pid"
done

# --- the report -----------------------------------------------------------------
header="$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null || echo '?'); \
model \`$MODEL\`, one row per request; wrk ${DURATION}s per run after ${WARMUP}s warm-up; \
command: \`TARGETS=\"$TARGETS\" DURATION=$DURATION RATE=$RATE bench/run.sh\`"
python3 bench/report.py "$WORK/results.jsonl" "$header" | tee "$OUT/latest.md"
echo >&2
echo "written to $OUT/latest.md" >&2
