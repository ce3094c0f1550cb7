"""Loading feature definitions from a repo: a Python file, or a folder of them.

Every module-level Entity, FeatureView, OnDemandFeatureView, FeatureService, PushSource
and KafkaSource found is a definition. The repo folder goes on ``sys.path`` and modules
get their dotted path as name (``features/driver.py`` -> ``features.driver``), so UDFs
and transforms stay importable as ``"features.driver:function"`` by whoever reads them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
)
from shipyard.features.sources import KafkaSource, PushSource

_DEFINITIONS = (Entity, FeatureView, OnDemandFeatureView, FeatureService, PushSource, KafkaSource)
_SKIP_DIRS = {"__pycache__", "node_modules", "venv", "site-packages", "tests", "test", "data"}


def repo_files(path: Path) -> list[Path]:
    """The Python files of a repo, in a stable order (hidden, private and test files and
    folders like ``data/`` or ``venv/`` left out)."""
    if path.is_file():
        return [path]
    files = []
    for file in sorted(path.rglob("*.py")):
        parts = file.relative_to(path).parts
        if any(p.startswith((".", "_")) or p in _SKIP_DIRS for p in parts[:-1]):
            continue
        if parts[-1].startswith(("_", ".", "test_")) or parts[-1] == "conftest.py":
            continue
        files.append(file)
    return files


def load_repo(path: str | Path = ".") -> list[Any]:
    """Import a repo's modules and return the definitions they declare.

    Raises:
        InvalidArgumentError: the path does not exist, or a module fails to import
            (the message carries the module's error).
    """
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise InvalidArgumentError(
            f"Feature repo '{path}' does not exist.",
            hint="Pass a Python file or a folder of them (default: the current folder).",
        )
    base = root.parent if root.is_file() else root
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    importlib.invalidate_caches()
    found: dict[int, Any] = {}
    for file in repo_files(root):
        name = ".".join(file.relative_to(base).with_suffix("").parts)
        # A fresh import each time: a changed file must not be served from sys.modules.
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise InvalidArgumentError(
                f"Cannot load feature repo file '{file}': {type(exc).__name__}: {exc}",
                hint="Fix the error above; `python FILE` shows the full traceback.",
            ) from exc
        for value in vars(module).values():
            if isinstance(value, _DEFINITIONS):
                found.setdefault(id(value), value)
    return list(found.values())


__all__ = ["load_repo", "repo_files"]
