"""PyFuncModel: one interface over every loaded model, whatever its flavor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.models.flavors.base import LoadedModel
    from shipyard.models.manifest import ModelManifest
    from shipyard.models.signature import ModelSignature

__all__ = ["PyFuncModel"]


class PyFuncModel:
    """A loaded model: ``predict`` (and ``predict_proba`` when the model has one).

    Input is checked against the signature and converted to what the model was fitted
    on: a DataFrame for models fitted on columns (numpy arrays and lists get the column
    names), a numpy array for tensor models.

    Example::

        model = load_model("path/to/model")
        model.predict(X)          # DataFrame, numpy array or list of rows
        model.predict_proba(X)    # classifiers only
        model.raw                 # the native object (estimator, InferenceSession, ...)
    """

    def __init__(self, loaded: LoadedModel, manifest: ModelManifest, path: Path) -> None:
        self._loaded = loaded
        self.manifest = manifest
        self.path = path

    @property
    def flavor(self) -> str:
        """Flavor name, e.g. ``sklearn`` or ``onnx``."""
        return self.manifest.flavor

    @property
    def signature(self) -> ModelSignature | None:
        return self.manifest.signature

    @property
    def raw(self) -> Any:
        """The native model: the estimator, the onnxruntime session, the torch module..."""
        return self._loaded.raw

    @property
    def metadata(self) -> dict[str, Any]:
        return self.manifest.metadata

    @property
    def input_example(self) -> Any:
        """The stored input example, read on first access; None when there is none."""
        if not self.manifest.input_example:
            return None
        from shipyard.models.example import read_input_example

        return read_input_example(self.path, self.manifest.input_example)

    def _prepare(self, data: Any) -> Any:
        signature = self.manifest.signature
        return signature.coerce(data) if signature is not None else data

    def predict(self, data: Any) -> Any:
        """Predictions for ``data`` (a DataFrame, numpy array or list of rows).

        Raises:
            InvalidArgumentError: ``data`` does not match the model's signature.
        """
        return self._loaded.predict(self._prepare(data))

    @property
    def predict_proba(self) -> Callable[[Any], Any]:
        """Class probabilities, for models that estimate them.

        Raises:
            AttributeError: the native model has no predict_proba (so ``hasattr`` is False).
        """
        proba = self._loaded.predict_proba
        if proba is None:
            raise AttributeError(
                f"This {self.flavor} model ({type(self.raw).__name__}) has no predict_proba: "
                "only classifiers that estimate class probabilities do. Use predict()."
            )

        def predict_proba(data: Any) -> Any:
            return proba(self._prepare(data))

        return predict_proba

    def __repr__(self) -> str:
        return (
            f"PyFuncModel(flavor='{self.flavor}', model={type(self.raw).__name__}, "
            f"path='{self.path}')"
        )
