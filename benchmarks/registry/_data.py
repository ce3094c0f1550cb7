"""The registry workload's model and data, identical for both sides.

Imported by folder from both side scripts, so it must run in MLflow's virtualenv too.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

MODEL_NAME = "bench"
ARTIFACT_PATH = "model"
EXTRA_VERSIONS = 50
ALIAS = "champion"
ROW_FILE = "row.json"
FLOOR_FILE = "floor.pkl"


def train(home: Path):
    """A LogisticRegression fit with feature names (f0..f19); writes the test row to home.

    Returns (model, input_example) where the example is the first five training rows.
    """
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=20000, n_features=20, n_informative=10, n_redundant=5, random_state=0
    )
    columns = [f"f{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=columns)
    model = LogisticRegression(max_iter=1000, random_state=0).fit(frame[:16000], y[:16000])
    row = {"columns": columns, "data": [x[16000].tolist()]}
    (home / ROW_FILE).write_text(json.dumps(row))
    with open(home / FLOOR_FILE, "wb") as fh:  # for floor.py: a bare pickle, no framework
        pickle.dump(model, fh)
    return model, frame[:5]


def holdout_row(home: Path):
    """The first test row as a one-row DataFrame, what a caller would pass to predict()."""
    import pandas as pd

    row = json.loads((home / ROW_FILE).read_text())
    return pd.DataFrame(row["data"], columns=row["columns"])
