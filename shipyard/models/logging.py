"""Log a model to a run (and the registry), and load one back from any model URI.

``shipyard.log_model(model, "model", registered_model_name="production_model")`` is the
counterpart of ``mlflow.sklearn.log_model(model, "model", registered_model_name=...)``:
one function for every flavor, detected from the model's type. ``load(uri)`` accepts

- ``models:/name@alias``, ``models:/name@latest``, ``models:/name/3``
- ``runs:/<run_id>/<artifact_path>``
- ``file:///path/to/model`` or a local folder.

A model stored under a ``file://`` artifact root is read in place; any other is
downloaded once into ``SHIPYARD_HOME/cache/models/<manifest_sha256>`` and reused, since
the manifest hash names its content. ``load_model`` then checks every file's sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from shipyard.errors import IntegrityError, InvalidArgumentError, ModelNotFoundError
from shipyard.models.manifest import MANIFEST_FILE as MANIFEST
from shipyard.models.manifest import manifest_sha256 as _manifest_sha256

if TYPE_CHECKING:
    from shipyard.client import Client
    from shipyard.registry.entities import ModelVersion

__all__ = ["ModelInfo", "load", "log_model", "resolve_model_dir"]


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`log_model` stored: where, which flavor, and the registered version.

    ``model_uri`` (``runs:/<run_id>/<artifact_path>``) loads it back with :func:`load`.
    """

    model_uri: str
    run_id: str
    artifact_path: str
    flavor: str
    manifest_sha256: str
    registered_model_name: str | None = None
    registered_model_version: int | None = None

    @property
    def registered_model_uri(self) -> str | None:
        """``models:/<name>/<version>`` when the model was registered."""
        if self.registered_model_name is None:
            return None
        return f"models:/{self.registered_model_name}/{self.registered_model_version}"


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_artifact_path(name: str) -> str:
    parts = name.strip("/").split("/") if name else []
    if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise InvalidArgumentError(
            f"Invalid model artifact path {name!r}.",
            hint="Use a relative path such as 'model' or 'models/classifier'.",
        )
    return "/".join(parts)


def log_model(
    model: Any,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    flavor: str | None = None,
    requirements: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    client: Client | None = None,
) -> ModelInfo:
    """Save ``model`` into a run's artifacts under ``name``; optionally register it.

    Example::

        with shipyard.start_run():
            info = shipyard.log_model(clf, "model", registered_model_name="production_model")
        shipyard.models.load(info.model_uri)

    Args:
        model: A fitted model of any registered flavor (sklearn, onnx, pyfunc, ...).
        name: Artifact path of the model folder in the run (``"model"``).
        registered_model_name: Register the logged model as a new version of this
            registered model, creating the model when missing.
        input_example: A few input rows, stored with the model; the signature is
            inferred from them when ``signature`` is not given.
        signature: Explicit input/output signature.
        flavor: Force a flavor instead of detecting it from the model's type.
        requirements: pip requirements; default the flavor's packages as installed.
        metadata: Free-form JSON-able metadata kept in the manifest.
        run_id: Log to this run instead of the active run (one is started if none).
        client: Client to use; default the active run's, else one from settings.

    Returns:
        A :class:`ModelInfo` with the model URI and, when registered, the version.
    """
    from shipyard.models import save_model
    from shipyard.tracking import fluent

    artifact_path = _check_artifact_path(name)
    if run_id is None:
        active = fluent._active_or_start()
        run_id = active.run_id
        client = client or active.client
    elif client is None:
        client = fluent._client()
    with tempfile.TemporaryDirectory(prefix="shipyard-model-") as tmp:
        folder = Path(tmp) / "model"
        manifest = save_model(
            model,
            folder,
            flavor=flavor,
            signature=signature,
            input_example=input_example,
            requirements=list(requirements) if requirements is not None else None,
            metadata=dict(metadata) if metadata is not None else None,
        )
        manifest_sha256 = _manifest_sha256(folder)
        client.artifacts.log_artifacts(run_id, folder, artifact_path)
    model_uri = f"runs:/{run_id}/{artifact_path}"
    flavor_name = str(manifest.flavor)
    version: ModelVersion | None = None
    if registered_model_name:
        client.get_or_create_registered_model(registered_model_name)
        version = client.create_model_version(
            registered_model_name,
            model_uri,
            run_id=run_id,
            flavor=flavor_name,
            manifest_sha256=manifest_sha256,
        )
    return ModelInfo(
        model_uri=model_uri,
        run_id=run_id,
        artifact_path=artifact_path,
        flavor=flavor_name,
        manifest_sha256=manifest_sha256,
        registered_model_name=registered_model_name if version else None,
        registered_model_version=version.version if version else None,
    )


def load(uri: str | os.PathLike[str], *, client: Client | None = None) -> Any:
    """Load a model from a model URI or folder, verifying every file's sha256.

    Example::

        model = shipyard.models.load("models:/quickstart@champion")
        model.predict(X)

    Args:
        uri: ``models:/name@alias``, ``models:/name@latest``, ``models:/name/<version>``,
            ``runs:/<run_id>/<path>``, ``file://...`` or a local folder.
        client: Client to resolve ``models:/`` and ``runs:/`` URIs; default one from
            settings.

    Returns:
        A ``PyFuncModel`` (``predict``, ``predict_proba`` when the model has it, ``raw``).

    Raises:
        ModelNotFoundError: the model, version or alias does not exist.
        IntegrityError: a file differs from what the manifest or registry recorded.
    """
    from shipyard.models import load_model

    folder, expected = _resolve(os.fspath(uri), client)
    return load_model(folder, expected_manifest_sha256=expected)


def resolve_model_dir(uri: str | os.PathLike[str], *, client: Client | None = None) -> Path:
    """The local folder holding the model ``uri`` names, downloading it when needed."""
    return _resolve(os.fspath(uri), client)[0]


def _resolve(text: str, client: Client | None) -> tuple[Path, str | None]:
    """The model's local folder, and the manifest sha256 the registry recorded for it."""
    if text.startswith("models:/"):
        client = client or _default_client()
        version = _resolve_version(client, text.removeprefix("models:/"), text)
        expected = version.manifest_sha256 or None
        return _source_dir(client, version.source, expected), expected
    if text.startswith("runs:/"):
        return _run_dir(client or _default_client(), text, None), None
    if text.startswith("file://"):
        return Path(url2pathname(urlparse(text).path)), None
    if "://" in text:
        return _url_dir(client or _default_client(), text, None), None
    path = Path(text).expanduser()
    if not path.exists():
        raise InvalidArgumentError(
            f"No model at '{text}': the folder does not exist.",
            hint="Pass models:/name@alias, models:/name/<version>, runs:/<run_id>/<path>, "
            "or a folder written by shipyard.models.save_model.",
        )
    return path, None


def _default_client() -> Client:
    from shipyard.tracking import fluent

    return fluent._client()


def _resolve_version(client: Client, spec: str, uri: str) -> ModelVersion:
    registry = client.registry
    if "@" in spec:
        name, _, alias = spec.rpartition("@")
        if alias == "latest":
            return _latest(client, name)
        return registry.get_version_by_alias(name, alias)
    name, _, version = spec.rpartition("/")
    if name and version == "latest":
        return _latest(client, name)
    if name and version.isdigit():
        return registry.get_model_version(name, int(version))
    raise InvalidArgumentError(
        f"Model URI '{uri}' names no version.",
        hint="Use models:/<name>@<alias>, models:/<name>@latest or models:/<name>/<version>.",
    )


def _latest(client: Client, name: str) -> ModelVersion:
    model = client.registry.get_registered_model(name)
    if model.latest_version is None:
        raise ModelNotFoundError(
            f"Registered model '{name}' has no versions yet.",
            hint="Log one with shipyard.log_model(model, registered_model_name=...).",
        )
    return client.registry.get_model_version(name, model.latest_version)


def _source_dir(client: Client, source: str, expected_sha256: str | None) -> Path:
    if source.startswith("runs:/"):
        return _run_dir(client, source, expected_sha256)
    if source.startswith("file://") and not client.is_remote:
        return _checked_in_place(Path(url2pathname(urlparse(source).path)), expected_sha256)
    return _url_dir(client, source, expected_sha256)


def _checked_in_place(folder: Path, expected_sha256: str | None) -> Path:
    if expected_sha256 and _sha256_file(folder / MANIFEST) != expected_sha256:
        raise IntegrityError(
            f"The model manifest in {folder} does not match the registered version "
            f"(expected sha256 {expected_sha256[:16]}...).",
            hint="The files were changed after registration; log and register the model again.",
        )
    return folder


def _split_runs_uri(uri: str) -> tuple[str, str]:
    run_id, _, path = uri.removeprefix("runs:/").partition("/")
    if not run_id or not path.strip("/"):
        raise InvalidArgumentError(
            f"Model URI '{uri}' is not runs:/<run_id>/<artifact_path>.",
            hint="Use the model_uri that shipyard.log_model returned, e.g. runs:/<id>/model.",
        )
    return run_id, path.strip("/")


def _run_dir(client: Client, uri: str, expected_sha256: str | None) -> Path:
    run_id, path = _split_runs_uri(uri)
    if not client.is_remote:
        artifact_uri = client.get_run(run_id).info.artifact_uri
        if artifact_uri.startswith("file://"):
            folder = Path(url2pathname(urlparse(artifact_uri).path)) / path
            if (folder / MANIFEST).is_file():
                return _checked_in_place(folder, expected_sha256)
    cache = _cache_root(client)
    if expected_sha256 and (cache / expected_sha256).is_dir():
        return cache / expected_sha256
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        manifest = client.artifacts.download_artifacts(run_id, f"{path}/{MANIFEST}", Path(tmp))
        sha = _sha256_file(_file_in(manifest, MANIFEST))
        _check_expected(uri, sha, expected_sha256)
        if (cache / sha).is_dir():
            return cache / sha
        folder = client.artifacts.download_artifacts(run_id, path, Path(tmp) / "model")
        return _publish(_model_root(folder), cache / sha)


def _url_dir(client: Client, url: str, expected_sha256: str | None) -> Path:
    """A model folder at an fsspec URL (s3://...), downloaded into the cache."""
    from shipyard.store.artifacts import ArtifactStore

    store, key = ArtifactStore.from_url(url)
    key = key.strip("/")
    sha = hashlib.sha256(store.read_bytes(f"{key}/{MANIFEST}" if key else MANIFEST)).hexdigest()
    _check_expected(url, sha, expected_sha256)
    cache = _cache_root(client)
    if (cache / sha).is_dir():
        return cache / sha
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        folder = store.get_dir(key, Path(tmp) / "model")
        return _publish(_model_root(folder), cache / sha)


def _cache_root(client: Client) -> Path:
    return client.settings.home / "cache" / "models"


def _check_expected(uri: str, sha: str, expected: str | None) -> None:
    if expected and sha != expected:
        raise IntegrityError(
            f"The model manifest at {uri} has sha256 {sha[:16]}..., but the registry "
            f"recorded {expected[:16]}....",
            hint="The stored model changed after registration; log and register it again.",
        )


def _file_in(path: Path, name: str) -> Path:
    """``download_artifacts`` may return the file itself or the folder it went into."""
    return path if path.is_file() else path / name


def _model_root(folder: Path) -> Path:
    if (folder / MANIFEST).is_file():
        return folder
    found = sorted(folder.rglob(MANIFEST), key=lambda p: len(p.parts))
    if not found:
        raise ModelNotFoundError(
            f"No {MANIFEST} in the downloaded model folder {folder}.",
            hint="Point the URI at a folder written by shipyard.log_model.",
        )
    return found[0].parent


def _publish(folder: Path, target: Path) -> Path:
    """Move a complete download into the cache; a rename is atomic, so a folder under
    its hash is always whole, and a concurrent download that lost the race is dropped."""
    staging = target.with_name(f".{target.name}-{uuid.uuid4().hex[:8]}")
    shutil.move(str(folder), staging)
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():
            raise
    return target
