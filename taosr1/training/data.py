"""Corpus tables → ``datasets.Dataset`` in exactly the columns TRL's trainers take.

Read through the store's Delta log (one snapshot, one corpus or run partition), never a folder glob; the dataset's
``info.description`` records table, version and partition so a model card can name its data.
"""

from __future__ import annotations

from typing import Literal

import pyarrow.compute as pc

from taosr1.io.tables import TableStore

Kind = Literal["sft", "dpo", "grpo"]
COLUMNS = {
    "sft": ("sft_corpus", "corpus_id", ["prompt", "completion"]),
    "dpo": ("dpo_pairs", "run_id", ["prompt", "chosen", "rejected"]),
    "grpo": ("grpo_prompts", "run_id", ["prompt", "gold_label"]),
}


def load_dataset_for(kind: Kind, store: TableStore, partition: str, split: str = "train",
                     version: int | None = None, extra_columns: tuple[str, ...] = ()):
    """``kind`` = sft | dpo | grpo; ``partition`` = the corpus id (sft) or pass@N run id (dpo, grpo)."""
    import datasets

    table, part_col, cols = COLUMNS[kind]
    if not store.exists(table):
        ds = datasets.Dataset.from_dict({c: [] for c in cols + list(extra_columns)})
        ds.info.description = f"{table} (no table yet) {part_col}={partition} split={split}"
        return ds
    dt = store.delta(table, version)
    arrow = dt.to_pyarrow_table(partitions=[(part_col, "=", partition)])
    arrow = arrow.filter(pc.equal(arrow.column("split"), split))
    if kind == "grpo":
        arrow = arrow.filter(pc.equal(arrow.column("in_grpo"), True))
    arrow = arrow.select(cols + list(extra_columns)).combine_chunks()
    # an empty table with nested columns does not cast into a Dataset: build the empty one from its columns
    ds = datasets.Dataset(arrow) if arrow.num_rows else datasets.Dataset.from_dict({c: [] for c in arrow.column_names})
    ds.info.description = f"{table} v{dt.version()} {part_col}={partition} split={split}"
    return ds
