"""The Airflow DAG compiler, checked by the real Airflow in its own virtualenv: the DAG file
imports with the declared owner, retries, schedule, catchup, tags and dependencies, and
``airflow dags test`` runs it end to end to the same outputs as the local executor."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from seed_pipelines import ml_training_pipeline

from shipyard.config import Settings
from shipyard.errors import NotSupportedError
from shipyard.pipelines import (
    RUN_ID,
    Collected,
    Dataset,
    ExitHandler,
    Model,
    Outputs,
    ParallelFor,
    pipeline,
    step,
    when,
)
from shipyard.pipelines.compile.airflow import compile_airflow
from shipyard.pipelines.executor import run_pipeline

pytestmark = pytest.mark.xdist_group("airflow")


@pytest.fixture(autouse=True)
def _close_step_workers() -> Iterator[None]:
    """Stop the executor's warm step workers after each test, so none outlives its test."""
    yield
    from shipyard.pipelines.worker import shutdown_pools

    shutdown_pools()


@step
def make_data(n: int) -> Dataset:
    import pandas as pd

    return pd.DataFrame({"x": list(range(n)), "y": [2.0 * i + 1 for i in range(n)]})


@step
def fit(data: Dataset, scale: float) -> Outputs(model=Model, score=float):
    import pandas as pd

    frame = pd.read_parquet(data.path)
    slope = float((frame.y.diff() / frame.x.diff()).dropna().mean()) * scale
    return {"slope": slope}, slope / 10


@step
def square(x: int) -> int:
    return x * x


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
def publish(model: Model, version: str, total: int) -> str:
    return f"{total}:{bool(version)}"


@step
def never(total: int) -> int:
    return -total


@step
def cleanup() -> None:
    pass


@pipeline
def airflow_flow(n: int = 5, scale: float = 1.0, threshold: float = 0.1, xs: list = [1, 2, 3]):  # noqa: B006
    with ExitHandler(cleanup()):
        data = make_data(n=n)
        model = fit(data=data.output, scale=scale).retries(2, 1, factor=1).timeout(120)
        with ParallelFor(xs) as x:
            squared = square(x=x)
        summed = total(values=Collected(squared.output))
        with when(model.outputs["score"] > threshold):
            publish(model=model.outputs["model"], version=RUN_ID, total=summed.output)
        with when(summed.output > 1000):
            never(total=summed.output)


@step
def inner(x: int) -> int:
    return x


@pipeline
def nested_loops():
    with ParallelFor([1, 2]) as a, ParallelFor([3, 4]):
        inner(x=a)


INSPECT = """
import json, sys
from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
found = {}
for dag_id in sys.argv[2:]:
    dag = bag.get_dag(dag_id)
    found[dag_id] = {
        "owner": dag.default_args["owner"],
        "retries": dag.default_args["retries"],
        "retry_delay": dag.default_args["retry_delay"].total_seconds(),
        "schedule": str(getattr(dag, "schedule", None)),
        "catchup": dag.catchup,
        "tags": sorted(dag.tags),
        "max_active_runs": dag.max_active_runs,
        "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
        "retry": {t.task_id: [t.retries, t.retry_delay.total_seconds(),
                              bool(t.retry_exponential_backoff)] for t in dag.tasks},
        "timeouts": {t.task_id: t.execution_timeout.total_seconds()
                     for t in dag.tasks if t.execution_timeout},
        "trigger_rules": {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule)
                          for t in dag.tasks},
    }
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Airflow's virtualenv and a migrated SQLite AIRFLOW_HOME with an empty DAGs folder."""
    from shipyard.pipelines.compile.toolenv import airflow_python

    python = airflow_python()
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONWARNINGS="ignore",
    )
    airflow_bin = str(python.parent / "airflow")
    done = subprocess.run(
        [airflow_bin, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {"python": python, "bin": airflow_bin, "env": env, "dags": dags, "home": home}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dag_file_declares_owner_retries_schedule_tags_and_dependencies(
    airflow: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "flow_dag.py").write_text(
        compile_airflow(
            airflow_flow,
            reference=f"{__file__}:airflow_flow",
            dag_id="ml_training_pipeline",
            owner="mlops_team",
            retries=3,
            retry_delay=timedelta(minutes=5),
            schedule="@daily",
            catchup=False,
            tags=["ml", "training"],
            max_active_runs=2,
        )
    )
    (folder / "seed_dag.py").write_text(
        compile_airflow(ml_training_pipeline, reference="seed_pipelines:ml_training_pipeline")
    )
    done = subprocess.run(
        [
            *(str(airflow["python"]), "-c", INSPECT, str(folder)),
            *("ml_training_pipeline", "ml-training-pipeline"),
        ],
        env=airflow["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    dags = json.loads(done.stdout.strip().splitlines()[-1])
    dag = dags["ml_training_pipeline"]
    assert dag["owner"] == "mlops_team"
    assert (dag["retries"], dag["retry_delay"]) == (3, 300.0)
    assert dag["schedule"] == "@daily"
    assert dag["catchup"] is False
    assert dag["tags"] == ["ml", "training"]
    assert dag["max_active_runs"] == 2
    assert dag["retry"]["fit"] == [2, 1.0, False]
    assert dag["timeouts"] == {"fit": 120.0}
    upstream = dag["upstream"]
    assert upstream["make-data"] == ["shipyard-init"]
    assert upstream["fit"] == ["make-data"]
    assert upstream["square"] == ["for-loop-2-items"]
    assert upstream["total"] == ["square"]
    assert upstream["condition-3"] == ["fit", "total"]
    assert upstream["publish"] == ["condition-3", "fit", "total"]
    assert upstream["cleanup"] == ["fit", "make-data", "never", "publish", "square", "total"]
    assert dag["trigger_rules"]["cleanup"] == "all_done"
    # a failed step fails the run even though the exit step after it succeeds
    assert upstream["shipyard-done"] == [
        "fit", "make-data", "never", "publish", "square", "total"
    ]  # fmt: skip
    assert dag["trigger_rules"]["shipyard-done"] == "all_success"
    # the seed's Airflow DAG: validate >> features >> train, 3 retries 5 minutes apart
    seed = dags["ml-training-pipeline"]
    assert seed["upstream"] == {
        "shipyard-init": [],
        "validate-data": ["shipyard-init"],
        "process-features": ["validate-data"],
        "train": ["process-features"],
    }
    assert seed["retry"]["train"] == [3, 300.0, False]


def test_airflow_runs_the_dag_to_the_local_executors_outputs(
    airflow: dict[str, Any], tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str
) -> None:
    params = {"n": 6, "scale": 2.0}
    runs = tmp_path / "runs"
    (airflow["dags"] / "airflow_flow_dag.py").write_text(
        compile_airflow(
            airflow_flow,
            reference=f"{__file__}:airflow_flow",
            python=sys.executable,
            run_root=str(runs),
        )
    )
    done = subprocess.run(
        [airflow["bin"], "dags", "test", "-c", json.dumps(params), "airflow-flow"],
        env=airflow["env"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "state=success" in log
    (run_dir,) = (runs / "airflow-flow").iterdir()
    steps = run_dir / "steps"

    def outputs(task: str, iteration: str = "-") -> dict[str, Any]:
        return json.loads((steps / task / iteration / "outputs.json").read_text())

    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)
    local = run_pipeline(airflow_flow, params, settings=settings)
    assert local.status == "succeeded", local.error
    assert outputs("fit") == local.outputs("fit") == {"score": 2.0 * 2 / 10}
    for i in range(3):
        assert outputs("square", str(i)) == local.outputs(f"square[{i}]")
    assert outputs("total") == local.outputs("total") == {"output": 14}
    assert outputs("publish") == local.outputs("publish") == {"output": "14:True"}
    # the false condition skipped its step in both; the exit step ran in both
    assert not (steps / "never").exists()
    assert local.step("never").state == "skipped"
    assert outputs("cleanup") == {}
    # artifacts are the same bytes as the local executor's content-addressed ones
    for task, name in (("make-data", "output"), ("fit", "model")):
        digest = local.step(task).outputs["artifacts"][name]["digest"]
        assert _sha256(steps / task / "-" / "artifacts" / name) == digest


def test_nested_loops_are_refused_with_a_hint() -> None:
    with pytest.raises(NotSupportedError, match="nested in another ParallelFor"):
        compile_airflow(nested_loops, reference="x:y")
