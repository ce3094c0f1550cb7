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
    # Metaflow reads the flow's graph from its source, so the ten steps are written out.

    class BenchFlow(FlowSpec):
        @step
        def start(self):
            self.x = 1
            self.next(self.s1)

        @step
        def s1(self):
            self.x += 1
            self.next(self.s2)

        @step
        def s2(self):
            self.x += 1
            self.next(self.s3)

        @step
        def s3(self):
            self.x += 1
            self.next(self.s4)

        @step
        def s4(self):
            self.x += 1
            self.next(self.s5)

        @step
        def s5(self):
            self.x += 1
            self.next(self.s6)

        @step
        def s6(self):
            self.x += 1
            self.next(self.s7)

        @step
        def s7(self):
            self.x += 1
            self.next(self.s8)

        @step
        def s8(self):
            self.x += 1
            self.next(self.end)

        @step
        def end(self):
            self.x += 1
            print("RESULT", self.x)


if __name__ == "__main__":
    BenchFlow()
