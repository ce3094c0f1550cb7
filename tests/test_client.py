"""Client: MLflow-style convenience methods over tracking, registry and artifacts,
on every transport (in-process SQLite / PostgreSQL, and the platform server)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shipyard.client import Client
from shipyard.config import Settings
from shipyard.errors import ConflictError, ModelNotFoundError, RunNotFoundError
from shipyard.tracking.entities import Metric, Param, RunStatus


def test_client_is_cheap_to_build_and_picks_the_transport_from_settings(tmp_path: Path) -> None:
    local = Client(Settings(home=tmp_path))
    assert not local.is_remote
    assert local._tracking is None  # nothing opened yet
    assert local.workspace == "default"

    remote = Client(Settings(home=tmp_path, url="http://127.0.0.1:1"), workspace="team-a")
    assert remote.is_remote
    assert remote.workspace == "team-a"
    assert "127.0.0.1:1" in repr(remote)


def test_repr_masks_the_database_password(tmp_path: Path) -> None:
    client = Client(Settings(home=tmp_path, db="postgresql+psycopg://ana:s3cret@db/meta"))
    assert "s3cret" not in repr(client)
    assert "***" in repr(client)


def test_experiments(client: Client) -> None:
    exp_id = client.create_experiment("churn", tags={"team": "ml"})
    experiment = client.get_experiment_by_name("churn")
    assert experiment is not None
    assert experiment.experiment_id == exp_id
    assert client.get_experiment(exp_id).tags == {"team": "ml"}
    assert client.get_experiment_by_name("nope") is None
    with pytest.raises(ConflictError):
        client.create_experiment("churn")


def test_run_lifecycle(client: Client) -> None:
    exp_id = client.create_experiment("lifecycle")
    run = client.create_run(exp_id, run_name="baseline", tags={"stage": "dev"})
    rid = run.info.run_id
    assert run.info.status is RunStatus.RUNNING

    client.log_param(rid, "lr", 0.1)
    client.log_metric(rid, "loss", 0.5, step=1)
    client.log_metric(rid, "loss", 0.25, step=2, timestamp=1000)
    client.set_tag(rid, "stage", "prod")
    client.log_batch(rid, metrics=[Metric("acc", 0.9, 0, 1000)], params=[Param("depth", "3")])
    ended = client.set_terminated(rid)

    assert ended.info.status is RunStatus.FINISHED
    stored = client.get_run(rid)
    assert stored.info.run_name == "baseline"
    assert stored.data.params == {"lr": "0.1", "depth": "3"}
    assert stored.data.metrics == {"loss": 0.25, "acc": 0.9}
    assert stored.data.tags["stage"] == "prod"
    assert [(m.step, m.value) for m in client.get_metric_history(rid, "loss")] == [
        (1, 0.5),
        (2, 0.25),
    ]
    with pytest.raises(ConflictError):
        client.log_metric(rid, "loss", 0.1)  # finished runs take no more metrics


def test_set_terminated_with_a_failure_status(client: Client) -> None:
    run = client.create_run(client.create_experiment("failing"))
    assert client.set_terminated(run.info.run_id, "FAILED").info.status is RunStatus.FAILED


def test_unknown_run(client: Client) -> None:
    with pytest.raises(RunNotFoundError, match="does not exist"):
        client.get_run("0" * 32)


def test_search_runs_pages(client: Client) -> None:
    exp_id = client.create_experiment("search")
    for acc in (0.7, 0.8, 0.9):
        rid = client.create_run(exp_id).info.run_id
        client.log_metric(rid, "acc", acc)
    first = client.search_runs(exp_id, "metrics.acc >= 0.8", ["metrics.acc DESC"], 1)
    assert [r.data.metrics["acc"] for r in first] == [0.9]
    assert first.next_page_token
    second = client.search_runs(
        [exp_id], "metrics.acc >= 0.8", ["metrics.acc DESC"], 1, first.next_page_token
    )
    assert [r.data.metrics["acc"] for r in second] == [0.8]


def test_compare_runs(client: Client) -> None:
    exp_id = client.create_experiment("compare")
    a = client.create_run(exp_id).info.run_id
    b = client.create_run(exp_id).info.run_id
    client.log_batch(a, metrics=[Metric("acc", 0.8, 0, 1)], params=[Param("lr", "0.1")])
    client.log_batch(b, metrics=[Metric("acc", 0.9, 0, 1)], params=[Param("depth", "4")])

    frame = client.compare_runs([a, b])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [a, b]
    assert list(frame.index) == ["params.depth", "params.lr", "metrics.acc"]
    assert frame.loc["metrics.acc", b] == 0.9
    assert frame.loc["params.lr", b] is None

    table = client.compare_runs([a, b], output_format="dict")
    assert table == {
        "params.depth": {a: None, b: "4"},
        "params.lr": {a: "0.1", b: None},
        "metrics.acc": {a: 0.8, b: 0.9},
    }


def test_artifacts_round_trip(client: Client, tmp_path: Path) -> None:
    rid = client.create_run(client.create_experiment("files")).info.run_id
    source = tmp_path / "model.txt"
    source.write_text("weights")
    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "roc.svg").write_text("<svg/>")

    info = client.log_artifact(rid, source, "outputs")
    client.log_artifacts(rid, folder, "plots")

    assert info.path == "outputs/model.txt"
    assert {i.path for i in client.list_artifacts(rid)} == {"outputs", "plots"}
    assert [i.path for i in client.list_artifacts(rid, "plots")] == ["plots/roc.svg"]
    local = client.download_artifacts(rid, "outputs/model.txt", tmp_path / "dl")
    local = local if local.is_file() else local / "model.txt"
    assert local.read_text() == "weights"


def test_registry_shortcuts(client: Client) -> None:
    rid = client.create_run(client.create_experiment("reg")).info.run_id
    model = client.create_registered_model("churn", description="churn classifier")
    assert model.name == "churn"
    version = client.create_model_version(
        "churn", f"runs:/{rid}/model", run_id=rid, flavor="sklearn", manifest_sha256="ab" * 32
    )
    assert version.version == 1
    client.set_registered_model_alias("churn", "champion", version.version)
    found = client.get_model_version_by_alias("churn", "champion")
    assert (found.version, found.source, found.flavor) == (1, f"runs:/{rid}/model", "sklearn")
    assert client.get_model_version("churn", "1").run_id == rid
    assert client.get_or_create_registered_model("churn").name == "churn"
    assert client.get_or_create_registered_model("fresh").latest_version is None
    client.delete_registered_model_alias("churn", "champion")
    with pytest.raises(ModelNotFoundError):
        client.get_model_version_by_alias("churn", "champion")


def test_clients_of_two_workspaces_do_not_see_each_other(
    tmp_path: Path, db_url: str, artifacts_url: str
) -> None:
    from shipyard.store.db import engine_for
    from shipyard.store.workspaces import ensure_workspace

    settings = Settings(home=tmp_path, db=db_url, artifacts=artifacts_url)
    for name in ("team-a-x", "team-b-x"):
        ensure_workspace(engine_for(db_url), name)
    a = Client(settings, workspace="team-a-x")
    b = Client(settings, workspace="team-b-x")
    a.create_experiment("shared-name")
    assert b.get_experiment_by_name("shared-name") is None
    b.create_experiment("shared-name")  # no conflict across workspaces
