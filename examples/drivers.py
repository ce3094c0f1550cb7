"""The quickstart's platform half: a driver model from feature view to Kubernetes.

1. Feature store: hourly driver stats in Parquet, an entity, a feature view (2 h TTL) and
   the feature service the model consumes, applied to the registry.
2. Pipeline: validate the labelled events -> point-in-time join from the feature view ->
   train -> evaluate -> when accuracy > threshold: register ``drivers`` as @champion (with
   its feature service and a drift profile); an exit handler always runs. Run twice: the
   second run comes from the cache.
3. Serving: ``shipyard serve models:/drivers@champion``; fresh stats are pushed to the
   online store and requests name a driver instead of sending features.
4. Monitoring: drifted traffic raises ``model_feature_drift``; an HTML report is written.
5. Deploy: Kubernetes manifests and a Triton model repository for the champion, validated.

Steps live at module level because each pipeline step runs in a worker process that
imports this module. ``main(home)`` runs everything; the quickstart calls it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from features_tour import START, driver_definitions, write_driver_stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
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

MODEL = "drivers"
SERVICE = "driver_activity"
FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips"]
DRIVERS, HOURS = 200, 72


def say(message: str) -> None:
    print(f"\n==> {message}")


def source_path() -> Path:
    return shipyard.Client().settings.home / "data" / "driver_stats.parquet"


def labelled_events(rows: int, seed: int = 1) -> pd.DataFrame:
    """Moments at which a driver accepted a ride or not; the outcome depends on the stats
    the driver had at that moment (plus noise), so a model can learn it."""
    rng = np.random.default_rng(seed)
    stats = pd.read_parquet(source_path()).sort_values("event_timestamp")
    events = pd.DataFrame(
        {
            "driver_id": rng.integers(1001, 1001 + DRIVERS, rows),
            "event_timestamp": pd.to_datetime(
                START.timestamp() + rng.integers(3600, HOURS * 3600, rows), unit="s", utc=True
            ),
        }
    ).sort_values("event_timestamp")
    asof = pd.merge_asof(events, stats, on="event_timestamp", by="driver_id")
    score = 2.5 * asof["conv_rate"] + 1.5 * asof["acc_rate"] + asof["avg_daily_trips"] / 1000
    events["accepted"] = (score + rng.normal(0, 0.35, rows) > 2.5).astype(int).to_numpy()
    return events.sort_index().reset_index(drop=True)


@step
def load_events(rows: int) -> Dataset:
    """Entity rows to train on: driver, time, and the observed outcome."""
    return labelled_events(rows)


validate_events = v.expectations_step(
    [
        v.expect_column_values_to_not_be_null("driver_id"),
        v.expect_column_values_to_be_between("driver_id", 1001, 1001 + DRIVERS - 1),
        v.expect_column_values_to_be_in_set("accepted", [0, 1]),
        v.expect_table_row_count_to_be_between(min_value=500),
    ],
    name="validate-events",
)


@step
def build_training_set(events: Dataset) -> Dataset:
    """Point-in-time join: each event gets the driver's stats as they were then."""
    from shipyard.features import FeatureStore

    frame = FeatureStore().get_historical_features(events.load(), SERVICE).to_df()
    return frame.dropna(subset=FEATURES).reset_index(drop=True)


@step
def train(data: Dataset) -> Model:
    frame = data.load()
    x_train, _, y_train, _ = train_test_split(
        frame[FEATURES], frame["accepted"], test_size=0.25, random_state=0
    )
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x_train, y_train)


@step
def evaluate(data: Dataset, model: Model) -> Outputs(metrics=Metrics, accuracy=float):
    frame = data.load()
    _, x_test, _, y_test = train_test_split(
        frame[FEATURES], frame["accepted"], test_size=0.25, random_state=0
    )
    fitted = model.load()
    accuracy = float(accuracy_score(y_test, fitted.predict(x_test)))
    auc = float(roc_auc_score(y_test, fitted.predict_proba(x_test)[:, 1]))
    return {"accuracy": accuracy, "roc_auc": auc}, accuracy


@step
def register(data: Dataset, model: Model, accuracy: float) -> int:
    """Register a new version reading SERVICE online, with a drift profile; make it
    @champion."""
    from shipyard.monitoring.profiles import attach_profile

    frame, fitted = data.load(), model.load()
    with shipyard.start_run(run_name="register-drivers"):
        shipyard.log_metric("accuracy", accuracy)
        info = shipyard.log_model(
            fitted, "model", registered_model_name=MODEL, input_example=frame[FEATURES].head(5)
        )
    version = int(info.registered_model_version)
    client = shipyard.Client()
    client.registry.set_model_version_tag(MODEL, version, "shipyard.feature_service", SERVICE)
    attach_profile(MODEL, frame[FEATURES], version=version, client=client)
    client.registry.set_alias(MODEL, "champion", version, actor="drivers-pipeline")
    return version


@step
def notify(run_id: str) -> None:
    """The exit handler: runs whatever happened, like the seed's cleanup op."""
    print(f"pipeline run {run_id} finished")


@pipeline
def driver_training(rows: int = 3000, threshold: float = 0.7):
    """Validate events, join features point-in-time, train, evaluate, register."""
    with ExitHandler(notify(run_id=RUN_ID).cache(False)):
        events = load_events(rows=rows)
        checked = validate_events(data=events.output)
        training = build_training_set(events=events.output).after(checked)
        model = train(data=training.output)
        scores = evaluate(data=training.output, model=model.output)
        with when(scores.outputs["accuracy"] > threshold):
            register(data=training.output, model=model.output, accuracy=scores.outputs["accuracy"])


def features() -> None:
    from shipyard.features import FeatureStore

    say("Feature store: driver stats -> entity, feature view (2 h TTL), feature service")
    store = FeatureStore()
    source = write_driver_stats(source_path(), drivers=DRIVERS, hours=HOURS)
    plan = store.apply(driver_definitions(source).values())
    print(f"    applied: {plan.summary()}")
    sample = store.get_historical_features(labelled_events(5), SERVICE).to_df()
    print("    point-in-time join of 5 labelled events:")
    for line in sample.to_string(index=False).splitlines():
        print(f"      {line}")


def train_with_pipeline() -> None:
    from shipyard.pipelines import run_pipeline

    for attempt in ("first run", "second run (nothing changed: every step cached)"):
        say(f"Pipeline driver_training, {attempt}")
        started = time.perf_counter()
        run = run_pipeline(driver_training).raise_for_status()
        took = (time.perf_counter() - started) * 1000
        for s in run.steps:
            duration = f"{s.duration_ms} ms" if s.duration_ms is not None else "-"
            print(f"    {s.key:<22} {s.state:<10} {duration}")
        print(f"    run {run.run_id} {run.status} in {took:.0f} ms")


def serve_and_monitor(out: Path) -> None:
    from monitoring_tour import watch_served_model
    from serving_tour import show_metrics, start_server, stop_server

    from shipyard.features import FeatureStore
    from shipyard.serving import Client

    say("Serving models:/drivers@champion (shipyard serve), online features from the store")
    stats = pd.read_parquet(source_path()).groupby("driver_id").tail(1)
    now = pd.Timestamp(datetime.now(UTC))
    fresh = stats.assign(event_timestamp=now, created=now)
    FeatureStore().write_to_online_store("driver_stats", fresh)
    print(f"    pushed fresh stats of {len(fresh)} drivers to the online store")
    # Publish the prediction log every second, so the monitor sees the traffic at once.
    process, url = start_server(f"models:/{MODEL}@champion", extra_args=["--log-roll-seconds", "1"])
    try:
        with Client(url) as client:
            for driver in (1001, 1002, 1003):
                answer = client.predict_entities({"driver_id": driver})
                print(f"    driver {driver}: {answer}")
            rng = np.random.default_rng(7)
            normal = fresh[FEATURES].to_numpy(dtype=float)
            for _ in range(20):
                client.predict(normal[rng.integers(0, len(normal), 50)].tolist())
            say("Sending drifted traffic: conversion rates collapse, trips double")
            drifted = normal.copy()
            drifted[:, 0] *= 0.3
            drifted[:, 2] *= 2
            for _ in range(40):
                client.predict(drifted[rng.integers(0, len(drifted), 50)].tolist())
        for line in show_metrics(url):
            print(f"    {line}")
        watch_served_model(url, MODEL, out_dir=out / "drift-report")
    finally:
        stop_server(process)


def deploy(out: Path) -> None:
    say("Deploy: Kubernetes manifests and a Triton model repository for the champion")
    uri = f"models:/{MODEL}@champion"
    cli = [sys.executable, "-m", "shipyard.cli.main", "deploy"]
    steps = [
        ["render", uri, "--target", "k8s", "--env", "prod", "--out", str(out / "k8s")],
        ["render", uri, "--target", "triton", "--out", str(out / "triton")],
    ]
    if shutil.which("kubectl"):
        steps.append(["validate", str(out / "k8s")])
    else:
        print("    (kubectl is not installed: skipping `shipyard deploy validate`, which builds")
        print("     every overlay with `kubectl kustomize` and checks it against the schemas)")
    for argv in steps:
        wide = {**os.environ, "COLUMNS": "250"}  # one line per file written
        done = subprocess.run([*cli, *argv], capture_output=True, text=True, env=wide)
        lines = (done.stdout + done.stderr).strip().splitlines()
        verdict = "ok" if done.returncode == 0 else "FAILED"
        print(f"    shipyard deploy {argv[0]} {argv[-1]}: {verdict}")
        wrote = [line for line in lines if line.strip().startswith("wrote ")]
        if wrote:
            print(f"      {len(wrote)} files, e.g. {wrote[0].split()[-1]}")
        for line in [line for line in lines if line not in wrote][-3:]:
            print(f"      {line.strip()}")
        if done.returncode != 0:
            raise SystemExit(done.returncode)


def main(out: Path | None = None) -> None:
    out = out or shipyard.Client().settings.home / "quickstart"
    features()
    train_with_pipeline()
    serve_and_monitor(out)
    deploy(out / "deploy")


if __name__ == "__main__":
    main()
