"""Settings shared by every job: where the warehouse lives and which Delta backend writes it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Backend = Literal["auto", "delta-rs", "delta-spark"]


class Settings(BaseModel):
    """Process-wide settings; every field can come from a ``TAOSR1_*`` environment variable or a flag."""

    warehouse: str = Field(default="warehouse", description="Root folder or URI of all Delta tables.")
    table_backend: Backend = Field(default="auto", description="auto picks delta-spark when Spark has the Delta "
                                   "extension (or is Spark Connect), else delta-rs.")

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Environment first, explicit overrides (flags) win; ``None`` overrides are ignored."""
        env = {
            "warehouse": os.environ.get("TAOSR1_WAREHOUSE"),
            "table_backend": os.environ.get("TAOSR1_TABLE_BACKEND"),
        }
        values = {k: v for k, v in env.items() if v}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def warehouse_uri(self) -> str:
        """Absolute location: URIs (s3://, hdfs://, file://) pass through, local paths become absolute."""
        if "://" in self.warehouse:
            return self.warehouse.rstrip("/")
        return str(Path(self.warehouse).expanduser().resolve())
