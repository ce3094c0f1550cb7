"""Fit the serving benchmark's two models (BENCHMARKS.md) and write the request payloads.

Runs in whichever virtualenv calls it, so every server loads an estimator its own
scikit-learn wrote: ``python _models.py OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import joblib
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

FEATURES = [f"f{i}" for i in range(20)]
MODELS = {
    "lr": lambda: LogisticRegression(max_iter=1000, random_state=0),
    "rf": lambda: RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0),
}


def data() -> tuple[pd.DataFrame, object, pd.DataFrame]:
    x, y = make_classification(
        n_samples=20000, n_features=20, n_informative=10, n_redundant=5, random_state=0
    )
    frame = pd.DataFrame(x, columns=FEATURES)
    return frame.iloc[:16000], y[:16000], frame.iloc[16000:]


def main(out: Path) -> None:
    warnings.filterwarnings("ignore")
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test = data()
    for kind, make in MODELS.items():
        joblib.dump(make().fit(x_train, y_train), out / f"{kind}.joblib")
    payload = {
        "row": x_test.iloc[0].tolist(),
        "batch": x_test.iloc[:64].values.tolist(),
        "features": FEATURES,
    }
    (out / "requests.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
