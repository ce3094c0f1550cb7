"""The models a server holds: loaded from the registry (hash-checked), by name and version.

:class:`ModelRepository` resolves ``models:/`` URIs, loads each version once into a
:class:`~shipyard.serving.served.ServedModel`, and swaps versions atomically (readers see
the old mapping or the new one, never a half-updated one).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, ModelNotFoundError, ShipyardError
from shipyard.serving.served import (
    FEATURE_SERVICE_TAG,
    PREDICT_OUTPUT,
    PROBA_OUTPUT,
    ServedModel,
)

if TYPE_CHECKING:
    from shipyard.client import Client

__all__ = [
    "FEATURE_SERVICE_TAG",
    "PREDICT_OUTPUT",
    "PROBA_OUTPUT",
    "ModelRepository",
    "ServedModel",
    "parse_model_uri",
]

logger = logging.getLogger("shipyard.serving")


def parse_model_uri(uri: str) -> tuple[str, str | None, int | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, 3)."""
    if not uri.startswith("models:/"):
        raise InvalidArgumentError(
            f"'{uri}' is not a registry model URI.",
            hint="Serve models:/<name>@<alias> or models:/<name>/<version>.",
        )
    spec = uri.removeprefix("models:/")
    if "@" in spec:
        name, _, alias = spec.rpartition("@")
        if name and alias:
            return name, alias, None
    else:
        name, _, version = spec.rpartition("/")
        if name and version.isdigit():
            return name, None, int(version)
    raise InvalidArgumentError(
        f"Model URI '{uri}' names no version or alias.",
        hint="Use models:/<name>@<alias> or models:/<name>/<version>.",
    )


class ModelRepository:
    """Loaded models by name and version, resolved through the registry.

    Example::

        repo = ModelRepository(client)
        served = repo.load("models:/fraud@champion")
        repo.get("fraud").predict(X)

    Args:
        client: the Client whose registry resolves ``models:/`` URIs (default from settings).
    """

    def __init__(self, client: Client | None = None) -> None:
        if client is None:
            from shipyard.client import Client

            client = Client()
        self.client = client
        self._lock = threading.Lock()
        self._models: dict[str, dict[str, ServedModel]] = {}
        self._default: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ModelRepository({sorted(self._models)})"

    def resolve(self, uri: str) -> Any:
        """The registry ModelVersion a ``models:/`` URI names now."""
        name, alias, version = parse_model_uri(uri)
        registry = self.client.registry
        if alias is not None:
            if alias == "latest":
                model = registry.get_registered_model(name)
                if model.latest_version is None:
                    raise ModelNotFoundError(f"Registered model '{name}' has no versions yet.")
                return registry.get_model_version(name, model.latest_version)
            return registry.get_version_by_alias(name, alias)
        assert version is not None
        return registry.get_model_version(name, version)

    def load(self, uri: str, name: str | None = None, *, default: bool = True) -> ServedModel:
        """Load the version ``uri`` names (hash-verified) and serve it under ``name``.

        Args:
            uri: ``models:/name@alias`` or ``models:/name/<version>``.
            name: served name; the registered model's name by default.
            default: make it the version ``get(name)`` returns.
        """
        version = self.resolve(uri)
        return self.load_version(version, name=name, uri=uri, default=default)

    def load_version(
        self, version: Any, *, name: str | None = None, uri: str = "", default: bool = True
    ) -> ServedModel:
        """Load a registry ModelVersion (see :meth:`load`); a version already loaded under
        ``name`` is reused, not loaded twice."""
        from shipyard.models.logging import load

        loaded = self._models.get(name or version.name, {}).get(str(version.version))
        if loaded is not None:
            if default:
                self.add(loaded, default=True)
            return loaded
        started = time.perf_counter()
        model = load(f"models:/{version.name}/{version.version}", client=self.client)
        served = ServedModel(
            name or version.name,
            str(version.version),
            model,
            uri=uri,
            tags=version.tags,
            load_seconds=time.perf_counter() - started,
        )
        self.add(served, default=default)
        logger.info(
            "loaded %s version %s in %.2fs", served.name, served.version, served.load_seconds
        )
        return served

    def add(self, served: ServedModel, *, default: bool = True) -> None:
        """Serve an already loaded model (atomic: readers see the old or the new)."""
        with self._lock:
            versions = dict(self._models.get(served.name, {}))
            versions[served.version] = served
            self._models = {**self._models, served.name: versions}
            if default or served.name not in self._default:
                self._default = {**self._default, served.name: served.version}

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The served model ``name`` (its default version, or ``version``).

        Raises:
            ModelNotFoundError: not served here (404).
        """
        versions = self._models.get(name)
        if not versions:
            from shipyard.errors import did_you_mean

            raise ModelNotFoundError(
                f"Model '{name}' is not served here.{did_you_mean(name, self._models)}",
                hint=f"Served models: {', '.join(sorted(self._models)) or 'none'}.",
            )
        key = self._default[name] if version is None else str(version)
        served = versions.get(key)
        if served is None:
            raise ModelNotFoundError(
                f"Version '{version}' of model '{name}' is not served here.",
                hint=f"Served versions: {', '.join(sorted(versions))}.",
            )
        return served

    def unload(self, name: str, version: str | None = None) -> None:
        """Stop serving ``name`` (every version), or one version of it."""
        with self._lock:
            models = dict(self._models)
            if version is None:
                models.pop(name, None)
                self._default = {k: v for k, v in self._default.items() if k != name}
            else:
                versions = {k: v for k, v in models.get(name, {}).items() if k != str(version)}
                if versions:
                    models[name] = versions
                    if self._default.get(name) == str(version):
                        self._default = {**self._default, name: max(versions, key=_version_key)}
                else:
                    models.pop(name, None)
                    self._default = {k: v for k, v in self._default.items() if k != name}
            self._models = models

    def index(self) -> list[ServedModel]:
        """Every served model version, sorted by name then version."""
        return [
            served
            for name in sorted(self._models)
            for _, served in sorted(self._models[name].items(), key=lambda kv: _version_key(kv[0]))
        ]

    def names(self) -> list[str]:
        return sorted(self._models)

    def ready(self, name: str, version: str | None = None) -> bool:
        """Whether ``name`` (and ``version``) is loaded and can answer."""
        try:
            self.get(name, version)
        except ShipyardError:
            return False
        return True


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
