"""Write manifests as a kustomize tree: ``base/`` plus one overlay per environment.

Each overlay holds exactly the difference between the base and that environment's
rendering, as JSON 6902 patch files (one ``replace``/``add``/``remove`` per changed field,
``patch-<kind>-<name>.yaml``), so
``kubectl kustomize overlays/prod`` yields the same objects as rendering the spec for prod.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from shipyard.deploy.k8s import Manifest

__all__ = ["dump_yaml", "json_patch", "write_kustomize", "write_manifests"]

KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}


def dump_yaml(objects: Sequence[Manifest]) -> str:
    """Objects as a multi-document YAML stream, keys in the order they were built."""
    return yaml.safe_dump_all(list(objects), sort_keys=False, default_flow_style=False)


def _file_name(obj: Manifest, taken: set[str]) -> str:
    base = str(obj["kind"]).lower()
    name = f"{base}.yaml"
    if name in taken:
        name = f"{base}-{obj['metadata']['name']}.yaml"
    taken.add(name)
    return name


def write_manifests(objects: Sequence[Manifest], folder: Path) -> list[Path]:
    """One ``<kind>.yaml`` per object plus a ``kustomization.yaml`` listing them."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    written = []
    for obj in objects:
        path = folder / _file_name(obj, taken)
        path.write_text(dump_yaml([obj]), encoding="utf-8")
        written.append(path)
    kustomization = {**KUSTOMIZATION, "resources": [p.name for p in written]}
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8"
    )
    return [*written, folder / "kustomization.yaml"]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``old`` into ``new``.

    Dicts are compared key by key and lists of equal length element by element, so a
    changed CPU limit is one ``replace`` of that field; a list whose length changed is
    replaced whole.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": f"{path}/{_escape(key)}"})
        for key, value in new.items():
            child = f"{path}/{_escape(key)}"
            if key not in old:
                ops.append({"op": "add", "path": child, "value": value})
            else:
                ops += json_patch(old[key], value, child)
        return ops
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        ops = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            ops += json_patch(a, b, f"{path}/{index}")
        return ops
    if old == new and type(old) is type(new):
        return []
    return [{"op": "replace", "path": path or "/", "value": new}]


def _key(obj: Manifest) -> tuple[str, str]:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def _overlay(
    base: Sequence[Manifest], env_objects: Sequence[Manifest], namespace: str | None
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The overlay's kustomization and its patch files (``{file name: operations}``)."""
    kustomization: dict[str, Any] = {**KUSTOMIZATION, "resources": ["../../base"]}
    if namespace:
        kustomization["namespace"] = namespace
    by_key = {_key(o): o for o in base}
    patches, files = [], {}
    for obj in env_objects:
        old = copy.deepcopy(by_key[_key(obj)])
        if namespace:
            old["metadata"]["namespace"] = namespace
        ops = json_patch(old, obj)
        if ops:
            kind, name = _key(obj)
            file_name = f"patch-{kind.lower()}-{name}.yaml"
            files[file_name] = ops
            patches.append({"path": file_name, "target": {"kind": kind, "name": name}})
    if patches:
        kustomization["patches"] = patches
    return kustomization, files


def write_kustomize(
    base: Sequence[Manifest],
    environments: dict[str, tuple[Sequence[Manifest], str | None]],
    out: Path,
) -> list[Path]:
    """Write ``out/base`` and ``out/overlays/<env>`` for each environment.

    Args:
        base: the objects rendered from the base spec.
        environments: ``{env: (objects rendered for env, namespace override or None)}``;
            each must hold the same (kind, name) objects as ``base``.
        out: the folder to write into (created when missing).
    """
    written = write_manifests(base, out / "base")
    base_keys = sorted(_key(o) for o in base)
    for env, (objects, namespace) in sorted(environments.items()):
        if sorted(_key(o) for o in objects) != base_keys:
            raise ValueError(f"environment {env!r} renders other objects than the base")
        folder = out / "overlays" / env
        folder.mkdir(parents=True, exist_ok=True)
        kustomization, patch_files = _overlay(base, objects, namespace)
        for file_name, ops in patch_files.items():
            path = folder / file_name
            path.write_text(yaml.safe_dump(ops, sort_keys=False), encoding="utf-8")
            written.append(path)
        path = folder / "kustomization.yaml"
        path.write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written
