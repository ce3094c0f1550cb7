"""Check a rendered folder with the ecosystem's own tools: ``kubectl kustomize`` builds each
overlay, kubernetes-validate checks every object against the Kubernetes JSON schemas, and
Triton's ``model_config`` protobuf parses each ``config.pbtxt``.

Prometheus Operator kinds (ServiceMonitor, PrometheusRule) have no schema in
kubernetes-validate; they are reported as skipped here (the test suite checks them
against models generated from the operator's CRDs).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipyard.deploy.k8s import Manifest
from shipyard.errors import ConfigError

__all__ = ["ValidationReport", "build_overlay", "validate_objects", "validate_rendered"]


@dataclass
class ValidationReport:
    """What was checked, what was skipped and every problem found."""

    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@functools.cache
def _kubernetes_validate() -> Any:
    try:
        from kubernetes_validate import utils
    except ImportError as exc:
        raise ConfigError(
            "Validating manifests needs the kubernetes-validate package.",
            hint="Run `pip install kubernetes-validate`.",
        ) from exc
    # It re-reads the multi-megabyte definitions file on every call otherwise.
    utils.schema_contents = functools.cache(utils.schema_contents)
    return utils


def _promtool(rule: Manifest, label: str, report: ValidationReport) -> bool:
    """``promtool check rules`` on a PrometheusRule's groups; False when promtool is absent."""
    import tempfile

    promtool = shutil.which("promtool")
    if promtool is None:
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
        yaml.safe_dump(rule.get("spec", {}), out)
    try:
        done = subprocess.run(
            [promtool, "check", "rules", out.name], capture_output=True, text=True
        )
    finally:
        Path(out.name).unlink(missing_ok=True)
    if done.returncode == 0:
        report.checked.append(f"{label} (promtool check rules)")
    else:
        report.problems.append(f"{label}: promtool: {(done.stdout + done.stderr).strip()}")
    return True


def validate_objects(
    objects: list[Manifest], report: ValidationReport, *, source: str, version: str | None = None
) -> None:
    """Check each object with kubernetes-validate (strict: unknown fields fail), and
    PrometheusRule groups with ``promtool`` when it is installed."""
    utils = _kubernetes_validate()
    version = version or utils.latest_version()
    for obj in objects:
        label = f"{source}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") == "PrometheusRule" and _promtool(obj, label, report):
            continue
        try:
            utils.validate(obj, version, strict=True)
        except utils.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            report.problems.append(f"{label}: {where}: {exc.message}")
        except utils.SchemaNotFoundError:
            report.skipped.append(f"{label} (no schema for Kubernetes {version})")
        else:
            report.checked.append(f"{label} (Kubernetes {version})")


def build_overlay(folder: Path) -> list[Manifest]:
    """``kubectl kustomize folder``, parsed.

    Raises:
        ConfigError: kubectl is not installed or kustomize fails.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ConfigError(
            "Building kustomize overlays needs kubectl.", hint="Install kubectl (1.14 or newer)."
        )
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise ConfigError(f"kubectl kustomize {folder} failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _check_triton(config: Path, report: ValidationReport) -> None:
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise ConfigError(
            "Checking config.pbtxt needs tritonclient.",
            hint='Run `pip install "shipyard[grpc]"`.',
        ) from exc
    try:
        parsed = text_format.Parse(
            config.read_text(encoding="utf-8"), model_config_pb2.ModelConfig()
        )
    except text_format.ParseError as exc:
        report.problems.append(f"{config}: {exc}")
        return
    versions = [p for p in config.parent.iterdir() if p.is_dir() and p.name.isdigit()]
    if not any((v / "model.onnx").is_file() for v in versions):
        report.problems.append(f"{config.parent}: no <version>/model.onnx next to config.pbtxt")
    elif parsed.name != config.parent.name:
        report.problems.append(
            f"{config}: name '{parsed.name}' differs from its folder '{config.parent.name}'"
        )
    else:
        report.checked.append(f"{config} (Triton model_config)")


def validate_rendered(folder: Path, *, version: str | None = None) -> ValidationReport:
    """Validate everything ``shipyard deploy render`` wrote under ``folder``.

    Kustomize trees (``base/`` and ``overlays/<env>/``) are built and validated;
    ``<env>.yaml`` files are validated; Triton repositories (``*/config.pbtxt``) parsed.
    """
    folder = Path(folder)
    report = ValidationReport()
    for kustomization in sorted(folder.glob("**/kustomization.yaml")):
        tree = kustomization.parent
        validate_objects(build_overlay(tree), report, source=str(tree), version=version)
    for flat in sorted(folder.glob("*.yaml")):
        docs = [doc for doc in yaml.safe_load_all(flat.read_text(encoding="utf-8")) if doc]
        validate_objects(docs, report, source=str(flat), version=version)
    for config in sorted(folder.glob("**/config.pbtxt")):
        _check_triton(config, report)
    if not report.checked and not report.problems:
        report.problems.append(f"Nothing to validate under {folder}.")
    return report
