"""The deployment spec: platform-team defaults, environments, and refusals that name the
field and the reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.deploy.spec import (
    ModelDeploymentSpec,
    PlatformSpec,
    dns_name,
    load_spec,
    parse_quantity,
)
from shipyard.errors import InvalidArgumentError

URI = "models:/churn@champion"


def test_defaults_are_production_ready() -> None:
    spec = ModelDeploymentSpec(model=URI)
    assert spec.replicas == 3
    assert spec.autoscaling.min_replicas == 3 and spec.autoscaling.max_replicas == 10
    assert spec.autoscaling.cpu_utilization == 70
    assert spec.autoscaling.queue_length == 100
    assert spec.autoscaling.scale_down.stabilization_window_seconds == 300
    assert spec.resources.gpu == 0 and spec.resources.memory_limit == "4Gi"
    assert spec.run_as_user != 0
    assert spec.model_source == "registry"
    assert spec.image.rsplit(":", 1)[1] not in ("", "latest")
    assert spec.app_name == "churn" and spec.model_name == "churn"
    assert sorted(spec.environments) == ["dev", "prod", "staging"]


def test_model_name_from_every_uri_form() -> None:
    assert ModelDeploymentSpec(model="models:/Fraud_Model/3").app_name == "fraud-model"
    assert ModelDeploymentSpec(model="models:/fraud@latest").model_name == "fraud"


def test_environment_overrides_replicas_resources_and_namespace() -> None:
    spec = ModelDeploymentSpec(
        model=URI,
        resources={"gpu": 1},
        accelerator="nvidia-l4",
        environments={
            "dev": {
                "namespace": "ml-dev",
                "replicas": 1,
                "min_replicas": 1,
                "max_replicas": 2,
                "image_tag": "0.2.0-rc1",
                "resources": {"cpu_request": "100m", "memory_request": "256Mi"},
            }
        },
    )
    dev = spec.environment("dev")
    assert dev.namespace == "ml-dev" and dev.replicas == 1
    assert (dev.autoscaling.min_replicas, dev.autoscaling.max_replicas) == (1, 2)
    assert dev.resources.cpu_request == "100m"
    assert dev.resources.gpu == 1  # the model still needs its GPU in every environment
    assert dev.image.endswith(":0.2.0-rc1")
    assert spec.environment(None) is spec
    with pytest.raises(InvalidArgumentError, match=r"Unknown environment 'qa'\. Known: dev"):
        spec.environment("qa")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "churn"}, r"model: 'churn' is not a registry URI"),
        ({"replicas": -1}, r"replicas: Input should be greater than or equal to 0"),
        (
            {"resources": {"memory_request": "8Gi", "memory_limit": "4Gi"}},
            r"resources: memory_request 8Gi is above memory_limit 4Gi",
        ),
        (
            {"resources": {"cpu_limit": "two"}},
            r"resources\.cpu_limit: 'two' is not a Kubernetes quantity",
        ),
        (
            {"autoscaling": {"min_replicas": 5, "max_replicas": 2}},
            r"autoscaling: min_replicas \(5\) is above max_replicas \(2\)",
        ),
        (
            {"autoscaling": {"cpu_utilization": 150}},
            r"autoscaling\.cpu_utilization: Input should be less than or equal to 100",
        ),
        (
            {"autoscaling": {"scale_up": {"policies": [{"type": "Nodes", "value": 1}]}}},
            r"autoscaling\.scale_up\.policies\.0\.type: Input should be 'Pods' or 'Percent'",
        ),
        ({"model_source": "pvc"}, r"model_source is 'pvc' but pvc_claim is not set"),
        ({"accelerator": "nvidia-l4"}, r"accelerator 'nvidia-l4' is set but resources\.gpu is 0"),
        ({"image": "shipyard-model-server:latest"}, r"image: image .* has no pinned tag"),
        ({"image": "shipyard-model-server"}, r"has no pinned tag"),
        ({"name": "Churn_Model"}, r"name: 'Churn_Model' is not a valid Kubernetes name"),
        ({"namespace": "x" * 64}, r"namespace: 'x+' is not a valid Kubernetes namespace"),
        ({"replicas": 20}, r"replicas \(20\) is above autoscaling\.max_replicas \(10\)"),
        (
            {"scrape_interval": "15 seconds"},
            r"scrape_interval: '15 seconds' is not a Prometheus duration",
        ),
        ({"grpc_port": 8080}, r"grpc_port and http_port are both 8080"),
        ({"replica": 3}, r"replica: unknown field"),
        ({"alert_thresholds": {"latency_p99": 0.2}}, r"Unknown alert thresholds: latency_p99"),
    ],
)
def test_invalid_specs_are_refused_with_field_and_reason(fields: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        load_spec({"model": URI, **fields}, ModelDeploymentSpec)
    assert info.value.message.startswith("Invalid ModelDeploymentSpec")


def test_several_problems_are_reported_at_once() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        load_spec({"model": URI, "replicas": -2, "workers": 0}, ModelDeploymentSpec)
    assert "replicas:" in info.value.message and "workers:" in info.value.message


def test_an_environment_that_breaks_the_spec_is_refused() -> None:
    spec = ModelDeploymentSpec(model=URI, environments={"tiny": {"max_replicas": 2}})
    with pytest.raises(
        InvalidArgumentError,
        match=r"environment 'tiny'\): autoscaling: min_replicas \(3\) is above max_replicas \(2\)",
    ):
        spec.environment("tiny")


def test_spec_from_yaml_and_python_files(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(
        "model: models:/churn@champion\nreplicas: 4\n"
        "resources: {gpu: 2, cpu_limit: '8', memory_limit: 16Gi}\naccelerator: nvidia-a100\n"
    )
    spec = load_spec(path, ModelDeploymentSpec)
    assert spec.replicas == 4 and spec.resources.gpu == 2
    script = tmp_path / "deploy.py"
    script.write_text(
        "from shipyard.deploy import PlatformSpec\n"
        "spec = PlatformSpec(namespace='shipyard', ingress={'host': 'ml.example.org'})\n"
    )
    platform = load_spec(script, PlatformSpec)
    assert platform.ingress is not None and platform.ingress.host == "ml.example.org"
    bad = tmp_path / "bad.yaml"
    bad.write_text("- model\n")
    with pytest.raises(InvalidArgumentError, match="must be a YAML mapping"):
        load_spec(bad, ModelDeploymentSpec)
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml", ModelDeploymentSpec)


_FACTORS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(_FACTORS)))
def test_quantities_scale_by_their_suffix(number: int, suffix: str) -> None:
    assert parse_quantity(f"{number}{suffix}") == Decimal(number) * _FACTORS[suffix]


@given(st.integers(min_value=1, max_value=10**6))
def test_millicores_are_thousandths(milli: int) -> None:
    assert parse_quantity(f"{milli}m") * 1000 == milli


@given(st.text(min_size=1, max_size=80))
def test_dns_names_are_valid_labels_or_refused(text: str) -> None:
    import re

    try:
        name = dns_name(text)
    except InvalidArgumentError:
        assert not re.search(r"[a-z0-9]", text.lower())
        return
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
