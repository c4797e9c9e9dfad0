"""Write crates/vigil-model/tests/fixtures/ulb_xgb_200_nonames.json: the
committed ULB model ulb_xgb_200.json saved again without feature names, as a
model trained on a bare numpy array is. Checks that xgboost scores the
committed cases (ulb_xgb_200.cases.csv, real ULB rows) exactly as before.

Needs xgboost 3.2 (scripts/requirements.txt); deterministic."""

import csv
from pathlib import Path

import numpy as np
import xgboost as xgb

FIX = Path(__file__).resolve().parent.parent / "crates/vigil-model/tests/fixtures"

booster = xgb.Booster(model_file=str(FIX / "ulb_xgb_200.json"))
booster.feature_names = None
booster.feature_types = None
out = FIX / "ulb_xgb_200_nonames.json"
booster.save_model(str(out))

unnamed = xgb.Booster(model_file=str(out))
assert unnamed.feature_names is None
with open(FIX / "ulb_xgb_200.cases.csv", newline="") as f:
    rows = list(csv.reader(f))
assert rows[0][-1] == "out_0"
x = np.array([[float(c) if c else np.nan for c in r[:-1]] for r in rows[1:]])
want = np.array([float(r[-1]) for r in rows[1:]])
got = unnamed.inplace_predict(x).astype(np.float64)
assert np.array_equal(got, want), float(np.abs(got - want).max())
print(f"wrote {out.name}: {len(want)} cases score as out_0")
