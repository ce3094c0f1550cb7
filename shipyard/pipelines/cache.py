"""The step cache: a step whose code, parameters and input contents match an earlier
successful run reuses that run's outputs instead of running again.

The key is the sha256 of canonical JSON holding the step function's code fingerprint, the
cache format version, the parameter values (coerced to their declared types, so ``1`` and
``1.0`` for a float input are one key) and the sha256 of every input artifact. Outputs are
content-addressed files, so an entry only records digests and parameter values; an entry
whose files have gone is a miss.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.pipelines.graph import Component
from shipyard.pipelines.schema import pipeline_cache
from shipyard.store.db import now_ms

__all__ = ["CACHE_VERSION", "StepCache", "cache_key", "canonical_json"]

#: Bump when the meaning of a cached output changes (serialization, key layout).
CACHE_VERSION = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text in every process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def cache_key(
    component: Component,
    params: Mapping[str, Any],
    input_digests: Mapping[str, str | list[str]],
) -> str:
    """The cache key of one step run (see the module docstring)."""
    payload = {
        "v": CACHE_VERSION,
        "function": component.function,
        "fingerprint": component.fingerprint,
        "outputs": [[p.name, p.type] for p in component.outputs],
        "params": dict(params),
        "inputs": dict(input_digests),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


_LOOKUP = sa.select(pipeline_cache.c.outputs, pipeline_cache.c.run_id).where(
    pipeline_cache.c.workspace == sa.bindparam("ws"),
    pipeline_cache.c.cache_key == sa.bindparam("key"),
)


class StepCache:
    """Cache entries of one workspace in the metadata store."""

    def __init__(self, engine: Engine, workspace: str, available: Callable[[str], bool]) -> None:
        """``available(key)`` says whether an output file can be read here (and may fetch it
        from a remote artifact root first)."""
        self._engine = engine
        self.workspace = workspace
        self._available = available

    def get(self, key: str) -> tuple[dict[str, Any], str] | None:
        """The stored outputs and the id of the run that produced them, or None (also when
        an output file is missing)."""
        with self._engine.connect() as conn:
            row = conn.execute(_LOOKUP, {"ws": self.workspace, "key": key}).first()
        if row is None:
            return None
        outputs = json.loads(row.outputs)
        for ref in outputs.get("artifacts", {}).values():
            if not self._available(ref["key"]):
                return None
        return outputs, row.run_id

    def put(
        self,
        conn: sa.Connection,
        key: str,
        pipeline: str,
        task: str,
        outputs: Mapping[str, Any],
        run_id: str,
    ) -> None:
        """Record (or replace) an entry, inside the caller's transaction."""
        conn.execute(
            pipeline_cache.delete().where(
                pipeline_cache.c.workspace == self.workspace, pipeline_cache.c.cache_key == key
            )
        )
        conn.execute(
            pipeline_cache.insert().values(
                workspace=self.workspace,
                cache_key=key,
                pipeline=pipeline,
                task=task,
                outputs=canonical_json(outputs),
                run_id=run_id,
                created_at=now_ms(),
            )
        )

    def clear(self, pipeline: str | None = None) -> int:
        """Forget entries (of one pipeline, or all); returns how many."""
        query = pipeline_cache.delete().where(pipeline_cache.c.workspace == self.workspace)
        if pipeline is not None:
            query = query.where(pipeline_cache.c.pipeline == pipeline)
        with self._engine.begin() as conn:
            return conn.execute(query).rowcount or 0
