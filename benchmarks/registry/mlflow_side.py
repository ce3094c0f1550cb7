"""MLflow side of the registry workload; runs in MLflow's own virtualenv.

Usage: python mlflow_side.py log|load --home DIR [--url URL]
``log`` trains a LogisticRegression (not timed), then times log_model with
registered_model_name, 50 more versions and 51 alias moves. ``load`` is the fresh
process: import mlflow, load models:/bench@champion, predict one row. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import _data  # noqa: E402


def log(home: Path, uri: str) -> dict:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("bench", artifact_location=(home / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp_id)
    model, example = _data.train(home)

    start = time.perf_counter()
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model,
            name=_data.ARTIFACT_PATH,
            registered_model_name=_data.MODEL_NAME,
            input_example=example,
        )
    log_seconds = time.perf_counter() - start
    source = client.get_model_version(_data.MODEL_NAME, "1").source

    start = time.perf_counter()
    versions = [
        client.create_model_version(
            _data.MODEL_NAME, source, run_id=run.info.run_id, model_id=info.model_id
        ).version
        for _ in range(_data.EXTRA_VERSIONS)
    ]
    versions_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for version in versions:
        client.set_registered_model_alias(_data.MODEL_NAME, "candidate", version)
    client.set_registered_model_alias(_data.MODEL_NAME, _data.ALIAS, versions[-1])
    alias_seconds = time.perf_counter() - start
    return {
        "seconds": log_seconds,
        "log_seconds": log_seconds,
        "versions_seconds": versions_seconds,
        "alias_seconds": alias_seconds,
        "version": mlflow.__version__,
    }


def load(home: Path, uri: str) -> dict:
    t0 = time.perf_counter()
    import mlflow
    import mlflow.pyfunc

    t1 = time.perf_counter()
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{_data.MODEL_NAME}@{_data.ALIAS}")
    t2 = time.perf_counter()
    row = _data.holdout_row(home)
    prediction = model.predict(row)
    t3 = time.perf_counter()
    return {
        "seconds": t3 - T_START,
        "import_seconds": t1 - t0,
        "load_seconds": t2 - t1,
        "predict_seconds": t3 - t2,
        "prediction": [int(v) for v in prediction],
        "version": mlflow.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=("log", "load"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    uri = args.url or f"sqlite:///{args.home / 'mlflow.db'}"
    result = (log if args.workload == "log" else load)(args.home, uri)
    result.update(side="mlflow", workload=args.workload)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
