"""`shipyard features materialize | materialize-incremental | push | get-online` on the
local stores of the test's SHIPYARD_HOME."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_online_support import T0, driver, driver_view, push_view, rows
from typer.testing import CliRunner

from shipyard.cli.main import main
from shipyard.features.definitions import FileSource
from shipyard.features.store import FeatureStore

RECENT = datetime.now().astimezone() - timedelta(minutes=5)


def shipyard(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr), lines joined."""
    code = 0
    with CliRunner().isolation() as (out, err, _):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    flat = [" ".join(re.sub("[\u2500-\u257f]", " ", t).split()) for t in (stdout, stderr)]
    return code, flat[0], flat[1]


@pytest.fixture
def repo(tmp_path: Path, fresh_sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Definitions applied to the metadata DB the CLI uses; driver_stats reads a file
    with rows of drivers 1 and 2 five minutes ago."""
    from shipyard.cli import _common

    monkeypatch.setattr(_common.console, "width", 300)
    monkeypatch.setattr(_common.err_console, "width", 300)
    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    data = tmp_path / "driver_stats.parquet"
    pq.write_table(rows([1, 2], [RECENT, RECENT]), data)
    history = tmp_path / "driver_live.parquet"
    pq.write_table(rows([99], [T0]), history)
    view = driver_view(
        source=FileSource(
            path=str(data), timestamp_field="event_timestamp", created_timestamp_column="created"
        )
    )
    FeatureStore().apply([driver, view, push_view(batch_path=str(history))])
    return tmp_path


def test_materialize_then_read_online(repo: Path) -> None:
    start = (RECENT - timedelta(hours=1)).isoformat()
    code, out, err = shipyard("features", "materialize", start, "now", "-v", "driver_stats")
    assert code == 0, err
    assert "driver_stats" in out
    assert re.search(r"driver_stats \S+ \S+ 2 2", out)
    code, out, err = shipyard(
        "features", "get-online", "-f", "driver_stats:trips", "-e", "driver_id=2", "--json"
    )
    assert code == 0, err
    assert json.loads(out) == {
        "values": {"driver_id": [2], "trips": [20]},
        "statuses": {"trips": ["PRESENT"]},
    }
    code, out, _ = shipyard(
        "features",
        "get-online",
        "-f",
        "driver_stats:city",
        "-e",
        "driver_id=1",
        "-e",
        "driver_id=7",
    )
    assert code == 0
    assert "city-1" in out
    assert "None (NOT_FOUND)" in out


def test_materialize_incremental_moves_the_watermark(repo: Path) -> None:
    code, out, err = shipyard("features", "materialize-incremental")
    assert code == 0, err
    assert re.search(r"driver_stats \S+ \S+ 2 2", out)
    code, out, _ = shipyard("features", "materialize-incremental", "now")
    assert re.search(r"driver_stats \S+ \S+ 0 0", out)


def test_push_a_file_of_rows(repo: Path) -> None:
    lines = repo / "rows.jsonl"
    row = {
        "driver_id": 5,
        "event_timestamp": RECENT.isoformat(),
        "conv_rate": 0.5,
        "trips": 50,
        "city": "Oslo",
        "active": False,
        "score": 1.0,
        "last_seen": RECENT.isoformat(),
    }
    lines.write_text(json.dumps(row) + "\n")
    code, out, err = shipyard("features", "push", "driver_push", str(lines))
    assert code == 0, err
    assert "Pushed 1 rows to driver_live (1 written online)" in out
    code, out, _ = shipyard(
        "features", "get-online", "-f", "driver_live:city", "-e", "driver_id=5", "--json"
    )
    assert json.loads(out)["values"]["city"] == ["Oslo"]


def test_errors_print_the_reason_and_exit_non_zero(repo: Path) -> None:
    code, _, err = shipyard("features", "materialize", "yesterday", "now")
    assert code == 2
    assert "START 'yesterday' is not a time" in err
    code, _, err = shipyard("features", "get-online", "-e", "driver_id=1")
    assert code == 2
    assert "Name either --feature references or one --service" in err
    code, _, err = shipyard("features", "push", "driver_push", str(repo / "missing.csv"))
    assert code == 2
    assert "does not exist" in err
