"""The benchmark's pipelines in Shipyard's DSL (a module, so step workers can import it)."""

from __future__ import annotations

import numpy as np

from shipyard.pipelines import Artifact, Collected, ParallelFor, pipeline, step

STEPS = 10


@step
def add_one(x: int) -> int:
    return x + 1


@step
def make_items() -> list[int]:
    return list(range(20))


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
def make_array() -> Artifact:
    return np.ones(50 * 1024 * 1024 // 8)


@step
def sum_array(data: Artifact) -> float:
    return float(data.load().sum())


@pipeline
def chain():  # type: ignore[no-untyped-def]
    """W1: nothing cached, so every run executes all ten steps."""
    task = add_one(x=0).cache(False)
    for _ in range(STEPS - 1):
        task = add_one(x=task.output).cache(False)


@pipeline
def chain_cached():  # type: ignore[no-untyped-def]
    """W4: the same chain with the cache on."""
    task = add_one(x=0)
    for _ in range(STEPS - 1):
        task = add_one(x=task.output)


@pipeline
def fanout():  # type: ignore[no-untyped-def]
    items = make_items().cache(False)
    with ParallelFor(items.output) as item:
        plus = add_one(x=item).cache(False)
    total(values=Collected(plus.output)).cache(False)


@pipeline
def handoff():  # type: ignore[no-untyped-def]
    sum_array(data=make_array().cache(False).output).cache(False)
