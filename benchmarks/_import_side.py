"""Time an import in a fresh interpreter: python _import_side.py NAME.

NAME is ``shipyard`` / ``mlflow`` (the bare package) or ``shipyard-api`` / ``mlflow-api``
(the client and the fluent logging functions, what a training script touches first).
"""

from __future__ import annotations

import json
import sys
import time

STATEMENTS = {
    "shipyard": "import shipyard",
    "mlflow": "import mlflow",
    "shipyard-api": "from shipyard import Client, log_metric, start_run",
    "mlflow-api": "from mlflow import MlflowClient, log_metric, start_run",
}

name = sys.argv[1]
code = compile(STATEMENTS[name], "<bench>", "exec")
start = time.perf_counter()
exec(code, {})
seconds = time.perf_counter() - start
sys.stdout.write(json.dumps({"seconds": seconds, "statement": STATEMENTS[name]}) + "\n")
