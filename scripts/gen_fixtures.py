#!/usr/bin/env python3
"""Generate Vigil's model fixtures, the bundled demo fraud model and the examples.

Everything written here is committed, so `cargo test` never needs Python.
The script is deterministic (fixed seeds, fixed thread count, pinned library
versions in scripts/requirements.txt); see scripts/README.md for how to run it.

Outputs
-------
crates/vigil-model/tests/fixtures/
    manifest.json            one entry per fixture (see FIXTURE FORMAT below)
    NAME.json|.ubj|.txt      the model as saved by the library's save_model
    NAME.cases.csv           inputs (model feature names, model order) then
                             out_0..out_{K-1}: what the library's predict returns
crates/vigil-server/assets/demo-fraud.json
examples/transactions.csv, examples/transactions.expected.csv

FIXTURE FORMAT
--------------
An empty cell in a cases file means missing (NaN). Every number is written with
repr(float(x)), so it round-trips exactly (float32 outputs are widened to
float64 first, which is exact). tolerance: exact = bit-identical,
abs = |a-b| <= 1e-6, rel = |a-b| <= 1e-6 * max(1, |b|).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from ulb import ulb_csv

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
FIX = ROOT / "crates" / "vigil-model" / "tests" / "fixtures"
ASSETS = ROOT / "crates" / "vigil-server" / "assets"
EXAMPLES = ROOT / "examples"

NTHREAD = 2  # the machine has 2 shared cores

# Values used to build the "extreme" rows. All finite and within float32 range
# (3.4e38 < FLT_MAX), so the float32 cast xgboost does never yields inf.
EXTREMES = [1e30, -1e30, 3.4e38, -3.4e38, 1e-30, -1e-30, 1e-40, 0.0, -0.0, 1e9, -1e9]

MANIFEST: list[dict] = []


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def fmt(x) -> str:
    x = float(x)
    if math.isnan(x):
        return ""
    if math.isinf(x):
        raise ValueError("inf is not allowed in fixtures")
    return repr(x)


def write_cases(name: str, feature_names: list[str], X: np.ndarray, Y: np.ndarray) -> str:
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    assert X.shape[0] == Y.shape[0], (X.shape, Y.shape)
    assert X.shape[1] == len(feature_names)
    fname = f"{name}.cases.csv"
    with open(FIX / fname, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(list(feature_names) + [f"out_{k}" for k in range(Y.shape[1])])
        for xr, yr in zip(X, Y):
            w.writerow([fmt(v) for v in xr] + [fmt(v) for v in yr])
    return fname


def add_fixture(name, model_file, fmt_, objective, num_features, num_outputs, cases,
                tolerance, output, note=None):
    entry = {
        "name": name,
        "model": model_file,
        "format": fmt_,
        "objective": objective,
        "num_features": int(num_features),
        "num_outputs": int(num_outputs),
        "cases": cases,
        "tolerance": tolerance,
        "output": output,
    }
    if note:
        entry["note"] = note
    MANIFEST.append(entry)
    size = (FIX / model_file).stat().st_size
    print(f"  fixture {name:24s} {model_file:28s} {size/1e6:7.3f} MB  cases={cases}")


def edge_rows(base: np.ndarray, rng: np.random.Generator, n_missing: int = 12,
              n_extreme: int = 12, cat_cols: tuple[int, ...] = ()) -> np.ndarray:
    """Rows with some cells missing, one row with every cell missing, and rows
    with extreme values. `base` supplies realistic rows to start from.
    Categorical columns (cat_cols) are left alone by the extreme pass (callers
    add their own categorical edge cases)."""
    d = base.shape[1]
    rows = []
    rows.append(np.full(d, np.nan))  # every feature missing
    for i in range(n_missing):
        r = base[rng.integers(len(base))].astype(np.float64).copy()
        frac = [0.1, 0.3, 0.6, 0.9][i % 4]
        mask = rng.random(d) < frac
        if not mask.any():
            mask[rng.integers(d)] = True
        r[mask] = np.nan
        rows.append(r)
    num_cols = [j for j in range(d) if j not in cat_cols]
    for i in range(n_extreme):
        r = base[rng.integers(len(base))].astype(np.float64).copy()
        k = max(1, len(num_cols) // 4)
        for j in rng.choice(num_cols, size=min(k, len(num_cols)), replace=False):
            r[j] = EXTREMES[(i + j) % len(EXTREMES)]
        if i % 3 == 0:  # mix extremes and missing in the same row
            r[rng.choice(num_cols)] = np.nan
        rows.append(r)
    # whole row at one extreme
    for v in (1e30, -1e30, 3.4e38, -3.4e38, 0.0):
        r = np.full(d, v)
        if cat_cols:
            r[list(cat_cols)] = base[0, list(cat_cols)]
        rows.append(r)
    return np.vstack(rows)


def xgb_dmatrix(X, feature_names=None, feature_types=None):
    return xgb.DMatrix(np.asarray(X, dtype=np.float64), missing=np.nan,
                       feature_names=feature_names, feature_types=feature_types,
                       enable_categorical=feature_types is not None, nthread=NTHREAD)


def xgb_predict(booster: xgb.Booster, X, feature_names=None, feature_types=None, **kw):
    """The library's own answer: Booster.predict on a DMatrix (missing=NaN).
    Cross-checked against inplace_predict."""
    dm = xgb_dmatrix(X, feature_names, feature_types)
    p = booster.predict(dm, **kw)
    if not kw:
        p2 = booster.inplace_predict(np.asarray(X, dtype=np.float64), missing=np.nan)
        assert np.array_equal(p.view(np.uint32), np.asarray(p2, np.float32).view(np.uint32)), \
            "predict and inplace_predict disagree"
    return p


def xgb_json(path: Path) -> dict:
    return json.loads(path.read_text())


def xgb_max_depth(model_json: dict) -> int:
    best = 0
    for t in model_json["learner"]["gradient_booster"]["model"]["trees"]:
        left, right = t["left_children"], t["right_children"]
        stack = [(0, 0)]
        while stack:
            n, dpt = stack.pop()
            best = max(best, dpt)
            if left[n] != -1:
                stack.append((left[n], dpt + 1))
                stack.append((right[n], dpt + 1))
    return best


def lgb_decision_types(path: Path) -> set[int]:
    seen = set()
    for line in path.read_text().splitlines():
        if line.startswith("decision_type="):
            seen.update(int(v) for v in line.split("=", 1)[1].split())
    return seen


def lgb_max_cat_words(path: Path) -> int:
    best = 0
    for line in path.read_text().splitlines():
        if line.startswith("cat_boundaries="):
            b = [int(v) for v in line.split("=", 1)[1].split()]
            best = max(best, max(b2 - b1 for b1, b2 in zip(b, b[1:])))
    return best


# --------------------------------------------------------------------------
# ULB credit-card data
# --------------------------------------------------------------------------
def load_ulb():
    # float_precision="round_trip" parses exactly like Python's float().
    df = pd.read_csv(ulb_csv(), float_precision="round_trip")
    features = [c for c in df.columns if c != "Class"]
    assert features == ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]
    X = df[features].to_numpy(dtype=np.float64)
    y = df["Class"].to_numpy(dtype=np.float64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=42)
    print(f"ULB: {len(df)} rows, {int(y.sum())} frauds; train {len(y_tr)}, hold-out {len(y_te)} "
          f"({int(y_te.sum())} frauds)")
    return features, X_tr, X_te, y_tr, y_te


def ulb_golden_rows(X_te, y_te, rng, n_fraud=100, n_legit=200):
    fraud_idx = np.flatnonzero(y_te == 1)[:n_fraud]
    legit_idx = rng.choice(np.flatnonzero(y_te == 0), size=n_legit, replace=False)
    idx = np.sort(np.concatenate([fraud_idx, legit_idx]))
    return X_te[idx]


def gen_ulb(stats: dict):
    features, X_tr, X_te, y_tr, y_te = load_ulb()
    rng = np.random.default_rng(20240601)
    golden = ulb_golden_rows(X_te, y_te, rng)
    cases_X = np.vstack([golden, edge_rows(golden, rng)])

    dtr = xgb.DMatrix(X_tr, label=y_tr, feature_names=features, nthread=NTHREAD)
    dte = xgb.DMatrix(X_te, label=y_te, feature_names=features, nthread=NTHREAD)

    # 1. ulb_xgb_200: the realistic fixture and benchmark model.
    params = {"objective": "binary:logistic", "max_depth": 6, "learning_rate": 0.3,
              "nthread": NTHREAD, "seed": 0, "tree_method": "hist", "eval_metric": "auc"}
    b200 = xgb.train(params, dtr, num_boost_round=200)
    auc = roc_auc_score(y_te, b200.predict(dte))
    stats["ulb_xgb_200_auc"] = auc
    print(f"ulb_xgb_200 hold-out AUC = {auc:.4f}")
    b200.save_model(FIX / "ulb_xgb_200.json")
    b200.save_model(FIX / "ulb_xgb_200.ubj")
    # The UBJ copy must score exactly like the JSON one.
    b200u = xgb.Booster(model_file=str(FIX / "ulb_xgb_200.ubj"))
    y200 = xgb_predict(b200, cases_X, features)
    assert np.array_equal(y200, xgb_predict(b200u, cases_X, features))
    cases = write_cases("ulb_xgb_200", features, cases_X, y200)
    stats["ulb_base_score"] = xgb_json(FIX / "ulb_xgb_200.json")["learner"]["learner_model_param"]["base_score"]
    add_fixture("ulb_xgb_200", "ulb_xgb_200.json", "xgboost_json", "binary:logistic", 30, 1,
                cases, "exact", "probability")
    add_fixture("ulb_xgb_200_ubj", "ulb_xgb_200.ubj", "xgboost_ubj", "binary:logistic", 30, 1,
                cases, "exact", "probability")

    # 2. ulb_xgb_300_d8: the bigger benchmark model.
    params8 = dict(params, max_depth=8)
    b300 = xgb.train(params8, dtr, num_boost_round=300)
    auc8 = roc_auc_score(y_te, b300.predict(dte))
    stats["ulb_xgb_300_d8_auc"] = auc8
    print(f"ulb_xgb_300_d8 hold-out AUC = {auc8:.4f}")
    b300.save_model(FIX / "ulb_xgb_300_d8.json")
    cases = write_cases("ulb_xgb_300_d8", features, cases_X, xgb_predict(b300, cases_X, features))
    add_fixture("ulb_xgb_300_d8", "ulb_xgb_300_d8.json", "xgboost_json", "binary:logistic", 30, 1,
                cases, "exact", "probability")

    # 3. ulb_lgb: LightGBM binary (needs min_child_weight=1, lambda_l2=1 to learn).
    df_tr = pd.DataFrame(X_tr, columns=features)
    lparams = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.1,
               "min_child_weight": 1, "lambda_l2": 1, "num_threads": NTHREAD, "seed": 0,
               "deterministic": True, "force_col_wise": True, "verbose": -1}
    lb = lgb.train(lparams, lgb.Dataset(df_tr, label=y_tr), num_boost_round=100)
    auc_l = roc_auc_score(y_te, lb.predict(X_te))
    stats["ulb_lgb_auc"] = auc_l
    print(f"ulb_lgb hold-out AUC = {auc_l:.4f}")
    lb.save_model(FIX / "ulb_lgb.txt")
    lb2 = lgb.Booster(model_file=str(FIX / "ulb_lgb.txt"))
    yl = lb2.predict(cases_X)
    assert np.array_equal(yl, lb.predict(cases_X))
    cases = write_cases("ulb_lgb", features, cases_X, yl)
    add_fixture("ulb_lgb", "ulb_lgb.txt", "lightgbm_text", "binary", 30, 1, cases, "abs",
                "probability")


# --------------------------------------------------------------------------
# synthetic XGBoost fixtures
# --------------------------------------------------------------------------
def synth_X(rng, n, d, nan_frac=0.1):
    X = rng.normal(size=(n, d))
    X[:, 0] = rng.exponential(50.0, size=n)          # a skewed, amount-like column
    X[:, 1] = rng.integers(0, 5, size=n).astype(float)  # a small integer column (exact ties)
    X[rng.random((n, d)) < nan_frac] = np.nan
    return X


def synth_signal(X):
    Z = np.nan_to_num(X, nan=-0.5)
    return (0.02 * Z[:, 0] - 0.5 * Z[:, 1] + 1.5 * Z[:, 2] - Z[:, 3] * Z[:, 4]
            + np.sin(2 * Z[:, 5]) + 0.7 * np.isnan(X[:, 6]) - 1.0)


def synth_cases(rng, X_src, n_rows=150, cat_cols=()):
    base = X_src[rng.choice(len(X_src), size=n_rows, replace=False)]
    return np.vstack([base, edge_rows(base, rng, cat_cols=cat_cols)])


def softmax_f32(margins: np.ndarray) -> np.ndarray:
    """Softmax of float32 margins as xgboost's multi:softprob does it, in float32
    (max-subtracted exp, float32 sum, divide)."""
    m = margins.astype(np.float32)
    e = np.exp(m - m.max(axis=1, keepdims=True)).astype(np.float32)
    return (e / e.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32)


def gen_xgb_synth(stats: dict):
    rng = np.random.default_rng(7)
    n, d = 4000, 10
    names = ["amount", "count", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"]
    X = synth_X(rng, n, d)
    s = synth_signal(X)
    base_params = {"nthread": NTHREAD, "seed": 0, "tree_method": "hist", "max_depth": 5,
                   "learning_rate": 0.2}
    Xc = synth_cases(rng, X)

    def train_save(name, params, y, rounds, out, tol, objective, num_out=1, feature_names=names,
                   ubj=False, note=None, predict_kw=None, post=None):
        dtr = xgb.DMatrix(X, label=y, missing=np.nan, feature_names=feature_names, nthread=NTHREAD)
        b = xgb.train(dict(base_params, **params), dtr, num_boost_round=rounds)
        b.save_model(FIX / f"{name}.json")
        yp = xgb_predict(b, Xc, feature_names, **(predict_kw or {}))
        if post:
            yp = post(b, yp)
        header = feature_names or [f"f{i}" for i in range(d)]
        cases = write_cases(name, header, Xc, yp)
        add_fixture(name, f"{name}.json", "xgboost_json", objective, d, num_out, cases, tol, out,
                    note)
        if ubj:
            b.save_model(FIX / f"{name}.ubj")
            bu = xgb.Booster(model_file=str(FIX / f"{name}.ubj"))
            assert np.array_equal(b.predict(xgb_dmatrix(Xc, feature_names), **(predict_kw or {})),
                                  bu.predict(xgb_dmatrix(Xc, feature_names), **(predict_kw or {})))
            add_fixture(f"{name}_ubj", f"{name}.ubj", "xgboost_ubj", objective, d, num_out, cases,
                        tol, out, note)
        return b

    p = 1 / (1 + np.exp(-s))
    ybin = (rng.random(n) < p).astype(float)

    train_save("xgb_logitraw", {"objective": "binary:logitraw"}, ybin, 40, "margin", "abs",
               "binary:logitraw")
    yreg = 12.5 + 3 * s + rng.normal(scale=0.5, size=n)
    train_save("xgb_reg", {"objective": "reg:squarederror", "base_score": 12.5}, yreg, 60,
               "regression", "rel", "reg:squarederror")
    yfrac = np.clip(p + rng.normal(scale=0.05, size=n), 0, 1)
    train_save("xgb_reg_logistic", {"objective": "reg:logistic"}, yfrac, 40, "probability", "abs",
               "reg:logistic")

    # multiclass
    s2 = np.nan_to_num(X[:, 7], nan=0.0) + 0.5 * np.nan_to_num(X[:, 8], nan=1.0)
    y4 = np.digitize(s + 0.5 * s2, np.quantile(s + 0.5 * s2, [0.25, 0.5, 0.75])).astype(float)
    train_save("xgb_softprob", {"objective": "multi:softprob", "num_class": 4}, y4, 25,
               "class_probabilities", "abs", "multi:softprob", num_out=4, ubj=True)
    y3 = np.digitize(s - s2, np.quantile(s - s2, [0.33, 0.66])).astype(float)

    def softmax_post(b, margins):
        probs = softmax_f32(margins)
        cls = b.predict(xgb_dmatrix(Xc, names))  # xgboost's own answer: the class index
        assert np.array_equal(cls, probs.argmax(axis=1).astype(np.float32)) or \
            (cls == probs.argmax(axis=1)).mean() > 0.99
        return probs

    train_save("xgb_softmax", {"objective": "multi:softmax", "num_class": 3}, y3, 20,
               "class_probabilities", "abs", "multi:softmax", num_out=3,
               predict_kw={"output_margin": True}, post=softmax_post,
               note="xgboost's predict returns the argmax class index for multi:softmax; "
                    "out_k here are the class probabilities: float32 softmax of the output "
                    "margins (predict(output_margin=True)), as multi:softprob would give.")

    # deep trees: big data, no regularisation, max_depth 15
    nd = 12000
    Xd = synth_X(rng, nd, d)
    sd = synth_signal(Xd) + np.nan_to_num(Xd[:, 9], nan=0) * np.nan_to_num(Xd[:, 8], nan=0)
    yd = sd + rng.normal(scale=0.3, size=nd)
    bd = xgb.train({"objective": "reg:squarederror", "max_depth": 15, "learning_rate": 0.5,
                    "min_child_weight": 0, "lambda": 0, "nthread": NTHREAD, "seed": 0,
                    "tree_method": "hist", "max_bin": 1024},
                   xgb.DMatrix(Xd, label=yd, missing=np.nan, feature_names=names, nthread=NTHREAD),
                   num_boost_round=3)
    bd.save_model(FIX / "xgb_deep.json")
    depth = xgb_max_depth(xgb_json(FIX / "xgb_deep.json"))
    stats["xgb_deep_max_depth"] = depth
    assert depth >= 14, depth
    Xdc = synth_cases(rng, Xd, n_rows=200)
    cases = write_cases("xgb_deep", names, Xdc, xgb_predict(bd, Xdc, names))
    add_fixture("xgb_deep", "xgb_deep.json", "xgboost_json", "reg:squarederror", d, 1, cases,
                "rel", "regression", f"3 trees, actual max depth {depth}")

    # no feature names: numpy training data, the model stores none (Rust names them f0..f9)
    b = train_save("xgb_nonames", {"objective": "binary:logistic"}, ybin, 30, "probability",
                   "exact", "binary:logistic", feature_names=None)
    assert not xgb_json(FIX / "xgb_nonames.json")["learner"]["feature_names"]


def cat_column(col: np.ndarray, card: int) -> pd.Categorical:
    """pandas category column with categories 0..card-1 whose codes equal the values."""
    codes = np.where(np.isnan(col), -1, col).astype(int)
    return pd.Categorical.from_codes(codes, categories=list(range(card)))


def gen_xgb_categorical(stats: dict):
    rng = np.random.default_rng(11)
    n = 6000
    cards = {"merchant": 12, "country": 40, "channel": 5}
    num = rng.normal(size=(n, 3))
    cats = {k: rng.integers(0, c, size=n) for k, c in cards.items()}
    risky_m = {1, 3, 4, 8, 11}
    risky_c = set(rng.choice(40, size=14, replace=False).tolist())
    s = (1.5 * np.isin(cats["merchant"], list(risky_m)) + 1.2 * np.isin(cats["country"], list(risky_c))
         - 0.8 * (cats["channel"] == 2) + num[:, 0] - 0.5 * num[:, 1] * num[:, 2] - 1.2)
    y = (rng.random(n) < 1 / (1 + np.exp(-s))).astype(float)
    names = ["amount_z", "velocity_z", "age_z", "merchant", "country", "channel"]
    types = ["q", "q", "q", "c", "c", "c"]
    X = np.column_stack([num] + [cats[k].astype(float) for k in cards])
    X[:, :3][rng.random((n, 3)) < 0.08] = np.nan
    X[:, 3:][rng.random((n, 3)) < 0.05] = np.nan  # missing categories in training too
    # Training frame: category codes == category values 0..C-1, in order, so the
    # model's stored categories are the identity and a code is what Vigil gets.
    df = pd.DataFrame(X[:, :3], columns=names[:3])
    for j, (k, c) in enumerate(cards.items()):
        df[k] = cat_column(X[:, 3 + j], c)
    dtr = xgb.DMatrix(df, label=y, enable_categorical=True, nthread=NTHREAD)
    b = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_cat_to_onehot": 1,
                   "max_depth": 5, "learning_rate": 0.3, "nthread": NTHREAD, "seed": 0},
                  dtr, num_boost_round=30)
    b.save_model(FIX / "xgb_categorical.json")
    b.save_model(FIX / "xgb_categorical.ubj")
    mj = xgb_json(FIX / "xgb_categorical.json")
    n_cat_nodes = sum(sum(1 for t in tr["split_type"] if t == 1)
                      for tr in mj["learner"]["gradient_booster"]["model"]["trees"])
    stats["xgb_categorical_split_type1_nodes"] = n_cat_nodes
    assert n_cat_nodes > 0
    assert mj["learner"]["feature_types"] == ["float", "float", "float", "c", "c", "c"]

    base = X[rng.choice(n, size=150, replace=False)]
    extra = []
    # categorical edge cases: unseen codes (>= cardinality), negative, fractional
    # (truncated to the integer code), huge, missing category.
    special = [float(cards["merchant"]), 12.0, 50.0, 1000.0, -1.0, -0.5, 2.7, 3.999, 1e30,
               16777215.0, 16777216.0, 3.4e38, np.nan]
    for i, v in enumerate(special):
        for j in range(3):
            r = base[(i * 3 + j) % len(base)].copy()
            r[3 + j] = v
            extra.append(r)
    allmiss_cats = base[0].copy()
    allmiss_cats[3:] = np.nan
    extra.append(allmiss_cats)
    Xc = np.vstack([base, np.array(extra), edge_rows(base, rng, cat_cols=(3, 4, 5))])
    yp = xgb_predict(b, Xc, names, types)
    # For rows whose categories were all seen in training, the pandas path agrees.
    seen = np.all(np.isnan(Xc[:, 3:]) | ((Xc[:, 3:] >= 0) & (Xc[:, 3:] < np.array(list(cards.values())))
                                         & (Xc[:, 3:] == np.floor(Xc[:, 3:]))), axis=1)
    dfc = pd.DataFrame(Xc[seen][:, :3], columns=names[:3])
    for j, (k, c) in enumerate(cards.items()):
        dfc[k] = cat_column(Xc[seen][:, 3 + j], c)
    yp_pd = b.predict(xgb.DMatrix(dfc, enable_categorical=True, missing=np.nan))
    assert np.array_equal(yp[seen], yp_pd), "numpy-code and pandas-category predictions differ"
    bu = xgb.Booster(model_file=str(FIX / "xgb_categorical.ubj"))
    assert np.array_equal(yp, bu.predict(xgb_dmatrix(Xc, names, types)))
    cases = write_cases("xgb_categorical", names, Xc, yp)
    note = ("merchant/country/channel are categorical (feature_types 'c'); the value is the "
            "category code (training categories were 0..C-1, so codes == values). Rows include "
            "unseen codes, negative, fractional (truncated), huge (>= 2^24) and missing categories.")
    add_fixture("xgb_categorical", "xgb_categorical.json", "xgboost_json", "binary:logistic", 6, 1,
                cases, "exact", "probability", note)
    add_fixture("xgb_categorical_ubj", "xgb_categorical.ubj", "xgboost_ubj", "binary:logistic", 6, 1,
                cases, "exact", "probability", note)


# --------------------------------------------------------------------------
# synthetic LightGBM fixtures
# --------------------------------------------------------------------------
LGB_BASE = {"num_threads": NTHREAD, "seed": 0, "deterministic": True, "force_col_wise": True,
            "verbose": -1, "num_leaves": 31, "learning_rate": 0.1, "min_data_in_leaf": 20}


def lgb_fixture(name, params, X, y, names, rounds, objective, num_out, tol, out, Xc,
                categorical=(), note=None):
    ds = lgb.Dataset(X, label=y, feature_name=names,
                     categorical_feature=list(categorical) if categorical else "auto",
                     free_raw_data=False)
    b = lgb.train(dict(LGB_BASE, **params), ds, num_boost_round=rounds)
    path = FIX / f"{name}.txt"
    b.save_model(path)
    b2 = lgb.Booster(model_file=str(path))
    yp = b2.predict(Xc)
    assert np.allclose(yp, b.predict(Xc), rtol=0, atol=0)
    if yp.ndim == 1:
        yp = yp.reshape(-1, 1)
    assert yp.shape[1] == num_out
    cases = write_cases(name, names, Xc, yp)
    add_fixture(name, f"{name}.txt", "lightgbm_text", objective, len(names), num_out, cases, tol,
                out, note)
    return path


def gen_lgb_synth(stats: dict):
    rng = np.random.default_rng(23)
    n, d = 5000, 10
    names = ["amount", "count", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"]
    X = synth_X(rng, n, d)
    s = synth_signal(X)
    Xc = synth_cases(rng, X)
    dts = {}

    yreg = 40 + 8 * s + rng.normal(scale=0.5, size=n)
    p = lgb_fixture("lgb_reg", {"objective": "regression"}, X, yreg, names, 80, "regression", 1,
                    "rel", "regression", Xc)
    dts["lgb_reg"] = p

    s2 = np.nan_to_num(X[:, 7], nan=0.0) + 0.5 * np.nan_to_num(X[:, 8], nan=1.0)
    z = s + 0.5 * s2
    y4 = np.digitize(z, np.quantile(z, [0.25, 0.5, 0.75])).astype(float)
    p = lgb_fixture("lgb_multiclass", {"objective": "multiclass", "num_class": 4}, X, y4, names, 30,
                    "multiclass", 4, "abs", "class_probabilities", Xc,
                    note="trees are interleaved: tree i belongs to class i % 4")
    dts["lgb_multiclass"] = p

    # categorical with up to ~100 categories, so bitsets span several 32-bit words
    nc = 12000
    Xn = rng.normal(size=(nc, 3))
    c_big = rng.integers(0, 100, size=nc)
    c_small = rng.integers(0, 8, size=nc)
    eff = rng.normal(scale=1.5, size=100)
    sc = eff[c_big] + 0.8 * (c_small % 3 == 0) + Xn[:, 0] - 0.5
    yc = (rng.random(nc) < 1 / (1 + np.exp(-sc))).astype(float)
    Xcat = np.column_stack([Xn, c_big.astype(float), c_small.astype(float)])
    Xcat[:, :3][rng.random((nc, 3)) < 0.05] = np.nan
    Xcat[:, 3:][rng.random((nc, 2)) < 0.03] = np.nan
    cnames = ["amount_z", "velocity_z", "age_z", "merchant_id", "channel"]
    base = Xcat[rng.choice(nc, size=150, replace=False)]
    extra = []
    special = [100.0, 101.0, 127.0, 1000.0, -1.0, -3.0, -0.5, 2.7, 31.0, 32.0, 63.0, 64.0, 95.0, 96.0,
               99.0, 2147483647.0, 1e10, np.nan]
    for i, v in enumerate(special):
        for j in (3, 4):
            r = base[(i * 2 + j) % len(base)].copy()
            r[j] = v
            extra.append(r)
    cc = np.vstack([base, np.array(extra), edge_rows(base, rng, cat_cols=(3, 4))])
    p = lgb_fixture("lgb_categorical",
                    {"objective": "binary", "min_data_per_group": 5, "cat_smooth": 1, "cat_l2": 1,
                     "max_cat_threshold": 64, "max_cat_to_onehot": 4},
                    Xcat, yc, cnames, 60, "binary", 1, "abs", "probability", cc,
                    categorical=(3, 4),
                    note="merchant_id (codes 0..99) and channel (0..7) are categorical; rows "
                         "include unseen, negative, fractional, huge and missing categories.")
    words = lgb_max_cat_words(p)
    stats["lgb_categorical_max_bitset_words"] = words
    assert words > 1, words
    dts["lgb_categorical"] = p

    # missing values: NaN + zeros, use_missing=true (missing_type NaN)
    Xm = X.copy()
    Xm[rng.random((n, d)) < 0.15] = 0.0
    sm = synth_signal(Xm) + 1.0 * (Xm[:, 7] == 0)
    ym = (rng.random(n) < 1 / (1 + np.exp(-sm))).astype(float)
    Xmc = synth_cases(rng, Xm)
    Xmc[5:25, 7] = 0.0
    Xmc[25:35, 2] = -0.0
    Xmc[35:45, 3] = 1e-36  # |x| <= kZeroThreshold (1e-35): LightGBM's IsZero says zero
    p = lgb_fixture("lgb_missing", {"objective": "binary", "use_missing": True}, Xm, ym, names, 50,
                    "binary", 1, "abs", "probability", Xmc)
    dts["lgb_missing"] = p
    # zero_as_missing=true: missing_type Zero
    yz = 5 + 2 * sm + rng.normal(scale=0.3, size=n)
    p = lgb_fixture("lgb_zero_as_missing",
                    {"objective": "regression", "use_missing": True, "zero_as_missing": True},
                    Xm, yz, names, 50, "regression", 1, "rel", "regression", Xmc,
                    note="trained with zero_as_missing=true: decision_type missing bits = Zero")
    dts["lgb_zero_as_missing"] = p

    dts["ulb_lgb"] = FIX / "ulb_lgb.txt"
    stats["lgb_decision_types"] = {k: sorted(lgb_decision_types(v)) for k, v in dts.items()}


# --------------------------------------------------------------------------
# an older xgboost's format (optional: needs scripts/.venv-old with xgboost 1.7.6)
# --------------------------------------------------------------------------
def gen_old_xgb():
    old_py = SCRIPTS / ".venv-old" / "bin" / "python"
    if old_py.exists():
        subprocess.run([str(old_py), str(SCRIPTS / "gen_old_xgb_fixture.py")], check=True)
    else:
        print("  (scripts/.venv-old missing: keeping the committed xgboost 1.7 fixture as is)")
    meta = SCRIPTS / "xgb_v1_7.meta.json"
    if meta.exists():
        for e in json.loads(meta.read_text()):
            add_fixture(**e)


# --------------------------------------------------------------------------
# demo fraud model + examples
# --------------------------------------------------------------------------
DEMO_FEATURES = ["amount", "merchant_category", "hour", "card_age_days", "tx_last_hour",
                 "distance_from_home_km", "foreign", "new_device"]


def demo_transactions(rng, n):
    amount = np.round(np.exp(rng.normal(3.4, 1.1, size=n)), 2)
    merchant = rng.choice(10, size=n, p=[.18, .16, .14, .12, .1, .09, .08, .06, .04, .03])
    hour_p = np.array([1, .6, .4, .3, .3, .5, 1, 2, 3.5, 4, 4.5, 5, 6, 5.5, 5, 5, 5.5, 6, 6.5, 6, 5, 4,
                       3, 2])
    hour = rng.choice(24, size=n, p=hour_p / hour_p.sum())
    card_age = np.floor(rng.exponential(700, size=n)).astype(int)
    tx_last_hour = rng.poisson(0.4, size=n)
    distance = np.round(np.exp(rng.normal(1.5, 1.4, size=n)), 1)
    foreign = (rng.random(n) < 0.07).astype(int)
    distance = np.where(foreign == 1, np.round(distance * 40 + 300, 1), distance)
    new_device = (rng.random(n) < 0.05).astype(int)
    return pd.DataFrame({"amount": amount, "merchant_category": merchant, "hour": hour,
                         "card_age_days": card_age, "tx_last_hour": tx_last_hour,
                         "distance_from_home_km": distance, "foreign": foreign,
                         "new_device": new_device})


def demo_risk(df):
    """Logit of fraud (before the intercept): understandable, monotone effects."""
    night = df["hour"].isin([0, 1, 2, 3, 4, 5]).astype(float)
    risky_merchant = df["merchant_category"].isin([7, 9]).astype(float)  # electronics, gift cards
    return (1.3 * night
            + 0.9 * np.clip(np.log(df["amount"] / 60.0), -1.5, 3.5)
            + 1.2 * risky_merchant
            + 1.6 * (df["card_age_days"] < 30) + 0.5 * (df["card_age_days"] < 180)
            + 0.7 * np.minimum(df["tx_last_hour"], 8)
            + 0.8 * np.log1p(df["distance_from_home_km"] / 50.0)
            + 0.7 * df["foreign"]
            + 1.8 * df["new_device"])


def gen_demo(stats: dict):
    rng = np.random.default_rng(2024)
    n = 60000
    df = demo_transactions(rng, n)
    r = demo_risk(df).to_numpy()
    # choose the intercept so that ~2% of transactions are fraud
    lo, hi = -20.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(r + mid)))).mean() > 0.02:
            hi = mid
        else:
            lo = mid
    y = (rng.random(n) < 1 / (1 + np.exp(-(r + lo)))).astype(float)
    stats["demo_fraud_rate"] = float(y.mean())
    X = df[DEMO_FEATURES].to_numpy(dtype=np.float64)
    b = xgb.train({"objective": "binary:logistic", "max_depth": 4, "learning_rate": 0.1,
                   "nthread": NTHREAD, "seed": 0, "tree_method": "hist", "min_child_weight": 2},
                  xgb.DMatrix(X, label=y, feature_names=DEMO_FEATURES, nthread=NTHREAD),
                  num_boost_round=100)
    ASSETS.mkdir(parents=True, exist_ok=True)
    b.save_model(ASSETS / "demo-fraud.json")

    # examples/transactions.csv: 1000 fresh transactions, tx_id first, no label
    ex = demo_transactions(np.random.default_rng(99), 1000)
    ex.insert(0, "tx_id", [f"tx-{i:05d}" for i in range(1, 1001)])
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    ex.to_csv(EXAMPLES / "transactions.csv", index=False, lineterminator="\n")
    # read it back exactly as a user's CSV would be parsed
    back = pd.read_csv(EXAMPLES / "transactions.csv", float_precision="round_trip")
    scores = xgb_predict(b, back[DEMO_FEATURES].to_numpy(dtype=np.float64), DEMO_FEATURES)
    stats["demo_auc_on_train"] = float(roc_auc_score(y, b.predict(xgb_dmatrix(X, DEMO_FEATURES))))
    with open(EXAMPLES / "transactions.expected.csv", "w", newline="") as f:
        f.write("score\n")
        for v in scores:
            f.write(fmt(v) + "\n")
    stats["demo_examples_over_0.5"] = int((scores > 0.5).sum())

    legit = {"amount": 23.5, "merchant_category": 2, "hour": 14, "card_age_days": 900,
             "tx_last_hour": 0, "distance_from_home_km": 3.2, "foreign": 0, "new_device": 0}
    fraud = {"amount": 1850.0, "merchant_category": 9, "hour": 3, "card_age_days": 5,
             "tx_last_hour": 6, "distance_from_home_km": 4200.0, "foreign": 1, "new_device": 1}
    for label, ex_row in (("legit", legit), ("fraud", fraud)):
        xr = np.array([[float(ex_row[k]) for k in DEMO_FEATURES]])
        sc = float(xgb_predict(b, xr, DEMO_FEATURES)[0])
        stats[f"demo_example_{label}"] = (ex_row, sc)
        print(f"demo {label}: {json.dumps(ex_row)} -> score {sc!r}")


# --------------------------------------------------------------------------
def main():
    FIX.mkdir(parents=True, exist_ok=True)
    print(f"xgboost {xgb.__version__}, lightgbm {lgb.__version__}, numpy {np.__version__}, "
          f"pandas {pd.__version__}")
    stats: dict = {}
    only = set(sys.argv[1:])

    def want(k):
        return not only or k in only

    if want("ulb"):
        gen_ulb(stats)
    if want("xgb"):
        gen_xgb_synth(stats)
        gen_xgb_categorical(stats)
        gen_old_xgb()
    if want("lgb"):
        gen_lgb_synth(stats)
    if want("demo"):
        gen_demo(stats)
    if not only:
        MANIFEST.sort(key=lambda e: e["name"])
        (FIX / "manifest.json").write_text(json.dumps({"fixtures": MANIFEST}, indent=2) + "\n")
        print(f"wrote {FIX / 'manifest.json'} ({len(MANIFEST)} fixtures)")
    print("stats:")
    for k, v in stats.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
