#!/usr/bin/env bash
# Log ingestion through HTTP: `POST /api/logs/%2Fbench%2Fapp/host-N` with
# batches of BATCH events of SIZE bytes (access-log-like JSON lines, all in
# the time window), closed loop at CONNS connections for DURATION seconds,
# against a release `vigil serve` (demo model, access log off, fresh data
# directory). Prints requests/s and events/s; every acknowledged batch is
# written (`os` durability, so it survives `kill -9`) before its answer.
# See bench/README.md.
#
#   bench/logs.sh                        # builds the release binary first
#   VIGIL=/tmp/vigil BATCH=1000 SIZE=200 CONNS=4 DURATION=10 bench/logs.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BATCH=${BATCH:-1000}
SIZE=${SIZE:-200}
CONNS=${CONNS:-4}
DURATION=${DURATION:-10}
PORT=${PORT:-18098}

die() { printf 'logs: %s\n' "$*" >&2; exit 1; }
if [[ -z "${VIGIL:-}" ]]; then
  cargo build --release -p vigil >&2
  VIGIL=${CARGO_TARGET_DIR:-target}/release/vigil
fi
[[ -x $VIGIL ]] || die "no binary at $VIGIL"

WORK=$(mktemp -d /tmp/vigil-logs-bench.XXXXXX)
PID=
cleanup() {
  [[ -n $PID ]] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$BATCH" "$SIZE" >"$WORK/body.json" <<'PY'
import json, sys, time
n, size = int(sys.argv[1]), int(sys.argv[2])
now = int(time.time() * 1000)
events = []
for i in range(n):
    line = json.dumps({"ip": f"10.0.{i % 200}.{i % 250}", "method": "POST",
                       "path": "/v1/models/fraud/score", "status": 200 if i % 50 else 503,
                       "latency_us": 180 + i % 900, "request_id": f"r-{i:08d}", "pad": ""})
    line = line[:-3] + "x" * max(0, size - len(line)) + '"}'
    events.append({"timestamp": now + i % 1000, "message": line})
print(json.dumps({"events": events}))
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
  --url "http://127.0.0.1:$PORT/api/logs/%2Fbench%2Fapp/host-1" --body "$WORK/body.json" --json >"$WORK/result.json"
python3 - "$WORK/result.json" "$BATCH" "$SIZE" "$CONNS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); batch = int(sys.argv[2])
rps = r.get("achieved_rps") or r.get("rps") or r["requests"] / r["duration_s"]
errors = r.get("errors", 0) + r.get("non_2xx", 0)
lat = r["latency_us"]
print(f"{rps:.0f} requests/s x {batch} = {rps * batch:,.0f} events/s of {sys.argv[3]} B at {sys.argv[4]} connections; "
      f"p50 {lat['p50'] / 1e3:.2f} ms, p99 {lat['p99'] / 1e3:.2f} ms; errors {errors}")
PY
