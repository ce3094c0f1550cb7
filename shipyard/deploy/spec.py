"""Typed deployment specs: what a platform team decides once, with defaults it would choose.

``ModelDeploymentSpec`` describes a model server on Kubernetes and ``PlatformSpec`` the
platform server. Both load from YAML (``load_spec``) or are built in Python; anything
invalid is refused with the field and the reason::

    spec = ModelDeploymentSpec(model="models:/churn@champion", resources={"gpu": 1})
    spec = load_spec("deploy.yaml", ModelDeploymentSpec)
"""

from __future__ import annotations

import runpy
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shipyard import __version__
from shipyard.deploy._values import (
    DURATION,
    check_image,
    check_label,
    dns_name,
    parse_quantity,
)
from shipyard.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_ENVIRONMENTS",
    "Autoscaling",
    "EnvironmentOverride",
    "Ingress",
    "ModelDeploymentSpec",
    "PlatformSpec",
    "Probes",
    "Resources",
    "ScalingBehavior",
    "ScalingPolicy",
    "SecretKeyRef",
    "Toleration",
    "dns_name",
    "load_spec",
    "parse_quantity",
]

SpecT = TypeVar("SpecT", bound=BaseModel)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Resources(_Spec):
    """CPU and memory requests/limits, plus GPUs (``nvidia.com/gpu``; requests = limits)."""

    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "2Gi"
    memory_limit: str = "4Gi"
    gpu: int = Field(0, ge=0, le=16)

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> str:
        text = str(value)
        if parse_quantity(text) <= 0:
            raise ValueError(f"{text!r} must be greater than zero")
        return text

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        for kind in ("cpu", "memory"):
            request, limit = getattr(self, f"{kind}_request"), getattr(self, f"{kind}_limit")
            if parse_quantity(request) > parse_quantity(limit):
                raise ValueError(
                    f"{kind}_request {request} is above {kind}_limit {limit}; "
                    "a pod cannot request more than its limit"
                )
        return self


class Toleration(_Spec):
    """A pod toleration, as in the Kubernetes API."""

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"

    def to_k8s(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            data["value"] = self.value
        if self.effect is not None:
            data["effect"] = self.effect
        return data


class ScalingPolicy(_Spec):
    """One HPA scaling policy: at most ``value`` pods (or percent) per ``period_seconds``."""

    type: Literal["Pods", "Percent"] = "Pods"
    value: int = Field(..., ge=1)
    period_seconds: int = Field(60, ge=1, le=1800)


class ScalingBehavior(_Spec):
    """HPA behaviour in one direction (``behavior.scaleUp`` or ``behavior.scaleDown``)."""

    stabilization_window_seconds: int = Field(0, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[ScalingPolicy] = Field(default_factory=list)

    def to_k8s(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stabilizationWindowSeconds": self.stabilization_window_seconds,
            "selectPolicy": self.select_policy,
        }
        if self.policies:
            data["policies"] = [
                {"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
                for p in self.policies
            ]
        return data


def _scale_up() -> ScalingBehavior:
    # React within a minute, two pods at a time: a model server takes a while to warm up.
    return ScalingBehavior(
        stabilization_window_seconds=60,
        policies=[ScalingPolicy(type="Pods", value=2, period_seconds=60)],
    )


def _scale_down() -> ScalingBehavior:
    # Wait five minutes of low load and then shed at most half the pods per minute.
    return ScalingBehavior(
        stabilization_window_seconds=300,
        policies=[ScalingPolicy(type="Percent", value=50, period_seconds=60)],
    )


class Autoscaling(_Spec):
    """The HorizontalPodAutoscaler: CPU utilisation plus the ``inference_queue_length`` gauge."""

    enabled: bool = True
    min_replicas: int = Field(3, ge=1, le=1000)
    max_replicas: int = Field(10, ge=1, le=1000)
    cpu_utilization: int = Field(70, ge=1, le=100)
    queue_length: int | None = Field(100, ge=1)
    scale_up: ScalingBehavior = Field(default_factory=_scale_up)
    scale_down: ScalingBehavior = Field(default_factory=_scale_down)

    @model_validator(mode="after")
    def _min_below_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


class Probes(_Spec):
    """Probe timings. The startup probe gives a slow model load time before liveness counts."""

    startup_period_seconds: int = Field(5, ge=1)
    startup_failure_threshold: int = Field(60, ge=1)
    readiness_period_seconds: int = Field(10, ge=1)
    readiness_failure_threshold: int = Field(3, ge=1)
    liveness_period_seconds: int = Field(20, ge=1)
    liveness_failure_threshold: int = Field(3, ge=1)
    timeout_seconds: int = Field(5, ge=1)


class SecretKeyRef(_Spec):
    """One key of a Kubernetes Secret (or ConfigMap) that the pod reads into an env var."""

    name: str
    key: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_label(value, "Secret/ConfigMap name")


class EnvironmentOverride(_Spec):
    """What an overlay (dev, staging, prod) changes on top of the base spec."""

    namespace: str | None = None
    replicas: int | None = Field(None, ge=0, le=1000)
    min_replicas: int | None = Field(None, ge=1, le=1000)
    max_replicas: int | None = Field(None, ge=1, le=1000)
    resources: Resources | None = None
    image_tag: str | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else check_label(value, "namespace")

    @model_validator(mode="after")
    def _min_below_max(self) -> Self:
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


#: Dev is small and cheap, staging is a scaled-down prod, prod is the base spec itself.
DEFAULT_ENVIRONMENTS: dict[str, EnvironmentOverride] = {
    "dev": EnvironmentOverride(
        replicas=1,
        min_replicas=1,
        max_replicas=2,
        resources=Resources(cpu_request="250m", cpu_limit="1", memory_request="512Mi"),
    ),
    "staging": EnvironmentOverride(replicas=2, min_replicas=2, max_replicas=4),
    "prod": EnvironmentOverride(),
}


class _Common(_Spec):
    name: str | None = None
    namespace: str = "default"
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    run_as_user: int = Field(10001, ge=1, description="Non-root UID of the container")
    labels: dict[str, str] = Field(default_factory=dict)
    environments: dict[str, EnvironmentOverride] = Field(
        default_factory=lambda: dict(DEFAULT_ENVIRONMENTS)
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra plain env vars")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_label(value)

    @field_validator("namespace")
    @classmethod
    def _ns(cls, value: str) -> str:
        return check_label(value, "namespace")

    @field_validator("environments")
    @classmethod
    def _envs(cls, value: dict[str, EnvironmentOverride]) -> dict[str, EnvironmentOverride]:
        for key in value:
            check_label(key, "environment name")
        return value

    def environment(self, env: str | None) -> Self:
        """This spec with environment ``env``'s overrides applied (``None``: the base)."""
        if env is None:
            return self
        override = self.environments.get(env)
        if override is None:
            raise InvalidArgumentError(
                f"Unknown environment {env!r}. Known: {', '.join(sorted(self.environments))}.",
                hint="Add it under environments: in the deployment spec.",
            )
        return self._apply(override, env)

    @abstractmethod
    def _apply(self, override: EnvironmentOverride, env: str) -> Self:
        """This spec with ``override`` (environment ``env``) applied; each target knows
        which of its fields an environment may change."""


class ModelDeploymentSpec(_Common):
    """A model server on Kubernetes, from a registered model.

    Example (YAML)::

        model: models:/churn@champion
        replicas: 3
        resources: {cpu_limit: "4", memory_limit: 8Gi, gpu: 1}
        accelerator: nvidia-tesla-t4
        autoscaling: {min_replicas: 2, max_replicas: 10, queue_length: 100}
    """

    model: str
    workspace: str | None = Field(None, description="Registry workspace of the model")
    flavor: str | None = Field(None, description="Model flavor; looked up in the registry")
    image: str = f"shipyard-model-server:{__version__}"
    replicas: int = Field(3, ge=0, le=1000)
    http_port: int = Field(8080, ge=1, le=65535)
    grpc_port: int | None = Field(8001, ge=1, le=65535)
    resources: Resources = Field(default_factory=Resources)
    accelerator: str | None = Field(None, description="GPU product label the nodes must have")
    accelerator_label: str = "nvidia.com/gpu.product"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] | None = None
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    probes: Probes = Field(default_factory=Probes)
    max_unavailable: int = Field(1, ge=0, description="PodDisruptionBudget maxUnavailable")
    model_source: Literal["registry", "pvc"] = "registry"
    pvc_claim: str | None = Field(None, description="PVC caching models (model_source: pvc)")
    registry_url: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="shipyard-registry", key="url"),
        description="ConfigMap key holding the platform URL",
    )
    registry_token: SecretKeyRef | None = Field(
        default_factory=lambda: SecretKeyRef(name="shipyard-registry-token", key="token"),
        description="Secret key holding the token the server sends to the platform",
    )
    jwt_secret: SecretKeyRef | None = Field(
        default_factory=lambda: SecretKeyRef(name="shipyard-jwt", key="secret"),
        description="The platform's token signing secret, so the server verifies its tokens",
    )
    env_from_secrets: list[str] = Field(
        default_factory=list, description="Secrets exported whole (e.g. object-store keys)"
    )
    workers: int = Field(1, ge=1, le=64)
    service_monitor: bool = True
    prometheus_rule: bool = True
    scrape_interval: str = "15s"
    alert_thresholds: dict[str, float | str] = Field(
        default_factory=dict, description="shipyard.monitoring.alerts.AlertThresholds fields"
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value.startswith("models:/") or len(value) <= len("models:/"):
            raise ValueError(
                f"{value!r} is not a registry URI; use models:/<name>@<alias> "
                "or models:/<name>/<version>"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return check_image(value)

    @field_validator("alert_thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, float | str]) -> dict[str, float | str]:
        try:
            from shipyard.monitoring.alerts import AlertThresholds
        except ImportError:  # pragma: no cover - monitoring ships with shipyard
            return value
        try:
            AlertThresholds.of(**value)
        except InvalidArgumentError as exc:
            raise ValueError(str(exc).replace("\nHint: ", " ")) from None
        return value

    @field_validator("scrape_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration (e.g. 15s, 1m)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.model_source == "pvc" and not self.pvc_claim:
            raise ValueError("model_source is 'pvc' but pvc_claim is not set")
        if self.pvc_claim is not None:
            check_label(self.pvc_claim, "PVC name")
        if self.grpc_port == self.http_port:
            raise ValueError(f"grpc_port and http_port are both {self.http_port}")
        if self.accelerator and not self.resources.gpu:
            raise ValueError(
                f"accelerator {self.accelerator!r} is set but resources.gpu is 0; "
                "request at least one GPU"
            )
        if self.autoscaling.enabled and self.replicas > self.autoscaling.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) is above autoscaling.max_replicas "
                f"({self.autoscaling.max_replicas})"
            )
        return self

    @property
    def model_name(self) -> str:
        """The registered model's name, from ``models:/name@alias`` or ``models:/name/3``."""
        rest = self.model.removeprefix("models:/")
        if "@" in rest:
            return rest.rpartition("@")[0]
        return rest.rpartition("/")[0] or rest

    @property
    def app_name(self) -> str:
        """Name of every rendered object: ``name`` or the model name as a DNS label."""
        return self.name or dns_name(self.model_name, max_length=50)

    def _apply(self, override: EnvironmentOverride, env: str) -> Self:
        changes: dict[str, Any] = {}
        if override.namespace:
            changes["namespace"] = override.namespace
        if override.replicas is not None:
            changes["replicas"] = override.replicas
        if override.resources is not None:
            changes["resources"] = override.resources.model_copy(update={"gpu": self.resources.gpu})
        if override.image_tag:
            changes["image"] = _retag(self.image, override.image_tag)
        scaling: dict[str, Any] = {}
        if override.min_replicas is not None:
            scaling["min_replicas"] = override.min_replicas
        if override.max_replicas is not None:
            scaling["max_replicas"] = override.max_replicas
        if scaling:
            changes["autoscaling"] = self.autoscaling.model_copy(update=scaling)
        return _revalidate(self, changes, env)


class Ingress(_Spec):
    """How the platform server is reached from outside the cluster."""

    host: str = "shipyard.example.com"
    class_name: str = "nginx"
    tls_secret: str | None = "shipyard-tls"
    annotations: dict[str, str] = Field(default_factory=dict)


class PlatformSpec(_Common):
    """The platform server on Kubernetes, with external PostgreSQL and object storage."""

    image: str = f"shipyard-platform:{__version__}"
    replicas: int = Field(2, ge=0, le=100)
    port: int = Field(5005, ge=1, le=65535)
    workers: int = Field(2, ge=1, le=64)
    resources: Resources = Field(
        default_factory=lambda: Resources(
            cpu_request="500m", cpu_limit="2", memory_request="1Gi", memory_limit="2Gi"
        )
    )
    database_url: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="shipyard-database", key="url")
    )
    artifacts_url: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="shipyard-object-storage", key="url")
    )
    object_storage_secret: str | None = Field(
        "shipyard-object-storage", description="Secret with AWS_* keys, exported whole"
    )
    jwt_secret: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="shipyard-jwt", key="secret")
    )
    ingress: Ingress | None = Field(default_factory=Ingress)
    max_unavailable: int = Field(1, ge=0)
    probes: Probes = Field(default_factory=lambda: Probes(startup_failure_threshold=30))

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return check_image(value)

    @property
    def app_name(self) -> str:
        return self.name or "shipyard-platform"

    def _apply(self, override: EnvironmentOverride, env: str) -> Self:
        changes: dict[str, Any] = {}
        if override.namespace:
            changes["namespace"] = override.namespace
        if override.replicas is not None:
            changes["replicas"] = override.replicas
        if override.resources is not None:
            changes["resources"] = override.resources
        if override.image_tag:
            changes["image"] = _retag(self.image, override.image_tag)
        return _revalidate(self, changes, env)


def _retag(image: str, tag: str) -> str:
    repo = image.split("@", 1)[0]
    head, _, tail = repo.rpartition("/")
    tail = tail.split(":", 1)[0]
    return f"{head}/{tail}:{tag}" if head else f"{tail}:{tag}"


def _revalidate(spec: SpecT, changes: dict[str, Any], env: str) -> SpecT:
    data = spec.model_dump(mode="python")
    data.update({k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in changes.items()})
    return _validated(type(spec), data, source=f"environment '{env}'")


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(spec)"


def _validated(cls: type[SpecT], data: Any, *, source: str) -> SpecT:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            reason = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown field"
            problems.append(f"{_field_path(err['loc'])}: {reason}")
        raise InvalidArgumentError(
            f"Invalid {cls.__name__} ({source}): " + "; ".join(problems) + ".",
            hint="Fix the field named above; `shipyard deploy render --help` lists the options.",
        ) from exc


def load_spec(source: str | Path | dict[str, Any], cls: type[SpecT]) -> SpecT:
    """Read and validate a spec from a YAML file, a Python file defining ``spec``, or a dict.

    Raises:
        InvalidArgumentError: the file is missing or unreadable, or a field is invalid (the
            message names each bad field and why).
    """
    if isinstance(source, dict):
        return _validated(cls, source, source="dict")
    path = Path(source)
    if not path.is_file():
        raise InvalidArgumentError(f"Deployment spec file '{path}' does not exist.")
    if path.suffix == ".py":
        spec = runpy.run_path(str(path)).get("spec")
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, dict):
            return _validated(cls, spec, source=str(path))
        raise InvalidArgumentError(
            f"'{path}' defines no `spec` of type {cls.__name__}.",
            hint=f"Assign spec = {cls.__name__}(...) at the top level of the file.",
        )
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(f"Deployment spec '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgumentError(
            f"Deployment spec '{path}' must be a YAML mapping of fields, got {type(data).__name__}."
        )
    return _validated(cls, data, source=str(path))


def build_spec(cls: type[SpecT], **fields: Any) -> SpecT:
    """``cls(**fields)`` with the same field-and-reason errors as :func:`load_spec`."""
    return _validated(cls, fields, source="arguments")
