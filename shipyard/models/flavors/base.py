"""What a flavor is: how one kind of model is written to a folder and read back.

A flavor saves the native model into a folder (``save``), and turns a native model, either
the one in memory or one read back by ``load``, into a :class:`LoadedModel` with a
``predict`` (and, when the model has one, ``predict_proba``).
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol

from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.models.manifest import ModelManifest
    from shipyard.models.signature import ModelSignature

__all__ = [
    "Flavor",
    "FlavorVersionWarning",
    "LoadedModel",
    "SavedFlavor",
    "dump_pickle",
    "require",
]

#: Protocol 5 keeps large numpy buffers contiguous; every supported Python reads it.
PICKLE_PROTOCOL = 5


class FlavorVersionWarning(UserWarning):
    """A model is loaded with a different version of its library than it was saved with."""


@dataclass(frozen=True)
class SavedFlavor:
    """What a flavor's ``save`` reports back for the manifest.

    Attributes:
        version: version of the library that produced the model (e.g. scikit-learn's).
        config: flavor settings ``load`` needs (file name, model class, ...); JSON-able.
        modules: top-level modules the saved model refers to (pickle flavors record them,
            so requirements include e.g. xgboost inside a scikit-learn Pipeline).
        signature: a signature the model format carries itself (ONNX graph inputs).
    """

    version: str
    config: dict[str, Any]
    modules: frozenset[str] = field(default_factory=frozenset)
    signature: ModelSignature | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A native model with the calls ``PyFuncModel`` makes on it."""

    raw: Any
    predict: Callable[[Any], Any]
    predict_proba: Callable[[Any], Any] | None = None


class Flavor(Protocol):
    """One model format, registered by name in :mod:`shipyard.models.flavors`."""

    name: ClassVar[str]
    #: Distributions a saved model needs at load time, pinned into its requirements.
    packages: ClassVar[tuple[str, ...]]

    def save(self, model: Any, path: Path) -> SavedFlavor:
        """Write ``model``'s files into the existing folder ``path``."""
        ...

    def load(self, path: Path, manifest: ModelManifest) -> LoadedModel:
        """Read the model saved in ``path`` (files already verified against the manifest)."""
        ...

    def wrap(self, model: Any, config: dict[str, Any]) -> LoadedModel:
        """The in-memory ``model`` as a LoadedModel (used to infer output schemas)."""
        ...


def require(module: str, *, flavor: str, extra: str | None = None, dist: str = "") -> ModuleType:
    """Import ``module`` or raise a ConfigError with the pip line that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        install = f'pip install "shipyard[{extra}]"' if extra else f"pip install {dist or module}"
        raise ConfigError(
            f"The {flavor} flavor needs the '{module}' package, which is not installed.",
            hint=f"Run `{install}`.",
        ) from exc


def _record(modules: set[str], obj: Any) -> None:
    owner = obj if isinstance(obj, type) else type(obj)
    modules.add(str(getattr(owner, "__module__", "") or "").partition(".")[0])
    if callable(obj) and not isinstance(obj, type):
        # Functions and methods pickled by reference name their own module.
        modules.add(str(getattr(obj, "__module__", "") or "").partition(".")[0])


def _recording_pickler(base: type[pickle.Pickler]) -> type[pickle.Pickler]:
    class RecordingPickler(base):  # type: ignore[valid-type,misc]
        """Notes the module of every object it pickles, to infer requirements."""

        def __init__(self, file: BinaryIO, protocol: int) -> None:
            super().__init__(file, protocol=protocol)
            self.modules: set[str] = set()

        def reducer_override(self, obj: Any) -> Any:
            _record(self.modules, obj)
            parent = getattr(super(), "reducer_override", None)
            return parent(obj) if parent is not None else NotImplemented

    return RecordingPickler


def dump_pickle(obj: Any, path: Path, *, by_value: bool = False) -> frozenset[str]:
    """Pickle ``obj`` to ``path`` and return the top-level modules it refers to.

    ``by_value`` uses cloudpickle, which stores classes defined in ``__main__`` (notebooks,
    scripts) by value so they load where that script is not importable.
    """
    base: type[pickle.Pickler] = pickle.Pickler
    if by_value:
        import cloudpickle

        base = cloudpickle.Pickler
    pickler_class = _recording_pickler(base)
    with open(path, "wb") as out:
        pickler = pickler_class(out, protocol=PICKLE_PROTOCOL)
        pickler.dump(obj)
    return frozenset(m for m in pickler.modules if m)  # type: ignore[attr-defined]


def load_pickle(path: Path) -> Any:
    """Unpickle ``path``. Pickles run code: load only models from a store you trust."""
    with open(path, "rb") as src:
        return pickle.load(src)
