#!/usr/bin/env bash
# Custom-metrics ingestion through HTTP: `POST /api/metrics/Bench` with
# batches of BATCH datapoints (distinct series, no timestamp = now), closed
# loop at CONNS connections for DURATION seconds, against a release
# `vigil serve` (demo model, access log off, fresh data directory). Prints
# requests/s and datapoints/s; every acknowledged batch is in the metric
# store's write-ahead log before its answer. See bench/README.md.
#
#   bench/metrics.sh                     # builds the release binary first
#   VIGIL=/tmp/vigil BATCH=1000 CONNS=4 DURATION=10 bench/metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BATCH=${BATCH:-1000}
CONNS=${CONNS:-4}
DURATION=${DURATION:-10}
PORT=${PORT:-18097}

die() { printf 'metrics: %s\n' "$*" >&2; exit 1; }
if [[ -z "${VIGIL:-}" ]]; then
  cargo build --release -p vigil >&2
  VIGIL=${CARGO_TARGET_DIR:-target}/release/vigil
fi
[[ -x $VIGIL ]] || die "no binary at $VIGIL"

WORK=$(mktemp -d /tmp/vigil-metrics-bench.XXXXXX)
PID=
cleanup() {
  [[ -n $PID ]] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$BATCH" >"$WORK/body.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps({"metrics": [
    {"name": "Latency", "dimensions": {"host": f"h{i % 50}", "shard": str(i // 50)},
     "unit": "Milliseconds", "value": 1.5 + i % 17, "resolution": 1}
    for i in range(n)]}))
PY
cat >"$WORK/vigil.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
access_log = false

[gateway]
rate_per_s = 0

[store]
data_dir = "$WORK/data"

[[models]]
name = "fraud"
path = "$(realpath crates/vigil-server/assets/demo-fraud.json)"
TOML
"$VIGIL" serve --config "$WORK/vigil.toml" >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

"$VIGIL" bench --closed --connections "$CONNS" --duration "$DURATION" --warmup 2 \
  --url "http://127.0.0.1:$PORT/api/metrics/Bench" --body "$WORK/body.json" --json >"$WORK/result.json"
python3 - "$WORK/result.json" "$BATCH" "$CONNS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); batch = int(sys.argv[2])
rps = r.get("achieved_rps") or r.get("rps") or r["requests"] / r["duration_s"]
errors = r.get("errors", 0) + r.get("non_2xx", 0)
lat = r["latency_us"]
print(f"{rps:.0f} requests/s x {batch} = {rps * batch:,.0f} datapoints/s at {sys.argv[3]} connections; "
      f"p50 {lat['p50'] / 1e3:.2f} ms, p99 {lat['p99'] / 1e3:.2f} ms; errors {errors}")
PY
