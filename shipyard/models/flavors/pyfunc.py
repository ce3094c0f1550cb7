"""pyfunc flavor: any Python object with a ``predict`` method, pickled to ``model.pkl``.

Classes defined in ``__main__`` (a notebook or a script) cannot be imported by whoever
loads the model, so those are pickled by value with cloudpickle when it is installed;
everything else is pickled by reference and its module must be importable at load time.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import ConfigError, InvalidArgumentError
from shipyard.models.flavors.base import LoadedModel, SavedFlavor, dump_pickle, load_pickle

if TYPE_CHECKING:
    from shipyard.models.manifest import ModelManifest

MODEL_FILE = "model.pkl"


class PyfuncFlavor:
    """Saves plain Python models: an object whose ``predict(X)`` returns predictions."""

    name: ClassVar[str] = "pyfunc"
    packages: ClassVar[tuple[str, ...]] = ("numpy",)

    def save(self, model: Any, path: Path) -> SavedFlavor:
        cls = type(model)
        qualname = f"{cls.__module__}.{cls.__qualname__}"
        if not callable(getattr(model, "predict", None)):
            raise InvalidArgumentError(
                f"A pyfunc model needs a predict(X) method; {qualname} has none.",
                hint="Add `def predict(self, X)` to the class, or pass flavor= explicitly.",
            )
        by_value = cls.__module__ == "__main__" and importlib.util.find_spec("cloudpickle")
        try:
            modules = dump_pickle(model, path / MODEL_FILE, by_value=bool(by_value))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise InvalidArgumentError(
                f"Cannot pickle the model {qualname}: {exc}",
                hint="Define the model class at module level (not inside a function) and "
                "keep open files, locks and connections out of its attributes.",
            ) from exc
        from shipyard import __version__

        config = {
            "file": MODEL_FILE,
            "python_class": qualname,
            "serializer": "cloudpickle" if by_value else "pickle",
        }
        if by_value:
            modules = modules | {"cloudpickle"}
        return SavedFlavor(version=__version__, config=config, modules=modules)

    def load(self, path: Path, manifest: ModelManifest) -> LoadedModel:
        config = manifest.flavor_config
        try:
            model = load_pickle(path / config.get("file", MODEL_FILE))
        except (ModuleNotFoundError, AttributeError) as exc:
            if config.get("serializer") == "cloudpickle":
                hint = "Run `pip install cloudpickle`; the model was pickled by value with it."
            else:
                hint = (
                    "Put the module that defines the class on PYTHONPATH (or install it); "
                    "models whose class lives in __main__ are pickled by value instead."
                )
            raise ConfigError(
                f"Cannot load the pyfunc model: its class {config.get('python_class')} "
                f"cannot be imported ({exc}).",
                hint=hint,
            ) from exc
        return self.wrap(model, config)

    def wrap(self, model: Any, config: dict[str, Any]) -> LoadedModel:
        proba = getattr(model, "predict_proba", None)
        return LoadedModel(
            raw=model, predict=model.predict, predict_proba=proba if callable(proba) else None
        )
