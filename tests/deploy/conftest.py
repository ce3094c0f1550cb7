"""A registered model to deploy, and validators for what deployment renders.

Built-in kinds are checked with kubernetes-validate (strict: unknown fields fail) against
the newest Kubernetes version it knows. The Prometheus Operator kinds (ServiceMonitor,
PrometheusRule) are checked against models generated from the operator's CRD schemas
(cloudcoil-models-prometheus-operator), strictly: a field the schema does not know fails.
"""

from __future__ import annotations

import atexit
import functools
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import service_unavailable

if TYPE_CHECKING:
    from shipyard.client import Client


#: Models generated from the Prometheus Operator CRD schemas, in a virtualenv of their own
#: (the package also brings a pytest plugin we do not want in this test session).
CRD_MODELS = "cloudcoil-models-prometheus-operator==0.80.1.0"
CRD_VENV = Path.home() / ".cache" / "shipyard-dev" / "cloudcoil-prometheus-operator-0.80.1.0"

_CRD_CHECK = """
import json, sys
from cloudcoil.models.prometheus_operator import v1

def unknown(given, dumped, path=""):
    if isinstance(given, dict):
        out = []
        for key, value in given.items():
            if not isinstance(dumped, dict) or key not in dumped:
                out.append(path + "." + key)
            else:
                out += unknown(value, dumped[key], path + "." + key)
        return out
    if isinstance(given, list) and isinstance(dumped, list):
        return [p for i, (a, b) in enumerate(zip(given, dumped))
                for p in unknown(a, b, "%s[%d]" % (path, i))]
    return []

def check(objects):
    problems = []
    for obj in objects:
        label = obj["kind"] + "/" + obj["metadata"]["name"]
        try:
            parsed = getattr(v1, obj["kind"]).model_validate(obj)
        except Exception as exc:
            problems.append(label + ": " + str(exc))
            continue
        dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
        for path in unknown(obj, dumped):
            problems.append(label + ": unknown field " + path)
    return problems

for line in sys.stdin:
    print(json.dumps(check(json.loads(line))), flush=True)
"""


def _crd_python() -> Path:
    """The checker virtualenv's python, created once (test workers wait on a lock)."""
    import fcntl
    import shutil
    import sys

    python = CRD_VENV / "bin" / "python"
    CRD_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(CRD_VENV.parent / f".{CRD_VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (CRD_VENV / ".complete").exists():
            return python
        shutil.rmtree(CRD_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(CRD_VENV)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", CRD_MODELS],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            shutil.rmtree(CRD_VENV, ignore_errors=True)
            service_unavailable("PyPI", f"cannot install {CRD_MODELS}: {done.stderr[-500:]}")
        (CRD_VENV / ".complete").touch()
    return python


@functools.cache
def _crd_checker() -> subprocess.Popen[str]:
    """One checker process per test session: importing the models takes seconds."""
    process = subprocess.Popen(
        [str(_crd_python()), "-c", _CRD_CHECK],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    atexit.register(process.kill)
    return process


def validate_crds(objects: list[dict[str, Any]]) -> list[str]:
    """Problems found checking Prometheus Operator objects against the CRD schemas."""
    process = _crd_checker()
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(objects) + "\n")
    process.stdin.flush()
    answer = process.stdout.readline()
    assert answer, "the CRD checker process died"
    return list(json.loads(answer))


@functools.cache
def _kubernetes_validate() -> Any:
    """kubernetes_validate.utils, reading each JSON schema file once per session (it
    re-reads the multi-megabyte definitions file on every call otherwise)."""
    from kubernetes_validate import utils

    utils.schema_contents = functools.cache(utils.schema_contents)
    return utils


def validate_manifests(objects: list[dict[str, Any]]) -> None:
    """Raise AssertionError unless every object is valid for its kind."""
    utils = _kubernetes_validate()

    version = utils.latest_version()
    crds = [o for o in objects if str(o["apiVersion"]).startswith("monitoring.coreos.com/")]
    problems = validate_crds(crds) if crds else []
    for obj in objects:
        if obj in crds:
            continue
        try:
            utils.validate(obj, version, strict=True)
        except utils.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")
    assert not problems, f"invalid for Kubernetes {version}: {problems}"


@pytest.fixture
def registry(fresh_sqlite_url: str, artifacts_url: str, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A Client on a fresh store, also what `shipyard` commands in this test use."""
    from shipyard.client import Client

    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACTS", artifacts_url)
    return Client()


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x, y


@pytest.fixture
def churn(registry: Client, breast_cancer: tuple[Any, Any]) -> tuple[Client, Any, Any]:
    """``models:/churn@champion``: a scaled logistic regression on 30 float64 columns."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import shipyard

    x, y = breast_cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    run = registry.create_run(registry.create_experiment("deploy"))
    shipyard.log_model(
        model,
        run_id=run.info.run_id,
        client=registry,
        registered_model_name="churn",
        input_example=x.head(25),
    )
    registry.set_registered_model_alias("churn", "champion", 1)
    return registry, model, x


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(text) if doc]


def read_tree(folder: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += load_yaml_docs(path.read_text())
    return docs
