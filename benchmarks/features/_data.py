"""The feature-store benchmark data, generated exactly as BENCH-DATA-features specifies.

numpy's PCG64 ``default_rng(0)`` draws driver_stats then customer_stats in a fixed order;
entity frames use ``default_rng([1, n])``. Every side (Shipyard's .venv, Feast's own
virtualenv) regenerates or reads the same Parquet files, and :func:`column_hashes` proves
the arrays are identical (sha256 of each raw little-endian column; timestamps as int64
epoch seconds).

    python _data.py WORK_DIR small|large [ENTITY_ROWS,...]
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START = 1704067200  # 2024-01-01T00:00:00Z
SIZES = {"small": (1_000, 720, 1_000), "large": (10_000, 720, 10_000)}  # D, H, C
CADENCE_H = 6
DRIVER_FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", *(f"f{i}" for i in range(1, 8))]
CUSTOMER_FEATURES = ["c_spend", "c_orders", "c_f1", "c_f2", "c_f3"]
DRIVER_TTL_S = 90 * 60
CUSTOMER_TTL_S = 8 * 3600


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds * 1_000_000_000, type=pa.timestamp("ns", tz="UTC"))


def tables(size: str) -> tuple[pa.Table, pa.Table]:
    """(driver_stats, customer_stats) for ``small`` or ``large``."""
    d, hours, c = SIZES[size]
    rng = np.random.default_rng(0)
    n = d * hours
    rows = np.arange(n, dtype=np.int64)
    hour, driver_id = rows // d, rows % d + 1
    jitter = rng.integers(0, 3600, size=n, dtype=np.int64)
    created_delay = rng.integers(0, 600, size=n, dtype=np.int64)
    conv_rate = rng.random(n, dtype=np.float32)
    acc_rate = rng.random(n, dtype=np.float32)
    trips = rng.integers(0, 1000, size=n, dtype=np.int64)
    extra = rng.standard_normal((7, n), dtype=np.float32)
    event = START + hour * 3600 + jitter
    driver = pa.table(
        {
            "driver_id": driver_id,
            "event_timestamp": _ts(event),
            "created": _ts(event + created_delay),
            "conv_rate": conv_rate,
            "acc_rate": acc_rate,
            "avg_daily_trips": trips,
            **{f"f{i + 1}": extra[i] for i in range(7)},
        }
    )
    slots = hours // CADENCE_H
    m = c * slots
    rows = np.arange(m, dtype=np.int64)
    slot, customer_id = rows // c, rows % c + 1
    cjit = rng.integers(0, 21600, size=m, dtype=np.int64)
    ccre = rng.integers(0, 600, size=m, dtype=np.int64)
    c_spend = rng.random(m, dtype=np.float32)
    c_orders = rng.integers(0, 500, size=m, dtype=np.int64)
    cextra = rng.standard_normal((3, m), dtype=np.float32)
    cevent = START + slot * 21600 + cjit
    customer = pa.table(
        {
            "customer_id": customer_id,
            "event_timestamp": _ts(cevent),
            "created": _ts(cevent + ccre),
            "c_spend": c_spend,
            "c_orders": c_orders,
            **{f"c_f{i + 1}": cextra[i] for i in range(3)},
        }
    )
    return driver, customer


def entities(size: str, n: int) -> pa.Table:
    d, hours, c = SIZES[size]
    rng = np.random.default_rng([1, n])
    driver_id = rng.integers(1, d + 1, size=n, dtype=np.int64)
    customer_id = rng.integers(1, c + 1, size=n, dtype=np.int64)
    event = START + rng.integers(0, hours * 3600, size=n, dtype=np.int64)
    return pa.table(
        {"driver_id": driver_id, "customer_id": customer_id, "event_timestamp": _ts(event)}
    )


def fresh_rows(data: Path, drivers: int = 1000) -> pa.Table:
    """The last hour's row of drivers 1..``drivers``, stamped now: what the online-read
    workload serves (the data's own 2024 times are far outside the 90-minute TTL)."""
    import pyarrow.compute as pc

    table = pq.read_table(data / "driver_stats.parquet")
    hours = SIZES["large" if table.num_rows > 1_000_000 else "small"][1]
    last = table.slice(table.num_rows - table.num_rows // hours)
    last = last.filter(pc.less_equal(last.column("driver_id"), drivers))
    now = pa.array([datetime.now(UTC)] * last.num_rows, pa.timestamp("us", tz="UTC"))
    for name in ("event_timestamp", "created"):
        last = last.set_column(last.schema.get_field_index(name), name, now)
    return last


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM), in MB.

    Not ``ru_maxrss``: that survives ``execve``, so a child started by a big parent reports
    the parent's size; VmHWM belongs to the address space the child got at exec.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def column_hashes(table: pa.Table) -> dict[str, str]:
    """sha256 of each column's raw little-endian values (timestamps as epoch seconds)."""
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_timestamp(col.type):
            values = col.cast(pa.int64()).to_numpy() // 1_000_000_000
        else:
            values = col.to_numpy()
        out[name] = hashlib.sha256(values.astype(values.dtype.newbyteorder("<")).tobytes())
        out[name] = out[name].hexdigest()
    return out


def write(work: Path, size: str, entity_rows: list[int]) -> dict[str, dict[str, str]]:
    """Write the Parquet files (once) and return every file's column hashes."""
    folder = work / "data" / size
    folder.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, dict[str, str]] = {}
    if not (folder / "driver_stats.parquet").exists():
        driver, customer = tables(size)
        pq.write_table(driver, folder / "driver_stats.parquet")
        pq.write_table(customer, folder / "customer_stats.parquet")
    for n in entity_rows:
        path = folder / f"entity_{n}.parquet"
        if not path.exists():
            pq.write_table(entities(size, n), path)
    for path in sorted(folder.glob("*.parquet")):
        hashes[path.stem] = column_hashes(pq.read_table(path))
    return hashes


if __name__ == "__main__":
    counts = [int(x) for x in sys.argv[3].split(",")] if len(sys.argv) > 3 else []
    print(json.dumps(write(Path(sys.argv[1]), sys.argv[2], counts)))
