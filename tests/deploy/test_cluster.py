"""diff and apply without a cluster: the diff text for given live objects, and the exact
server-side apply requests the Kubernetes client would send. Nothing here talks to an API
server; `shipyard deploy diff|apply` against a real cluster is documented, not tested."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shipyard.deploy.cluster import (
    ApplyRequest,
    Cluster,
    api_path,
    apply_request,
    diff_text,
    merge_offline,
)
from shipyard.deploy.k8s import render_model_server
from shipyard.deploy.spec import ModelDeploymentSpec
from shipyard.errors import ConfigError, NotSupportedError


@pytest.fixture
def objects() -> list[dict[str, Any]]:
    spec = ModelDeploymentSpec(model="models:/churn@champion", namespace="ml")
    return render_model_server(spec)


def _live(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the API server returns it: server fields, defaults and status added."""
    live = copy.deepcopy(obj)
    live["metadata"].update(
        {
            "uid": "9f1c7e0e-0000-4000-8000-000000000001",
            "resourceVersion": "4711",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "shipyard", "operation": "Apply"}],
        }
    )
    live["status"] = {"observedGeneration": 3}
    return live


def test_api_paths_for_core_grouped_and_custom_kinds(objects: list[dict[str, Any]]) -> None:
    by_kind = {o["kind"]: o for o in objects}
    assert api_path(by_kind["Deployment"]) == "/apis/apps/v1/namespaces/ml/deployments/churn"
    assert api_path(by_kind["Service"]) == "/api/v1/namespaces/ml/services/churn"
    assert api_path(by_kind["HorizontalPodAutoscaler"]) == (
        "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/churn"
    )
    assert api_path(by_kind["ServiceMonitor"]) == (
        "/apis/monitoring.coreos.com/v1/namespaces/ml/servicemonitors/churn"
    )
    with pytest.raises(NotSupportedError, match="Cannot apply kind 'CronJob'"):
        api_path({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"}})


def test_apply_is_a_forced_server_side_apply_by_shipyard(objects: list[dict[str, Any]]) -> None:
    request = apply_request(objects[0])
    assert request == ApplyRequest(
        method="PATCH",
        path="/apis/apps/v1/namespaces/ml/deployments/churn",
        query=[("fieldManager", "shipyard"), ("force", "true")],
        headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=objects[0],
    )
    dry = apply_request(objects[0], dry_run=True, force=False)
    assert dry.query == [("fieldManager", "shipyard"), ("dryRun", "All")]


def test_the_kubernetes_client_serializes_the_apply_request(
    objects: list[dict[str, Any]],
) -> None:
    """What goes on the wire, built by the real client (nothing is sent)."""
    from kubernetes import client

    configuration = client.Configuration(host="https://k8s.example.invalid:6443")
    configuration.api_key = {"BearerToken": "secret-token"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    api = client.ApiClient(configuration)
    request = apply_request(objects[0])
    method, url, headers, body, _ = api.param_serialize(
        request.method,
        request.path,
        query_params=list(request.query),
        header_params=dict(request.headers),
        body=request.body,
        auth_settings=["BearerToken"],
    )
    assert method == "PATCH"
    assert url == (
        "https://k8s.example.invalid:6443/apis/apps/v1/namespaces/ml/deployments/churn"
        "?fieldManager=shipyard&force=true"
    )
    assert headers["Content-Type"] == "application/apply-patch+yaml"
    assert headers["authorization"] == "Bearer secret-token"
    assert json.loads(json.dumps(body)) == objects[0]
    api.close()


def test_diff_of_a_new_object_adds_every_line(objects: list[dict[str, Any]]) -> None:
    text = diff_text([(None, objects[1])])
    lines = text.splitlines()
    assert lines[0] == "diff -u -N /tmp/LIVE/v1.Service.ml.churn /tmp/MERGED/v1.Service.ml.churn"
    assert lines[1] == "--- /tmp/LIVE/v1.Service.ml.churn"
    assert lines[2] == "+++ /tmp/MERGED/v1.Service.ml.churn"
    assert all(line.startswith("+") for line in lines[4:])
    assert "+kind: Service" in lines


def test_diff_shows_only_what_changes(objects: list[dict[str, Any]]) -> None:
    deployment = objects[0]
    live = _live(deployment)
    live["spec"]["replicas"] = 5
    text = diff_text([(live, merge_offline(live, deployment))])
    body = text.splitlines()[3:]
    assert [line for line in body if line[:1] in "+-"] == ["-  replicas: 5", "+  replicas: 3"]
    assert "managedFields" not in text
    unchanged = _live(deployment)
    assert diff_text([(unchanged, merge_offline(unchanged, deployment))]) == ""


def test_diff_hunks_match_gnu_diff(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    import yaml

    diff = shutil.which("diff")
    if diff is None:
        pytest.skip("diff is not installed")
    deployment = objects[0]
    live = _live(deployment)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "shipyard-model-server:0.0.9"
    merged = merge_offline(live, deployment)
    ours = diff_text([(live, merged)]).splitlines()
    for name, obj in (("LIVE", live), ("MERGED", merged)):
        folder = tmp_path / name
        folder.mkdir()
        clean = copy.deepcopy(obj)
        clean["metadata"].pop("managedFields", None)
        (folder / "apps.v1.Deployment.ml.churn").write_text(
            yaml.safe_dump(clean, sort_keys=True, default_flow_style=False)
        )
    done = subprocess.run(
        [
            diff,
            "-u",
            "-N",
            "LIVE/apps.v1.Deployment.ml.churn",
            "MERGED/apps.v1.Deployment.ml.churn",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    gnu = done.stdout.splitlines()
    assert ours[3:] == gnu[2:]  # the hunks; headers differ only by the timestamps GNU adds


def test_merge_offline_keeps_server_fields_and_takes_ours() -> None:
    live = {"metadata": {"name": "a", "uid": "u", "labels": {"x": "1"}}, "spec": {"a": [1, 2]}}
    desired = {"metadata": {"name": "a", "labels": {"y": "2"}}, "spec": {"a": [3]}}
    assert merge_offline(live, desired) == {
        "metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}},
        "spec": {"a": [3]},
    }
    assert merge_offline(None, desired) == desired


def test_no_kubeconfig_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="No Kubernetes configuration found"):
        Cluster.from_kubeconfig()


def test_diff_and_apply_commands_need_a_cluster_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.cli.main import main

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for command in ("diff", "apply"):
        with pytest.raises(SystemExit) as info:
            main(["deploy", command, "models:/churn@champion", "--env", "prod"])
        assert info.value.code == ConfigError.exit_code


def test_diff_command_against_saved_live_objects(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    import yaml
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    live_deployment = _live(objects[0])
    live_deployment["spec"]["replicas"] = 7
    live = tmp_path / "live.yaml"
    live.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [live_deployment]})
    )
    result = CliRunner().invoke(
        app,
        ["deploy", "diff", "models:/churn@champion", "--namespace", "ml", "--live", str(live)],
    )
    assert result.exit_code == 1, result.output
    assert "-  replicas: 7\n+  replicas: 3" in result.output
    assert "diff -u -N /tmp/LIVE/v1.Service.ml.churn" in result.output  # not live yet: new
    same = [_live(o) for o in objects]
    live.write_text(yaml.safe_dump_all(same))
    result = CliRunner().invoke(
        app,
        ["deploy", "diff", "models:/churn@champion", "--namespace", "ml", "--live", str(live)],
    )
    assert result.exit_code == 0, result.output
