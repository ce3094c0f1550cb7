"""Serving fixtures: registered sklearn models in a fresh store, and model server apps.

Models are fitted once per session; each test logs and registers them into its own
SQLite store (a copy of the migrated template), so tests never share registry state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.client import Client
from shipyard.config import Settings


@pytest.fixture(scope="session")
def xy() -> tuple[np.ndarray, np.ndarray]:
    """The seed's shape: 20 features, binary label."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=20, n_informative=6, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def logreg(xy: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = xy
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture(scope="session")
def forest(xy: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    X, y = xy
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)


@pytest.fixture
def settings(tmp_path: Path, fresh_sqlite_url: str) -> Settings:
    """A fresh store: SQLite metadata, artifacts and home under tmp_path."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    return Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts.as_uri())


@pytest.fixture
def client(settings: Settings) -> Client:
    return Client(settings)


Register = Callable[..., int]


@pytest.fixture
def register(client: Client, xy: tuple[np.ndarray, np.ndarray]) -> Register:
    """``register(model, name="fraud", alias="champion", tags=None) -> version``."""
    from shipyard.models.logging import log_model

    experiment = client.create_experiment("serving-tests")

    def register_model(
        model: Any,
        name: str = "fraud",
        alias: str | None = "champion",
        tags: dict[str, str] | None = None,
        input_example: Any = None,
    ) -> int:
        run = client.create_run(experiment)
        example = xy[0][:5] if input_example is None else input_example
        info = log_model(
            model,
            "model",
            registered_model_name=name,
            input_example=example,
            run_id=run.info.run_id,
            client=client,
        )
        client.set_terminated(run.info.run_id)
        version = int(info.registered_model_version or 0)
        for key, value in (tags or {}).items():
            client.registry.set_model_version_tag(name, version, key, value)
        if alias:
            client.registry.set_alias(name, alias, version)
        return version

    return register_model


@pytest.fixture
def make_app(settings: Settings, client: Client) -> Callable[..., Any]:
    """``make_app(*uris, shadows=(), canaries=(), **options) -> FastAPI`` (auth off)."""
    from shipyard.serving.runner import ServeConfig, build_app

    def build(
        *uris: str,
        shadows: tuple[str, ...] = (),
        canaries: tuple[str, ...] = (),
        app_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        options.setdefault("poll_seconds", 0)
        config = ServeConfig(
            models=list(uris) or ["models:/fraud@champion"],
            shadows=list(shadows),
            canaries=list(canaries),
            options=options,
        )
        return build_app(config, settings, **(app_options or {}))

    return build


@pytest.fixture
def served(register: Register, logreg: Any, make_app: Callable[..., Any]) -> Iterator[Any]:
    """A TestClient on a server of 'fraud'@champion (LogisticRegression, 20 features)."""
    from shipyard.testing import test_client

    register(logreg)
    with test_client(make_app()) as tc:
        yield tc
