"""Pipeline tour: the quickstart's training as a pipeline, run twice.

validate data -> build the training set -> train -> evaluate -> when accuracy > threshold:
register the model and point ``@champion`` at it; a notify step runs at the end whatever
happened (an exit handler). The second run changes nothing, so every step comes from the
cache in milliseconds.

Each step runs in its own process; outputs are files in the artifact store, handed to the
next step by path. Runs on the embedded defaults (SQLite and local files under
SHIPYARD_HOME). Also: ``shipyard pipelines run examples/pipeline_tour.py:training``.

Libraries are imported at module level on purpose: the step worker imports this module once
and forks every step from it, so no step pays for importing scikit-learn again.
"""

from __future__ import annotations

import time

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard.pipelines import (
    RUN_ID,
    Dataset,
    ExitHandler,
    Metrics,
    Model,
    Outputs,
    pipeline,
    step,
    when,
)
from shipyard.pipelines import validation as v

MODEL_NAME = "tour-classifier"


@step
def load_raw(n_rows: int) -> Dataset:
    """The raw table: sklearn's breast cancer data with an entity id and an event time."""
    frame = load_breast_cancer(as_frame=True).frame.head(n_rows)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.insert(0, "patient_id", range(len(frame)))
    frame.insert(1, "event_time", pd.Timestamp("2026-01-01", tz="UTC"))
    return frame


validate_raw = v.expectations_step(
    [
        v.expect_column_values_to_be_unique("patient_id"),
        v.expect_column_values_to_not_be_null("mean_radius"),
        v.expect_column_values_to_be_between("mean_radius", 0, 100),
        v.expect_column_values_to_be_in_set("target", [0, 1]),
        v.expect_table_row_count_to_be_between(min_value=100),
    ],
    name="validate-data",
)


@step
def build_training_set(raw: Dataset) -> Dataset:
    """Features and label per entity. This is the step to swap for a feature store
    point-in-time join (entity ids and event times in, feature columns out)."""
    frame = raw.load()
    return frame.drop(columns=["event_time"])


@step
def train(data: Dataset, c: float) -> Model:
    """A logistic regression on standardized features."""
    frame = data.load()
    x, y = frame.drop(columns=["patient_id", "target"]), frame["target"]
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(
        x_train, y_train
    )


@step
def evaluate(data: Dataset, model: Model) -> Outputs(metrics=Metrics, accuracy=float):
    """Accuracy and F1 on the held-out quarter."""
    frame = data.load()
    x, y = frame.drop(columns=["patient_id", "target"]), frame["target"]
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    predicted = model.load().predict(x_test)
    accuracy = float(accuracy_score(y_test, predicted))
    return {"accuracy": accuracy, "f1": float(f1_score(y_test, predicted))}, accuracy


@step
def register(model: Model, accuracy: float, name: str) -> int:
    """Register the model as a new version and make it @champion."""
    with shipyard.start_run(run_name=f"register-{name}"):
        shipyard.log_metric("accuracy", accuracy)
        info = shipyard.log_model(model.load(), "model", registered_model_name=name)
    version = int(info.registered_model_version)
    shipyard.Client().set_registered_model_alias(name, "champion", version)
    print(f"registered {name} v{version} as @champion")
    return version


@step
def notify(run_id: str) -> None:
    """Runs last whatever happened, like the seed's cleanup op."""
    print(f"pipeline run {run_id} finished")


@pipeline
def training(n_rows: int = 569, c: float = 1.0, threshold: float = 0.9):
    """Validate, build the training set, train, evaluate and register a champion."""
    with ExitHandler(notify(run_id=RUN_ID).cache(False)):
        raw = load_raw(n_rows=n_rows)
        checked = validate_raw(data=raw.output)
        features = build_training_set(raw=raw.output).after(checked)
        model = train(data=features.output, c=c)
        scores = evaluate(data=features.output, model=model.output)
        with when(scores.outputs["accuracy"] > threshold):
            register(model=model.output, accuracy=scores.outputs["accuracy"], name=MODEL_NAME)


def _report(run) -> None:  # type: ignore[no-untyped-def]
    for s in run.steps:
        took = f"{s.duration_ms} ms" if s.duration_ms is not None else "-"
        print(f"    {s.key:<20} {s.state:<10} {took}")


def main() -> None:
    from shipyard.pipelines.executor import run_pipeline

    for attempt in ("first run", "second run (nothing changed)"):
        started = time.perf_counter()
        run = run_pipeline(training)
        took = (time.perf_counter() - started) * 1000
        print(f"\n==> {attempt}: {run.status} in {took:.0f} ms (run {run.run_id})")
        _report(run)
        if run.status != "succeeded":
            raise SystemExit(f"pipeline failed: {run.error}")
    work = [s for s in run.steps if s.task != "notify"]
    cached = sum(s.state == "cached" for s in work)
    print(f"\n    {cached} of {len(work)} steps came from the cache")
    print(f"    accuracy {run.outputs('evaluate')['accuracy']:.3f}; model {MODEL_NAME}@champion")


if __name__ == "__main__":
    main()
