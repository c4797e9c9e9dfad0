"""The FastAPI peer for bench/run.sh: one uvicorn worker, xgboost on one thread,
scoring one row per request with the same body as Vigil's /v1 endpoint.

Run: VIGIL_BENCH_MODEL=model.json uvicorn --app-dir bench/peers fastapi_app:app
"""

import os

import numpy as np
import xgboost as xgb
from fastapi import FastAPI, Request

booster = xgb.Booster()
booster.load_model(os.environ["VIGIL_BENCH_MODEL"])
# xgboost's default threading hurts the tail for one-row predictions.
booster.set_param({"nthread": 1})
FEATURES = booster.feature_names
THRESHOLD = 0.5

app = FastAPI()


@app.post("/v1/models/{name}/score")
async def score(name: str, request: Request):
    body = await request.json()
    features = body["features"]
    row = np.array([[features.get(n, np.nan) for n in FEATURES]], dtype=np.float32)
    p = float(booster.inplace_predict(row)[0])
    return {
        "id": body.get("id"),
        "model": name,
        "version": "1",
        "score": p,
        "label": "fraud" if p >= THRESHOLD else "legit",
        "threshold": THRESHOLD,
    }
