"""The types a step can take and return: artifacts (files) and parameters (JSON values).

Types travel through the pipeline graph as canonical names, so compilers and validation never
handle Python classes: ``int``, ``float``, ``str``, ``bool``, ``list``, ``dict``, ``list[T]``,
``Dataset``, ``Model``, ``Metrics``, ``Artifact`` and ``any`` (a loop item whose type is only
known at run time). Pure: no I/O, imports nothing from shipyard.
"""

from __future__ import annotations

import keyword
import types as _pytypes
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "ANY",
    "ARTIFACT_TYPES",
    "PARAMETER_TYPES",
    "Artifact",
    "Dataset",
    "Metrics",
    "Model",
    "Outputs",
    "is_artifact",
    "is_assignable",
    "list_item",
    "named_output_fields",
    "type_name",
    "value_type",
]

ANY = "any"


class Artifact:
    """A file or folder a step reads or writes; the executor fills in ``uri`` and ``path``.

    At definition time the class is only a type marker (``data: Dataset``). At run time a step
    receives an instance whose ``path`` is a local file it can open.

    Example:
        >>> Model(uri="file:///tmp/m", metadata={"framework": "sklearn"}).schema_title
        'system.Model'
    """

    schema_title: ClassVar[str] = "system.Artifact"
    # Set by shipyard.pipelines.serialization, which the executor imports before a step runs.
    _loader: ClassVar[Callable[[Artifact], Any] | None] = None

    def __init__(
        self,
        uri: str = "",
        path: str = "",
        metadata: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> None:
        self.uri = uri
        self.path = path
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(uri={self.uri!r}, path={self.path!r})"

    def load(self) -> Any:
        """The value at ``path`` as the step that wrote it returned it: a DataFrame, an Arrow
        Table, an ndarray, a dict of metrics, an unpickled object, text or a folder's path."""
        if Artifact._loader is None:
            raise RuntimeError(
                "Artifact.load() runs inside a pipeline step; elsewhere use "
                "shipyard.pipelines.serialization.load_path(path)."
            )
        return Artifact._loader(self)


class Dataset(Artifact):
    """A table or any other training data."""

    schema_title: ClassVar[str] = "system.Dataset"


class Model(Artifact):
    """A trained model."""

    schema_title: ClassVar[str] = "system.Model"


class Metrics(Artifact):
    """Scalar metrics of a step, kept in ``metadata``."""

    schema_title: ClassVar[str] = "system.Metrics"

    def log_metric(self, key: str, value: float) -> None:
        """Record one metric (the last value for a key wins)."""
        self.metadata[key] = float(value)


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    "Artifact": Artifact,
    "Dataset": Dataset,
    "Model": Model,
    "Metrics": Metrics,
}

PARAMETER_TYPES: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
}

_SUPPORTED = "int, float, str, bool, list, dict, list[T], Dataset, Model, Metrics or Artifact"


def Outputs(**fields: Any) -> type:
    """Declare several named outputs: ``-> Outputs(model=Model, accuracy=float)``.

    Returns a NamedTuple class, so a step may return an instance of it, a plain tuple in field
    order or a dict keyed by output name.
    """
    if not fields:
        raise ValueError("Outputs() needs at least one named output, e.g. Outputs(model=Model).")
    for name in fields:
        if name.startswith("_") or keyword.iskeyword(name):
            raise ValueError(f"Output name {name!r} must not start with '_' or be a keyword.")
    return NamedTuple("Outputs", list(fields.items()))  # type: ignore[misc]


def named_output_fields(annotation: Any) -> dict[str, Any] | None:
    """The fields of a multi-output annotation (Outputs, NamedTuple or dict), else None."""
    if isinstance(annotation, dict):
        return dict(annotation)
    if (
        isinstance(annotation, type)
        and issubclass(annotation, tuple)
        and hasattr(annotation, "_fields")
        and hasattr(annotation, "__annotations__")
    ):
        try:  # resolves string annotations (``from __future__ import annotations``)
            hints = typing.get_type_hints(annotation)
        except Exception as exc:
            raise ValueError(
                f"cannot resolve the field types of {annotation.__qualname__}: {exc}"
            ) from exc
        return {name: hints[name] for name in annotation._fields}
    return None


def type_name(annotation: Any) -> str:
    """The canonical name of a Python annotation; ``X | None`` counts as ``X``.

    Raises:
        ValueError: The annotation is not a supported step type; the message lists them.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is _pytypes.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return type_name(members[0])
        raise ValueError(f"{_describe(annotation)} is a union; use a single type ({_SUPPORTED}).")
    if annotation is list or origin is list:
        args = typing.get_args(annotation)
        return f"list[{type_name(args[0])}]" if args else "list"
    if annotation is dict or origin is dict:
        return "dict"
    if annotation is bool:
        return "bool"
    for name, cls in PARAMETER_TYPES.items():
        if annotation is cls:
            return name
    if isinstance(annotation, type) and issubclass(annotation, Artifact):
        for cls in annotation.__mro__:
            if cls in ARTIFACT_TYPES.values():
                return cls.__name__
    raise ValueError(f"{_describe(annotation)} is not a supported step type; use {_SUPPORTED}.")


def _describe(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation)


def is_artifact(name: str) -> bool:
    """Whether a canonical type names an artifact (or a list of artifacts)."""
    item = list_item(name)
    return name in ARTIFACT_TYPES or (item is not None and item in ARTIFACT_TYPES)


def list_item(name: str) -> str | None:
    """``'int'`` for ``'list[int]'``; None for anything that is not a typed list."""
    if name.startswith("list[") and name.endswith("]"):
        return name[5:-1]
    return None


def is_assignable(source: str, target: str) -> bool:
    """Whether a value of type ``source`` may feed an input of type ``target``.

    An ``int`` widens to ``float``. The generic ``Artifact`` matches any artifact both ways (as
    in KFP). ``any`` matches any parameter type and is checked again at run time.
    """
    if source == target:
        return True
    if ANY in (source, target):
        return not is_artifact(source if target == ANY else target)
    if (source, target) == ("int", "float"):
        return True
    if source in ARTIFACT_TYPES and target in ARTIFACT_TYPES:
        return "Artifact" in (source, target)
    source_item, target_item = list_item(source), list_item(target)
    if source.startswith("list") and target.startswith("list"):
        if source_item is None or target_item is None:
            known = source_item or target_item
            return known is None or not is_artifact(known)
        return is_assignable(source_item, target_item)
    return False


def value_type(value: Any) -> str:
    """The canonical type of a literal argument; not JSON-able values give their class name."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "None"
    if isinstance(value, dict):
        if all(isinstance(k, str) and _is_json(v) for k, v in value.items()):
            return "dict"
        return "dict with non-JSON keys or values"
    if isinstance(value, list | tuple):
        if not all(_is_json(v) for v in value):
            return "list with non-JSON items"
        items = {value_type(v) for v in value}
        if items == {"int", "float"}:
            items = {"float"}
        return f"list[{items.pop()}]" if len(items) == 1 else "list"
    return type(value).__qualname__


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False
