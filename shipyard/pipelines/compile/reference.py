"""Find a pipeline by reference: ``package.module:attribute`` or ``path/to/file.py:attribute``.

A compiled step names its pipeline this way, so the entrypoint can import it again inside a
container or an Airflow worker.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from shipyard.errors import CompileError, InvalidArgumentError
from shipyard.pipelines.dsl import Pipeline

__all__ = ["load_pipeline", "pipeline_reference"]


def load_pipeline(reference: str) -> Pipeline:
    """The ``Pipeline`` a reference names.

    Raises:
        InvalidArgumentError: the reference is malformed, cannot be imported, or does not name
            a pipeline (the message says which).
    """
    module_name, sep, attribute = reference.rpartition(":")
    if not sep or not module_name or not attribute:
        raise InvalidArgumentError(
            f"'{reference}' is not a pipeline reference.",
            hint="Write MODULE:PIPELINE, e.g. my_project.pipelines:training, or "
            "path/to/file.py:training.",
        )
    try:
        if module_name.endswith(".py"):
            # import the file as its own module (its folder first on sys.path), so the
            # executor's step processes can import it by the same name
            path = Path(module_name).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            module = importlib.import_module(path.stem)
        else:
            module = importlib.import_module(module_name)
    except InvalidArgumentError:
        raise
    except Exception as exc:
        raise InvalidArgumentError(
            f"Cannot import '{module_name}' for pipeline reference '{reference}': {exc}.",
            hint="Check the module path and that it is importable (PYTHONPATH, installed "
            "package or working directory).",
        ) from exc
    target = getattr(module, attribute, None)
    if not isinstance(target, Pipeline):
        found = "nothing" if target is None else type(target).__name__
        raise InvalidArgumentError(
            f"'{attribute}' in '{module_name}' is {found}, not a pipeline.",
            hint="Name a function decorated with @pipeline.",
        )
    return target


def pipeline_reference(pipeline: Pipeline) -> str:
    """``module:attribute`` where the pipeline was defined, checked to import back to it.

    Raises:
        CompileError: the pipeline was defined in ``__main__`` or under another name, so a
            worker could not import it.
    """
    module = pipeline.func.__module__
    attribute = pipeline.func.__name__
    hint = "Define the pipeline in an importable module, or pass reference='module:name'."
    if module == "__main__":
        raise CompileError(
            f"Pipeline '{pipeline.name}' is defined in __main__, which workers cannot import.",
            hint=hint,
        )
    loaded = getattr(sys.modules.get(module), attribute, None)
    if loaded is not pipeline:
        raise CompileError(
            f"Pipeline '{pipeline.name}' is not importable as {module}:{attribute}.", hint=hint
        )
    return f"{module}:{attribute}"
