"""KFP's side of the pipelines benchmark: the local SubprocessRunner (own virtualenv).

    python kfp_side.py WORK WORKLOAD MODE

WORKLOAD: chain (W1), fanout (W2), handoff (W3), cached (W4). MODE ``first`` runs once
(the harness times the whole process); ``steady`` runs once to warm up, then times three
runs. Components skip KFP's runtime ``pip install`` (install_kfp_package=False), which is
the fast configuration. Prints one JSON line.
"""

import json
import statistics
import sys
import time
from pathlib import Path

from kfp import dsl, local

STEPS = 10


@dsl.component(install_kfp_package=False)
def add_one(x: int) -> int:
    return x + 1


@dsl.component(install_kfp_package=False)
def make_items() -> list:
    return list(range(20))


@dsl.component(install_kfp_package=False)
def total(values: list) -> int:
    return int(sum(values))


@dsl.component(install_kfp_package=False, packages_to_install=[])
def make_array(out: dsl.Output[dsl.Dataset]) -> None:
    import numpy as np

    np.save(out.path + ".npy", np.ones(50 * 1024 * 1024 // 8))


@dsl.component(install_kfp_package=False, packages_to_install=[])
def sum_array(data: dsl.Input[dsl.Dataset]) -> float:
    import numpy as np

    return float(np.load(data.path + ".npy").sum())


def build(workload: str, cache: bool):  # type: ignore[no-untyped-def]
    if workload in ("chain", "cached"):

        @dsl.pipeline
        def chain() -> int:
            task = add_one(x=0).set_caching_options(cache)
            for _ in range(STEPS - 1):
                task = add_one(x=task.output).set_caching_options(cache)
            return task.output

        return chain, STEPS
    if workload == "fanout":

        @dsl.pipeline
        def fanout() -> int:
            items = make_items().set_caching_options(cache)
            with dsl.ParallelFor(items.output) as item:
                plus = add_one(x=item).set_caching_options(cache)
            return total(values=dsl.Collected(plus.output)).set_caching_options(cache).output

        return fanout, 22

    @dsl.pipeline
    def handoff() -> float:
        made = make_array().set_caching_options(cache)
        return sum_array(data=made.outputs["out"]).set_caching_options(cache).output

    return handoff, 2


def main() -> None:
    work, workload, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(work / f"kfp-root-{time.monotonic_ns()}"),
    )
    pipeline, steps = build(workload, cache=workload == "cached")
    start = time.perf_counter()
    result = pipeline().output
    first = time.perf_counter() - start
    out = {"first_s": first, "steps": steps, "result": result}
    if mode == "steady":
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            pipeline()
            timings.append(time.perf_counter() - start)
        out["steady_s"] = statistics.median(timings)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
