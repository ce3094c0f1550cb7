"""The fluent API (``shipyard.start_run``, ``log_metric``, ...) with MLflow's semantics.

Runs on every transport: in-process stores on SQLite and PostgreSQL, and the platform
server through its in-process test client. Process-exit behaviour runs in subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.client import Client
from shipyard.config import Settings
from shipyard.errors import ConfigError, ConflictError, InvalidArgumentError
from shipyard.testing import in_process_client
from shipyard.tracking import fluent
from shipyard.tracking.datasets import dataset_from, display_digest
from shipyard.tracking.entities import RunStatus

# -- experiments and runs ------------------------------------------------------------------


def test_set_experiment_creates_it_once_and_makes_it_active(client: Client) -> None:
    first = shipyard.set_experiment("production_model_training")
    again = shipyard.set_experiment("production_model_training")
    assert first.experiment_id == again.experiment_id
    with shipyard.start_run() as run:
        pass
    assert run.info.experiment_id == first.experiment_id


def test_runs_without_an_experiment_go_to_default(client: Client) -> None:
    with shipyard.start_run() as run:
        pass
    default = client.get_experiment_by_name("Default")
    assert default is not None
    assert run.info.experiment_id == default.experiment_id


def test_the_guide_example_runs_unchanged(client: Client) -> None:
    shipyard.set_experiment("production_model_training")
    with shipyard.start_run(run_name="training_run") as run:
        shipyard.log_params({"C": 1.0, "max_iter": 100})
        shipyard.log_param("data_version", "v1")
        shipyard.log_param("data_shape", (426, 30))
        shipyard.log_metrics({"accuracy": 0.95, "f1": 0.93})

    stored = client.get_run(run.info.run_id)
    assert stored.info.run_name == "training_run"
    assert stored.info.status is RunStatus.FINISHED
    assert stored.info.end_time is not None
    assert stored.data.params == {
        "C": "1.0",
        "max_iter": "100",
        "data_version": "v1",
        "data_shape": "(426, 30)",
    }
    assert stored.data.metrics == {"accuracy": 0.95, "f1": 0.93}


def test_an_exception_in_the_block_fails_the_run_and_propagates(client: Client) -> None:
    with pytest.raises(ZeroDivisionError), shipyard.start_run() as run:
        shipyard.log_metric("loss", 1.0)
        _ = 1 / 0
    stored = client.get_run(run.info.run_id)
    assert stored.info.status is RunStatus.FAILED
    assert stored.data.metrics == {"loss": 1.0}
    assert shipyard.active_run() is None


def test_keyboard_interrupt_kills_the_run(client: Client) -> None:
    with pytest.raises(KeyboardInterrupt), shipyard.start_run() as run:
        raise KeyboardInterrupt
    assert client.get_run(run.info.run_id).info.status is RunStatus.KILLED


def test_nested_runs_record_their_parent(client: Client) -> None:
    with shipyard.start_run(run_name="parent") as parent:
        with shipyard.start_run(run_name="child", nested=True) as child:
            assert shipyard.active_run() is child
        assert shipyard.active_run() is parent
    assert client.get_run(child.info.run_id).info.parent_run_id == parent.info.run_id
    assert client.get_run(parent.info.run_id).info.parent_run_id is None


def test_a_second_run_without_nested_is_refused_with_a_hint(client: Client) -> None:
    with shipyard.start_run() as run:
        with pytest.raises(InvalidArgumentError, match=r"already active(.|\n)*nested=True"):
            shipyard.start_run()
        assert shipyard.active_run() is run


def test_leaving_a_parent_block_ends_children_left_open(client: Client) -> None:
    with shipyard.start_run() as parent:
        child = shipyard.start_run(nested=True)
    assert client.get_run(child.info.run_id).info.status is RunStatus.FINISHED
    assert client.get_run(parent.info.run_id).info.status is RunStatus.FINISHED


def test_end_run_sets_the_status_given(client: Client) -> None:
    run = shipyard.start_run(tags={"team": "ml"}, description="first try")
    shipyard.end_run("KILLED")
    stored = client.get_run(run.info.run_id)
    assert stored.info.status is RunStatus.KILLED
    assert stored.data.tags["team"] == "ml"
    assert stored.data.tags["shipyard.note"] == "first try"
    assert shipyard.active_run() is None
    shipyard.end_run()  # no active run: nothing to do


def test_a_finished_run_can_be_resumed_by_id(client: Client) -> None:
    with shipyard.start_run() as run:
        shipyard.log_metric("loss", 1.0, step=0)
    with shipyard.start_run(run_id=run.info.run_id) as resumed:
        assert resumed.info.run_id == run.info.run_id
        shipyard.log_metric("loss", 0.5, step=1)
    stored = client.get_run(run.info.run_id)
    assert stored.info.status is RunStatus.FINISHED
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5]


def test_a_logging_call_without_a_run_starts_one(client: Client) -> None:
    shipyard.log_param("auto", "yes")
    run = shipyard.active_run()
    assert run is not None
    shipyard.end_run()
    assert client.get_run(run.info.run_id).data.params == {"auto": "yes"}


def test_last_active_run_returns_the_run_just_ended(client: Client) -> None:
    with shipyard.start_run() as run:
        shipyard.log_metric("m", 2.0)
        live = shipyard.last_active_run()
        assert live is not None and live.data.metrics == {"m": 2.0}
    last = shipyard.last_active_run()
    assert last is not None
    assert last.info.run_id == run.info.run_id
    assert last.info.status is RunStatus.FINISHED


def test_the_active_run_stack_is_per_thread(client: Client) -> None:
    seen: dict[str, Any] = {}

    def worker() -> None:
        seen["active"] = shipyard.active_run()
        with shipyard.start_run(run_name="in-thread") as run:  # no clash with main's run
            seen["run"] = run

    with shipyard.start_run() as main_run:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert shipyard.active_run() is main_run
    assert seen["active"] is None
    assert seen["run"].info.parent_run_id is None
    assert client.get_run(seen["run"].info.run_id).info.status is RunStatus.FINISHED


def test_a_thread_dying_of_an_exception_fails_its_run(client: Client) -> None:
    started: dict[str, str] = {}

    def worker() -> None:
        started["id"] = shipyard.start_run().info.run_id
        raise RuntimeError("boom")

    previous = threading.excepthook
    # The hook start_run installs, chained to a silent one instead of the traceback print.
    threading.excepthook = fluent._chain_thread_excepthook(lambda args: None)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    finally:
        threading.excepthook = previous
    assert client.get_run(started["id"]).info.status is RunStatus.FAILED


# -- params, metrics, tags -----------------------------------------------------------------


def test_params_are_immutable_and_the_error_surfaces_at_the_call(client: Client) -> None:
    with shipyard.start_run():
        assert shipyard.log_param("lr", 0.1) == "0.1"
        shipyard.log_param("lr", "0.1")  # same value: fine
        with pytest.raises(ConflictError):
            shipyard.log_param("lr", 0.2)


def test_metric_defaults_are_step_zero_and_now(client: Client) -> None:
    before = int(time.time() * 1000)
    with shipyard.start_run() as run:
        shipyard.log_metric("acc", np.float32(0.5))
        shipyard.log_metric("acc", 0.7, step=np.int64(3), timestamp=1234)
    history = client.get_metric_history(run.info.run_id, "acc")
    assert [(m.value, m.step) for m in history] == [(0.5, 0), (0.7, 3)]
    assert history[0].timestamp >= before - 1000
    assert history[1].timestamp == 1234


def test_log_metrics_share_step_and_timestamp(client: Client) -> None:
    with shipyard.start_run() as run:
        shipyard.log_metrics({"a": 1, "b": 2.5}, step=7)
    a = client.get_metric_history(run.info.run_id, "a")[0]
    b = client.get_metric_history(run.info.run_id, "b")[0]
    assert (a.value, a.step) == (1.0, 7)
    assert (b.step, b.timestamp) == (7, a.timestamp)


@pytest.mark.parametrize(
    ("key", "value", "step", "message"),
    [
        ("acc", "high", None, "metric values are numbers"),
        ("acc", None, None, "metric values are numbers"),
        ("bad\nname", 1.0, None, "Invalid metric name"),
        ("", 1.0, None, "Invalid metric name"),
        ("acc", 1.0, 1.5, "step must be an integer"),
    ],
)
def test_bad_metrics_fail_at_the_call(
    client: Client, key: str, value: Any, step: Any, message: str
) -> None:
    with shipyard.start_run(), pytest.raises(InvalidArgumentError, match=message):
        shipyard.log_metric(key, value, step=step)


def test_tags_can_be_set_and_changed(client: Client) -> None:
    with shipyard.start_run() as run:
        shipyard.set_tag("stage", "dev")
        shipyard.set_tags({"stage": "prod", "owner": 42})
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["stage"] == "prod"
    assert tags["owner"] == "42"


def test_run_data_reads_buffered_points_back(client: Client) -> None:
    with shipyard.start_run() as run:
        shipyard.log_metric("loss", 0.25)
        assert run.data.metrics == {"loss": 0.25}


# -- artifacts -----------------------------------------------------------------------------


def _artifact_paths(client: Client, run_id: str, path: str = "") -> set[str]:
    paths: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        paths |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return paths


def _read_artifact(client: Client, run_id: str, path: str, tmp_path: Path) -> bytes:
    local = client.download_artifacts(run_id, path, tmp_path / "dl")
    local = local if local.is_file() else local / Path(path).name
    return local.read_bytes()


def test_log_artifact_and_artifacts(client: Client, tmp_path: Path) -> None:
    (tmp_path / "report.txt").write_text("hello")
    folder = tmp_path / "outputs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "sub" / "b.csv").write_text("y\n2\n")
    with shipyard.start_run() as run:
        info = shipyard.log_artifact(tmp_path / "report.txt")
        shipyard.log_artifact(tmp_path / "report.txt", artifact_path="docs")
        shipyard.log_artifacts(folder, artifact_path="out")
    assert info.size == 5
    assert _artifact_paths(client, run.info.run_id) == {
        "report.txt",
        "docs/report.txt",
        "out/a.csv",
        "out/sub/b.csv",
    }


def test_log_dict_text_and_table(client: Client, tmp_path: Path) -> None:
    import yaml

    frame = pd.DataFrame({"feature": ["a", "b"], "importance": [0.7, 0.3]})
    with shipyard.start_run() as run:
        shipyard.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
        shipyard.log_dict({"lr": 0.1}, "config.yaml")
        shipyard.log_text("all good", "notes/summary.txt")
        shipyard.log_table(frame, "importance.json")
        shipyard.log_table({"a": [1, 2]}, "tables/a.parquet")
        with pytest.raises(InvalidArgumentError, match=r"\.json or \.parquet"):
            shipyard.log_table(frame, "importance.csv")
    rid = run.info.run_id
    assert json.loads(_read_artifact(client, rid, "config.json", tmp_path)) == {
        "lr": 0.1,
        "layers": [1, 2],
    }
    assert yaml.safe_load(_read_artifact(client, rid, "config.yaml", tmp_path)) == {"lr": 0.1}
    assert _read_artifact(client, rid, "notes/summary.txt", tmp_path) == b"all good"
    table = json.loads(_read_artifact(client, rid, "importance.json", tmp_path))
    assert table == {"columns": ["feature", "importance"], "data": [["a", 0.7], ["b", 0.3]]}
    parquet = tmp_path / "a.parquet"
    parquet.write_bytes(_read_artifact(client, rid, "tables/a.parquet", tmp_path))
    assert pd.read_parquet(parquet)["a"].tolist() == [1, 2]


def test_log_figure_matplotlib_by_extension(client: Client, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.barh(["a", "b"], [0.7, 0.3])
    with shipyard.start_run() as run:
        shipyard.log_figure(fig, "feature_importance.png")
        shipyard.log_figure(fig, "plots/feature_importance.svg")
        with pytest.raises(InvalidArgumentError, match="Cannot save a matplotlib figure"):
            shipyard.log_figure(fig, "figure.docx")
    plt.close(fig)
    rid = run.info.run_id
    assert _read_artifact(client, rid, "feature_importance.png", tmp_path)[:8] == (
        b"\x89PNG\r\n\x1a\n"
    )
    assert b"<svg" in _read_artifact(client, rid, "plots/feature_importance.svg", tmp_path)


def test_log_figure_plotly_html_works_offline(client: Client, tmp_path: Path) -> None:
    import importlib.util

    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=["a", "b"], y=[0.7, 0.3]))
    with shipyard.start_run() as run:
        shipyard.log_figure(fig, "importance.html")
        if importlib.util.find_spec("kaleido") is None:
            with pytest.raises(ConfigError, match="kaleido"):
                shipyard.log_figure(fig, "importance.png")
        with pytest.raises(TypeError, match="matplotlib or plotly"):
            shipyard.log_figure(object(), "x.png")
    html = _read_artifact(client, run.info.run_id, "importance.html", tmp_path)
    assert b"<script src=" not in html.split(b"Plotly.newPlot")[0][-2000:]
    assert len(html) > 1_000_000  # plotly.js is embedded, no CDN needed


# -- datasets ------------------------------------------------------------------------------


def test_log_dataset_records_digest_schema_rows_and_profile(client: Client) -> None:
    frame = pd.DataFrame({"age": [31, 45, None], "city": ["Oslo", "Lima", "Oslo"]})
    with shipyard.start_run() as run:
        dataset = shipyard.log_dataset(frame, name="customers", context="training")
        shipyard.log_dataset(frame.head(2), name="customers", context="validation")
    assert len(dataset.digest) == 64
    assert dataset.schema == {"age": "float64", "city": "str"}
    assert dataset.num_rows == 3
    assert dataset.profile["age"]["nulls"] == 1
    assert dataset.profile["age"]["max"] == 45.0
    assert dataset.profile["city"]["distinct"] == 2
    inputs = client.get_run(run.info.run_id).inputs
    assert sorted(i.context for i in inputs) == ["training", "validation"]
    assert {i.dataset.digest for i in inputs if i.context == "training"} == {dataset.digest}


def test_dataset_digest_depends_on_content_only() -> None:
    frame = pd.DataFrame({"a": [1.0, float("nan")], "b": ["x", None]})
    same = pd.DataFrame({"a": [1.0, float("nan")], "b": ["x", None]})
    changed = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", None]})
    renamed = frame.rename(columns={"b": "c"})
    digests = {dataset_from(d).digest for d in (frame, same)}
    assert len(digests) == 1
    assert dataset_from(changed).digest not in digests
    assert dataset_from(renamed).digest not in digests
    assert display_digest(dataset_from(frame).digest) == dataset_from(frame).digest[:16]


def test_dataset_digest_is_the_same_in_another_process() -> None:
    code = (
        "import pandas as pd; from shipyard.tracking.datasets import dataset_from;"
        "print(dataset_from(pd.DataFrame({'a': [1, 2], 's': ['x', 'y']})).digest)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == dataset_from(pd.DataFrame({"a": [1, 2], "s": ["x", "y"]})).digest


def test_datasets_from_numpy_arrow_dicts_and_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    array = dataset_from(np.arange(12, dtype="int64").reshape(4, 3))
    assert array.schema == {"dtype": "int64", "shape": [4, 3]}
    assert array.num_rows == 4
    assert array.profile["2"]["max"] == 11.0

    table = pa.table({"x": [1, 2, 3], "y": ["a", None, "a"]})
    arrow = dataset_from(table, name="t")
    assert arrow.schema == {"x": "int64", "y": "string"}
    assert arrow.profile["y"] == {"nulls": 1, "distinct": 1}
    assert dataset_from(pa.table({"x": [1, 2, 4], "y": ["a", None, "a"]})).digest != arrow.digest

    assert dataset_from({"x": [1, 2]}).num_rows == 2

    pq.write_table(table, tmp_path / "train.parquet")
    from_file = dataset_from(tmp_path / "train.parquet")
    assert from_file.name == "train.parquet"
    assert from_file.source == str(tmp_path / "train.parquet")
    assert from_file.source_type == "local"
    assert from_file.num_rows == 3
    assert from_file.schema == {"x": "int64", "y": "string"}
    assert dataset_from((tmp_path / "train.parquet").as_uri()).digest == from_file.digest

    with pytest.raises(InvalidArgumentError, match="does not exist"):
        dataset_from(tmp_path / "missing.csv")
    with pytest.raises(TypeError, match="Cannot describe a dataset"):
        dataset_from(object())


def test_folder_digest_covers_names_and_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.csv").write_text("1\n")
    (folder / "b.csv").write_text("2\n")
    first = dataset_from(folder).digest
    (folder / "b.csv").rename(folder / "c.csv")
    assert dataset_from(folder).digest != first


# -- search --------------------------------------------------------------------------------


def test_search_runs_returns_mlflow_columns(client: Client) -> None:
    shipyard.set_experiment("search")
    for lr, acc in ((0.1, 0.8), (0.01, 0.9), (0.001, 0.95)):
        with shipyard.start_run(tags={"team": "ml"}):
            shipyard.log_param("lr", lr)
            shipyard.log_metric("acc", acc)

    frame = shipyard.search_runs(order_by=["metrics.acc DESC"])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:7]) == [
        "run_id",
        "experiment_id",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
        "run_name",
    ]
    assert {"metrics.acc", "params.lr", "tags.team"} <= set(frame.columns)
    assert frame["metrics.acc"].tolist() == [0.95, 0.9, 0.8]
    assert str(frame["start_time"].dtype).startswith("datetime64")

    best = shipyard.search_runs(filter_string="metrics.acc > 0.85", output_format="list")
    assert sorted(r.data.params["lr"] for r in best) == ["0.001", "0.01"]
    by_name = shipyard.search_runs(experiment_names=["search", "no-such-experiment"])
    assert len(by_name) == 3
    assert len(shipyard.search_runs(experiment_names=["no-such-experiment"])) == 0
    assert len(shipyard.search_runs(max_results=2)) == 2
    assert len(shipyard.search_runs(frame["experiment_id"][0])) == 3
    with pytest.raises(InvalidArgumentError, match="filter_string="):
        shipyard.search_runs("metrics.acc > 0.85")


def test_search_runs_sees_points_still_buffered(client: Client) -> None:
    shipyard.set_experiment("fresh")
    with shipyard.start_run():
        shipyard.log_metric("acc", 0.5)
        frame = shipyard.search_runs(filter_string="metrics.acc = 0.5")
        assert len(frame) == 1


# -- buffering through the fluent API ------------------------------------------------------


def _buffered_client(base: Client, **overrides: Any) -> Client:
    settings = base.settings.model_copy(update=overrides)
    if base.is_remote:
        return in_process_client(settings, base.workspace)
    return Client(settings, workspace=base.workspace)


def test_metrics_are_written_when_the_buffer_reaches_flush_size(client: Client) -> None:
    fluent.use_client(_buffered_client(client, metric_flush_size=5, metric_flush_interval=3600))
    with shipyard.start_run() as run:
        for step in range(4):
            shipyard.log_metric("m", float(step), step=step)
        assert client.get_metric_history(run.info.run_id, "m") == []
        shipyard.log_metric("m", 4.0, step=4)
        assert len(client.get_metric_history(run.info.run_id, "m")) == 5


def test_metrics_are_written_every_flush_interval(client: Client) -> None:
    fluent.use_client(_buffered_client(client, metric_flush_interval=0.1))
    with shipyard.start_run() as run:
        shipyard.log_metric("m", 1.0)
        deadline = time.monotonic() + 10
        while not client.get_metric_history(run.info.run_id, "m"):
            assert time.monotonic() < deadline, "the background flush never wrote the point"
            time.sleep(0.05)


def test_explicit_flush_writes_everything(client: Client) -> None:
    with shipyard.start_run() as run:
        shipyard.log_metric("m", 1.0)
        shipyard.flush()
        assert len(client.get_metric_history(run.info.run_id, "m")) == 1


def test_ten_thousand_metric_calls_are_fast(client: Client) -> None:
    with shipyard.start_run() as run:
        start = time.perf_counter()
        for step in range(10_000):
            shipyard.log_metric("loss", 1.0 / (step + 1), step=step)
        logged = time.perf_counter() - start
    total = time.perf_counter() - start
    print(f"[timing] log_metric_10k_call_seconds={logged:.3f}s")
    print(f"[timing] log_metric_10k_total_seconds={total:.3f}s")
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 10_000
    assert total < 4.0, f"10k log_metric calls + flush took {total:.2f}s"


# -- process exit (subprocesses, local SQLite) ---------------------------------------------


def _script_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SHIPYARD_HOME"] = str(home)
    env["SHIPYARD_METRIC_FLUSH_INTERVAL"] = "3600"  # only exit handling may write them
    env.pop("SHIPYARD_URL", None)
    return env


def _run_script(body: str, home: Path) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        """
        import shipyard
        shipyard.set_experiment("exit")
        run = shipyard.start_run()
        print(run.info.run_id, flush=True)
        for step in range(2500):
            shipyard.log_metric("loss", step * 0.5, step=step)
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=_script_env(home),
        timeout=120,
    )


def _stored(home: Path, run_id: str) -> tuple[RunStatus, int]:
    client = Client(Settings(home=home))
    history = client.get_metric_history(run_id, "loss")
    return client.get_run(run_id).info.status, len(history)


def test_a_normal_exit_writes_every_point_and_finishes_the_run(tmp_path: Path) -> None:
    done = _run_script("", tmp_path)
    assert done.returncode == 0, done.stderr
    assert _stored(tmp_path, done.stdout.split()[0]) == (RunStatus.FINISHED, 2500)


def test_an_unhandled_exception_fails_the_run_and_keeps_the_points(tmp_path: Path) -> None:
    done = _run_script("raise RuntimeError('training diverged')", tmp_path)
    assert done.returncode == 1
    assert "training diverged" in done.stderr  # the user's traceback is still printed
    assert _stored(tmp_path, done.stdout.split()[0]) == (RunStatus.FAILED, 2500)


def test_an_unhandled_keyboard_interrupt_kills_the_run(tmp_path: Path) -> None:
    done = _run_script("raise KeyboardInterrupt", tmp_path)
    assert done.returncode != 0
    assert _stored(tmp_path, done.stdout.split()[0]) == (RunStatus.KILLED, 2500)


def test_a_forked_child_logs_to_the_parents_run_without_ending_it(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        import shipyard
        run = shipyard.start_run()
        print(run.info.run_id, flush=True)
        pid = os.fork()
        if pid == 0:
            shipyard.log_metric("child", 1.0)
            shipyard.flush()
            sys.exit(0)  # a normal exit: atexit runs in the child too
        os.waitpid(pid, 0)
        status = shipyard.Client().get_run(run.info.run_id).info.status
        print(status, flush=True)
        shipyard.log_metric("parent", 2.0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=_script_env(tmp_path),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run_id, status_in_between = done.stdout.split()
    assert status_in_between == "RUNNING"
    run = Client(Settings(home=tmp_path)).get_run(run_id)
    assert run.info.status is RunStatus.FINISHED
    assert run.data.metrics == {"child": 1.0, "parent": 2.0}
