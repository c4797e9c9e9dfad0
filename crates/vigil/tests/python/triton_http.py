"""Drive a running Vigil with the real Triton HTTP client (tritonclient.http).

    python triton_http.py HOST:PORT MODEL GOLDEN_CSV

GOLDEN_CSV has the model's features (in model order) then `score`, the
reference probability. Checks server/model liveness and readiness, the
model metadata, then infers every row in one request three ways and
compares each score with the golden one bit for bit (as float64):
  json    - FP64 input as JSON `data`, score asked for as JSON
  binary  - FP32 input as binary data, score and label asked for as binary
  default - FP64 binary input, no outputs named (the client then asks for
            every output as binary, `binary_data_output`)
Exits 1 on the first failing check, naming the row(s) that differ.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
import tritonclient.http as httpclient

NO_CACHE = {"Cache-Control": "no-cache"}  # make the model score every request


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def load(path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [[float(v) if v else float("nan") for v in row] for row in reader]
    check(header[-1] == "score", f"{path}: last column is {header[-1]!r}, expected 'score'")
    table = np.array(rows, dtype=np.float64)
    return header[:-1], table[:, :-1], table[:, -1]


def compare(mode: str, got: np.ndarray, want: np.ndarray) -> None:
    got = np.asarray(got)
    check(got.dtype == np.float64, f"{mode}: score dtype {got.dtype}, expected float64")
    check(got.shape == want.shape, f"{mode}: score shape {got.shape}, expected {want.shape}")
    bad = np.flatnonzero(got.view(np.uint64) != want.view(np.uint64))
    if bad.size:
        for row in bad[:10]:
            print(f"{mode}: row {row}: got {got[row]!r}, golden {want[row]!r}", file=sys.stderr)
        fail(f"{mode}: {bad.size} of {want.size} scores differ from the golden file (first row {bad[0]})")
    print(f"{mode}: {want.size} scores bit-identical")


def main() -> None:
    url, model, golden = sys.argv[1:4]
    features, X, want = load(golden)
    client = httpclient.InferenceServerClient(url=url)

    check(client.is_server_live(), "server is not live")
    check(client.is_server_ready(), "server is not ready")
    check(client.is_model_ready(model), f"model {model} is not ready")

    meta = client.get_model_metadata(model)
    check(meta["name"] == model, f"metadata name {meta['name']!r}")
    names = [t["name"] for t in meta["inputs"]]
    check(names == features, f"metadata inputs {names}, expected the golden columns {features}")
    outputs = {t["name"]: t for t in meta["outputs"]}
    check(outputs.get("score", {}).get("datatype") == "FP64", f"metadata outputs {meta['outputs']}")
    print(f"metadata: {len(names)} inputs, outputs {sorted(outputs)}")

    n_rows, n_features = X.shape

    # JSON both ways.
    inp = httpclient.InferInput("input-0", [n_rows, n_features], "FP64")
    inp.set_data_from_numpy(X, binary_data=False)
    out = [httpclient.InferRequestedOutput("score", binary_data=False)]
    result = client.infer(model, [inp], outputs=out, headers=NO_CACHE)
    check("data" in result.get_output("score"), "json: score came without `data`")
    compare("json", result.as_numpy("score"), want)

    # Binary both ways, FP32 input (what the model computes in anyway).
    inp = httpclient.InferInput("input-0", [n_rows, n_features], "FP32")
    inp.set_data_from_numpy(X.astype(np.float32), binary_data=True)
    out = [
        httpclient.InferRequestedOutput("score", binary_data=True),
        httpclient.InferRequestedOutput("label", binary_data=True),
    ]
    result = client.infer(model, [inp], outputs=out, headers=NO_CACHE)
    score = result.get_output("score")
    check("data" not in score and score["parameters"]["binary_data_size"] == 8 * n_rows,
          f"binary: score output {score}")
    compare("binary", result.as_numpy("score"), want)
    labels = result.as_numpy("label")
    threshold = meta["parameters"]["threshold"]
    negative, positive = meta["parameters"]["labels"]
    expected = [(positive if s >= threshold else negative).encode() for s in want]
    bad = [i for i, (g, e) in enumerate(zip(labels.tolist(), expected)) if g != e]
    check(not bad, f"binary: {len(bad)} labels differ (first row {bad[:1]})")
    print(f"binary: {n_rows} labels match the threshold {threshold}")

    # The client's default: binary input, every output binary.
    inp = httpclient.InferInput("input-0", [n_rows, n_features], "FP64")
    inp.set_data_from_numpy(X, binary_data=True)
    result = client.infer(model, [inp], headers=NO_CACHE)
    check("data" not in result.get_output("score"), "default: score was not binary")
    compare("default", result.as_numpy("score"), want)


if __name__ == "__main__":
    main()
