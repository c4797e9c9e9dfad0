#!/usr/bin/env python3
"""One fixture saved by an older xgboost (1.7.6): plain (unbracketed) base_score
string, no `cats`/`iteration_indptr`, older JSON layout. Run with the venv in
scripts/.venv-old (see scripts/README.md); gen_fixtures.py calls it when that
venv exists and otherwise keeps the committed files."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import xgboost as xgb

assert xgb.__version__ == "1.7.6", xgb.__version__
ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "crates" / "vigil-model" / "tests" / "fixtures"


def fmt(x):
    x = float(x)
    return "" if math.isnan(x) else repr(x)


rng = np.random.default_rng(17)
n, d = 3000, 8
names = [f"feat_{i}" for i in range(d)]
X = rng.normal(size=(n, d))
X[rng.random((n, d)) < 0.1] = np.nan
Z = np.nan_to_num(X, nan=-0.3)
s = 1.2 * Z[:, 0] - Z[:, 1] * Z[:, 2] + np.sin(Z[:, 3]) + 0.8 * np.isnan(X[:, 4]) - 1.5
y = (rng.random(n) < 1 / (1 + np.exp(-s))).astype(float)
b = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.3, "nthread": 2,
               "seed": 0, "tree_method": "hist"},
              xgb.DMatrix(X, label=y, feature_names=names, missing=np.nan), 30)
b.save_model(str(FIX / "xgb_v1_7.json"))
b.save_model(str(FIX / "xgb_v1_7.ubj"))

Xc = X[rng.choice(n, size=150, replace=False)].copy()
extra = [np.full(d, np.nan)]
for v in (1e30, -1e30, 3.4e38, -3.4e38, 0.0, -0.0):
    r = Xc[len(extra)].copy()
    r[rng.choice(d, size=3, replace=False)] = v
    extra.append(r)
    extra.append(np.full(d, v))
for i in range(10):
    r = Xc[i].copy()
    r[rng.random(d) < 0.5] = np.nan
    extra.append(r)
Xc = np.vstack([Xc, np.array(extra)])
yp = b.predict(xgb.DMatrix(Xc, feature_names=names, missing=np.nan))
yu = xgb.Booster(model_file=str(FIX / "xgb_v1_7.ubj")).predict(
    xgb.DMatrix(Xc, feature_names=names, missing=np.nan))
assert np.array_equal(yp, yu)
with open(FIX / "xgb_v1_7.cases.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(names + ["out_0"])
    for xr, v in zip(Xc, yp):
        w.writerow([fmt(t) for t in xr] + [fmt(v)])
common = dict(objective="binary:logistic", num_features=d, num_outputs=1,
              cases="xgb_v1_7.cases.csv", tolerance="exact", output="probability",
              note="saved by xgboost 1.7.6: base_score is a plain string, e.g. \"5E-1\"")
meta = [dict(name="xgb_v1_7", model_file="xgb_v1_7.json", fmt_="xgboost_json", **common),
        dict(name="xgb_v1_7_ubj", model_file="xgb_v1_7.ubj", fmt_="xgboost_ubj", **common)]
(ROOT / "scripts" / "xgb_v1_7.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
print("xgboost 1.7.6 fixture written; base_score =",
      json.loads(b.save_config())["learner"]["learner_model_param"]["base_score"])
