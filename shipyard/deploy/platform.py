"""Kubernetes manifests for the platform server (``--target k8s-platform``).

The server is stateless: metadata lives in an external PostgreSQL and artifacts in object
storage, both reached through Secret references (never values in the manifests). Several
replicas share the JWT signing secret, so a token issued by one pod is valid on all.
"""

from __future__ import annotations

from typing import Any

from shipyard.deploy.k8s import (
    HOME_DIR,
    Manifest,
    container_security_context,
    labels_for,
    pod_disruption_budget,
    pod_security_context,
    probes_for,
    resources_for,
    selector_for,
)
from shipyard.deploy.spec import PlatformSpec, SecretKeyRef

__all__ = ["render_platform"]

COMPONENT = "platform-server"


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _container(spec: PlatformSpec) -> dict[str, Any]:
    env = [
        _secret_env("SHIPYARD_DB", spec.database_url),
        _secret_env("SHIPYARD_ARTIFACTS", spec.artifacts_url),
        _secret_env("SHIPYARD_JWT_SECRET", spec.jwt_secret),
        {"name": "SHIPYARD_AUTH", "value": "on"},
        {"name": "SHIPYARD_HOME", "value": HOME_DIR},
        {"name": "TMPDIR", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *({"name": k, "value": v} for k, v in sorted(spec.env.items())),
    ]
    container: dict[str, Any] = {
        "name": "platform-server",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["shipyard"],
        "args": [
            "server",
            "--host",
            "0.0.0.0",
            "--port",
            str(spec.port),
            "--workers",
            str(spec.workers),
        ],
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": env,
        "resources": resources_for(spec.resources),
        **probes_for(spec.probes, "http", "/health", "/health"),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shipyard-home", "mountPath": HOME_DIR},
        ],
    }
    if spec.object_storage_secret:
        container["envFrom"] = [{"secretRef": {"name": spec.object_storage_secret}}]
    return container


def _deployment(spec: PlatformSpec) -> Manifest:
    name = spec.app_name
    labels = labels_for(name, COMPONENT, spec.labels)
    selector = selector_for(name, COMPONENT)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 5,
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
                        "prometheus.io/port": str(spec.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(spec.run_as_user),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [_container(spec)],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "shipyard-home", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": dict(selector)},
                        }
                    ],
                },
            },
        },
    }


def _service(spec: PlatformSpec) -> Manifest:
    name = spec.app_name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": labels_for(name, COMPONENT, spec.labels),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_for(name, COMPONENT),
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _ingress(spec: PlatformSpec) -> Manifest:
    ingress = spec.ingress
    assert ingress is not None
    name = spec.app_name
    body: dict[str, Any] = {
        "ingressClassName": ingress.class_name,
        "rules": [
            {
                "host": ingress.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": name, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    if ingress.tls_secret:
        body["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls_secret}]
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": spec.namespace,
        "labels": labels_for(name, COMPONENT, spec.labels),
    }
    if ingress.annotations:
        metadata["annotations"] = dict(ingress.annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": body,
    }


def render_platform(spec: PlatformSpec) -> list[Manifest]:
    """Deployment, Service, PodDisruptionBudget and (unless disabled) Ingress."""
    objects = [_deployment(spec), _service(spec)]
    objects.append(
        pod_disruption_budget(
            spec.app_name, spec.namespace, COMPONENT, spec.max_unavailable, spec.labels
        )
    )
    if spec.ingress is not None:
        objects.append(_ingress(spec))
    return objects
