"""Pip requirements of a saved model, inferred in milliseconds.

MLflow runs pip in a subprocess to find them (~14 s per logged model). Here they come
from the flavor's known packages plus the modules a pickled model actually refers to,
each pinned to the version ``importlib.metadata`` reports. No subprocess, no pip.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata

__all__ = ["distribution_for_module", "infer_requirements", "pin"]

#: Import names whose distribution has another name.
_MODULE_DISTS = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "cv2": "opencv-python",
    "attr": "attrs",
    "dateutil": "python-dateutil",
    "bs4": "beautifulsoup4",
    "jwt": "pyjwt",
}

#: Modules of the running script, never a distribution.
_IGNORED = frozenset({"__main__", "__mp_main__"})


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=512)
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pin(dist: str) -> str | None:
    """``dist==<installed version>``, or None when ``dist`` is not installed."""
    version = _version(dist)
    return f"{canonical(dist)}=={version}" if version else None


@lru_cache(maxsize=512)
def distribution_for_module(module: str) -> str | None:
    """The installed distribution providing top-level ``module``, if one is found cheaply.

    Standard-library modules and modules that belong to no distribution (the user's own
    code) give None.
    """
    if not module or module in _IGNORED or module in sys.stdlib_module_names:
        return None
    if module.startswith("_") and module.lstrip("_") in sys.stdlib_module_names:
        return None
    candidates = [_MODULE_DISTS.get(module, module), module.replace("_", "-")]
    for dist in candidates:
        if _version(dist):
            return dist
    return None


def infer_requirements(packages: Iterable[str], modules: Iterable[str] = ()) -> list[str]:
    """Pinned requirements for a model: ``packages`` plus the distributions of ``modules``.

    Always includes shipyard itself (the loader). Packages that are not installed are left
    out; the result is sorted and has one line per distribution.

    Args:
        packages: distribution names the flavor needs (e.g. ``scikit-learn``).
        modules: top-level module names the model refers to (from pickling it).
    """
    dists = ["shipyard", *packages]
    dists += [d for d in (distribution_for_module(m) for m in modules) if d]
    pinned: dict[str, str] = {}
    for dist in dists:
        line = pin(dist)
        if line:
            pinned.setdefault(canonical(dist), line)
    if "shipyard" not in pinned:
        from shipyard import __version__

        pinned["shipyard"] = f"shipyard=={__version__}"
    return sorted(pinned.values())
