"""How step values become artifact files and back: pandas and Arrow as Parquet, numpy as
``.npy``, metrics as JSON, files and folders as they are, anything else pickled.

The format is recognized from the file's first bytes, so a file needs no side metadata and
any path (a KFP artifact path, a content-addressed file) loads the same way. Loading a
``.npy`` file maps it copy-on-write instead of reading it, so a large array handed from one
step to the next is never copied in memory until it is written to.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.pipelines import types as t

__all__ = ["load_artifact", "load_path", "save_value", "sniff_format"]

_PARQUET = b"PAR1"
_NUMPY = b"\x93NUMPY"


def sniff_format(path: str | os.PathLike[str]) -> str:
    """``dir``, ``parquet``, ``numpy``, ``pickle``, ``json`` or ``bytes``, from the content."""
    path = Path(path)
    if path.is_dir():
        return "dir"
    with open(path, "rb") as src:
        head = src.read(8)
    if head.startswith(_PARQUET):
        return "parquet"
    if head.startswith(_NUMPY):
        return "numpy"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "bytes"


def load_path(path: str | os.PathLike[str], type_name: str = "Artifact") -> Any:
    """The value stored at ``path``: a DataFrame (Parquet written from pandas), an Arrow
    Table (other Parquet), an ndarray (mapped copy-on-write), a dict for Metrics and JSON
    files, a folder's Path, an unpickled object, or the text (bytes if not UTF-8)."""
    fmt = sniff_format(path)
    if fmt == "dir":
        return Path(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if table.schema.metadata and b"pandas" in table.schema.metadata:
            return table.to_pandas()
        return table
    if fmt == "numpy":
        import numpy as np

        return np.load(path, mmap_mode="c", allow_pickle=False)
    if fmt == "pickle":
        with open(path, "rb") as src:
            return pickle.load(src)
    data = Path(path).read_bytes()
    if fmt == "json" and (type_name == "Metrics" or _is_json(data)):
        return json.loads(data)
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def load_artifact(artifact: t.Artifact) -> Any:
    """The value behind an input artifact (see :func:`load_path`)."""
    if not artifact.path:
        raise ValueError(f"{artifact!r} has no local path to load from")
    return load_path(artifact.path, type(artifact).__name__)


def _place(source: Path, target: Path) -> None:
    """Put a file or folder the step returned at ``target``: hard-linked (no bytes copied,
    and the step's own file stays where it was), copied only across filesystems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.resolve() == target.resolve():
        return
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(source), str(target))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def save_value(
    value: Any, path: str | os.PathLike[str], type_name: str = "Artifact"
) -> dict[str, Any]:
    """Write a step's return value for an artifact output to ``path``; return metadata.

    The metadata holds ``format`` and, for Metrics, the ``metrics`` (name -> float) and
    whatever an ``Artifact`` instance carried in its ``metadata``.

    Raises:
        TypeError: a Metrics output got something other than a Metrics or a mapping of
            numbers, or an Artifact instance without a path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {}
    if isinstance(value, t.Artifact):
        meta.update(value.metadata)
        if isinstance(value, t.Metrics) and not value.path:
            value = dict(value.metadata)
        elif not value.path:
            raise TypeError(f"{value!r} has no path; write the file first and set .path")
        else:
            value = Path(value.path)
    if type_name == "Metrics":
        if isinstance(value, Path):
            value = json.loads(value.read_text())
        if not isinstance(value, Mapping):
            raise TypeError(
                f"a Metrics output takes a Metrics or a dict of numbers, not {type(value).__name__}"
            )
        metrics = {str(k): _number(k, v) for k, v in value.items()}
        target.write_text(json.dumps(metrics, sort_keys=True))
        meta.update(format="json", metrics=metrics)
        return meta
    if isinstance(value, os.PathLike):
        source = Path(value)
        if not source.exists():
            raise FileNotFoundError(f"the step returned {source}, which does not exist")
        _place(source, target)
        meta["format"] = "dir" if source.is_dir() else sniff_format(target)
        return meta
    meta["format"] = _write(value, target)
    return meta


def _number(key: object, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} is {value!r}, not a number") from None
    return float(value)


def _write(value: Any, target: Path) -> str:
    module = type(value).__module__.split(".", 1)[0]
    if module == "pandas" and type(value).__name__ == "DataFrame":
        value.to_parquet(target)
        return "parquet"
    if module == "pyarrow" and type(value).__name__ in ("Table", "RecordBatch"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_batches([value]) if isinstance(value, pa.RecordBatch) else value
        pq.write_table(table, target)
        return "parquet"
    if module == "numpy" and type(value).__name__ in ("ndarray", "memmap"):
        import numpy as np

        if value.dtype != object:
            with open(target, "wb") as out:
                np.save(out, value, allow_pickle=False)
            return "numpy"
    if isinstance(value, bytes | bytearray | memoryview):
        target.write_bytes(bytes(value))
        return "bytes"
    if isinstance(value, str):
        target.write_text(value)
        return "bytes"
    with open(target, "wb") as out:
        pickle.dump(value, out, protocol=5)
    return "pickle"


t.Artifact._loader = load_artifact
