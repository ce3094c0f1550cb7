"""Dependencies point one way: the pipeline definition modules import nothing from the rest of
Shipyard but its errors, and importing them stays light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import shipyard.pipelines

PACKAGE = Path(shipyard.pipelines.__file__).parent

# module -> the shipyard modules it may import
ALLOWED = {
    "types.py": set(),
    "graph.py": {"shipyard.errors", "shipyard.pipelines.types"},
    "validate.py": {"shipyard.errors", "shipyard.pipelines.graph", "shipyard.pipelines.types"},
    "dsl.py": {
        "shipyard.errors",
        "shipyard.pipelines.graph",
        "shipyard.pipelines.types",
        "shipyard.pipelines.validate",
    },
}


def _shipyard_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "shipyard.pipelines":  # submodules: "import graph as g"
                found |= {f"{node.module}.{a.name}" for a in node.names}
            elif node.module.startswith("shipyard"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("shipyard")}
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_definition_modules_import_only_errors_and_each_other(module: str) -> None:
    imported = _shipyard_imports(PACKAGE / module)
    assert imported <= ALLOWED[module], imported - ALLOWED[module]


def test_importing_pipelines_loads_no_other_shipyard_area_or_heavy_library() -> None:
    code = (
        "import sys, json, shipyard.pipelines\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('shipyard') or m in "
        "('sqlalchemy', 'pandas', 'numpy', 'httpx', 'fastapi'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert loaded <= {
        "shipyard",
        "shipyard.errors",
        "shipyard.pipelines",
        "shipyard.pipelines.dsl",
        "shipyard.pipelines.graph",
        "shipyard.pipelines.types",
        "shipyard.pipelines.validate",
    }


def test_public_names_are_sorted_and_resolve() -> None:
    names = shipyard.pipelines.__all__
    assert all(hasattr(shipyard.pipelines, n) for n in names)
    assert {"step", "Step", "pipeline", "Pipeline", "when", "ParallelFor", "ExitHandler"} <= set(
        names
    )
