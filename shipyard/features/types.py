"""Feature value types: the dtypes of a view's fields and the value types of entity keys.

Each dtype knows its Arrow type and its DuckDB SQL type, so a declared schema can cast
source columns and describe result tables without guessing from data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class DType:
    """A feature dtype (Feast's ``feast.types``): ``Float32``, ``Int64``, ``String`` ..."""

    name: str
    sql: str

    def __repr__(self) -> str:
        return self.name

    def to_arrow(self) -> pa.DataType:
        """The Arrow type values of this dtype are stored as."""
        import pyarrow as pa

        return {
            "Float32": pa.float32(),
            "Float64": pa.float64(),
            "Int32": pa.int32(),
            "Int64": pa.int64(),
            "String": pa.string(),
            "Bool": pa.bool_(),
            "Bytes": pa.binary(),
            "UnixTimestamp": pa.timestamp("us", tz="UTC"),
            "Unknown": pa.null(),
        }[self.name]


Float32 = DType("Float32", "FLOAT")
Float64 = DType("Float64", "DOUBLE")
Int32 = DType("Int32", "INTEGER")
Int64 = DType("Int64", "BIGINT")
String = DType("String", "VARCHAR")
Bool = DType("Bool", "BOOLEAN")
Bytes = DType("Bytes", "BLOB")
UnixTimestamp = DType("UnixTimestamp", "TIMESTAMPTZ")

DTYPES: dict[str, DType] = {
    d.name: d for d in (Float32, Float64, Int32, Int64, String, Bool, Bytes, UnixTimestamp)
}
#: The dtype of a join key whose entity declares no value type; inferred from data.
UNKNOWN = DType("Unknown", "")


def dtype_named(name: str) -> DType:
    """The dtype called ``name``; ValueError listing the known names otherwise."""
    if name == UNKNOWN.name:
        return UNKNOWN
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(
            f"Unknown dtype {name!r}. Known dtypes: {', '.join(sorted(DTYPES))}."
        ) from None


def dtype_from_arrow(arrow_type: pa.DataType) -> DType:
    """The dtype closest to an Arrow type (used when a schema is inferred from data)."""
    import pyarrow as pa

    if pa.types.is_float32(arrow_type) or pa.types.is_float16(arrow_type):
        return Float32
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return Float64
    if pa.types.is_boolean(arrow_type):
        return Bool
    if pa.types.is_integer(arrow_type):
        small = arrow_type.bit_width <= 32 and not (
            pa.types.is_unsigned_integer(arrow_type) and arrow_type.bit_width == 32
        )
        return Int32 if small else Int64
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return UnixTimestamp
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return Bytes
    return String


class ValueType(StrEnum):
    """The value type of an entity's join keys (Feast's ``ValueType``)."""

    INT32 = "INT32"
    INT64 = "INT64"
    STRING = "STRING"
    BYTES = "BYTES"
    UNKNOWN = "UNKNOWN"

    @property
    def dtype(self) -> DType | None:
        """The field dtype join-key columns of this value type have (None: unknown)."""
        return {"INT32": Int32, "INT64": Int64, "STRING": String, "BYTES": Bytes}.get(self.value)


__all__ = [
    "DTYPES",
    "UNKNOWN",
    "Bool",
    "Bytes",
    "DType",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "String",
    "UnixTimestamp",
    "ValueType",
    "dtype_from_arrow",
    "dtype_named",
]
