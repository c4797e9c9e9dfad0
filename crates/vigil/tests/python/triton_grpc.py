"""Black-box check of Vigil's gRPC service with the real tritonclient.grpc.

Usage: triton_grpc.py HOST:PORT MODEL CASES_CSV
CASES_CSV: a header row of the model's features, then one more column with
the expected probability; every row is scored in one ModelInfer call and
must match bit for bit. Prints one JSON line with what it checked.
"""

import csv
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient


def main() -> int:
    url, model, cases = sys.argv[1:4]
    with open(cases, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        # An empty cell is a missing value: NaN, which Vigil treats as missing.
        rows = [[float(v) if v else float("nan") for v in line] for line in reader if line]
    features = header[:-1]
    x = np.array([r[:-1] for r in rows], dtype=np.float32)
    want = np.array([r[-1] for r in rows], dtype=np.float64)

    client = grpcclient.InferenceServerClient(url=url)
    assert client.is_server_live(), "server not live"
    assert client.is_server_ready(), "server not ready"
    assert client.is_model_ready(model), "model not ready"
    server = client.get_server_metadata()
    assert server.name == "vigil", server
    meta = client.get_model_metadata(model)
    names = [t.name for t in meta.inputs]
    assert names == features, f"metadata inputs {names} != csv header {features}"
    outputs = [t.name for t in meta.outputs]
    assert outputs[0] == "score", outputs

    tensor = grpcclient.InferInput("input-0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(model, [tensor], request_id="triton-grpc-1")
    score = result.as_numpy("score")
    assert score is not None, "no score output"
    assert score.dtype == np.float64, score.dtype
    assert score.shape == (len(rows),), score.shape
    mismatches = int(np.sum(score.view(np.uint64) != want.view(np.uint64)))
    first_bad = None
    if mismatches:
        i = int(np.argmax(score.view(np.uint64) != want.view(np.uint64)))
        first_bad = {"row": i, "got": repr(score[i]), "want": repr(want[i])}
    labels = result.as_numpy("label") if "label" in outputs else None
    print(json.dumps({
        "rows": len(rows),
        "mismatches": mismatches,
        "first_mismatch": first_bad,
        "labels": None if labels is None else int(labels.shape[0]),
        "id": result.get_response().id,
    }))
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
