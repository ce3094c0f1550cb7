"""Schemathesis against the model server's own OpenAPI: no 5xx, answers match the schema.

The app is built at import (schemathesis needs the schema to parametrize) on a store of
its own, serving a 20-feature LogisticRegression; a few examples per operation keep the
file within seconds.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.slow


def _app() -> Any:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from shipyard.client import Client
    from shipyard.config import Settings
    from shipyard.models.logging import log_model
    from shipyard.serving.runner import ServeConfig, build_app

    home = Path(tempfile.mkdtemp(prefix="shipyard-serving-schemathesis-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    (home / "artifacts").mkdir()
    store = Settings(
        home=home, db=f"sqlite:///{home / 'meta.db'}", artifacts=(home / "artifacts").as_uri()
    )
    X, y = make_classification(n_samples=100, n_features=20, random_state=0)
    client = Client(store)
    run = client.create_run(client.create_experiment("schemathesis"))
    info = log_model(
        LogisticRegression().fit(X, y),
        "model",
        registered_model_name="fraud",
        input_example=X[:3],
        run_id=run.info.run_id,
        client=client,
    )
    client.registry.set_alias("fraud", "champion", int(info.registered_model_version or 0))
    config = ServeConfig(
        models=["models:/fraud@champion"], options={"poll_seconds": 0, "log_sample": 0}
    )
    return build_app(config, store)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_model_server_never_fails_and_matches_its_schema(case: Any) -> None:
    # Bodies OpenAPI cannot fully constrain (feature counts, tensor sizes) are refused
    # with 4xx; what matters is no 5xx and answers that match the documented shapes.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
