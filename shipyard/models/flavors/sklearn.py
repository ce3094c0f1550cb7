"""scikit-learn flavor: any estimator or Pipeline, pickled to ``model.pkl`` (protocol 5)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.models.flavors.base import (
    PICKLE_PROTOCOL,
    FlavorVersionWarning,
    LoadedModel,
    SavedFlavor,
    dump_pickle,
    load_pickle,
    require,
)

if TYPE_CHECKING:
    from shipyard.models.manifest import ModelManifest

MODEL_FILE = "model.pkl"


class SklearnFlavor:
    """Saves scikit-learn estimators; warns at load when scikit-learn's version differs."""

    name: ClassVar[str] = "sklearn"
    packages: ClassVar[tuple[str, ...]] = ("scikit-learn", "numpy", "scipy", "joblib")

    def save(self, model: Any, path: Path) -> SavedFlavor:
        sklearn = require("sklearn", flavor=self.name, extra="sklearn")
        modules = dump_pickle(model, path / MODEL_FILE)
        config = {"file": MODEL_FILE, "pickle_protocol": PICKLE_PROTOCOL}
        return SavedFlavor(version=sklearn.__version__, config=config, modules=modules)

    def load(self, path: Path, manifest: ModelManifest) -> LoadedModel:
        sklearn = require("sklearn", flavor=self.name, extra="sklearn")
        from sklearn.exceptions import InconsistentVersionWarning

        saved, installed = manifest.flavor_version, sklearn.__version__
        with warnings.catch_warnings():
            # scikit-learn's own warning repeats once per estimator in a Pipeline; we say
            # it once below, with both versions and what to do.
            warnings.simplefilter("ignore", InconsistentVersionWarning)
            model = load_pickle(path / manifest.flavor_config.get("file", MODEL_FILE))
        if saved and saved != installed:
            warnings.warn(
                f"The model was saved with scikit-learn {saved} but {installed} is "
                f"installed; predictions may differ or fail. "
                f"Hint: pip install scikit-learn=={saved}",
                FlavorVersionWarning,
                stacklevel=3,
            )
        return self.wrap(model, manifest.flavor_config)

    def wrap(self, model: Any, config: dict[str, Any]) -> LoadedModel:
        proba = model.predict_proba if hasattr(model, "predict_proba") else None
        return LoadedModel(raw=model, predict=model.predict, predict_proba=proba)
