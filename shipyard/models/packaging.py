"""save_model and load_model: a model as a self-describing, hash-checked folder.

A saved folder holds the flavor's files, the input example, ``requirements.txt`` and
``shipyard-model.json`` (the manifest). It is written under a temporary name and renamed
into place, so a crash never leaves a half-saved model at ``path``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import ConflictError, IntegrityError, InvalidArgumentError
from shipyard.models.example import write_input_example
from shipyard.models.flavors import detect_flavor, get_flavor
from shipyard.models.manifest import (
    MANIFEST_FILE,
    ModelManifest,
    file_digest,
    manifest_sha256,
    verify_files,
)
from shipyard.models.pyfunc import PyFuncModel
from shipyard.models.requirements import infer_requirements
from shipyard.models.signature import ModelSignature, infer_schema

__all__ = ["load_model", "save_model"]

logger = logging.getLogger(__name__)

REQUIREMENTS_FILE = "requirements.txt"


def _signature(
    flavor_name: str,
    model: Any,
    config: dict[str, Any],
    given: ModelSignature | Mapping[str, Any] | None,
    native: ModelSignature | None,
    input_example: Any,
) -> ModelSignature | None:
    if isinstance(given, ModelSignature):
        return given
    if given is not None:
        try:
            return ModelSignature.from_dict(given)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"Invalid model signature {dict(given)!r}: {exc!r}.",
                hint='Use {"inputs": [{"name": ..., "dtype": ..., "shape": [...]}], '
                '"outputs": [...]}, or pass input_example= to infer it.',
            ) from exc
    if input_example is None:
        return native
    inputs = infer_schema(input_example)
    outputs: tuple[Any, ...] = ()
    try:
        loaded = get_flavor(flavor_name).wrap(model, config)
        prepared = ModelSignature(inputs=inputs).coerce(input_example)
        outputs = infer_schema(loaded.predict(prepared))
    except Exception as exc:  # the outputs are a nicety; never fail a save over them
        logger.warning("Could not infer the model's outputs from the input example: %s", exc)
    return ModelSignature(inputs=inputs, outputs=outputs)


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    data = dict(metadata or {})
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"Model metadata must be JSON-serializable: {exc}.",
            hint="Use str, int, float, bool, None, lists and dicts with str keys.",
        ) from exc
    return data


def _prepare_target(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConflictError(
            f"Cannot save the model to '{path}': it already exists and is not empty.",
            hint="Choose a new path, or delete the old model first.",
        )


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    flavor: str | None = None,
    signature: ModelSignature | Mapping[str, Any] | None = None,
    input_example: Any = None,
    requirements: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ModelManifest:
    """Save ``model`` as a folder at ``path`` and return its manifest.

    Args:
        model: a scikit-learn estimator, ONNX ModelProto (or bytes), object with
            ``predict``, xgboost/lightgbm model or torch module.
        path: folder to create; it must not exist or be empty.
        flavor: flavor name; detected from the model's type when None.
        signature: inputs and outputs; inferred from ``input_example`` when None (outputs
            by running predict on it), or read from the model itself for ONNX.
        input_example: a few rows of input, stored with the model.
        requirements: pip requirement lines; inferred (pinned, no pip call) when None.
        metadata: JSON-able data to keep with the model.

    Raises:
        ConflictError: ``path`` exists and is not empty.
        InvalidArgumentError: unknown flavor, unsupported model or bad metadata.
        ConfigError: the flavor's library is not installed.
    """
    target = Path(path)
    _prepare_target(target)
    flavor_name = flavor or detect_flavor(model)
    impl = get_flavor(flavor_name)
    data = _check_metadata(metadata)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.shipyard-tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        saved = impl.save(model, tmp)
        example_file = None
        if input_example is not None:
            example_file = write_input_example(input_example, tmp)
        sig = _signature(
            flavor_name, model, saved.config, signature, saved.signature, input_example
        )
        if requirements is None:
            reqs = infer_requirements(impl.packages, saved.modules)
        else:
            reqs = [str(r) for r in requirements]
        (tmp / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in reqs), encoding="utf-8")
        files = {
            p.relative_to(tmp).as_posix(): file_digest(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        manifest = ModelManifest(
            flavor=flavor_name,
            flavor_version=saved.version,
            flavor_config=saved.config,
            python_version=sys.version.split()[0],
            signature=sig,
            input_example=example_file,
            requirements=reqs,
            metadata=data,
            files=files,
        )
        manifest.write(tmp)
        _prepare_target(target)
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.debug("Saved %s model to %s", flavor_name, target)
    return manifest


def load_model(
    path: str | os.PathLike[str], *, expected_manifest_sha256: str | None = None
) -> PyFuncModel:
    """Load a model folder written by :func:`save_model`.

    Every file is checked against the sha256 and size in the manifest before anything is
    unpickled. Pickle-based flavors run code from the folder: load models you trust.

    Args:
        path: a local model folder.
        expected_manifest_sha256: when given (e.g. recorded by the registry), the
            manifest file itself must hash to it, which pins every file of the model.

    Raises:
        ModelNotFoundError: the folder holds no ``shipyard-model.json``.
        IntegrityError: a file is missing or differs from the manifest.
        ConfigError: the flavor's library is not installed.
    """
    folder = Path(path)
    if expected_manifest_sha256 is not None and (folder / MANIFEST_FILE).is_file():
        actual = manifest_sha256(folder)
        if actual != expected_manifest_sha256:
            raise IntegrityError(
                f"The manifest of the model at '{folder}' has sha256 {actual}, "
                f"expected {expected_manifest_sha256}.",
                hint="The model was changed after it was registered; download it again.",
            )
    manifest = ModelManifest.read(folder)
    verify_files(folder, manifest)
    model_file = manifest.flavor_config.get("file")
    if model_file is not None and model_file not in manifest.files:
        raise IntegrityError(
            f"The model file '{model_file}' named in {MANIFEST_FILE} at '{folder}' is not "
            "among its hashed files.",
            hint="The manifest was edited by hand or damaged; save the model again.",
        )
    loaded = get_flavor(manifest.flavor).load(folder, manifest)
    return PyFuncModel(loaded, manifest, folder)
