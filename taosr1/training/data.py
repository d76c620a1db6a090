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
                     version: int | None = None, extra_columns: tuple[str, ...] = (), order: str = "post_cot",
                     completion: str = "cot"):
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
    if completion == "label" and kind == "sft" and len(ds):  # the ablation without CoT: the label line only
        ds = ds.map(lambda r: {"completion": [{"role": "assistant",
                                               "content": r["completion"][0]["content"].split("\n", 1)[0]}]})
        ds.info.description = f"{table} v{dt.version()} {part_col}={partition} split={split} completion=label"
    if order == "think_first" and kind == "sft" and len(ds):
        ds = ds.map(think_first)
        ds.info.description = f"{table} v{dt.version()} {part_col}={partition} split={split} order=think_first"
    return ds


def think_first(row: dict) -> dict:
    """A post-CoT example in the think-first order (the paper's ablation): the CoT block first, the label line last,
    and the prompt's order hint to match."""
    from taosr1.prompts.template import COMPACT_HINT, ORDER_HINT

    text = row["completion"][0]["content"]
    label, _, think = text.partition("\n")
    prompt = [dict(m) for m in row["prompt"]]
    user = prompt[-1]["content"]
    for hints in (ORDER_HINT, COMPACT_HINT):
        if user.endswith(hints["post_cot"]):
            user = user[: -len(hints["post_cot"])] + hints["think_first"]
    prompt[-1]["content"] = user
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": f"{think.strip()}\n{label.strip()}"}]}
