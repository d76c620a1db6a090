"""``taosr1 train readout``: the label read out of the base model, then fine-tuned (LP-FT), from a corpus' pairs.

Reads every judged pair of the corpus' train split (not only the class-balanced SFT traces: the loss is
class-weighted instead) and a stated subsample of its dev split for picking the read-out's C and the learning
curve; the evaluation split of the loop is never read here. Writes a standard causal LM folder (and, with
``--readout-out``, the read-out-only model beside it) whose card carries the curve.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from pydantic import Field

from taosr1.errors import InputError
from taosr1.ids import new_id
from taosr1.job import Context, Ident, Params, Stage
from taosr1.model.loading import load_causal_lm, load_tokenizer, model_card, prompt_variant, stamp_identity
from taosr1.obs import get_logger

log = get_logger(__name__)


class ReadoutParams(Params):
    data: Ident = Field(description="Corpus id whose train split is fitted (dev split: C and the learning curve).")
    base: str = Field(description="Model folder to start from (e.g. `taosr1 model import` output).")
    out: str = Field(description="Output model folder (read-out, then fine-tuned when --train-layers > 0).")
    readout_out: str | None = Field(default=None, description="Also save the read-out-only model here.")
    keep_layers: int = Field(default=0, ge=0, description="Cut the model after this many decoder layers before the "
                             "read-out (0 = all; SmolLM2-135M reads the label best near layer 15 of 30, see "
                             "bench/layer_probe.py).")
    train_layers: int = Field(default=4, ge=0, description="Fine-tune the top N decoder layers after the read-out "
                              "(0 = the read-out only).")
    epochs: float = Field(default=3.0, gt=0, description="Passes over the train pairs during the fine-tune.")
    learning_rate: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=16, ge=1)
    max_pairs: int | None = Field(default=None, ge=2, description="Fit on a stated subsample of the train split "
                                  "(whole queries, by a hash of query_id).")
    curve_pairs: int = Field(default=400, ge=0, description="Dev-split pairs (whole queries) for C and the curve.")
    curve_every: int = Field(default=2048, ge=0, description="Examples between two points of the learning curve.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(default="auto", description="Compute type of the cache, "
                                                          "the read-out and the fine-tune (weights stay float32): "
                                                          "auto = bfloat16 where the CPU has bf16 instructions.")
    seed: int = 13


def pair_prompts(frame, tokenizer, variant: str) -> list[list[int]]:
    """Token ids of each pair's deployed prompt (post-CoT, the model's variant), exactly what label_probs scores."""
    from taosr1.pairs import PRODUCT_FIELDS
    from taosr1.prompts import build_messages, render_prompt

    out = []
    for row in frame.to_dict("records"):
        product = {k: row.get(k) for k in PRODUCT_FIELDS}
        if product.get("attributes") is not None and not isinstance(product["attributes"], dict):
            product["attributes"] = dict(product["attributes"])
        text = render_prompt(tokenizer, build_messages(row["query"], product, "post_cot", variant))
        out.append(tokenizer.encode(text, add_special_tokens=False))
    return out


class TrainReadout(Stage[ReadoutParams]):
    """The four label rows fitted on frozen features, then the top layers fine-tuned on cached activations."""

    name = "train_readout"
    Params = ReadoutParams
    reads = ("corpus_pairs", "products")
    writes = ()
    tracked = True

    def run_id(self, params: ReadoutParams) -> str:
        return new_id("readout", Path(params.out).name)

    def run(self, ctx: Context, p: ReadoutParams) -> None:
        from taosr1.evaluation.evaluate import split_pairs_with_products, subsample
        from taosr1.pairs import PRODUCT_FIELDS
        from taosr1.prompts.template import label_token_ids
        from taosr1.model.precision import resolve_dtype
        from taosr1.training.readout import ReadoutConfig, train_readout
        from taosr1.training.trainers import _corpus_source

        cols = ["query_id", "product_id", "query", "label", *PRODUCT_FIELDS]
        train_df = subsample(split_pairs_with_products(ctx.store, p.data, "train"), p.max_pairs, p.seed)
        dev_df = subsample(split_pairs_with_products(ctx.store, p.data, "dev"), p.curve_pairs or None, p.seed + 1)
        train = train_df.select(*cols).orderBy("query_id", "product_id").toPandas()
        dev = (dev_df.select(*cols).orderBy("query_id", "product_id").toPandas() if p.curve_pairs
               else train.iloc[:0])
        if len(train) == 0:
            raise InputError(f"train readout: corpus {p.data} has no train pairs")
        tok = load_tokenizer(p.base)
        variant = prompt_variant(p.base)
        model = load_causal_lm(p.base, "float32")
        cfg = ReadoutConfig(keep_layers=p.keep_layers, train_layers=p.train_layers, epochs=p.epochs,
                            learning_rate=p.learning_rate,
                            batch_size=p.batch_size, curve_every=p.curve_every, seed=p.seed,
                            bf16=resolve_dtype(p.dtype) == "bfloat16")
        tracker = ctx.tracker

        def on_curve(pt) -> None:
            if tracker is not None:
                tracker.metrics_at({"dev_macro_f1": pt.macro_f1, "dev_spearman": pt.spearman,
                                    "dev_accuracy": pt.accuracy}, pt.examples, "curve.")

        base_card = model_card(p.base)
        lineage = {"base": str(p.base), "base_name": base_card.get("name"), "prompt": variant, "order": "post_cot",
                   "completion": "label",
                   "training_source": base_card.get("training_source") or _corpus_source(ctx, "sft", p.data)}
        data = f"corpus_pairs {p.data} split=train ({len(train)} pairs, class-weighted)"

        def save(path: str, stage: str, extra: dict) -> Path:
            out = Path(path)
            if out.exists():
                shutil.rmtree(out)
            model.save_pretrained(out, safe_serialization=True)
            tok.save_pretrained(out)
            card = {"name": f"taosr1-{stage}", "stage": stage, "data": data, **lineage, **extra}
            (out / "taosr1_model.json").write_text(json.dumps(card, indent=2, default=str))
            stamp_identity(out)
            return out

        def on_readout(_model) -> None:
            if p.readout_out:
                save(p.readout_out, "readout", {"config": {"train_layers": 0}})

        run_dir = str(Path(p.out).parent / f".{Path(p.out).name}-run")
        res = train_readout(model, label_token_ids(tok), pair_prompts(train, tok, variant),
                            train["label"].to_numpy(dtype=int), pair_prompts(dev, tok, variant),
                            dev["label"].to_numpy(dtype=int), cfg, run_dir, on_curve, on_readout)
        shutil.rmtree(run_dir, ignore_errors=True)
        stage = "readout_ft" if p.train_layers > 0 else "readout"
        path = save(p.out, stage, {"config": asdict(cfg), "readout": res.as_dict()})
        c = ctx.report.counts
        c.rows_in = c.kept = len(train)
        c.extra = {"dev_pairs": len(dev), "curve_points": len(res.curve)}
        ctx.report.info.update(path=path, readout_path=p.readout_out, curve=[asdict(x) for x in res.curve],
                               readout_dev=res.readout_dev, c=res.c, seconds=res.seconds,
                               examples_per_s=res.examples_per_s, tokens_per_example=res.tokens_per_example,
                               params={"data_version": data})
        if tracker is not None:
            tracker.metrics({**{f"readout_{k}": v for k, v in res.readout_dev.items()}, "readout_c": res.c,
                             **{f"seconds_{k}": v for k, v in res.seconds.items()}})
            tracker.model_folder(path)
