"""Reference profiles give the raw data's verdicts within their documented tolerances, survive
JSON, and travel with a registered model version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.errors import IntegrityError, InvalidArgumentError, NotFoundError
from shipyard.monitoring import detect_drift
from shipyard.monitoring.columns import NumericSample, SketchSample
from shipyard.monitoring.detectors import KSDetector
from shipyard.monitoring.profiles import (
    PROFILE_SHA_TAG,
    PROFILE_TAG,
    Profile,
    attach_profile,
    load_profile,
)
from shipyard.monitoring.stats import ks_2samp

_settings = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.sampled_from(["normal", "lognormal", "uniform", "bimodal", "discrete"])


def _draw(shape: str, rng: np.random.Generator, n: int, shift: float, scale: float) -> np.ndarray:
    if shape == "normal":
        return rng.normal(shift, scale, n)
    if shape == "lognormal":
        return rng.lognormal(shift, scale, n)
    if shape == "uniform":
        return rng.uniform(shift, shift + 3 * scale, n)
    if shape == "bimodal":
        return np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(2, 1, n)) + shift
    return np.round(rng.normal(shift, scale * 3, n))  # many ties


@_settings
@given(
    shape=shapes,
    n=st.integers(1_001, 30_000),
    m=st.integers(50, 5_000),
    shift=st.floats(-0.5, 0.5),
    scale=st.floats(0.3, 2.0),
    bins=st.sampled_from([100, 250, 1000]),
    seed=st.integers(0, 2**16),
)
def test_wasserstein_from_a_profile_is_within_its_stored_bound(
    shape: str, n: int, m: int, shift: float, scale: float, bins: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ref = _draw(shape, rng, n, 0.0, 1.0)
    cur = _draw(shape, rng, m, shift, scale)
    profile = Profile.from_data({"x": ref}, bins=bins)
    raw = detect_drift({"x": ref}, {"x": cur}, tests={"x": "wasserstein"})["x"]
    sketched = detect_drift(profile, {"x": cur}, tests={"x": "wasserstein"})["x"]
    bound = profile.tolerance("x")
    assert abs(sketched.score - raw.score) <= bound + 1e-9
    if abs(raw.score - raw.threshold) > bound + 1e-9:
        assert sketched.drifted == raw.drifted
    assert (sketched.n_reference, sketched.test) == (raw.n_reference, raw.test)


@_settings
@given(
    shape=shapes,
    n=st.integers(1_001, 20_000),
    m=st.integers(20, 3_000),
    shift=st.floats(-0.3, 0.3),
    seed=st.integers(0, 2**16),
)
def test_ks_statistic_from_a_profile_is_within_one_bin_of_the_raw_one(
    shape: str, n: int, m: int, shift: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ref = _draw(shape, rng, n, 0.0, 1.0)
    cur = _draw(shape, rng, m, shift, 1.0)
    profile = Profile.from_data({"x": ref})
    sample = profile.sample("x")
    assert isinstance(sample, SketchSample)
    raw_d, _ = ks_2samp(ref, cur)
    result = KSDetector().compute(sample, pd.Series(cur))
    assert abs(result.statistic - raw_d) <= 1 / profile.bins + 2 / n + 1e-12


def test_default_verdicts_equal_the_raw_ones_on_the_benchmark_shape() -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    ref = pd.DataFrame(
        {f"num_{j}": rng.normal(j, 1 + 0.1 * j, n) for j in range(8)}
        | {"cat": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])}
        | {"level": rng.integers(0, 4, n).astype(float)}
    )
    cur = pd.DataFrame(
        {
            f"num_{j}": rng.normal(j + (0.25 * (1 + 0.1 * j) if j < 3 else 0), 1 + 0.1 * j, 5000)
            for j in range(8)
        }
        | {"cat": rng.choice(["a", "b", "c", "d"], 5000, p=[0.1, 0.2, 0.3, 0.4])}
        | {"level": rng.integers(0, 4, 5000).astype(float)}
    )
    raw = detect_drift(ref, cur)
    profiled = detect_drift(Profile.from_data(ref), cur)
    assert [r.test for r in raw.columns] == [r.test for r in profiled.columns]
    assert [r.drifted for r in raw.columns] == [r.drifted for r in profiled.columns]
    assert raw.drifted_columns == ("num_0", "num_1", "num_2", "cat")
    # Exact where the profile keeps exact counts: categories, and few distinct values.
    assert profiled["cat"].score == raw["cat"].score
    assert profiled["level"].score == pytest.approx(raw["level"].score, abs=1e-15)


def test_small_columns_keep_their_values_and_every_test_is_exact() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(0, 1, 800), rng.normal(0.3, 1, 300)
    profile = Profile.from_data({"x": ref})
    assert type(profile.sample("x")) is NumericSample
    for test in ("ks", "wasserstein", "psi", "jensenshannon"):
        raw = detect_drift({"x": ref}, {"x": cur}, tests={"x": test})["x"]
        again = detect_drift(profile, {"x": cur}, tests={"x": test})["x"]
        assert again.score == pytest.approx(raw.score, rel=1e-12, abs=1e-15), test


def test_psi_edges_of_a_profile_are_the_raw_quantile_edges() -> None:
    ref = np.random.default_rng(3).exponential(1.0, 20_000)
    sample = Profile.from_data({"x": ref}).sample("x")
    raw = NumericSample("x", np.sort(ref))
    np.testing.assert_array_equal(sample.quantile_edges(10), raw.quantile_edges(10))


def test_profile_survives_json_and_keeps_missing_and_categories(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "x": [1.5, np.nan, 2.5, np.inf] * 500,
            "city": ["paris", None, "lyon", "paris"] * 500,
            "flag": [True, False, True, True] * 500,
        }
    )
    profile = Profile.from_data(df)
    again = Profile.load(profile.save(tmp_path / "p.json"))
    assert again.columns == ("x", "city", "flag")
    assert again.summary("x")["n_missing"] == 1000
    assert again.summary("city")["categories"] == ["paris", "lyon"] or set(
        again.summary("city")["categories"]
    ) == {"paris", "lyon"}
    assert again.sample("city").missing_share == pytest.approx(0.25)
    assert again.kind("flag").value == "categorical"
    report = detect_drift(again, df)
    assert report.share_drifted == 0.0
    json.loads((tmp_path / "p.json").read_text())  # plain JSON, no NaN tokens


def test_not_a_profile_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="not a Shipyard profile"):
        Profile.from_dict({"columns": {}})


# --- with the registry ---------------------------------------------------------------------


def _register(client: Any, name: str, *, with_run: bool) -> int:
    run_id = None
    if with_run:
        exp = client.create_experiment(f"exp-{name}")
        run_id = client.create_run(exp).info.run_id
    client.get_or_create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id or 'none'}/model", run_id=run_id)
    return int(version.version)


@pytest.mark.parametrize("with_run", [True, False], ids=["run-artifact", "artifact-root"])
def test_attach_and_load_profile_through_the_registry(
    with_run: bool, tmp_path: Path, artifacts_url: str, fresh_sqlite_url: str
) -> None:
    from shipyard.client import Client
    from shipyard.config import Settings

    client = Client(Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url))
    version = _register(client, "churn", with_run=with_run)
    train = pd.DataFrame({"age": np.arange(3000.0), "plan": ["a", "b", "c"] * 1000})
    attach_profile(f"models:/churn/{version}", train, client=client)
    tags = client.get_model_version("churn", version).tags
    assert PROFILE_TAG in tags and len(tags[PROFILE_SHA_TAG]) == 64
    loaded = load_profile("churn", client=client)  # latest version
    assert loaded.columns == ("age", "plan")
    attach_profile(
        "churn", train, client=client, predictions=(train["age"] > 1500).astype(int).to_numpy()
    )
    with_outputs = load_profile("churn", client=client)
    assert with_outputs.columns == ("age", "plan", "prediction")
    assert with_outputs.kind("prediction").value == "categorical"
    with pytest.raises(InvalidArgumentError, match="one prediction per row"):
        attach_profile("churn", train, client=client, predictions=[1, 0])
    assert loaded.summary("age")["max"] == 2999.0
    assert load_profile(f"models:/churn/{version}", client=client).n_rows == 3000


def test_load_profile_without_one_says_how_to_attach(tmp_path: Path, fresh_sqlite_url: str) -> None:
    from shipyard.client import Client
    from shipyard.config import Settings

    client = Client(Settings(home=tmp_path / "home", db=fresh_sqlite_url))
    _register(client, "plain", with_run=False)
    with pytest.raises(NotFoundError, match="has no reference profile"):
        load_profile("plain", version=1, client=client)


def test_a_tampered_profile_is_refused(
    tmp_path: Path, artifacts_url: str, fresh_sqlite_url: str
) -> None:
    from shipyard.client import Client
    from shipyard.config import Settings
    from shipyard.store.artifacts import ArtifactStore

    client = Client(Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url))
    _register(client, "m", with_run=False)
    attach_profile("m", pd.DataFrame({"x": np.arange(10.0)}), version=1, client=client)
    store = ArtifactStore(artifacts_url)
    key = "monitoring/profiles/default/m/v1/profile.json"
    store.put_bytes(store.read_bytes(key).replace(b'"n_rows":10', b'"n_rows":11'), key)
    with pytest.raises(IntegrityError, match="does not match"):
        load_profile("m", version=1, client=client)


def test_profile_cli_attaches_to_the_latest_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_sqlite_url: str
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app
    from shipyard.client import Client

    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    client = Client()
    _register(client, "churn", with_run=False)
    pd.DataFrame({"age": np.arange(2000.0), "plan": ["a", "b"] * 1000}).to_csv(
        tmp_path / "train.csv", index=False
    )
    done = CliRunner().invoke(
        app,
        [
            "monitor",
            "profile",
            str(tmp_path / "train.csv"),
            "-m",
            "churn",
            "--out",
            str(tmp_path / "p.json"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert load_profile("churn", client=client).columns == ("age", "plan")
    assert Profile.load(tmp_path / "p.json").n_rows == 2000


def test_profile_cli_can_profile_the_models_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_sqlite_url: str
) -> None:
    from sklearn.linear_model import LogisticRegression
    from typer.testing import CliRunner

    from shipyard.cli.main import app
    from shipyard.client import Client
    from shipyard.models.logging import log_model

    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    client = Client()
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(0, 1, (1500, 2)), columns=["a", "b"])
    model = LogisticRegression().fit(train, (train["a"] > 0).astype(int))
    run = client.create_run(client.create_experiment("profiles"))
    log_model(
        model,
        "model",
        registered_model_name="clf",
        input_example=train[:3],
        run_id=run.info.run_id,
        client=client,
    )
    train.to_parquet(tmp_path / "train.parquet")
    done = CliRunner().invoke(
        app, ["monitor", "profile", str(tmp_path / "train.parquet"), "-m", "clf", "--predict"]
    )
    assert done.exit_code == 0, done.output
    profile = load_profile("clf", client=client)
    counts = dict(
        zip(
            profile.summary("prediction")["categories"],
            profile.summary("prediction")["counts"],
            strict=True,
        )
    )
    assert counts == {0: int((model.predict(train) == 0).sum()), 1: int(model.predict(train).sum())}
