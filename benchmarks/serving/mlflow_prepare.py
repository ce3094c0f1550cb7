"""Save the benchmark model as an MLflow model (run inside MLflow's virtualenv)."""

from __future__ import annotations

import sys

import joblib
import mlflow.sklearn

mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], serialization_format="cloudpickle")
