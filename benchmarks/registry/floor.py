"""The floor of the fresh-process load: unpickle the same model and predict, no framework.

Usage: python floor.py --home DIR (a home a registry ``log`` child wrote). Importing
scikit-learn (which imports scipy and pandas) is most of any framework's load time.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import _data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    t0 = time.perf_counter()
    with open(args.home / _data.FLOOR_FILE, "rb") as fh:
        model = pickle.load(fh)  # imports sklearn
    t1 = time.perf_counter()
    prediction = model.predict(_data.holdout_row(args.home))
    t2 = time.perf_counter()
    result = {
        "seconds": t2 - T_START,
        "load_seconds": t1 - t0,
        "predict_seconds": t2 - t1,
        "prediction": [int(v) for v in prediction],
        "side": "floor",
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
