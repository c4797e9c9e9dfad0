"""Readiness and cold-start probe for bench/run.sh (standard library only).

  probe.py ready     --kind K --url URL --body FILE --expect X [--timeout S]
  probe.py coldstart --kind K --url URL --body FILE --expect X [--runs 3] -- CMD...

A response is correct when it is a 200 whose score is within 1e-6 of
--expect (kind v1: body["score"]; kind oip: the last value of the first
output; kind floor: any 200, it answers a constant). `ready` polls a running
server; `coldstart` launches CMD, polls every 10 ms from the launch, stops the
clock at the first correct response, kills CMD, and prints
{"runs_ms": [...], "median_ms": M} after --runs launches.
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse


def correct(kind, status, body, expect):
    if status != 200:
        return False
    if kind == "floor":
        return True
    try:
        doc = json.loads(body)
        if kind == "v1":
            got = doc["score"]
        else:
            got = doc["outputs"][0]["data"][-1]
        return abs(float(got) - expect) <= 1e-6
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def attempt(url, body):
    """One POST; (status, body) or None when the server is not there yet."""
    u = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=2)
        conn.request("POST", u.path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data
    except OSError:
        return None


def poll(args, body, deadline, proc=None):
    """Poll every 10 ms until correct; returns the last answer seen on failure."""
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering")
        tick = time.monotonic()
        got = attempt(args.url, body)
        if got is not None:
            last = got
            if correct(args.kind, got[0], got[1], args.expect):
                return True, last
        time.sleep(max(0.0, 0.010 - (time.monotonic() - tick)))
    return False, last


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ready", "coldstart"])
    p.add_argument("--kind", choices=["v1", "oip", "floor"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--expect", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--log", default=os.devnull)
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        cut = argv.index("--")
        argv, cmd = argv[:cut], argv[cut + 1 :]
    args = p.parse_args(argv)
    args.cmd = cmd
    if args.mode == "coldstart" and not cmd:
        p.error("coldstart needs -- CMD...")
    with open(args.body, "rb") as f:
        body = f.read()

    if args.mode == "ready":
        ok, last = poll(args, body, time.monotonic() + args.timeout)
        if not ok:
            raise SystemExit(f"no correct answer from {args.url} within {args.timeout} s; last: {last}")
        return

    runs = []
    for _ in range(args.runs):
        with open(args.log, "ab") as log:
            start = time.monotonic()
            proc = subprocess.Popen(
                args.cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
            try:
                ok, last = poll(args, body, start + args.timeout, proc)
                elapsed = time.monotonic() - start
            finally:
                stop(proc)
        if not ok:
            raise SystemExit(f"no correct answer from {args.url} within {args.timeout} s; last: {last}")
        runs.append(round(elapsed * 1000, 1))
        time.sleep(0.5)  # let the port be released
    print(json.dumps({"runs_ms": runs, "median_ms": statistics.median(runs)}))


if __name__ == "__main__":
    sys.exit(main())
