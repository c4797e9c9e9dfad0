"""Render bench/run.sh's results (JSON lines) as a markdown report on stdout.

  report.py RESULTS.jsonl "HEADER LINE"
"""

import json
import sys

PYTHON_PEERS = ("fastapi", "mlserver")


def fmt_us(us):
    if us is None:
        return "–"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt_ratio(a, b):
    if not a or not b:
        return "–"
    return f"{a / b:.2f}×" if a / b < 10 else f"{a / b:.0f}×"


def main():
    path, header = sys.argv[1], sys.argv[2]
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {}
    targets = []
    for r in rows:
        by[(r["target"], r["test"])] = r
        if r["target"] not in targets:
            targets.append(r["target"])

    out = ["# Vigil HTTP benchmark", "", header, ""]

    out += ["## Closed loop (wrk), single-row requests", ""]
    out += ["| target | conns | req/s | p50 | p99 | non-2xx | vs floor | vs best Python |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for test in ("c1", "c8", "c64"):
        floor = by.get(("floor", test), {}).get("rps")
        peers = [by[(p, test)]["rps"] for p in PYTHON_PEERS if (p, test) in by]
        best_py = max(peers) if peers else None
        for t in targets:
            r = by.get((t, test))
            if r is None:
                continue
            out.append(
                f"| {t} | {test[1:]} | {r['rps']:,.0f} | {fmt_us(r['p50_us'])} | {fmt_us(r['p99_us'])} "
                f"| {r['non2xx'] + r['socket_errors']} | {fmt_ratio(r['rps'], floor)} | {fmt_ratio(r['rps'], best_py)} |"
            )
    out.append("")

    rate_rows = [(t, by[(t, "rate")]) for t in targets if (t, "rate") in by]
    if rate_rows:
        out += ["## Fixed rate (`vigil bench`, latency from the intended send time)", ""]
        out += ["| target | target req/s | achieved | p50 | p99 | p99.9 | max | non-2xx | errors |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t, r in rate_rows:
            lat = r["latency_us"]
            out.append(
                f"| {t} | {r['rate']:,} | {r['achieved_rps']:,.0f} | {fmt_us(lat['p50'])} | {fmt_us(lat['p99'])} "
                f"| {fmt_us(lat['p99_9'])} | {fmt_us(lat['max'])} | {r['non_2xx']} | {r['errors'] + r['dropped']} |"
            )
        out.append("")

    out += ["## Cold start and memory", ""]
    out += ["| target | cold start (median of 3) | runs | VmRSS after load | VmHWM |",
            "|---|---:|---|---:|---:|"]
    for t in targets:
        cs = by.get((t, "coldstart"))
        mem = by.get((t, "rss"))
        cs_text = f"{cs['median_ms']:.0f} ms" if cs else "–"
        runs = ", ".join(f"{x:.0f}" for x in cs["runs_ms"]) if cs else "–"
        rss = f"{mem['vmrss_kib'] / 1024:.1f} MiB" if mem else "–"
        hwm = f"{mem['vmhwm_kib'] / 1024:.1f} MiB" if mem else "–"
        out.append(f"| {t} | {cs_text} | {runs} | {rss} | {hwm} |")
    out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
