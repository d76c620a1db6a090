"""The nightly scoring job's throughput: whole job vs bare engine vs a naive loop, and how time grows with size.

    python bench/score_bench.py --sizes 2000,10000,50000 [--naive-rows 300] [--model DIR]
    python bench/score_bench.py --tiny --sizes 10000,100000,1000000     # the scale curve, smallest model

* whole job: ``score_catalog`` over a candidates table of N pairs (Spark read, product join, mapInPandas engine,
  CumPT, Delta commit, quarantine, counts) on local Spark;
* bare engine: the same engine's ``label_probs`` on the same rendered prompts in one process (no Spark);
* naive: what a user writes first, one ``model(**tokenizer(prompt))`` per row with full logits (on a sample).
Ratios are against the whole job. Run it on an idle machine: the numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="2000,10000")
    ap.add_argument("--naive-rows", type=int, default=300)
    ap.add_argument("--bare-max", type=int, default=20000, help="largest size also timed on the bare engine")
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--tiny", action="store_true", help="a 1-layer, 32-wide built-in model for the scale curve")
    args = ap.parse_args()

    from _common import print_table, synthetic_pairs

    from taosr1.config import Settings
    from taosr1.data.load import LoadLabels, LoadLabelsParams
    from taosr1.data.sources import load_source
    from taosr1.engines import create_engine, engine_config
    from taosr1.io import open_store
    from taosr1.job import run_stage
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.prompts import build_messages, render_prompt
    from taosr1.scoring.score import ScoreCatalog, ScoreParams
    from taosr1.spark import get_spark

    work = tempfile.mkdtemp(prefix="score-bench-")
    products, labels = load_source("world")
    size = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16) if args.tiny else {}
    model = args.model or str(build_builtin_model(catalog_texts(products, labels), f"{work}/model",
                                                  BuiltinConfig(warmup_steps=100, **size)))
    spark = get_spark("taosr1-score-bench", conf={"spark.ui.showConsoleProgress": "false"})
    store = open_store(spark, Settings(warehouse=f"{work}/wh"))
    run_stage(LoadLabels(), store, LoadLabelsParams(source="world"))
    cfg = engine_config(model_path=model, batch_size=args.batch_size)
    prods = products.set_index("product_id").to_dict("index")
    engine = create_engine(cfg)

    rows = []
    for i, n in enumerate(int(x) for x in args.sizes.split(",")):
        pairs = synthetic_pairs(products, labels, n, seed=i)
        cand = f"{work}/cand-{n}.parquet"
        pairs.to_parquet(cand, index=False)
        t = time.perf_counter()
        rep = run_stage(ScoreCatalog(), store, ScoreParams(ds=f"2026-01-{i + 1:02d}", model=model, candidates=cand,
                                                           batch_size=args.batch_size, beta_cum=0.5))
        job = n / (time.perf_counter() - t)
        assert rep.counts.kept == n, rep
        bare = None
        if n <= args.bare_max:
            prompts = [render_prompt(engine.tokenizer, build_messages(r.query, prods[r.product_id]))
                       for r in pairs.itertuples()]
            t = time.perf_counter()
            engine.label_probs(prompts)
            bare = n / (time.perf_counter() - t)
        rows.append([n, round(job, 1), bare])

    # naive row-at-a-time transformers loop, on a sample
    import torch

    from taosr1.model.loading import load_causal_lm
    from taosr1.prompts.template import label_token_ids

    tok, model_ = engine.tokenizer, load_causal_lm(model)
    ids = label_token_ids(tok)
    sample = synthetic_pairs(products, labels, args.naive_rows, seed=99)
    t = time.perf_counter()
    with torch.no_grad():
        for r in sample.itertuples():
            enc = tok(render_prompt(tok, build_messages(r.query, prods[r.product_id])), return_tensors="pt")
            probs = torch.softmax(model_(**enc).logits[0, -1], -1)[ids]
            (probs / probs.sum()).tolist()
    naive = args.naive_rows / (time.perf_counter() - t)

    table = []
    for n, job, bare in rows:
        table.append([f"{n:,}", job, "-" if bare is None else round(bare, 1),
                      "-" if bare is None else f"{job / bare:.2f}x", round(naive, 1), f"{job / naive:.1f}x"])
    base = rows[0]
    print_table("nightly scoring throughput (pairs/s; local Spark, built-in model, hf engine, "
                f"{os.cpu_count()} cores)",
                ["pairs", "whole job", "bare engine", "job / bare", "naive loop", "job / naive"], table)
    if len(rows) > 1:
        from rich.console import Console

        for n, job, _ in rows[1:]:
            Console().print(f"{base[0]:,} -> {n:,} pairs ({n / base[0]:.0f}x): time grew "
                            f"{(n / job) / (base[0] / base[1]):.1f}x")


if __name__ == "__main__":
    main()
