"""One entry point per target: what ``shipyard deploy render`` writes.

``k8s``          base + overlays (kustomize) for a model server, its Dockerfile, and
                 with ``env`` the fully rendered ``<env>.yaml`` for that environment
``k8s-platform`` the same for the platform server
``triton``       a Triton model repository with the model exported to ONNX
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.deploy.dockerfiles import model_server_dockerfile, platform_dockerfile
from shipyard.deploy.k8s import Manifest, render_model_server
from shipyard.deploy.kustomize import dump_yaml, write_kustomize
from shipyard.deploy.platform import render_platform
from shipyard.deploy.spec import ModelDeploymentSpec, PlatformSpec
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.client import Client
    from shipyard.deploy.triton import TritonExport
    from shipyard.registry.entities import ModelVersion

__all__ = [
    "TARGETS",
    "RenderResult",
    "render_k8s",
    "render_platform_tree",
    "render_triton",
    "resolve_version",
]

TARGETS = ("k8s", "k8s-platform", "triton")
Target = Literal["k8s", "k8s-platform", "triton"]


@dataclass
class RenderResult:
    """The files a render wrote, and the objects for the selected environment."""

    files: list[Path] = field(default_factory=list)
    objects: list[Manifest] = field(default_factory=list)
    triton: TritonExport | None = None


def resolve_version(uri: str, client: Client | None = None) -> ModelVersion:
    """The registry version ``models:/name@alias`` (or ``/3``, ``@latest``) points at.

    Raises:
        ModelNotFoundError: the model, alias or version does not exist.
    """
    from shipyard.models.logging import _default_client, _resolve_version

    if not uri.startswith("models:/"):
        raise InvalidArgumentError(
            f"'{uri}' is not a registry URI.", hint="Use models:/<name>@<alias>."
        )
    client = client or _default_client()
    return _resolve_version(client, uri.removeprefix("models:/"), uri)


def _model_files(spec: ModelDeploymentSpec, client: Client | None) -> tuple[str | None, str | None]:
    """The model's flavor and the flavor library version, from the registry when needed."""
    if spec.flavor:
        return spec.flavor, None
    from shipyard.models.logging import _default_client, _source_dir

    client = client or _default_client()
    version = resolve_version(spec.model, client)
    flavor_version = None
    try:
        from shipyard.models.manifest import ModelManifest

        folder = _source_dir(client, version.source, version.manifest_sha256 or None)
        flavor_version = ModelManifest.read(folder).flavor_version or None
    except Exception:  # the pin is a nicety; the flavor alone still builds a working image
        flavor_version = None
    return version.flavor or None, flavor_version


def _environments(
    spec: Any, render: Any, **kwargs: Any
) -> dict[str, tuple[list[Manifest], str | None]]:
    return {
        env: (render(spec.environment(env), **kwargs), override.namespace)
        for env, override in spec.environments.items()
    }


def render_k8s(
    spec: ModelDeploymentSpec,
    out: Path,
    *,
    env: str | None = None,
    registry_url: str | None = None,
    client: Client | None = None,
) -> RenderResult:
    """Write the kustomize tree, the model-server Dockerfile and (with ``env``) ``<env>.yaml``.

    Raises:
        InvalidArgumentError: unknown environment, or an environment makes the spec invalid.
        ModelNotFoundError: the model URI resolves to nothing (when the flavor is looked up).
    """
    out = Path(out)
    # Everything that can fail (registry lookup, environment specs) runs before any write.
    flavor, flavor_version = _model_files(spec, client)
    base = render_model_server(spec, registry_url=registry_url)
    envs = _environments(spec, render_model_server, registry_url=registry_url)
    selected = render_model_server(spec.environment(env), registry_url=registry_url)
    result = RenderResult(files=write_kustomize(base, envs, out))
    docker = out / "docker" / "Dockerfile.model-server"
    docker.parent.mkdir(parents=True, exist_ok=True)
    docker.write_text(
        model_server_dockerfile(
            flavor,
            flavor_version=flavor_version,
            http_port=spec.http_port,
            grpc_port=spec.grpc_port,
            uid=spec.run_as_user,
        ),
        encoding="utf-8",
    )
    result.files.append(docker)
    result.objects = selected
    if env is not None:
        flat = out / f"{env}.yaml"
        flat.write_text(dump_yaml(result.objects), encoding="utf-8")
        result.files.append(flat)
    return result


def render_platform_tree(spec: PlatformSpec, out: Path, *, env: str | None = None) -> RenderResult:
    """Like :func:`render_k8s`, for the platform server (``--target k8s-platform``)."""
    out = Path(out)
    base = render_platform(spec)
    envs = _environments(spec, render_platform)
    selected = render_platform(spec.environment(env))
    result = RenderResult(files=write_kustomize(base, envs, out))
    docker = out / "docker" / "Dockerfile.platform"
    docker.parent.mkdir(parents=True, exist_ok=True)
    docker.write_text(platform_dockerfile(port=spec.port, uid=spec.run_as_user), encoding="utf-8")
    result.files.append(docker)
    result.objects = selected
    if env is not None:
        flat = out / f"{env}.yaml"
        flat.write_text(dump_yaml(result.objects), encoding="utf-8")
        result.files.append(flat)
    return result


def render_triton(
    uri: str,
    out: Path,
    *,
    name: str | None = None,
    gpu: bool = False,
    max_batch_size: int = 64,
    client: Client | None = None,
) -> RenderResult:
    """Export ``models:/name@alias`` as a Triton model repository under ``out``."""
    import shipyard.models
    from shipyard.deploy.triton import export_triton

    version = resolve_version(uri, client)
    model = shipyard.models.load(uri, client=client)
    export = export_triton(
        model,
        Path(out),
        name=name or version.name,
        version=version.version,
        max_batch_size=max_batch_size,
        instance_kind="KIND_GPU" if gpu else "KIND_CPU",
    )
    return RenderResult(files=[export.config_path, export.onnx_path], triton=export)
