#!/usr/bin/env bash
# gRPC ModelInfer against the JSON /v2 infer endpoint: one Vigil, the same
# model and row, closed loop (`vigil bench --closed`) at 1, 8 and 64
# concurrent requests (gRPC: streams on one HTTP/2 connection; JSON: HTTP/1.1
# keep-alive connections), the two protocols alternated at each level.
# See bench/README.md.
#
# Environment: DURATION (s per run, default 10), WARMUP (default 2),
# LEVELS (default "1 8 64"), LOG=1 to keep the inference log on (default
# off: this compares the protocols, not the store), MODEL, CASES, CHANNELS=N
# to add a third row per level: gRPC with the streams spread over N HTTP/2
# connections (`vigil bench --grpc-channels N`), as a client with several
# channels would.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
LEVELS=${LEVELS:-1 8 64}
CHANNELS=${CHANNELS:-1}
MODEL=${MODEL:-crates/vigil-model/tests/fixtures/ulb_xgb_200.json}
CASES=${CASES:-${MODEL%.json}.cases.csv}
WORK=bench/results/work/grpc
PORT=${PORT:-18090}
mkdir -p "$WORK"

cargo build --release -p vigil --quiet
VIGIL=target/release/vigil

# The first row of the cases file as an OIP [1, n] FP64 tensor, no `id`
# (with the log on, each request is then a fresh record, never a replay).
python3 - "$CASES" "$WORK/oip.json" <<'PY'
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    row = next(reader)
names = [h for h in header if not h.startswith("out_")]
values = [float(v) for v in row[: len(names)]]
with open(sys.argv[2], "w") as f:
    json.dump({"inputs": [{"name": "input-0", "shape": [1, len(values)],
               "datatype": "FP64", "data": values}]}, f)
PY

store="enabled = false"
[[ ${LOG:-0} == 1 ]] && store="data_dir = \"$(realpath "$WORK")/data\""
rm -rf "$WORK/data"
cat > "$WORK/vigil.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
access_log = false

[gateway]
rate_per_s = 0

[cache]
max_entries = 0

[store]
$store

[[models]]
name = "fraud"
path = "$(realpath "$MODEL")"
TOML

"$VIGIL" serve --config "$WORK/vigil.toml" > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/v2/health/ready" > /dev/null && break
  sleep 0.1
done

run() { # protocol level
  local extra=()
  if [[ $1 == grpc ]]; then
    extra=(--url "http://127.0.0.1:$PORT" --grpc fraud)
  elif [[ $1 == grpc-* ]]; then
    extra=(--url "http://127.0.0.1:$PORT" --grpc fraud --grpc-channels "${1#grpc-}")
  else
    extra=(--url "http://127.0.0.1:$PORT/v2/models/fraud/infer")
  fi
  "$VIGIL" bench --closed "${extra[@]}" --body "$WORK/oip.json" -c "$2" \
    --duration "$DURATION" --warmup "$WARMUP" --threads 1 --json
}

echo "| protocol | concurrency | req/s | p50 µs | p99 µs | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for level in $LEVELS; do
  protos=(json grpc)
  if ((CHANNELS > 1)); then protos+=("grpc-$CHANNELS"); fi
  for proto in "${protos[@]}"; do
    run "$proto" "$level" | tee -a "$WORK/results.jsonl" | python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_us"]
cells = [sys.argv[1], sys.argv[2], "%.0f" % r["achieved_rps"], "%.0f" % l["p50"],
         "%.0f" % l["p99"], str(r["errors"] + r["non_2xx"])]
print("| " + " | ".join(cells) + " |")
' "$proto" "$level"
  done
done
