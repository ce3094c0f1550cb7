"""Kubernetes manifests for a model server: Deployment, Service, HPA, PDB and monitoring.

Every function builds plain dicts (the objects as the API server sees them); writing YAML
is a separate, thin step in :mod:`shipyard.deploy.kustomize`. The container runs
``shipyard serve models:/name@alias``, so a pod fetches the model from the registry when
it starts (or reuses the copy in a PVC cache) and no model is baked into the image.
"""

from __future__ import annotations

import logging
from typing import Any

from shipyard.deploy.spec import ModelDeploymentSpec, Probes, Resources, dns_name

__all__ = [
    "HOME_DIR",
    "Manifest",
    "container_security_context",
    "labels_for",
    "pod_security_context",
    "render_model_server",
    "resources_for",
]

logger = logging.getLogger(__name__)

Manifest = dict[str, Any]

#: SHIPYARD_HOME inside the container: a writable volume, since the root filesystem is not.
HOME_DIR = "/var/lib/shipyard"
#: Where the model cache lives under SHIPYARD_HOME (``cache/models/<manifest sha256>``).
CACHE_DIR = f"{HOME_DIR}/cache"


def labels_for(name: str, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The recommended ``app.kubernetes.io`` labels every object of one app carries."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "shipyard",
        "app.kubernetes.io/managed-by": "shipyard",
    }
    labels.update(extra or {})
    return labels


def selector_for(name: str, component: str) -> dict[str, str]:
    """The immutable subset of :func:`labels_for` used as selector."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def resources_for(resources: Resources) -> dict[str, Any]:
    """Requests and limits; GPUs are an extended resource, so request equals limit."""
    requests: dict[str, Any] = {"cpu": resources.cpu_request, "memory": resources.memory_request}
    limits: dict[str, Any] = {"cpu": resources.cpu_limit, "memory": resources.memory_limit}
    if resources.gpu:
        requests["nvidia.com/gpu"] = resources.gpu
        limits["nvidia.com/gpu"] = resources.gpu
    return {"requests": requests, "limits": limits}


def pod_security_context(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def probes_for(probes: Probes, port: str, ready: str, live: str) -> dict[str, Any]:
    """Startup, readiness and liveness probes; liveness only counts once startup succeeded."""

    def http(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": probes.timeout_seconds,
        }

    return {
        "startupProbe": http(
            ready, probes.startup_period_seconds, probes.startup_failure_threshold
        ),
        "readinessProbe": http(
            ready, probes.readiness_period_seconds, probes.readiness_failure_threshold
        ),
        "livenessProbe": http(
            live, probes.liveness_period_seconds, probes.liveness_failure_threshold
        ),
    }


def _metadata(spec: ModelDeploymentSpec, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": spec.app_name, "namespace": spec.namespace, "labels": dict(labels)}


def _env(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": "SHIPYARD_URL",
            "valueFrom": {
                "configMapKeyRef": {"name": spec.registry_url.name, "key": spec.registry_url.key}
            },
        }
    ]
    if spec.registry_token is not None:
        env.append(
            {
                "name": "SHIPYARD_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": spec.registry_token.name,
                        "key": spec.registry_token.key,
                    }
                },
            }
        )
    if spec.jwt_secret is not None:
        env.append(
            {
                "name": "SHIPYARD_JWT_SECRET",
                "valueFrom": {
                    "secretKeyRef": {"name": spec.jwt_secret.name, "key": spec.jwt_secret.key}
                },
            }
        )
    env += [
        {"name": "SHIPYARD_HOME", "value": HOME_DIR},
        {"name": "TMPDIR", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    return env


def _container(spec: ModelDeploymentSpec) -> dict[str, Any]:
    args = [
        "serve",
        spec.model,
        "--host",
        "0.0.0.0",
        "--port",
        str(spec.http_port),
        "--workers",
        str(spec.workers),
    ]
    if spec.workspace:
        args += ["--workspace", spec.workspace]
    ports = [{"name": "http", "containerPort": spec.http_port, "protocol": "TCP"}]
    if spec.grpc_port is not None:
        args += ["--grpc-port", str(spec.grpc_port)]
        ports.append({"name": "grpc", "containerPort": spec.grpc_port, "protocol": "TCP"})
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "shipyard-home", "mountPath": HOME_DIR},
    ]
    if spec.model_source == "pvc":
        mounts.append({"name": "model-cache", "mountPath": CACHE_DIR})
    container: dict[str, Any] = {
        "name": "model-server",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["shipyard"],
        "args": args,
        "ports": ports,
        "env": _env(spec),
        "resources": resources_for(spec.resources),
        **probes_for(spec.probes, "http", "/v2/health/ready", "/v2/health/live"),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    if spec.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in spec.env_from_secrets]
    return container


def _volumes(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        # Registry mode downloads the model here at start; the size bounds a runaway cache.
        {"name": "shipyard-home", "emptyDir": {"sizeLimit": "10Gi"}},
    ]
    if spec.model_source == "pvc":
        volumes.append(
            {"name": "model-cache", "persistentVolumeClaim": {"claimName": spec.pvc_claim}}
        )
    return volumes


def _scheduling(spec: ModelDeploymentSpec, selector: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node_selector = dict(spec.node_selector)
    if spec.accelerator:
        node_selector[spec.accelerator_label] = spec.accelerator
    if node_selector:
        out["nodeSelector"] = node_selector
    tolerations = spec.tolerations
    if tolerations is None:
        # GPU node pools are tainted nvidia.com/gpu:NoSchedule by the common installers.
        tolerations = [] if not spec.resources.gpu else _gpu_tolerations()
    if tolerations:
        out["tolerations"] = [t.to_k8s() for t in tolerations]
    out["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
    ]
    return out


def _gpu_tolerations() -> list[Any]:
    from shipyard.deploy.spec import Toleration

    return [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]


def deployment(spec: ModelDeploymentSpec) -> Manifest:
    """The model-server Deployment: rolling update that never drops below ``replicas``."""
    name = spec.app_name
    labels = labels_for(name, "model-server", {**spec.labels, "shipyard.dev/model": _model(spec)})
    selector = selector_for(name, "model-server")
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(spec.run_as_user),
        "terminationGracePeriodSeconds": 30,
        "containers": [_container(spec)],
        "volumes": _volumes(spec),
        **_scheduling(spec, selector),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_metadata(spec, labels),
            "annotations": {"shipyard.dev/model-uri": spec.model},
        },
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(spec.http_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }


def _model(spec: ModelDeploymentSpec) -> str:
    return dns_name(spec.model_name)


def service(spec: ModelDeploymentSpec) -> Manifest:
    """A ClusterIP Service with the ``http`` (OIP REST, /metrics) and ``grpc`` ports."""
    name = spec.app_name
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": spec.http_port, "targetPort": "http", "protocol": "TCP"}
    ]
    if spec.grpc_port is not None:
        ports.append(
            {
                "name": "grpc",
                "port": spec.grpc_port,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "grpc",
            }
        )
    labels = labels_for(name, "model-server", spec.labels)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_for(name, "model-server"),
            "ports": ports,
        },
    }


def horizontal_pod_autoscaler(spec: ModelDeploymentSpec) -> Manifest:
    """autoscaling/v2 HPA on CPU utilisation and the per-pod ``inference_queue_length``."""
    scaling = spec.autoscaling
    metrics: list[dict[str, Any]] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": scaling.cpu_utilization},
            },
        }
    ]
    if scaling.queue_length is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "inference_queue_length"},
                    "target": {"type": "AverageValue", "averageValue": str(scaling.queue_length)},
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec, labels_for(spec.app_name, "model-server", spec.labels)),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": spec.app_name,
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": metrics,
            "behavior": {
                "scaleUp": scaling.scale_up.to_k8s(),
                "scaleDown": scaling.scale_down.to_k8s(),
            },
        },
    }


def pod_disruption_budget(
    name: str, namespace: str, component: str, max_unavailable: int, labels: dict[str, str]
) -> Manifest:
    """policy/v1 PDB: node drains take at most ``max_unavailable`` pods at once."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels_for(name, component, labels),
        },
        "spec": {
            "maxUnavailable": max_unavailable,
            "selector": {"matchLabels": selector_for(name, component)},
        },
    }


def registry_config_map(spec: ModelDeploymentSpec, url: str) -> Manifest:
    """The ConfigMap holding the platform (registry) URL the model server reads at start."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": spec.registry_url.name,
            "namespace": spec.namespace,
            "labels": labels_for(spec.registry_url.name, "config", spec.labels),
        },
        "data": {spec.registry_url.key: url},
    }


def _monitoring(spec: ModelDeploymentSpec) -> list[Manifest]:
    """ServiceMonitor and PrometheusRule, built by :mod:`shipyard.monitoring`."""
    out: list[Manifest] = []
    selector = selector_for(spec.app_name, "model-server")
    if spec.service_monitor:
        try:
            from shipyard.monitoring.dashboards import service_monitor
        except ImportError:
            logger.warning("shipyard.monitoring.dashboards is missing: no ServiceMonitor rendered")
        else:
            monitor = service_monitor(
                spec.model_name, spec.namespace, port_name="http", interval=spec.scrape_interval
            )
            monitor["metadata"]["name"] = spec.app_name
            monitor["metadata"]["namespace"] = spec.namespace
            monitor["metadata"].setdefault("labels", {}).update(
                labels_for(spec.app_name, "model-server", spec.labels)
            )
            # Select exactly the Service rendered here, whatever labels monitoring assumed;
            # without a namespaceSelector it looks in its own namespace, which overlays move.
            monitor["spec"]["selector"] = {"matchLabels": selector}
            monitor["spec"].pop("namespaceSelector", None)
            out.append(monitor)
    if spec.prometheus_rule:
        try:
            from shipyard.monitoring.alerts import prometheus_rule
        except ImportError:
            logger.warning("shipyard.monitoring.alerts is missing: no PrometheusRule rendered")
        else:
            thresholds = dict(spec.alert_thresholds)
            # The request counter has no model label: scope it to this Service's pods (the
            # Prometheus Operator names the job after the Service).
            thresholds.setdefault(
                "requests_selector", f'job="{spec.app_name}",namespace="{spec.namespace}"'
            )
            rule = prometheus_rule(spec.model_name, spec.namespace, **thresholds)
            rule["metadata"]["name"] = spec.app_name
            rule["metadata"]["namespace"] = spec.namespace
            rule["metadata"].setdefault("labels", {}).update(
                labels_for(spec.app_name, "model-server", spec.labels)
            )
            out.append(rule)
    return out


def render_model_server(
    spec: ModelDeploymentSpec, *, registry_url: str | None = None
) -> list[Manifest]:
    """Every object a model server needs, in apply order.

    Args:
        spec: the deployment spec (already resolved for an environment, if any).
        registry_url: when given, also render the ConfigMap holding it; otherwise the
            ConfigMap named by ``spec.registry_url`` must exist in the namespace.
    """
    objects: list[Manifest] = []
    if registry_url:
        objects.append(registry_config_map(spec, registry_url))
    objects += [deployment(spec), service(spec)]
    if spec.autoscaling.enabled:
        objects.append(horizontal_pod_autoscaler(spec))
    objects.append(
        pod_disruption_budget(
            spec.app_name, spec.namespace, "model-server", spec.max_unavailable, spec.labels
        )
    )
    objects += _monitoring(spec)
    return objects
