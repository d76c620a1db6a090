"""The champion: which model nightly scoring uses, decided by evidence and kept as Delta rows.

Every decision (a promotion, a challenger that lost, the demo's first scorer) is a row of ``gold/model_promotions``;
the champion is the latest promoted row. Readers need only ``deltalake`` (the Airflow venv and the engines' default
model resolution read it without Spark). Where MLflow is installed the champion is also a registered model version
with the alias ``champion`` (:mod:`taosr1.tracking`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from taosr1.layout import table_path

REGISTRY = "taosr1-relevance"


@dataclass(frozen=True)
class Champion:
    """The model nightly scoring uses unless told otherwise."""

    path: str
    version: str
    decided_at: str
    run_id: str
    reason: str


def stored_path(root: str, path: str) -> str:
    """A model folder as the warehouse records it: relative to the warehouse when inside it (so a copied or moved
    warehouse is self-contained), else absolute."""
    base = _local(root)
    full = os.path.realpath(path)
    if base is not None and (full + "/").startswith(os.path.realpath(base).rstrip("/") + "/"):
        return os.path.relpath(full, os.path.realpath(base))
    return full


def resolved_path(root: str, recorded: str) -> str:
    """The folder a recorded path names, for the warehouse at ``root`` (relative paths are inside it)."""
    if os.path.isabs(recorded) or "://" in recorded:
        return recorded
    base = _local(root)
    return os.path.join(os.path.realpath(base), recorded) if base is not None else f"{root.rstrip('/')}/{recorded}"


def _local(root: str) -> str | None:
    if root.startswith("file://"):
        return root[len("file://"):]
    return None if "://" in root else root


def champion(root: str, registry: str = REGISTRY) -> Champion | None:
    """The latest promoted model of ``registry`` in the warehouse at ``root`` (None: no decision yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        rows = DeltaTable(table_path(root, "model_promotions")).to_pandas(
            columns=["decided_at", "run_id", "registry", "promoted", "reason", "challenger_path",
                     "challenger_version"])
    except TableNotFoundError:
        return None
    rows = rows[(rows["registry"] == registry) & rows["promoted"]]
    if rows.empty:
        return None
    top = rows.sort_values(["decided_at", "run_id"]).iloc[-1]
    return Champion(path=resolved_path(root, str(top["challenger_path"])), version=str(top["challenger_version"]),
                    decided_at=str(top["decided_at"]), run_id=str(top["run_id"]), reason=str(top["reason"]))


def default_model(root: str) -> str:
    """The model a stage uses when none is named: ``$TAOSR1_MODEL``, else the warehouse's champion, else the
    built-in model's folder."""
    if os.environ.get("TAOSR1_MODEL"):
        return os.environ["TAOSR1_MODEL"]
    champ = champion(root)
    return champ.path if champ else f"{root.rstrip('/')}/models/taosr1-builtin"
