#!/usr/bin/env python3
"""Python reference timings for the committed benchmark models (the numbers
Vigil's criterion benches are compared with).

    scripts/.venv/bin/python scripts/py_reference_bench.py

* xgboost single row: Booster.inplace_predict on one row, nthread=1
* xgboost batch: inplace_predict on the 300 golden rows tiled to 60,000 rows,
  nthread=1, microseconds per row
* LightGBM single row: Booster.predict on one row, num_threads=1

Inputs are the golden rows of the fixtures (no need for the data set).
Median of several repeats; the machine is shared and noisy, so compare ratios.
"""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import xgboost as xgb

FIX = Path(__file__).resolve().parent.parent / "crates" / "vigil-model" / "tests" / "fixtures"


def load_cases(name: str, n_features: int) -> np.ndarray:
    with open(FIX / f"{name}.cases.csv") as f:
        rows = list(csv.reader(f))[1:]
    X = np.array([[float(v) if v else np.nan for v in r[:n_features]] for r in rows])
    # golden rows only: drop the synthetic edge rows (they contain NaN / extremes)
    ok = np.all(np.isfinite(X) & (np.abs(X) < 1e8), axis=1)
    return X[ok]


def time_single(fn, rows: np.ndarray, n: int = 3000) -> float:
    for i in range(300):  # warm-up
        fn(rows[i % len(rows)][None, :])
    samples = []
    for i in range(n):
        r = rows[i % len(rows)][None, :]
        t0 = time.perf_counter_ns()
        fn(r)
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000.0


def time_batch(fn, X: np.ndarray, repeats: int = 5) -> float:
    fn(X[:1000])
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(X)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) / len(X) * 1e6


def main():
    print(f"xgboost {xgb.__version__}, lightgbm {lgb.__version__}")
    X = load_cases("ulb_xgb_200", 30)
    big = np.tile(X, (60000 // len(X) + 1, 1))[:60000].copy()
    for name in ("ulb_xgb_200", "ulb_xgb_300_d8"):
        b = xgb.Booster(model_file=str(FIX / f"{name}.json"))
        b.set_param({"nthread": 1})
        single = time_single(lambda r: b.inplace_predict(r), X)
        batch = time_batch(lambda m: b.inplace_predict(m), big)
        print(f"{name:16s} xgboost inplace_predict nthread=1: single row {single:8.1f} us, "
              f"batch {batch:6.3f} us/row ({len(big)} rows)")
    lb = lgb.Booster(model_file=str(FIX / "ulb_lgb.txt"))
    single = time_single(lambda r: lb.predict(r, num_threads=1), X)
    batch = time_batch(lambda m: lb.predict(m, num_threads=1), big)
    print(f"{'ulb_lgb':16s} lightgbm predict num_threads=1:       single row {single:8.1f} us, "
          f"batch {batch:6.3f} us/row ({len(big)} rows)")


if __name__ == "__main__":
    main()
