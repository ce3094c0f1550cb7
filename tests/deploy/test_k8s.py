"""Rendered Kubernetes manifests: valid for a current Kubernetes, kustomize builds every
overlay to what the spec says for that environment, and the CLI writes the whole tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from shipyard.deploy.k8s import render_model_server
from shipyard.deploy.kustomize import json_patch, write_kustomize
from shipyard.deploy.platform import render_platform
from shipyard.deploy.render import render_k8s, render_platform_tree
from shipyard.deploy.spec import ModelDeploymentSpec, PlatformSpec
from tests.deploy.conftest import load_yaml_docs, read_tree, validate_manifests

URI = "models:/churn@champion"
KUBECTL = shutil.which("kubectl")


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def _gpu_spec(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec(
        model=URI,
        flavor="sklearn",
        resources={"gpu": 1, "cpu_limit": "4", "memory_limit": "8Gi"},
        accelerator="nvidia-tesla-t4",
        **fields,
    )


def test_model_server_objects_follow_the_spec() -> None:
    objects = _by_kind(render_model_server(_gpu_spec(), registry_url="http://shipyard:5005"))
    assert sorted(objects) == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "ServiceMonitor",
    ]
    deployment = objects["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    assert deployment["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deployment["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][:2] == ["serve", URI]
    assert container["args"][-2:] == ["--grpc-port", "8001"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": 1}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-tesla-t4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # slow model loads
    annotations = deployment["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts
    env = {e["name"]: e for e in container["env"]}
    assert env["SHIPYARD_URL"]["valueFrom"]["configMapKeyRef"] == {
        "name": "shipyard-registry",
        "key": "url",
    }
    assert env["SHIPYARD_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "shipyard-registry-token"
    assert objects["ConfigMap"]["data"] == {"url": "http://shipyard:5005"}

    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert hpa["metrics"][1]["pods"]["metric"]["name"] == "inference_queue_length"
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300

    service = objects["Service"]["spec"]
    assert {p["name"] for p in service["ports"]} == {"http", "grpc"}
    monitor = objects["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["selector"].items() | set(
        objects["Service"]["metadata"]["labels"].items()
    )
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_every_rendered_object_is_valid_kubernetes() -> None:
    objects = render_model_server(_gpu_spec(), registry_url="http://shipyard:5005")
    objects += render_model_server(
        ModelDeploymentSpec(
            model="models:/fraud/2",
            model_source="pvc",
            pvc_claim="model-cache",
            autoscaling={"queue_length": None},
            registry_token=None,
        )
    )
    objects += render_platform(PlatformSpec(namespace="shipyard"))
    validate_manifests(objects)


def test_a_broken_manifest_fails_validation() -> None:
    objects = render_model_server(_gpu_spec())
    objects[0]["spec"]["strategy"]["rollingUpdate"]["maxSurgeX"] = 1
    with pytest.raises(AssertionError, match="maxSurgeX"):
        validate_manifests(objects[:1])
    monitor = next(o for o in render_model_server(_gpu_spec()) if o["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(AssertionError, match="intervall"):
        validate_manifests([monitor])


def test_pvc_cache_mounts_the_claim_under_the_model_cache() -> None:
    spec = ModelDeploymentSpec(model=URI, model_source="pvc", pvc_claim="model-cache")
    pod = _by_kind(render_model_server(spec))["Deployment"]["spec"]["template"]["spec"]
    claim = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"] == {"claimName": "model-cache"}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == claim["name"])
    assert mount["mountPath"] == "/var/lib/shipyard/cache"
    assert "tolerations" not in pod and "nodeSelector" not in pod  # no GPU asked for


def test_platform_objects_use_secret_references_and_an_ingress() -> None:
    objects = _by_kind(render_platform(PlatformSpec(ingress={"host": "ml.example.org"})))
    assert sorted(objects) == ["Deployment", "Ingress", "PodDisruptionBudget", "Service"]
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    for name in ("SHIPYARD_DB", "SHIPYARD_ARTIFACTS", "SHIPYARD_JWT_SECRET"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert container["envFrom"] == [{"secretRef": {"name": "shipyard-object-storage"}}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    rule = objects["Ingress"]["spec"]["rules"][0]
    assert rule["host"] == "ml.example.org"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "shipyard-platform"
    assert objects["Ingress"]["spec"]["tls"][0]["secretName"] == "shipyard-tls"


def test_json_patch_turns_one_object_into_the_other() -> None:
    old = {"a": {"b": 1, "c": [1, 2]}, "gone": True, "list": [{"x": 1}]}
    new = {"a": {"b": 2, "c": [1, 2, 3]}, "list": [{"x": 1, "y": 2}], "added": "v"}
    ops = json_patch(old, new)
    assert {"op": "remove", "path": "/gone"} in ops
    assert {"op": "replace", "path": "/a/b", "value": 2} in ops
    assert {"op": "replace", "path": "/a/c", "value": [1, 2, 3]} in ops
    assert {"op": "add", "path": "/list/0/y", "value": 2} in ops
    assert json_patch(new, new) == []


def _kustomize(folder: Path) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return load_yaml_docs(done.stdout)


def _keyed(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_kustomize_builds_every_overlay_to_the_environment_rendering(tmp_path: Path) -> None:
    spec = _gpu_spec(
        environments={
            "dev": {
                "namespace": "ml-dev",
                "replicas": 1,
                "min_replicas": 1,
                "max_replicas": 2,
                "resources": {"cpu_request": "250m", "memory_request": "512Mi"},
            },
            "staging": {"namespace": "ml-staging", "replicas": 2, "min_replicas": 2},
            "prod": {"namespace": "ml-prod", "image_tag": "0.1.0-hotfix1"},
        }
    )
    render_k8s(spec, tmp_path, registry_url="http://shipyard:5005")
    base = read_tree(tmp_path / "base")
    assert _keyed(base) == _keyed(render_model_server(spec, registry_url="http://shipyard:5005"))
    built_all = []
    for env in ("dev", "staging", "prod"):
        built = _kustomize(tmp_path / "overlays" / env)
        expected = render_model_server(spec.environment(env), registry_url="http://shipyard:5005")
        assert _keyed(built) == _keyed(expected), env
        assert {o["metadata"]["namespace"] for o in built} == {f"ml-{env}"}
        built_all += built
    dev = _keyed(_kustomize(tmp_path / "overlays" / "dev"))[("Deployment", "churn")]
    assert dev["spec"]["replicas"] == 1
    validate_manifests(built_all)


def test_cli_renders_the_tree_for_a_registered_model(churn: Any, tmp_path: Path) -> None:
    from shipyard.cli.main import app

    out = tmp_path / "deploy"
    result = CliRunner().invoke(
        app,
        [
            "deploy",
            "render",
            URI,
            "--target",
            "k8s",
            "--env",
            "prod",
            "--out",
            str(out),
            "--gpus",
            "1",
            "--namespace",
            "ml",
        ],
    )
    assert result.exit_code == 0, result.output
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "base/kustomization.yaml",
        "base/deployment.yaml",
        "base/service.yaml",
        "base/horizontalpodautoscaler.yaml",
        "base/poddisruptionbudget.yaml",
        "base/servicemonitor.yaml",
        "base/prometheusrule.yaml",
        "overlays/dev/kustomization.yaml",
        "overlays/staging/kustomization.yaml",
        "overlays/prod/kustomization.yaml",
        "docker/Dockerfile.model-server",
        "prod.yaml",
    } <= names
    prod = load_yaml_docs((out / "prod.yaml").read_text())
    assert {o["metadata"]["namespace"] for o in prod} == {"ml"}
    validate_manifests(prod)
    checked = CliRunner().invoke(app, ["deploy", "validate", str(out)])
    assert checked.exit_code == 0, checked.output
    assert "overlays/prod: Deployment/churn (Kubernetes" in checked.output
    assert "ServiceMonitor/churn" in checked.output  # skipped: no schema in kubernetes-validate
    import sklearn

    dockerfile = (out / "docker" / "Dockerfile.model-server").read_text()
    assert "shipyard[grpc,sklearn]==" in dockerfile
    assert f'"scikit-learn=={sklearn.__version__}"' in dockerfile
    assert "\nUSER 10001:10001\n" in dockerfile
    assert "FROM python:3.11." in dockerfile and ":latest" not in dockerfile


def test_cli_refuses_an_invalid_spec_file(tmp_path: Path) -> None:
    from shipyard.cli.main import main

    spec = tmp_path / "deploy.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "model": URI,
                "flavor": "sklearn",
                "autoscaling": {"min_replicas": 4, "max_replicas": 2},
            }
        )
    )
    with pytest.raises(SystemExit) as info:
        main(["deploy", "render", "--spec", str(spec), "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    assert not (tmp_path / "o").exists()


def test_platform_target_renders_tree_and_dockerfile(tmp_path: Path) -> None:
    spec = PlatformSpec(ingress={"host": "ml.example.org", "tls_secret": None})
    result = render_platform_tree(spec, tmp_path, env="staging")
    assert (tmp_path / "docker" / "Dockerfile.platform").read_text().count("shipyard[postgres,s3]")
    built = []
    for env in ("dev", "staging", "prod"):
        objects = _kustomize(tmp_path / "overlays" / env)
        assert _keyed(objects) == _keyed(render_platform(spec.environment(env)))
        built += objects
    assert _keyed(result.objects) == _keyed(load_yaml_docs((tmp_path / "staging.yaml").read_text()))
    validate_manifests(built)


def test_write_kustomize_refuses_environments_with_other_objects(tmp_path: Path) -> None:
    spec = ModelDeploymentSpec(model=URI)
    base = render_model_server(spec)
    with pytest.raises(ValueError, match="other objects"):
        write_kustomize(base, {"dev": (base[:2], None)}, tmp_path)


def test_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    rule = _by_kind(render_model_server(_gpu_spec()))["PrometheusRule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_validate_reports_an_invalid_file(tmp_path: Path) -> None:
    from shipyard.cli.main import app

    objects = render_model_server(ModelDeploymentSpec(model=URI))
    objects[0]["spec"]["replicas"] = "three"
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump_all(objects))
    result = CliRunner().invoke(app, ["deploy", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "Deployment/churn: spec.replicas: 'three' is not of type 'integer'" in result.output


def test_container_commands_parse_with_the_real_cli() -> None:
    """The args in the manifests are ones `shipyard serve` and `shipyard server` accept."""
    import typer

    from shipyard.cli.main import app

    group = typer.main.get_command(app)
    spec = _gpu_spec(workspace="risk")
    for container in (
        render_model_server(spec)[0]["spec"]["template"]["spec"]["containers"][0],
        render_platform(PlatformSpec())[0]["spec"]["template"]["spec"]["containers"][0],
    ):
        assert container["command"] == ["shipyard"]
        name, *args = container["args"]
        command = group.commands[name]  # type: ignore[attr-defined]
        context = command.make_context(name, list(args))
        assert context.params["port"] in (8080, 5005)
        assert context.params["host"] == "0.0.0.0"
        if name == "serve":
            assert context.params["models"] == [URI]
            assert context.params["grpc_port"] == 8001
            assert context.params["workspace"] == "risk"


def test_cli_renders_the_platform(tmp_path: Path) -> None:
    from shipyard.cli.main import app

    spec = tmp_path / "platform.yaml"
    spec.write_text(yaml.safe_dump({"ingress": {"host": "ml.example.org"}, "replicas": 3}))
    out = tmp_path / "platform"
    result = CliRunner().invoke(
        app,
        [
            "deploy",
            "render",
            "--target",
            "k8s-platform",
            "--spec",
            str(spec),
            "--env",
            "prod",
            "--namespace",
            "shipyard",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    objects = _by_kind(load_yaml_docs((out / "prod.yaml").read_text()))
    assert objects["Deployment"]["spec"]["replicas"] == 3
    assert objects["Ingress"]["metadata"]["namespace"] == "shipyard"
    refused = CliRunner().invoke(
        app, ["deploy", "render", URI, "--target", "k8s-platform", "--out", str(out)]
    )
    assert refused.exit_code != 0
