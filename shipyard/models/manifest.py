"""The model manifest, ``shipyard-model.json``: what a model folder holds and how to load it.

It names the flavor and its library version, the Python version, the signature, the
requirements and the sha256 and size of every other file in the folder, so a loader can
prove that what it is about to unpickle is what was saved.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.errors import IntegrityError, InvalidArgumentError, ModelNotFoundError
from shipyard.models.signature import ModelSignature

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "FileDigest",
    "ModelManifest",
    "file_digest",
    "manifest_sha256",
    "verify_files",
]

MANIFEST_FILE = "shipyard-model.json"

#: Bumped when a manifest change would make older Shipyards misread it.
FORMAT_VERSION = 1

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileDigest:
    """Size in bytes and sha256 hex digest of one file of a model folder."""

    sha256: str
    size: int


def file_digest(path: str | os.PathLike[str]) -> FileDigest:
    """Hash a file in 1 MiB chunks; it is never read into memory whole."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(sha256=digest.hexdigest(), size=size)


def manifest_sha256(model_dir: str | os.PathLike[str]) -> str:
    """sha256 of a folder's manifest file: one hash that pins every file of the model."""
    return file_digest(Path(model_dir) / MANIFEST_FILE).sha256


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a 'Z' suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelManifest:
    """Everything recorded about a saved model; written as ``shipyard-model.json``.

    Attributes:
        flavor: flavor name (``sklearn``, ``onnx``, ``pyfunc``, ...).
        flavor_version: version of the flavor's library when saved.
        python_version: Python that saved the model, e.g. ``3.11.7``.
        files: ``{relative path: FileDigest}`` for every file but the manifest.
        signature: inputs and outputs, when known.
        input_example: file name of the stored input example, if any.
        requirements: pinned pip requirements, e.g. ``scikit-learn==1.5.0``.
        metadata: free-form JSON-able data from the user.
        flavor_config: settings the flavor's loader reads (file name, model class, ...).
        created_at: ISO 8601 UTC time of saving.
        format_version: manifest format, :data:`FORMAT_VERSION` when written.
    """

    flavor: str
    flavor_version: str
    python_version: str
    files: dict[str, FileDigest]
    signature: ModelSignature | None = None
    input_example: str | None = None
    requirements: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    flavor_config: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now_iso)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-able data (the content of ``shipyard-model.json``)."""
        return {
            "format_version": self.format_version,
            "flavor": self.flavor,
            "flavor_version": self.flavor_version,
            "flavor_config": self.flavor_config,
            "python_version": self.python_version,
            "signature": self.signature.to_dict() if self.signature else None,
            "input_example": self.input_example,
            "requirements": list(self.requirements),
            "metadata": self.metadata,
            "files": {
                rel: {"sha256": d.sha256, "size": d.size} for rel, d in sorted(self.files.items())
            },
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        """Parse a manifest written by this or an older Shipyard.

        Raises:
            InvalidArgumentError: the manifest comes from a newer format.
        """
        version = int(data.get("format_version", 1))
        if version > FORMAT_VERSION:
            raise InvalidArgumentError(
                f"The model manifest has format version {version}; this Shipyard reads "
                f"up to {FORMAT_VERSION}.",
                hint="Upgrade shipyard: pip install -U shipyard",
            )
        signature = data.get("signature")
        return cls(
            format_version=version,
            flavor=data["flavor"],
            flavor_version=data.get("flavor_version", ""),
            flavor_config=dict(data.get("flavor_config") or {}),
            python_version=data.get("python_version", ""),
            signature=ModelSignature.from_dict(signature) if signature else None,
            input_example=data.get("input_example"),
            requirements=list(data.get("requirements") or []),
            metadata=dict(data.get("metadata") or {}),
            files={
                rel: FileDigest(sha256=d["sha256"], size=int(d["size"]))
                for rel, d in (data.get("files") or {}).items()
            },
            created_at=data.get("created_at", ""),
        )

    def write(self, model_dir: str | os.PathLike[str]) -> Path:
        """Write ``shipyard-model.json`` into ``model_dir``; returns its path."""
        path = Path(model_dir) / MANIFEST_FILE
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, model_dir: str | os.PathLike[str]) -> ModelManifest:
        """Read the manifest of a model folder.

        Raises:
            ModelNotFoundError: the folder holds no ``shipyard-model.json``.
            IntegrityError: the manifest is not valid JSON or lacks required fields.
        """
        path = Path(model_dir) / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ModelNotFoundError(
                f"No Shipyard model at '{model_dir}': {MANIFEST_FILE} is missing.",
                hint="Point at a folder written by shipyard.models.save_model().",
            ) from exc
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"The model manifest '{path}' is damaged: {exc!r}.",
                hint="Save or download the model again.",
            ) from exc


def verify_files(model_dir: str | os.PathLike[str], manifest: ModelManifest) -> None:
    """Check the size and sha256 of every file the manifest lists.

    Raises:
        IntegrityError: a file is missing, or its size or hash differs; the message names
            the file and both hashes.
    """
    from shipyard.store.artifacts import safe_key

    base = Path(model_dir)
    hint = "The model folder was modified or damaged; save or download the model again."
    for rel, expected in sorted(manifest.files.items()):
        path = base / safe_key(rel)
        if not path.is_file():
            raise IntegrityError(
                f"Model file '{rel}' listed in {MANIFEST_FILE} is missing from '{base}'.",
                hint=hint,
            )
        actual = file_digest(path)
        if actual != expected:
            raise IntegrityError(
                f"Model file '{rel}' does not match its manifest: sha256 {actual.sha256} "
                f"({actual.size} bytes), expected {expected.sha256} ({expected.size} bytes).",
                hint=hint,
            )
