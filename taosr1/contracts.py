"""Table contracts: each table's schema lives in the top-level ``schemas/<table>.json``,
shipped as package data ``taosr1/resources/schemas`` (a symlink to it).

The JSON holds a Spark ``StructType`` in Spark's own JSON form (``StructType.fromJson``), plus the
partition columns and the primary key, so Spark, delta-rs and the docs all read one definition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import DataType, StructType

from taosr1 import resources
from taosr1.errors import SchemaViolation

@dataclass(frozen=True)
class Contract:
    """One table's contract."""

    table: str
    layer: str
    description: str
    schema: StructType
    partition_by: tuple[str, ...]
    primary_key: tuple[str, ...]

    @property
    def required(self) -> list[str]:
        """Fields that must never be null."""
        return [f.name for f in self.schema.fields if not f.nullable]

    def arrow_schema(self) -> pa.Schema:
        """The Arrow form, for delta-rs (nullability kept)."""
        from pyspark.sql.pandas.types import to_arrow_schema

        return to_arrow_schema(self.schema, timezone="UTC")

    def check_schema(self, actual: StructType, *, allow_extra: bool = False) -> None:
        """Raise :class:`SchemaViolation` for a missing field or a wrong type; extra fields too unless allowed."""
        have = {f.name: f for f in actual.fields}
        for want in self.schema.fields:
            got = have.get(want.name)
            if got is None:
                raise SchemaViolation(self.table, want.name, "required field is missing" if not want.nullable
                                      else "field is missing")
            if not _same_type(got.dataType, want.dataType):
                raise SchemaViolation(self.table, want.name,
                                      f"type {got.dataType.simpleString()} where the contract says "
                                      f"{want.dataType.simpleString()}")
        if not allow_extra:
            extra = [n for n in have if n not in {f.name for f in self.schema.fields}]
            if extra:
                raise SchemaViolation(self.table, extra[0], "field is not in the contract")

    def conform(self, df: DataFrame) -> DataFrame:
        """Check ``df`` against the contract and return it with the contract's column order."""
        self.check_schema(df.schema)
        return df.select(*[f.name for f in self.schema.fields])


def _same_type(a: DataType, b: DataType) -> bool:
    """Types match ignoring nullability flags (Spark plans loosen them freely)."""
    return _strip_nulls(a.jsonValue()) == _strip_nulls(b.jsonValue())


def _strip_nulls(v: object) -> object:
    if isinstance(v, dict):
        return {k: _strip_nulls(x) for k, x in v.items()
                if k not in ("nullable", "containsNull", "valueContainsNull", "metadata")}
    if isinstance(v, list):
        return [_strip_nulls(x) for x in v]
    return v


@lru_cache(maxsize=None)
def load(table: str) -> Contract:
    """Load the packaged contract of ``table``; an unknown table is an error that lists the known ones."""
    try:
        doc = json.loads(resources.read_text("schemas", table))
    except KeyError as e:
        raise KeyError(f"no contract for table '{table}' ({e.args[0]})") from None
    return Contract(
        table=doc["table"],
        layer=doc.get("layer", ""),
        description=doc.get("description", ""),
        schema=StructType.fromJson(doc["schema"]),
        partition_by=tuple(doc.get("partition_by", [])),
        primary_key=tuple(doc.get("primary_key", [])),
    )


def to_spark(spark, pdf, table: str):
    """A pandas frame in a table's contract → Spark DataFrame with exactly the contract's schema (NaN → null)."""
    import pandas as pd

    pdf = pdf.astype(object).where(pd.notna(pdf), None)
    return spark.createDataFrame(pdf, schema=load(table).schema)


def all_tables() -> list[str]:
    """Names of every table with a contract."""
    return resources.names("schemas")
