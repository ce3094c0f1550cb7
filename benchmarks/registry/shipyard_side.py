"""Shipyard side of the registry workload; runs in the project's .venv.

Usage: python shipyard_side.py log|load --home DIR [--url URL]
Same steps as mlflow_side.py: ``log`` trains (not timed), then times log_model with
registered_model_name, 50 more versions and 51 alias moves; ``load`` is the fresh process:
import shipyard, load models:/bench@champion, predict one row. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

import _data  # noqa: E402


def log(home: Path) -> dict:
    import shipyard
    from shipyard import Client

    client = Client()
    shipyard.set_experiment("bench")
    model, example = _data.train(home)

    start = time.perf_counter()
    with shipyard.start_run() as run:
        info = shipyard.log_model(
            model,
            _data.ARTIFACT_PATH,
            registered_model_name=_data.MODEL_NAME,
            input_example=example,
        )
    log_seconds = time.perf_counter() - start
    run_id = run.info.run_id
    source = f"runs:/{run_id}/{_data.ARTIFACT_PATH}"

    start = time.perf_counter()
    versions = [
        client.create_model_version(_data.MODEL_NAME, source, run_id=run_id).version
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
        "registered_version": str(getattr(info, "registered_model_version", "")),
        "version": shipyard.__version__,
    }


def load(home: Path) -> dict:
    t0 = time.perf_counter()
    import shipyard
    import shipyard.models

    t1 = time.perf_counter()
    model = shipyard.models.load(f"models:/{_data.MODEL_NAME}@{_data.ALIAS}")
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
        "version": shipyard.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=("log", "load"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    os.environ["SHIPYARD_HOME"] = str(args.home)
    if args.url:
        os.environ["SHIPYARD_URL"] = args.url
    result = (log if args.workload == "log" else load)(args.home)
    result.update(side="shipyard", workload=args.workload)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
