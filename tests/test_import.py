"""``import shipyard`` stays light and fast; the public names all resolve."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import shipyard

HEAVY = (
    "sqlalchemy",
    "fastapi",
    "duckdb",
    "redis",
    "prometheus_client",
    "sklearn",
    "pandas",
    "httpx",
    "alembic",
)


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args, "-c", code], capture_output=True, text=True, check=True
    )


def test_import_shipyard_loads_no_heavy_dependency() -> None:
    code = (
        f"import sys, json, shipyard; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert json.loads(_run(code).stdout) == []


def test_fluent_names_and_an_unused_client_stay_light() -> None:
    code = (
        "import sys, json, shipyard\n"
        "shipyard.start_run, shipyard.log_metric, shipyard.log_model\n"
        "client = shipyard.Client()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert json.loads(_run(code).stdout) == []


def test_import_time_is_small() -> None:
    stderr = _run("import shipyard", "-X", "importtime").stderr
    # "import time: self [us] | cumulative | imported package"; the top-level shipyard
    # line's cumulative time is what `import shipyard` costs.
    cumulative = [
        int(line.split("|")[1])
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.split("|")[2].strip() == "shipyard"
    ]
    seconds = cumulative[0] / 1e6
    print(f"[timing] import_shipyard_seconds={seconds:.3f}s")
    assert seconds < 1.0, f"import shipyard took {seconds:.3f}s (goal: < 0.3s)"


def test_every_top_level_export_resolves() -> None:
    assert shipyard.__version__ == "0.1.0"
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None, name
    assert set(shipyard.__all__) <= set(dir(shipyard))
    assert shipyard.ShipyardError is shipyard.errors.ShipyardError


def test_subpackages_are_reachable_as_attributes() -> None:
    assert callable(shipyard.models.load)
    assert shipyard.tracking.RunStatus.FINISHED == "FINISHED"


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = shipyard.nope  # type: ignore[attr-defined]


def test_tracking_all_is_sorted_and_resolves() -> None:
    import shipyard.tracking as tracking

    assert tracking.__all__ == sorted(tracking.__all__)
    for name in tracking.__all__:
        assert getattr(tracking, name) is not None, name
