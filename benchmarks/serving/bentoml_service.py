"""A BentoML 1.4 service for the benchmark model, with or without adaptive batching.

``BENCH_MODEL`` names the joblib file, ``BENCH_BATCHING=1`` turns batching on and
``BENCH_WORKERS`` sets the worker count.
"""

from __future__ import annotations

import os
import warnings

import bentoml
import joblib
import numpy as np

warnings.filterwarnings("ignore")
BATCHING = os.environ.get("BENCH_BATCHING") == "1"


@bentoml.service(workers=int(os.environ.get("BENCH_WORKERS", "1")))
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @bentoml.api(batchable=BATCHING, max_batch_size=64)
    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(features)
