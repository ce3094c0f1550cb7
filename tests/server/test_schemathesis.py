"""Schemathesis against the app's own OpenAPI: no 5xx, and answers match the schema.

Runs in-process on SQLite with a few examples per operation, so the whole file stays
within about a minute.
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

from shipyard.config import load_settings
from shipyard.server.app import create_app

pytestmark = pytest.mark.slow


def _app() -> Any:
    # Built at import, as schemathesis needs the schema to parametrize; its own folder
    # keeps it apart from every test's SHIPYARD_HOME.
    home = Path(tempfile.mkdtemp(prefix="shipyard-schemathesis-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return create_app(load_settings(home=home), deliver_webhooks=False)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_fails_and_matches_its_schema(case: Any) -> None:
    # Every check but "schema-valid data is accepted": the stores own rules OpenAPI cannot
    # state (the filter grammar, page tokens, name characters) and answer those with 400.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
