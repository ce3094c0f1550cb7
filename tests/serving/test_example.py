"""examples/serving_tour.py runs end to end: register, serve, traffic, metrics, stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serving_tour.py"


@pytest.mark.slow
def test_serving_tour_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "registered models:/serving-tour@champion" in out
    assert 'model_predictions_total{model="serving-tour",model_version="1"' in out
    assert 'route="/predict",status="200"} 50.0' in out
    assert "exit code 0" in out
    logs = list((tmp_path / "home" / "artifacts" / "prediction-logs").rglob("*.parquet"))
    assert logs
