"""How the fluent API turns dicts, figures and tables into artifact bytes.

The file extension picks the format, as in MLflow's ``log_dict``, ``log_figure`` and
``log_table``. Plotting and table libraries are imported only for objects of their type.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, InvalidArgumentError

_PLOTLY_IMAGES = ("png", "jpg", "jpeg", "webp", "svg", "pdf")


def dict_bytes(dictionary: Mapping[str, Any] | Sequence[Any], artifact_file: str) -> bytes:
    """YAML for .yaml/.yml, else indented JSON (values JSON cannot hold become strings)."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(_plain(dictionary), default_flow_style=False, sort_keys=False)
    else:
        import json

        text = json.dumps(dictionary, indent=2, default=str)
    return text.encode("utf-8")


def _plain(value: Any) -> Any:
    """Mappings as dicts and sequences as lists, so safe_dump accepts them."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def figure_bytes(
    figure: Any, artifact_file: str, save_kwargs: Mapping[str, Any] | None = None
) -> bytes:
    """A matplotlib or plotly figure in the format ``artifact_file``'s extension names."""
    suffix = Path(artifact_file).suffix.lower().lstrip(".")
    module = type(figure).__module__
    kwargs = dict(save_kwargs or {})
    if module.startswith("matplotlib"):
        supported = figure.canvas.get_supported_filetypes()
        if suffix not in supported:
            raise InvalidArgumentError(
                f"Cannot save a matplotlib figure as '{artifact_file}'.",
                hint=f"Use one of the extensions: {', '.join(sorted(supported))}.",
            )
        buf = io.BytesIO()
        figure.savefig(buf, format=suffix, **kwargs)
        return buf.getvalue()
    if module.startswith("plotly"):
        return _plotly_bytes(figure, artifact_file, suffix, kwargs)
    raise TypeError(
        f"log_figure expects a matplotlib or plotly figure, got {type(figure).__name__}."
    )


def _plotly_bytes(figure: Any, artifact_file: str, suffix: str, kwargs: dict[str, Any]) -> bytes:
    if suffix in ("html", "htm"):
        # plotly.js inside the page, so the file opens offline and in air-gapped setups.
        kwargs.setdefault("include_plotlyjs", True)
        return str(figure.to_html(**kwargs)).encode("utf-8")
    if suffix == "json":
        return str(figure.to_json()).encode("utf-8")
    if suffix in _PLOTLY_IMAGES:
        import importlib.util

        if importlib.util.find_spec("kaleido") is None:
            raise ConfigError(
                f"Saving a plotly figure as '{artifact_file}' needs the kaleido package.",
                hint="Run `pip install kaleido`, or log the figure as .html instead.",
            )
        return bytes(figure.to_image(format=suffix, **kwargs))
    raise InvalidArgumentError(
        f"Cannot save a plotly figure as '{artifact_file}'.",
        hint="Use .html (works offline), .json, or .png/.svg/.pdf with kaleido installed.",
    )


def table_bytes(data: Any, artifact_file: str) -> bytes:
    """A DataFrame or dict of columns as MLflow's split JSON, or as parquet."""
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
    if artifact_file.endswith(".json"):
        return str(frame.to_json(orient="split", index=False)).encode("utf-8")
    if artifact_file.endswith(".parquet"):
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    raise InvalidArgumentError(
        f"Cannot save a table as '{artifact_file}'.",
        hint="Use a file name ending in .json or .parquet.",
    )
