"""The step cache: a rerun reuses outputs; a changed parameter re-runs only what depends on it;
``.cache(False)`` always runs; the key is stable and sensitive to what matters."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.config import Settings
from shipyard.pipelines import Dataset, pipeline, step
from shipyard.pipelines.cache import cache_key
from shipyard.pipelines.executor import run_pipeline


def _mark(folder: str, name: str) -> None:
    with open(Path(folder) / name, "a") as out:
        out.write("x\n")


def _count(folder: Path, name: str) -> int:
    path = folder / name
    return len(path.read_text().splitlines()) if path.exists() else 0


@step
def prepare(marks: str, rows: int) -> Dataset:
    _mark(marks, "prepare")
    return "\n".join(str(i) for i in range(rows))


@step
def train(marks: str, data: Dataset, lr: float) -> float:
    _mark(marks, "train")
    return len(data.load().split()) * lr


@step
def report(marks: str, score: float) -> None:
    _mark(marks, "report")


@pipeline
def training(marks: str, rows: int = 10, lr: float = 0.1):
    data = prepare(marks=marks, rows=rows)
    scored = train(marks=marks, data=data.output, lr=lr)
    report(marks=marks, score=scored.output).cache(False)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, artifacts_url: str) -> Settings:
    return Settings(home=tmp_path / "home", db=db_url, artifacts=artifacts_url)


def test_rerun_is_cached_and_a_parameter_change_reruns_only_downstream(
    settings: Settings, workspace: str, tmp_path: Path
) -> None:
    marks = str(tmp_path)
    first = run_pipeline(training, {"marks": marks}, settings=settings, workspace=workspace)
    assert first.status == "succeeded", first.error
    assert {s.key: s.state for s in first.steps} == {
        "prepare": "succeeded",
        "train": "succeeded",
        "report": "succeeded",
    }

    second = run_pipeline(training, {"marks": marks}, settings=settings, workspace=workspace)
    states = {s.key: s.state for s in second.steps}
    assert states == {"prepare": "cached", "train": "cached", "report": "succeeded"}
    assert second.step("train").cached_from == first.run_id
    assert second.outputs("train") == first.outputs("train") == {"output": 1.0}

    third = run_pipeline(
        training, {"marks": marks, "lr": 0.2}, settings=settings, workspace=workspace
    )
    assert {s.key: s.state for s in third.steps} == {
        "prepare": "cached",
        "train": "succeeded",
        "report": "succeeded",
    }
    assert third.outputs("train") == {"output": 2.0}
    assert (_count(tmp_path, "prepare"), _count(tmp_path, "train")) == (1, 2)
    assert _count(tmp_path, "report") == 3


def test_cache_is_per_workspace(settings: Settings, workspace: str, tmp_path: Path) -> None:
    from shipyard.store.db import engine_for
    from shipyard.store.workspaces import ensure_workspace

    other = f"{workspace}-b"
    ensure_workspace(engine_for(settings.db), other)
    run_pipeline(training, {"marks": str(tmp_path)}, settings=settings, workspace=workspace)
    run = run_pipeline(training, {"marks": str(tmp_path)}, settings=settings, workspace=other)
    assert run.step("prepare").state == "succeeded"


def _component():
    return training.graph.components["train"]


def test_cache_key_ignores_dict_order_and_depends_on_inputs() -> None:
    base = cache_key(_component(), {"a": 1, "b": [1, 2]}, {"data": "d1"})
    assert base == cache_key(_component(), {"b": [1, 2], "a": 1}, {"data": "d1"})
    assert base != cache_key(_component(), {"a": 1, "b": [1, 2]}, {"data": "d2"})
    assert base != cache_key(
        training.graph.components["prepare"], {"a": 1, "b": [1, 2]}, {"data": "d1"}
    )


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4))
def test_cache_key_equals_iff_parameters_equal(params: dict) -> None:
    other = {**params, "extra": 1}
    assert cache_key(_component(), params, {}) == cache_key(_component(), dict(params), {})
    assert cache_key(_component(), params, {}) != cache_key(_component(), other, {})


def test_a_remote_artifact_root_is_mirrored_and_shares_the_cache(
    tmp_path: Path, fresh_sqlite_url: str
) -> None:
    import shutil
    import uuid

    from shipyard.store.artifacts import ArtifactStore

    remote = f"memory://shipyard-test-{uuid.uuid4().hex[:8]}/artifacts"
    home = tmp_path / "home"
    settings = Settings(home=home, db=fresh_sqlite_url, artifacts=remote)
    marks = str(tmp_path)
    first = run_pipeline(training, {"marks": marks}, settings=settings)
    assert first.status == "succeeded", first.error
    store = ArtifactStore(remote)
    data = first.step("prepare").outputs["artifacts"]["output"]
    assert store.read_bytes(data["key"]).decode().splitlines()[:2] == ["0", "1"]
    log_key = f"pipelines/default/runs/{first.run_id}/train/attempt-1/log.txt"
    assert store.exists(log_key)
    from shipyard.pipelines.logs import read_step_logs

    assert read_step_logs(None, "default", first.run_id, "train", store) == [(1, "")]

    shutil.rmtree(home / "pipeline-files")  # another machine: nothing local, same store
    again = run_pipeline(training, {"marks": marks, "lr": 0.5}, settings=settings)
    assert again.status == "succeeded", again.error
    assert again.step("prepare").state == "cached"
    assert again.step("train").state == "succeeded"  # read the downloaded dataset
    assert again.outputs("train") == {"output": 5.0}
