"""Shipyard quickstart: track a training run, register the model, promote it through a gate,
load it back by alias and predict; then the platform end to end (examples/drivers.py): a
feature view and a point-in-time join, a training pipeline run twice (cached), the champion
served with online features, drift raised by shifted traffic, and Kubernetes and Triton
artifacts for the champion. Runs on the embedded defaults (SQLite and local files under
SHIPYARD_HOME) with no service to start.
"""

from __future__ import annotations

import os
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard.errors import PromotionRefusedError

GATE = "accuracy >= 0.9 and latency_p99_ms < 50"


def say(message: str) -> None:
    print(f"\n==> {message}")


def p99_latency_ms(model, frame) -> float:  # type: ignore[no-untyped-def]
    """Single-row prediction latency, the way a model server would see it."""
    timings = []
    for i in range(min(len(frame), 200)):
        row = frame.iloc[[i]]
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 99))


def train(data, params: dict, columns: list[str], run_name: str) -> str:  # type: ignore[no-untyped-def]
    """One tracked training run; returns the run id (as the guide's train_with_mlflow does)."""
    x_train, x_test, y_train, y_test = data
    with shipyard.start_run(run_name=run_name) as run:
        shipyard.log_params(params)
        shipyard.log_param("data_version", "sklearn-breast-cancer-v1")
        shipyard.log_param("data_shape", x_train[columns].shape)
        shipyard.log_dataset(
            x_train.assign(target=y_train), name="breast_cancer", context="training"
        )

        model = make_pipeline(StandardScaler(), LogisticRegression(**params))
        for fold, score in enumerate(cross_val_score(model, x_train[columns], y_train, cv=5)):
            shipyard.log_metric("cv_accuracy", float(score), step=fold)
        model.fit(x_train[columns], y_train)

        predicted = model.predict(x_test[columns])
        shipyard.log_metrics(
            {
                "accuracy": accuracy_score(y_test, predicted),
                "f1": f1_score(y_test, predicted),
                "roc_auc": roc_auc_score(y_test, model.predict_proba(x_test[columns])[:, 1]),
                "latency_p99_ms": p99_latency_ms(model, x_test[columns]),
            }
        )

        coefficients = model[-1].coef_[0]
        order = np.argsort(np.abs(coefficients))[-10:]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.barh([columns[i] for i in order], coefficients[order])
        ax.set_title("Feature importance (standardized coefficients)")
        fig.tight_layout()
        shipyard.log_figure(fig, "feature_importance.png")
        plt.close(fig)

        info = shipyard.log_model(
            model,
            "model",
            registered_model_name="quickstart",
            input_example=x_test[columns].head(5),
        )
        print(
            f"    run {run.info.run_id}: accuracy={accuracy_score(y_test, predicted):.3f}, "
            f"registered quickstart v{info.registered_model_version}"
        )
        return run.info.run_id


def main() -> None:
    client = shipyard.Client()
    say(f"Shipyard {shipyard.__version__}, home {client.settings.home}")
    frame = load_breast_cancer(as_frame=True)
    x, y = frame.data, frame.target
    columns = list(x.columns)
    data = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)

    say("Tracking two training runs in experiment 'quickstart'")
    shipyard.set_experiment("quickstart")
    train(data, {"C": 1.0, "max_iter": 1000}, columns, "training_run")
    weak_columns = columns[:1]
    train(data, {"C": 0.001, "max_iter": 50}, weak_columns, "weak_baseline")

    registry = client.registry
    say(f"Protecting @champion with the gate: {GATE}")
    registry.set_gate("quickstart", "champion", GATE)
    versions = {v.version: v for v in registry.list_model_versions("quickstart")}
    good, weak = sorted(versions)[-2:]

    change = registry.set_alias("quickstart", "champion", good, actor="quickstart")
    print(f"    quickstart@champion -> v{change.to_version} (gate passed)")
    try:
        registry.set_alias("quickstart", "champion", weak, actor="quickstart")
    except PromotionRefusedError as refused:
        print(f"    v{weak} refused: {refused.message}")

    say("Loading models:/quickstart@champion and predicting")
    model = shipyard.models.load("models:/quickstart@champion")
    rows = data[1][columns].head(3)
    print(f"    predictions {model.predict(rows).tolist()}, truth {data[3].head(3).tolist()}")
    print(f"    probabilities {np.round(model.predict_proba(rows)[:, 1], 3).tolist()}")

    history = registry.alias_history("quickstart", "champion")
    print(f"    alias history: {[(h.from_version, h.to_version) for h in history]}")

    from secure_platform import main as secure_platform  # examples/ is on sys.path

    secure_platform(client.settings.home)

    from drivers import main as platform_tour  # examples/ is on sys.path

    home = client.settings.home
    out = home / "quickstart"
    platform_tour(out)

    say("Where to look")
    env = f"SHIPYARD_HOME={home} " if os.environ.get("SHIPYARD_HOME") else ""
    print(f"    {env}.venv/bin/shipyard runs list -e quickstart")
    print(f"    {env}.venv/bin/shipyard models show quickstart")
    print(f"    {env}.venv/bin/shipyard models history quickstart")
    print(f"    {env}.venv/bin/shipyard features list")
    print(f"    {env}.venv/bin/shipyard pipelines list")
    print(f"    {env}.venv/bin/shipyard serve models:/drivers@champion   # then /docs, /metrics")
    print(f"    {env}.venv/bin/shipyard server   # then open http://127.0.0.1:5005/docs")
    print(f"    drift report: {out / 'drift-report' / 'report.html'}")
    print(f"    deployment:   {out / 'deploy'}   (k8s overlays, Dockerfile, Triton repository)")
    print(f"    data: {home}   (the secure server's in {home / 'secure-demo'})")


if __name__ == "__main__":
    main()
