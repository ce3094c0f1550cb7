"""The runnable examples run end to end, as `make demo` runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_leaves_what_it_says(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "quickstart@champion -> v1 (gate passed)" in out
    assert "v2 refused" in out and "accuracy >= 0.9" in out
    assert "predictions [1, 0, 0]" in out
    assert "moving @champion refused (403)" in out
    assert "OK: audit log intact" in out
    # the platform half: features, pipeline twice (cached), serving, drift, deploy
    assert "applied: 3 added" in out
    second = out.split("second run (nothing changed")[1]
    assert "build-training-set     cached" in second and "register               cached" in second
    assert "driver 1001: {'prediction'" in out
    assert 'model_feature_drift{feature_name="conv_rate",model="drivers"' in out
    assert "drifted: conv_rate, avg_daily_trips" in out
    assert "HTML report:" in out
    assert "shipyard deploy render" in out and "FAILED" not in out
    assert "Warning" not in done.stderr

    listed = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "models", "show", "quickstart"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "@champion" in listed.stdout
