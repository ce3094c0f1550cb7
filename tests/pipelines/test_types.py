"""Step types: annotations to canonical names, which types may feed which inputs, literals."""

from __future__ import annotations

from typing import NamedTuple, Optional

import pytest

from shipyard.pipelines import Artifact, Dataset, Metrics, Model, Outputs
from shipyard.pipelines.types import (
    is_artifact,
    is_assignable,
    named_output_fields,
    type_name,
    value_type,
)


class Tokenizer(Model):
    """A user artifact type counts as its built-in base."""


@pytest.mark.parametrize(
    ("annotation", "name"),
    [
        (int, "int"),
        (float, "float"),
        (str, "str"),
        (bool, "bool"),
        (list, "list"),
        (dict, "dict"),
        (list[float], "list[float]"),
        (list[Model], "list[Model]"),
        (dict[str, int], "dict"),
        (int | None, "int"),
        (Optional[str], "str"),  # noqa: UP045
        (Dataset, "Dataset"),
        (Model, "Model"),
        (Metrics, "Metrics"),
        (Artifact, "Artifact"),
        (Tokenizer, "Model"),
    ],
)
def test_type_names(annotation: object, name: str) -> None:
    assert type_name(annotation) == name


@pytest.mark.parametrize("annotation", [bytes, object, int | str, tuple, set[int], None])
def test_unsupported_types(annotation: object) -> None:
    with pytest.raises(ValueError, match=r"int, float, str, bool, list, dict, list\[T\]"):
        type_name(annotation)


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("int", "int", True),
        ("int", "float", True),
        ("float", "int", False),
        ("str", "int", False),
        ("bool", "int", False),
        ("Model", "Dataset", False),
        ("Model", "Artifact", True),
        ("Artifact", "Dataset", True),
        ("Model", "str", False),
        ("str", "Model", False),
        ("list[int]", "list", True),
        ("list", "list[int]", True),
        ("list[int]", "list[float]", True),
        ("list[str]", "list[int]", False),
        ("list[Model]", "list", False),
        ("list[Model]", "list[Model]", True),
        ("list[Model]", "list[Artifact]", True),
        ("list[Dataset]", "list[Model]", False),
        ("any", "int", True),
        ("dict", "any", True),
        ("any", "Model", False),
        ("dict", "list", False),
    ],
)
def test_assignability(source: str, target: str, ok: bool) -> None:
    assert is_assignable(source, target) is ok


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (True, "bool"),
        (3, "int"),
        (0.5, "float"),
        ("x", "str"),
        (None, "None"),
        ({"a": [1, {"b": None}]}, "dict"),
        ([1, 2], "list[int]"),
        ([1, 2.5], "list[float]"),
        ([1, "a"], "list"),
        ([], "list"),
        ((1, 2), "list[int]"),
        ([{"lr": 0.1}], "list[dict]"),
        ({1: "a"}, "dict with non-JSON keys or values"),
        ([object()], "list with non-JSON items"),
        (b"raw", "bytes"),
    ],
)
def test_literal_types(value: object, name: str) -> None:
    assert value_type(value) == name


def test_artifact_kinds() -> None:
    assert is_artifact("Model") and is_artifact("list[Dataset]")
    assert not is_artifact("int") and not is_artifact("list[int]")


def test_outputs_builds_a_named_tuple() -> None:
    spec = Outputs(model=Model, accuracy=float)
    assert named_output_fields(spec) == {"model": Model, "accuracy": float}
    assert spec(Model(), 0.9).accuracy == 0.9

    class Pair(NamedTuple):
        left: int
        right: str

    assert named_output_fields(Pair) == {"left": int, "right": str}
    assert named_output_fields({"a": int}) == {"a": int}
    assert named_output_fields(int) is None
    with pytest.raises(ValueError, match="needs at least one named output"):
        Outputs()
    with pytest.raises(ValueError, match="must not start with '_'"):
        Outputs(_hidden=int)


def test_artifacts_carry_uri_path_and_metadata() -> None:
    metrics = Metrics(uri="file:///tmp/m", path="/tmp/m")
    metrics.log_metric("accuracy", 1)
    assert metrics.metadata == {"accuracy": 1.0}
    assert metrics.schema_title == "system.Metrics"
    assert Dataset.schema_title == "system.Dataset"
    assert repr(metrics) == "Metrics(uri='file:///tmp/m', path='/tmp/m')"
