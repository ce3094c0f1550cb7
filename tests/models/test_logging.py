"""log_model into a run and the registry, and load back from every kind of model URI,
on every transport (in-process SQLite / PostgreSQL, and the platform server)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard.client import Client
from shipyard.config import Settings
from shipyard.errors import IntegrityError, InvalidArgumentError, ModelNotFoundError
from shipyard.models.logging import ModelInfo, load, resolve_model_dir
from shipyard.testing import in_process_client
from shipyard.tracking.entities import RunStatus


@pytest.fixture(scope="module")
def trained() -> tuple[Any, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return LogisticRegression().fit(x, y), x


def test_log_model_stores_the_model_and_registers_a_version(
    client: Client, trained: tuple[Any, np.ndarray]
) -> None:
    model, x = trained
    with shipyard.start_run() as run:
        start = time.perf_counter()
        info = shipyard.log_model(
            model, "model", registered_model_name="production_model", input_example=x[:5]
        )
        print(f"[timing] log_model_and_register_seconds={time.perf_counter() - start:.3f}s")

    rid = run.info.run_id
    assert isinstance(info, ModelInfo)
    assert info.model_uri == f"runs:/{rid}/model"
    assert (info.run_id, info.artifact_path, info.flavor) == (rid, "model", "sklearn")
    assert len(info.manifest_sha256) == 64
    assert (info.registered_model_name, info.registered_model_version) == ("production_model", 1)
    assert info.registered_model_uri == "models:/production_model/1"
    assert "model/shipyard-model.json" in {a.path for a in client.list_artifacts(rid, "model")}

    version = client.get_model_version("production_model", 1)
    assert version.source == info.model_uri
    assert version.run_id == rid
    assert version.flavor == "sklearn"
    assert version.manifest_sha256 == info.manifest_sha256
    assert client.get_run(rid).info.status is RunStatus.FINISHED

    with shipyard.start_run():
        again = shipyard.log_model(model, "clf", registered_model_name="production_model")
    assert again.registered_model_version == 2


def test_log_model_without_registering(client: Client, trained: tuple[Any, np.ndarray]) -> None:
    model, _ = trained
    with shipyard.start_run():
        info = shipyard.log_model(model, "models/classifier")
    assert info.artifact_path == "models/classifier"
    assert info.registered_model_name is None
    assert info.registered_model_version is None
    assert info.registered_model_uri is None


def test_log_model_to_a_given_run_with_a_client(
    client: Client, trained: tuple[Any, np.ndarray]
) -> None:
    model, x = trained
    run = client.create_run(client.create_experiment("direct"))
    info = shipyard.log_model(model, run_id=run.info.run_id, client=client)
    assert shipyard.active_run() is None  # no fluent run was started
    loaded = load(info.model_uri, client=client)
    assert loaded.predict(x[:5]).tolist() == model.predict(x[:5]).tolist()


def test_load_accepts_every_uri_form(client: Client, trained: tuple[Any, np.ndarray]) -> None:
    model, x = trained
    with shipyard.start_run():
        first = shipyard.log_model(model, registered_model_name="churn")
    with shipyard.start_run():
        shipyard.log_model(model, registered_model_name="churn")
    client.set_registered_model_alias("churn", "champion", 1)
    expected = model.predict(x[:10]).tolist()

    for uri in (
        "models:/churn@champion",
        "models:/churn/1",
        "models:/churn@latest",
        "models:/churn/latest",
        first.model_uri,
    ):
        loaded = shipyard.models.load(uri)
        assert loaded.predict(x[:10]).tolist() == expected, uri
    assert resolve_model_dir("models:/churn@latest") != resolve_model_dir("models:/churn/1")

    folder = resolve_model_dir("models:/churn@champion")
    assert load(folder).predict(x[:10]).tolist() == expected
    assert load(folder.as_uri()).predict(x[:10]).tolist() == expected
    assert load(str(folder)).predict_proba(x[:2]).shape == (2, 2)


def test_a_local_file_store_is_read_in_place(
    tmp_path: Path, db_url: str, workspace: str, artifacts_url: str, trained: tuple[Any, Any]
) -> None:
    settings = Settings(home=tmp_path / "home", db=db_url, artifacts=artifacts_url)
    client = Client(settings, workspace=workspace)
    run = client.create_run(client.create_experiment("in-place"))
    info = shipyard.log_model(trained[0], run_id=run.info.run_id, client=client)

    folder = resolve_model_dir(info.model_uri, client=client)

    assert folder.is_relative_to(Path(artifacts_url.removeprefix("file://")))
    assert not (settings.home / "cache").exists()


def test_a_remote_model_is_downloaded_once_into_the_cache(
    tmp_path: Path, db_url: str, workspace: str, artifacts_url: str, trained: tuple[Any, Any]
) -> None:
    settings = Settings(home=tmp_path / "home", db=db_url, artifacts=artifacts_url)
    client = in_process_client(settings, workspace)
    model, x = trained
    run = client.create_run(client.create_experiment("cached"))
    info = shipyard.log_model(
        model, run_id=run.info.run_id, client=client, registered_model_name="cached"
    )

    folder = resolve_model_dir("models:/cached/1", client=client)
    assert folder == settings.home / "cache" / "models" / info.manifest_sha256

    calls: list[str] = []
    original = client.artifacts.download_artifacts

    def counting(*args: Any, **kwargs: Any) -> Path:
        calls.append(str(args))
        return original(*args, **kwargs)

    client.artifacts.download_artifacts = counting  # type: ignore[method-assign]
    loaded = load("models:/cached/1", client=client)
    assert calls == []  # the registry's manifest hash found the cached copy
    assert loaded.predict(x[:3]).tolist() == model.predict(x[:3]).tolist()
    assert resolve_model_dir(info.model_uri, client=client) == folder
    assert len(calls) == 1  # runs:/ fetched the manifest only, then reused the cache


def test_a_tampered_model_file_is_refused(
    tmp_path: Path, db_url: str, workspace: str, artifacts_url: str, trained: tuple[Any, Any]
) -> None:
    client = Client(
        Settings(home=tmp_path / "home", db=db_url, artifacts=artifacts_url), workspace=workspace
    )
    run = client.create_run(client.create_experiment("tamper"))
    info = shipyard.log_model(
        trained[0], run_id=run.info.run_id, client=client, registered_model_name="tamper"
    )
    folder = resolve_model_dir(info.model_uri, client=client)
    model_file = next(p for p in folder.iterdir() if p.suffix in (".pkl", ".joblib", ".skops"))
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(IntegrityError):
        load("models:/tamper/1", client=client)

    (folder / "shipyard-model.json").write_text("{}")
    with pytest.raises(IntegrityError, match="expected"):
        load("models:/tamper/1", client=client)


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("models:/churn", InvalidArgumentError, "names no version"),
        ("runs:/abc", InvalidArgumentError, "runs:/<run_id>/<artifact_path>"),
        ("/no/such/model/folder", InvalidArgumentError, "does not exist"),
        ("models:/nobody@champion", ModelNotFoundError, "nobody"),
    ],
)
def test_bad_model_uris(client: Client, uri: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        load(uri, client=client)


def test_bad_artifact_path(client: Client, trained: tuple[Any, Any]) -> None:
    with shipyard.start_run(), pytest.raises(InvalidArgumentError, match="artifact path"):
        shipyard.log_model(trained[0], "../escape")


@pytest.mark.slow
def test_load_in_a_fresh_process_by_alias(tmp_path: Path, trained: tuple[Any, Any]) -> None:
    """The goal is <= 1 s for import + load + predict; measured and reported, not asserted."""
    home = tmp_path / "home"
    client = Client(Settings(home=home))
    run = client.create_run(client.create_experiment("quickstart"))
    shipyard.log_model(
        trained[0], run_id=run.info.run_id, client=client, registered_model_name="quickstart"
    )
    client.set_registered_model_alias("quickstart", "champion", 1)
    script = textwrap.dedent(
        """
        import time
        start = time.perf_counter()
        import shipyard
        m = shipyard.models.load("models:/quickstart@champion")
        m.predict([[0.1, 0.2, 0.3, 0.4]])
        print(time.perf_counter() - start)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"SHIPYARD_HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    print(f"[timing] fresh_process_load_predict_seconds={float(done.stdout.strip()):.3f}s")
