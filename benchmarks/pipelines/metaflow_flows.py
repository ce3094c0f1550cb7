"""Metaflow flows for the pipelines benchmark; run as ``python metaflow_flows.py run``.

``BENCH_WORKLOAD`` picks the flow: chain (10 steps adding 1), fanout (foreach over 20
items, then a join that sums), handoff (a 50 MiB array artifact summed by the next step).
"""

from __future__ import annotations

import os

from metaflow import FlowSpec, step

WORKLOAD = os.environ.get("BENCH_WORKLOAD", "chain")

if WORKLOAD == "fanout":

    class BenchFlow(FlowSpec):
        @step
        def start(self):
            self.items = list(range(20))
            self.next(self.add_one, foreach="items")

        @step
        def add_one(self):
            self.value = self.input + 1
            self.next(self.join)

        @step
        def join(self, inputs):
            self.result = sum(i.value for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            print("RESULT", self.result)

elif WORKLOAD == "handoff":

    class BenchFlow(FlowSpec):
        @step
        def start(self):
            import numpy as np

            self.data = np.ones(50 * 1024 * 1024 // 8)
            self.next(self.end)

        @step
        def end(self):
            print("RESULT", float(self.data.sum()))

else:

    def _add(name: str, following: str):  # type: ignore[no-untyped-def]
        def body(self):  # type: ignore[no-untyped-def]
            self.x = getattr(self, "x", 0) + 1
            self.next(getattr(self, following))

        body.__name__ = name
        return step(body)

    names = ["start", *(f"s{i}" for i in range(1, 9)), "end"]
    attrs = {n: _add(n, names[i + 1]) for i, n in enumerate(names[:-1])}

    def _end(self):  # type: ignore[no-untyped-def]
        self.x += 1
        print("RESULT", self.x)

    _end.__name__ = "end"
    attrs["end"] = step(_end)
    BenchFlow = type("BenchFlow", (FlowSpec,), attrs)


if __name__ == "__main__":
    BenchFlow()
