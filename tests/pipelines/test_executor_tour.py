"""The pipeline tour example: validate -> training set -> train -> evaluate -> register,
twice; the second run comes entirely from the cache and the model is @champion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline_tour.py"


@pytest.mark.slow
def test_pipeline_tour_runs_twice_and_the_rerun_is_cached(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "first run: succeeded" in out and "second run (nothing changed): succeeded" in out
    assert "6 of 6 steps came from the cache" in out
    assert "model tour-classifier@champion" in out

    shown = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "models", "show", "tour-classifier"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "champion" in shown.stdout, shown.stdout + shown.stderr
