"""Register the benchmark model in a Shipyard home as ``<name>@champion`` (runs in .venv)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import joblib
import pandas as pd

import shipyard


def main(model_path: str, requests_path: str, name: str) -> None:
    warnings.filterwarnings("ignore")
    payload = json.loads(Path(requests_path).read_text())
    example = pd.DataFrame(payload["batch"][:5], columns=payload["features"])
    shipyard.set_experiment("bench-serving")
    with shipyard.start_run(run_name=name):
        info = shipyard.log_model(
            joblib.load(model_path), "model", registered_model_name=name, input_example=example
        )
    shipyard.Client().registry.set_alias(name, "champion", info.registered_model_version)


if __name__ == "__main__":
    main(*sys.argv[1:4])
