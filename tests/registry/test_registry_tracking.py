"""Gates read real run metrics through the tracking store by default."""

from __future__ import annotations

import importlib

import pytest

from shipyard.errors import PromotionRefusedError
from shipyard.registry.sql import SqlRegistryStore
from shipyard.store.db import engine_for
from shipyard.tracking.entities import Metric


def test_default_gate_metrics_come_from_the_runs_latest_metrics(
    db_url: str, workspace: str, artifacts_url: str
) -> None:
    try:
        tracking_sql = importlib.import_module("shipyard.tracking.sql")
    except ModuleNotFoundError as exc:
        if exc.name != "shipyard.tracking.sql":
            raise
        pytest.skip("shipyard.tracking.sql (SqlTrackingStore) is not written yet")
    engine = engine_for(db_url)
    tracking = tracking_sql.SqlTrackingStore(engine, workspace, artifact_root=artifacts_url)
    experiment = tracking.create_experiment("churn-training")
    good = tracking.create_run(experiment.experiment_id)
    weak = tracking.create_run(experiment.experiment_id)
    # Latest = highest step: 0.7 then 0.9 passes, 0.9 then 0.7 does not.
    tracking.log_batch(
        good.run_id, metrics=[Metric("accuracy", 0.7, 0), Metric("accuracy", 0.9, 1)]
    )
    tracking.log_batch(
        weak.run_id, metrics=[Metric("accuracy", 0.9, 0), Metric("accuracy", 0.7, 1)]
    )

    registry = SqlRegistryStore(engine, workspace)
    registry.create_registered_model("churn")
    v1 = registry.create_model_version("churn", f"runs:/{good.run_id}/model", run_id=good.run_id)
    v2 = registry.create_model_version("churn", f"runs:/{weak.run_id}/model", run_id=weak.run_id)
    registry.set_gate("churn", "champion", "accuracy >= 0.85")

    assert registry.set_alias("churn", "champion", v1.version).to_version == 1
    with pytest.raises(PromotionRefusedError, match=r"accuracy >= 0\.85 \(was 0\.7\)"):
        registry.set_alias("churn", "champion", v2.version)
