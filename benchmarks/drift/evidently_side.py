"""Evidently side of the drift workload; runs in Evidently's own virtualenv, prints JSON.

    python evidently_side.py full --n N      Report([DataDriftPreset()]) on N x N rows
    python evidently_side.py window --n N    the same with a 10k-row current window

Evidently keeps no prepared reference, so a window costs a whole run. Only ``run`` is
timed; building the frames and the Datasets is not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

_METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "PSI": "psi",
}


def run(n: int, current_rows: int | None) -> dict[str, object]:
    reference, current = _data.frame(0, n), _data.frame(1, n)
    fingerprint = _data.fingerprint(reference) + _data.fingerprint(current)
    if current_rows is not None:
        current = current.iloc[:current_rows]
    definition = DataDefinition(
        numerical_columns=list(_data.NUMERIC), categorical_columns=list(_data.CATEGORICAL)
    )
    ref_ds = Dataset.from_pandas(reference, data_definition=definition)
    cur_ds = Dataset.from_pandas(current, data_definition=definition)
    report = Report([DataDriftPreset()])
    cpu, start = time.process_time(), time.perf_counter()
    snapshot = report.run(cur_ds, ref_ds)
    seconds = time.perf_counter() - start
    cpu_used = time.process_time() - cpu
    columns: dict[str, dict[str, object]] = {}
    share = None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            score = float(metric["value"])
            test = _METHODS.get(config["method"], config["method"])
            threshold = float(config["threshold"])
            drifted = score < threshold if test in ("chisquare", "z") else score >= threshold
            if test == "ks":
                drifted = score <= threshold
            columns[config["column"]] = {"test": test, "score": score, "drifted": drifted}
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    return {
        "seconds": seconds,
        "cpu": cpu_used,
        "share_drifted": share,
        "dataset_drift": share is not None and share >= 0.5,
        "columns": columns,
        "fingerprint": fingerprint,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("full", "window"))
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(run(args.n, None if args.mode == "full" else _data.WINDOW)))


if __name__ == "__main__":
    main()
