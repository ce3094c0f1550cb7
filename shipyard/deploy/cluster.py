"""``shipyard deploy diff|apply``: compare with and apply to a cluster, the way kubectl does.

Apply is a server-side apply (``PATCH`` with ``application/apply-patch+yaml``, field
manager ``shipyard``) through the Kubernetes Python client, so the API server merges and
tracks field ownership exactly as for ``kubectl apply --server-side``. Diff asks the
server for the merged object with a dry-run apply and prints ``diff -u -N`` output with
kubectl's ``LIVE``/``MERGED`` file naming; with no cluster, :func:`merge_offline`
approximates the merged object from the live one.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from shipyard.deploy.k8s import Manifest
from shipyard.errors import BackendError, ConfigError, NotSupportedError

__all__ = [
    "FIELD_MANAGER",
    "ApplyRequest",
    "Cluster",
    "api_path",
    "apply_request",
    "diff_offline",
    "diff_text",
    "merge_offline",
]

FIELD_MANAGER = "shipyard"

#: kind -> (plural resource name, namespaced) for every kind Shipyard renders.
RESOURCES: dict[str, tuple[str, bool]] = {
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "ServiceAccount": ("serviceaccounts", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "Namespace": ("namespaces", False),
    "Deployment": ("deployments", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "Ingress": ("ingresses", True),
    "ServiceMonitor": ("servicemonitors", True),
    "PrometheusRule": ("prometheusrules", True),
}

#: Server-populated metadata that kubectl diff hides or that never differs meaningfully.
_VOLATILE = ("managedFields",)


def api_path(obj: Manifest, *, with_name: bool = True) -> str:
    """The REST path of ``obj`` (``/apis/apps/v1/namespaces/ns/deployments/name``).

    Raises:
        NotSupportedError: the kind is not one Shipyard renders.
    """
    kind = str(obj["kind"])
    if kind not in RESOURCES:
        raise NotSupportedError(
            f"Cannot apply kind {kind!r}: Shipyard only manages {', '.join(sorted(RESOURCES))}."
        )
    plural, namespaced = RESOURCES[kind]
    api_version = str(obj["apiVersion"])
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    meta = obj["metadata"]
    path = prefix
    if namespaced:
        path += f"/namespaces/{meta.get('namespace') or 'default'}"
    path += f"/{plural}"
    if with_name:
        path += f"/{meta['name']}"
    return path


@dataclass(frozen=True)
class ApplyRequest:
    """One HTTP request to the API server, built without talking to it."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: Manifest | None = None


def apply_request(
    obj: Manifest, *, field_manager: str = FIELD_MANAGER, force: bool = True, dry_run: bool = False
) -> ApplyRequest:
    """The server-side apply request for ``obj``.

    ``force`` takes over fields another manager (a ``kubectl edit``, an older tool) set, as
    ``kubectl apply --server-side --force-conflicts`` does; the spec is the source of truth.
    """
    query = [("fieldManager", field_manager)]
    if force:
        query.append(("force", "true"))
    if dry_run:
        query.append(("dryRun", "All"))
    return ApplyRequest(
        method="PATCH",
        path=api_path(obj),
        query=query,
        headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=obj,
    )


def _strip(obj: Manifest | None) -> Manifest | None:
    if obj is None:
        return None
    clean = copy.deepcopy(obj)
    meta = clean.get("metadata", {})
    for key in _VOLATILE:
        meta.pop(key, None)
    return clean


def merge_offline(live: Manifest | None, desired: Manifest) -> Manifest:
    """What the server would hold after applying ``desired`` over ``live``, approximately:
    maps merge key by key, every field ``desired`` sets wins, lists are replaced whole."""
    if live is None:
        return copy.deepcopy(desired)

    def merge(old: Any, new: Any) -> Any:
        if isinstance(old, dict) and isinstance(new, dict):
            out = copy.deepcopy(old)
            for key, value in new.items():
                out[key] = merge(old.get(key), value)
            return out
        return copy.deepcopy(new)

    return merge(live, desired)  # type: ignore[no-any-return]


def _file_name(obj: Manifest) -> str:
    """kubectl's name for an object in diff output: ``apps.v1.Deployment.ns.name``."""
    api_version = str(obj["apiVersion"]).replace("/", ".")
    meta = obj["metadata"]
    namespace = meta.get("namespace") or (
        "default" if RESOURCES.get(obj["kind"], ("", True))[1] else ""
    )
    parts = [api_version, str(obj["kind"])]
    if namespace:
        parts.append(namespace)
    parts.append(str(meta["name"]))
    return ".".join(parts)


def _yaml_lines(obj: Manifest | None) -> list[str]:
    if obj is None:
        return []
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines()


def diff_text(pairs: Iterable[tuple[Manifest | None, Manifest]]) -> str:
    """``diff -u -N`` text for (live, merged) pairs, one block per object that changes.

    An object missing from the cluster (``live`` None) diffs against an empty file, as
    ``kubectl diff`` shows a new object. Returns "" when nothing would change.
    """
    blocks = []
    for live, merged in pairs:
        name = _file_name(merged)
        before, after = _yaml_lines(_strip(live)), _yaml_lines(_strip(merged))
        if before == after:
            continue
        left, right = f"/tmp/LIVE/{name}", f"/tmp/MERGED/{name}"
        lines = [f"diff -u -N {left} {right}"]
        lines += difflib.unified_diff(before, after, left, right, lineterm="")
        blocks.append("\n".join(lines) + "\n")
    return "".join(blocks)


def diff_offline(objects: Sequence[Manifest], live: Sequence[Manifest]) -> str:
    """:func:`diff_text` against live objects given as data (e.g. ``kubectl get -o yaml``),
    each merged with :func:`merge_offline`; objects missing from ``live`` are new."""

    def key(obj: Manifest) -> tuple[str, str, str]:
        meta = obj.get("metadata", {})
        return str(obj.get("kind")), str(meta.get("namespace") or "default"), str(meta.get("name"))

    by_key = {key(obj): obj for obj in live}
    pairs = []
    for obj in objects:
        current = by_key.get(key(obj))
        pairs.append((current, merge_offline(current, obj)))
    return diff_text(pairs)


class Cluster:
    """A Kubernetes API server reached through the official Python client.

    Example::

        cluster = Cluster.from_kubeconfig(context="prod")
        print(cluster.diff(objects))
        cluster.apply(objects)
    """

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    @classmethod
    def from_kubeconfig(cls, context: str | None = None) -> Cluster:
        """Connect with ``~/.kube/config`` (or ``KUBECONFIG``), or the in-cluster account.

        Raises:
            ConfigError: the kubernetes package is missing or no configuration is found.
        """
        try:
            from kubernetes import client, config
        except ImportError as exc:
            raise ConfigError(
                "`shipyard deploy diff|apply` needs the kubernetes package.",
                hint='Run `pip install "shipyard[k8s]"`.',
            ) from exc
        try:
            config.load_kube_config(context=context)
        except Exception as kube_error:
            try:
                config.load_incluster_config()
            except Exception:
                raise ConfigError(
                    f"No Kubernetes configuration found: {kube_error}",
                    hint="Set KUBECONFIG or pass --context with a context from your kubeconfig.",
                ) from kube_error
        return cls(client.ApiClient())

    def send(self, request: ApplyRequest) -> Manifest | None:
        """Send ``request``; the decoded JSON body, or None for 404 Not Found.

        Raises:
            BackendError: the API server refused the request (the message is its reason).
        """
        from kubernetes.client.exceptions import ApiException

        api = self.api_client
        try:
            method, url, headers, body, post = api.param_serialize(
                request.method,
                request.path,
                query_params=list(request.query),
                header_params=dict(request.headers),
                body=request.body,
                auth_settings=["BearerToken"],
            )
            response = api.call_api(method, url, header_params=headers, body=body, post_params=post)
            response.read()
            if response.status >= 400:
                raise ApiException(http_resp=response)
            return json.loads(response.data or b"null")  # type: ignore[no-any-return]
        except ApiException as exc:
            if exc.status == 404 and request.method == "GET":
                return None
            reason = exc.reason
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                reason = json.loads(exc.body or "{}").get("message") or reason
            raise BackendError(
                f"Kubernetes refused {request.method} {request.path}: {exc.status} {reason}",
                hint="Check the namespace exists and your account may manage this kind "
                "(kubectl auth can-i patch <kind>).",
            ) from exc

    def get(self, obj: Manifest) -> Manifest | None:
        """The live object with ``obj``'s kind, namespace and name, or None."""
        return self.send(ApplyRequest(method="GET", path=api_path(obj)))

    def apply(self, obj: Manifest, *, dry_run: bool = False) -> Manifest:
        """Server-side apply ``obj``; returns the object as the server now holds it."""
        result = self.send(apply_request(obj, dry_run=dry_run))
        return result or {}

    def diff(self, objects: Sequence[Manifest]) -> str:
        """kubectl-style diff between the live objects and the result of applying ``objects``."""
        return diff_text((self.get(obj), self.apply(obj, dry_run=True)) for obj in objects)

    def apply_all(
        self, objects: Sequence[Manifest], on_applied: Callable[[Manifest], None] | None = None
    ) -> list[Manifest]:
        """Apply every object in order, calling ``on_applied`` with each server response."""
        results = []
        for obj in objects:
            result = self.apply(obj)
            results.append(result)
            if on_applied is not None:
                on_applied(result)
        return results
