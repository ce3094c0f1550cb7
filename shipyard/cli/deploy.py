"""``shipyard deploy``: render, diff and apply deployment artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli._common import console, err_console

if TYPE_CHECKING:
    from shipyard.deploy.k8s import Manifest

app = typer.Typer(no_args_is_help=True)

UriArg = Annotated[
    str | None,
    typer.Argument(help="Registered model, models:/name@alias (not for k8s-platform)."),
]
TargetOption = Annotated[str, typer.Option("--target", "-t", help="k8s | k8s-platform | triton.")]
EnvOption = Annotated[
    str | None, typer.Option("--env", "-e", help="Environment overlay: dev, staging, prod...")
]
SpecOption = Annotated[
    Path | None, typer.Option("--spec", "-f", help="Deployment spec (YAML, or .py with `spec`).")
]
NamespaceOption = Annotated[str | None, typer.Option(help="Kubernetes namespace.")]
ImageOption = Annotated[str | None, typer.Option(help="Container image (pinned tag).")]
ContextOption = Annotated[str | None, typer.Option(help="kubeconfig context.")]


def _spec(
    target: str,
    uri: str | None,
    spec_file: Path | None,
    overrides: dict[str, Any],
) -> Any:
    from shipyard.deploy.render import TARGETS
    from shipyard.deploy.spec import ModelDeploymentSpec, PlatformSpec, load_spec
    from shipyard.errors import InvalidArgumentError

    if target not in TARGETS:
        raise InvalidArgumentError(
            f"Unknown target {target!r}. Supported: {', '.join(TARGETS)}.",
        )
    cls: type[Any] = PlatformSpec if target == "k8s-platform" else ModelDeploymentSpec
    data: dict[str, Any] = {}
    if spec_file is not None:
        data = load_spec(spec_file, cls).model_dump(exclude_unset=True)
    if cls is ModelDeploymentSpec:
        if uri:
            data["model"] = uri
        if "model" not in data:
            raise InvalidArgumentError(
                f"--target {target} needs a model.",
                hint="Pass models:/name@alias, or set model: in the spec file.",
            )
    elif uri:
        raise InvalidArgumentError(
            "--target k8s-platform deploys the platform server and takes no model URI."
        )
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "gpu":
            data["resources"] = {**data.get("resources", {}), "gpu": value}
        else:
            data[key] = value
    return load_spec(data, cls)


@app.command("render")
def render(
    uri: UriArg = None,
    target: TargetOption = "k8s",
    env: EnvOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path(
        "deploy"
    ),
    spec_file: SpecOption = None,
    namespace: NamespaceOption = None,
    image: ImageOption = None,
    replicas: Annotated[int | None, typer.Option(min=0, help="Replicas.")] = None,
    gpus: Annotated[int | None, typer.Option(min=0, help="GPUs per replica.")] = None,
    registry_url: Annotated[
        str | None, typer.Option(help="Platform URL; also renders its ConfigMap.")
    ] = None,
    flavor: Annotated[
        str | None, typer.Option(help="Model flavor (skips the registry lookup).")
    ] = None,
    max_batch_size: Annotated[int, typer.Option(min=0, help="Triton max_batch_size.")] = 64,
) -> None:
    """Render manifests (k8s, k8s-platform) or a Triton model repository (triton)."""
    from shipyard.deploy import render as rendering

    if target == "triton":
        if not uri:
            from shipyard.errors import InvalidArgumentError

            raise InvalidArgumentError("--target triton needs a model URI (models:/name@alias).")
        result = rendering.render_triton(uri, out, gpu=bool(gpus), max_batch_size=max_batch_size)
        export = result.triton
        assert export is not None
        console.print(
            f"Exported [bold]{export.name}[/bold] version {export.version} to {export.model_dir} "
            f"({export.float_type} inputs, max difference {export.max_abs_diff:.2g} "
            "from the original model)."
        )
    else:
        overrides = {
            "namespace": namespace,
            "image": image,
            "replicas": replicas,
            "gpu": gpus if target == "k8s" else None,
            "flavor": flavor if target == "k8s" else None,
        }
        spec = _spec(target, uri, spec_file, overrides)
        if target == "k8s":
            result = rendering.render_k8s(spec, out, env=env, registry_url=registry_url)
        else:
            result = rendering.render_platform_tree(spec, out, env=env)
    for path in result.files:
        console.print(f"  wrote {path}")


def _objects(
    target: str, uri: str | None, env: str | None, spec_file: Path | None, namespace: str | None
) -> list[Manifest]:
    from shipyard.deploy.k8s import render_model_server
    from shipyard.deploy.platform import render_platform

    spec = _spec(target, uri, spec_file, {"namespace": namespace}).environment(env)
    if target == "k8s-platform":
        return render_platform(spec)
    return render_model_server(spec)


@app.command("diff")
def diff(
    uri: UriArg = None,
    target: TargetOption = "k8s",
    env: EnvOption = None,
    spec_file: SpecOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    live: Annotated[
        Path | None,
        typer.Option(
            help="Compare with objects saved by `kubectl get -o yaml` instead of a cluster "
            "(merged locally, approximately as the server would)."
        ),
    ] = None,
) -> None:
    """Show what `apply` would change, as `kubectl diff` does (exit 1 when it would)."""
    from shipyard.deploy.cluster import Cluster, diff_offline

    objects = _objects(target, uri, env, spec_file, namespace)
    if live is not None:
        text = diff_offline(objects, _read_live(live))
    else:
        text = Cluster.from_kubeconfig(context).diff(objects)
    if text:
        typer.echo(text, nl=False)
        raise typer.Exit(1)
    err_console.print("[dim]No changes.[/dim]")


def _read_live(path: Path) -> list[Manifest]:
    """Objects from a YAML stream; ``kind: List`` documents (kubectl get) are flattened."""
    import yaml

    from shipyard.errors import InvalidArgumentError

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgumentError(f"Cannot read live objects from '{path}': {exc}") from exc
    objects: list[Manifest] = []
    for doc in docs:
        objects += doc.get("items", []) if doc.get("kind") == "List" else [doc]
    return objects


@app.command("apply")
def apply(
    uri: UriArg = None,
    target: TargetOption = "k8s",
    env: EnvOption = None,
    spec_file: SpecOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    dry_run: Annotated[bool, typer.Option(help="Server-side dry run only.")] = False,
) -> None:
    """Server-side apply the rendered objects (field manager `shipyard`)."""
    from shipyard.deploy.cluster import Cluster

    objects = _objects(target, uri, env, spec_file, namespace)
    cluster = Cluster.from_kubeconfig(context)
    for obj in objects:
        cluster.apply(obj, dry_run=dry_run)
        suffix = " (server dry run)" if dry_run else ""
        console.print(f"{obj['kind'].lower()}/{obj['metadata']['name']} serverside-applied{suffix}")


@app.command("validate")
def validate(
    folder: Annotated[Path, typer.Argument(help="What `shipyard deploy render` wrote.")],
    kubernetes_version: Annotated[
        str | None, typer.Option(help="Kubernetes version (default: newest known).")
    ] = None,
) -> None:
    """Build each overlay with kubectl kustomize, validate every object against the
    Kubernetes schemas and parse Triton configs (exit 1 on any problem)."""
    from shipyard.deploy.validate import validate_rendered

    report = validate_rendered(folder, version=kubernetes_version)
    # Plain lines (no wrapping): the output is read by people and by grep alike.
    for line in report.checked:
        typer.echo(f"ok       {line}")
    for line in report.skipped:
        typer.echo(f"skipped  {line}")
    for line in report.problems:
        typer.echo(f"invalid  {line}", err=True)
    if not report.ok:
        raise typer.Exit(1)
